package edge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// asks records the asks a stand-in upload service received.
type asks struct {
	mu  sync.Mutex
	ids []string
}

func (a *asks) add(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	return len(a.ids)
}

func (a *asks) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ids...)
}

// An ask whose answer is lost (the upload instance serving it died, or
// the bus node carrying the reply) is noticed within one ask's bound and
// asked again with the same upload ID; answers that the upload is pending
// are asked again too, and the completed result is the response.
func TestUploadAskedAgainAfterALostAnswer(t *testing.T) {
	w := startWorld(t, nil)
	dev := w.developer("dev@example.com")
	w.experiment("kept", "dev@example.com", experiments.StatusActive, `{"schema_version":"2.0","slug":"kept","name":"Kept","status":"active"}`, map[string]string{"index.html": "<title>kept</title>"})
	stored, err := w.d.Store.Experiments().Get(context.Background(), "kept")
	if err != nil || stored == nil {
		t.Fatalf("stored experiment: %v, %v", stored, err)
	}
	lost := make(chan struct{})
	t.Cleanup(func() { close(lost) })
	var seen asks
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointProcess, func(ctx context.Context, req uploadapi.ProcessUpload) (uploadapi.Result, error) {
		switch seen.add(req.UploadID) {
		case 1:
			<-lost // never answered
			return uploadapi.Result{}, nil
		case 2:
			return uploadapi.Result{Pending: true}, nil
		}
		return uploadapi.Result{Experiment: *stored, Warnings: []uploadapi.Warning{}, Created: true}, nil
	}))
	began := time.Now()
	r := w.do("POST", "/api/experiments", dev, map[string]string{"Content-Type": "application/zip"}, strings.Repeat("PK", 1<<10))
	took := time.Since(began)
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var body struct {
		Experiment struct{ Slug string } `json:"experiment"`
		Created    bool                  `json:"created"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Experiment.Slug != "kept" || !body.Created {
		t.Fatalf("upload answer: %s (%v)", r.body, err)
	}
	ids := seen.all()
	if len(ids) != 3 {
		t.Fatalf("%d asks, want 3 (lost, pending, done): %v", len(ids), ids)
	}
	for _, id := range ids[1:] {
		if id != ids[0] || !uploadapi.ValidUploadID(id) {
			t.Fatalf("asks named %v, want one upload ID throughout", ids)
		}
	}
	if limit := uploadapi.ProcessAttempt + 5*time.Second; took > limit {
		t.Errorf("answered after %v, want within %v", took, limit)
	}
}

// An upload service that never answers (every instance lost with the
// upload) is 503 with a Retry-After within seconds, not at the request's
// deadline.
func TestUploadUnansweredIs503WithinSeconds(t *testing.T) {
	w := startWorld(t, nil)
	w.http.Timeout = 2 * time.Minute
	dev := w.developer("dev@example.com")
	lost := make(chan struct{})
	t.Cleanup(func() { close(lost) })
	var seen asks
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointProcess, func(ctx context.Context, req uploadapi.ProcessUpload) (uploadapi.Result, error) {
		seen.add(req.UploadID)
		<-lost
		return uploadapi.Result{}, nil
	}))
	began := time.Now()
	r := w.do("POST", "/api/experiments", dev, map[string]string{"Content-Type": "application/zip"}, strings.Repeat("PK", 1<<10))
	took := time.Since(began)
	wantOutage(t, "an upload nobody answers", r)
	if limit := 2*uploadapi.ProcessAttempt + uploadapi.ProcessUnanswered + 3*time.Second; took > limit {
		t.Errorf("answered after %v, want within %v", took, limit)
	}
	if n := len(seen.all()); n < 2 {
		t.Errorf("asked %d times, want the ask repeated", n)
	}
}

// A delete whose ask got no answer is asked again; the second ask finding
// no experiment means the first deleted it, which is the answer. Without a
// lost ask, no experiment is 404 as before.
func TestDeleteAskedAgainAfterALostAnswer(t *testing.T) {
	w := startWorld(t, nil)
	w.http.Timeout = time.Minute
	dev := w.developer("dev@example.com")
	for _, slug := range []string{"gone", "never"} {
		w.experiment(slug, "dev@example.com", experiments.StatusActive, `{"schema_version":"2.0","slug":"`+slug+`","name":"X","status":"active"}`, map[string]string{"index.html": "<title>x</title>"})
	}
	lost := make(chan struct{})
	t.Cleanup(func() { close(lost) })
	var seen asks
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointDelete, func(ctx context.Context, req uploadapi.Delete) (uploadapi.Result, error) {
		if seen.add(req.Slug) == 1 {
			<-lost // the instance deleted it and was lost with the answer
			return uploadapi.Result{}, nil
		}
		return uploadapi.Result{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
	}))
	r := w.do("DELETE", "/api/experiments/gone", dev, jsonType, `{"confirm":"gone"}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"deleted":"gone"`) {
		t.Fatalf("delete after a lost answer: %d %s", r.status, r.body)
	}
	if ids := seen.all(); len(ids) != 2 {
		t.Fatalf("asks %v, want two", ids)
	}
	r = w.do("DELETE", "/api/experiments/never", dev, jsonType, `{"confirm":"never"}`)
	if r.status != http.StatusNotFound {
		t.Fatalf("delete the service finds nothing of: %d %s, want 404", r.status, r.body)
	}
}

// An export request whose answer is lost is asked again within seconds;
// the export service joins the requester's export, so the answer is the
// queued export, not a 503 at the call's deadline.
func TestExportRequestAskedAgainAfterALostAnswer(t *testing.T) {
	w := startWorld(t, nil)
	dev := w.developer("dev@example.com")
	w.experiment("exp", "dev@example.com", experiments.StatusActive, `{"schema_version":"2.0","slug":"exp","name":"Exp","status":"active"}`, map[string]string{"index.html": "<title>x</title>"})
	lost := make(chan struct{})
	t.Cleanup(func() { close(lost) })
	var seen asks
	w.standIn(exportapi.Service, bus.Endpoint(exportapi.EndpointRequest, func(ctx context.Context, req exportapi.Request) (exportapi.Requested, error) {
		if seen.add(req.Slug) == 1 {
			<-lost
		}
		return exportapi.Requested{Export: exportapi.Log{ID: "exp-1", Slug: req.Slug, Type: req.Type, Status: exportapi.StatusQueued, CreatedAt: time.Now()}}, nil
	}))
	began := time.Now()
	r := w.do("POST", "/api/experiments/exp/exports", dev, jsonType, `{"type":"upload-ready"}`)
	if r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"exp-1"`) {
		t.Fatalf("export request after a lost answer: %d %s", r.status, r.body)
	}
	if took := time.Since(began); took > 12*time.Second {
		t.Errorf("answered after %v, want within one ask's bound and a little", took)
	}
	if n := len(seen.all()); n != 2 {
		t.Errorf("%d asks, want two", n)
	}
}
