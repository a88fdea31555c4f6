package upload_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/upload"
)

// stage puts body in the uploads store as the edge does and returns the
// request that asks for its processing.
func (w *world) stage(body []byte, caller uploadapi.Caller) uploadapi.ProcessUpload {
	w.t.Helper()
	id := uploadapi.NewUploadID()
	size, err := w.client.Staging.Put(ctxT(w.t), id, bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	return uploadapi.ProcessUpload{UploadID: id, Size: size, Caller: caller}
}

// staged reports whether the staged ZIP of id is still in the uploads store.
func (w *world) staged(id string) bool {
	w.t.Helper()
	_, err := (bus.Objects{JS: w.d.JS, Bucket: bus.ObjectUploads}).Info(ctxT(w.t), id)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return true
}

// experiment is the stored record of slug.
func (w *world) experiment(slug string) *experiments.Config {
	w.t.Helper()
	cfg, err := w.d.Store.Experiments().Get(ctxT(w.t), slug)
	if err != nil || cfg == nil {
		w.t.Fatalf("experiment %s: %v (%v)", slug, cfg, err)
	}
	return cfg
}

func waitFor(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Asking again for an upload processed already answers the first outcome,
// a success or a refusal, and makes nothing new; the staged ZIP is gone
// once the outcome is recorded.
func TestProcessAgainAnswersTheFirstOutcome(t *testing.T) {
	w := newWorld(t)
	w.start()
	req := w.stage(zipOf(t, "again", nil), ann)
	first, err := w.client.Process(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || first.Experiment.Version != 1 || first.Pending {
		t.Fatalf("first answer: %+v", first)
	}
	if w.staged(req.UploadID) {
		t.Error("the staged ZIP is still there after its outcome was recorded")
	}
	for range 2 {
		again, err := w.client.Process(ctxT(t), req)
		if err != nil {
			t.Fatalf("ask again: %v", err)
		}
		if !again.Created || again.Experiment.Version != 1 || again.Experiment.Seq != first.Experiment.Seq || again.Unchanged {
			t.Fatalf("ask again: %+v, want the first answer %+v", again, first)
		}
	}
	if cfg := w.experiment("again"); len(cfg.Versions) != 1 || cfg.Version != 1 {
		t.Fatalf("versions after asking three times: %+v", cfg.Versions)
	}
	if n := w.audits("experiment.upload"); n != 1 {
		t.Errorf("%d upload audit entries, want 1", n)
	}

	// Someone else asking for ann's upload learns nothing of it.
	_, err = w.client.Process(ctxT(t), uploadapi.ProcessUpload{UploadID: req.UploadID, Size: req.Size, Caller: bob})
	wantCode(t, "bob asks for ann's upload", err, apierr.CodeNotFound)

	// A refusal is an outcome too: asked again, the same refusal, not a
	// missing staged upload.
	bad := w.stage([]byte("not a zip at all"), ann)
	_, err = w.client.Process(ctxT(t), bad)
	code := apierr.From(err).Code
	if code == apierr.CodeNotFound || code.Status() < 400 || code.Status() >= 500 {
		t.Fatalf("a ZIP that is none: %v", err)
	}
	_, err = w.client.Process(ctxT(t), bad)
	wantCode(t, "the refused upload asked again", err, code)
}

// Upload IDs are keys of the service's records: one that could name other
// keys, or other objects, is refused before anything is read.
func TestProcessRefusesHostileUploadIDs(t *testing.T) {
	w := newWorld(t)
	w.start()
	victim := w.stage(zipOf(t, "victim", nil), ann)
	for _, id := range []string{"", "*", ">", victim.UploadID + ".done", victim.UploadID + ".*", "up-a b", "../" + victim.UploadID,
		"up-\u00e9", strings.Repeat("a", 65), "up-a\x00"} {
		_, err := w.client.Process(ctxT(t), uploadapi.ProcessUpload{UploadID: id, Size: 1, Caller: bob})
		wantCode(t, "upload id "+id, err, apierr.CodeBadRequest)
	}
	if !w.staged(victim.UploadID) {
		t.Fatal("a hostile ask removed another's staged upload")
	}
	if res, err := w.client.Process(ctxT(t), victim); err != nil || res.Experiment.Version != 1 {
		t.Fatalf("the victim's own upload: %+v, %v", res, err)
	}
}

// An upload whose processing instance is lost mid-way (its bus connection
// gone, as when its process or its NATS node dies) is taken over by
// another instance and answered within seconds; the lost instance, going
// on regardless, makes no second version; asked again, the upload gets
// the first answer.
func TestProcessTakenOverWhenItsInstanceIsLost(t *testing.T) {
	// Lost before its version was recorded, the takeover makes it; lost
	// right after, the takeover finds it and finishes what follows.
	for _, c := range []struct {
		name string
		hold func(*upload.Service, func(string))
	}{
		{"before its version", upload.SetBeforeStore},
		{"after its version", upload.SetAfterStore},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			same := func(int) *config.Config { c := *w.cfg; return &c }
			lostMidway(t, w, same, c.hold)
		})
	}
}

// lostMidway runs an upload on an instance held at a step by hold, loses
// that instance's bus connection, starts another, and checks the upload is
// answered by the takeover, once. instance gives the settings of the lost
// instance (0) and of the one that takes over (1).
func lostMidway(t *testing.T, w *world, instance func(i int) *config.Config, hold func(*upload.Service, func(string))) {
	// The instance to lose, alone at first so that it takes the upload.
	lostDeps := w.env.Deps(t, instance(0))
	lost := upload.New(lostDeps)
	reached, release := make(chan string, 1), make(chan struct{})
	hold(lost, func(id string) {
		reached <- id
		<-release
	})
	if err := (&svc.Group{Log: lostDeps.Log, Services: []svc.Service{lost}}).Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = lost.Stop(sctx)
	})
	uploads, err := w.d.JS.ObjectStore(ctxT(t), bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	w.client = uploadapi.Client{T: bus.Client{NC: w.d.NC}, Staging: bus.ObjectStaging{Store: uploads}}
	req := w.stage(zipOf(t, "survivor", nil), ann)

	type answer struct {
		res uploadapi.Result
		err error
		at  time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := w.client.Process(context.Background(), req)
		answered <- answer{res, err, time.Now()}
	}()
	select {
	case id := <-reached:
		if id != req.UploadID {
			t.Fatalf("held upload %s, want %s", id, req.UploadID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first instance never reached the step it is held at")
	}
	// Another instance comes; the first one loses the bus.
	takerDeps := w.env.Deps(t, instance(1))
	testenv.Run(t, takerDeps, upload.New(takerDeps))
	lostDeps.NC.Close()
	lostAt := time.Now()

	var a answer
	select {
	case a = <-answered:
	case <-time.After(60 * time.Second):
		t.Fatal("the upload was not answered after its instance was lost")
	}
	if a.err != nil {
		t.Fatalf("upload after its instance was lost: %v", a.err)
	}
	if took := a.at.Sub(lostAt); took > 20*time.Second {
		t.Errorf("answered %v after the instance was lost", took)
	}
	if !a.res.Created || a.res.Experiment.Version != 1 {
		t.Fatalf("answer after the takeover: %+v", a.res)
	}

	// A later upload makes version 2; then the lost instance goes on: it
	// must find the version its upload made, not make a third from a
	// bundle that is no longer current.
	w.upload(ann, "survivor", map[string]any{"name": "Second"})
	release <- struct{}{}
	waitFor(t, 30*time.Second, func() bool { return upload.Running(lost) == 0 }, "the lost instance's processing to end")
	if cfg := w.experiment("survivor"); len(cfg.Versions) != 2 || cfg.Version != 2 || cfg.Versions[0].UploadID != req.UploadID {
		t.Fatalf("versions after the lost instance went on: %+v", cfg.Versions)
	}
	again, err := w.client.Process(ctxT(t), req)
	if err != nil || !again.Created || again.Experiment.Version != 1 || again.Experiment.Seq != a.res.Experiment.Seq {
		t.Fatalf("asked again: %+v, %v; want %+v", again, err, a.res)
	}
	if w.staged(req.UploadID) {
		t.Error("the staged ZIP is still there after the outcome was recorded")
	}
}
