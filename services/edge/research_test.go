package edge_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportstore"
)

// TestResearchData: the edge checks the body of a research-data request
// and hands it to the export service (a stand-in here; the whole flow runs
// in services/gnome/platform), lists the collections as the service says,
// and hands out the file with its own name and media type.
func TestResearchData(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("hello", "dev@example.com", "active", helloManifest, map[string]string{"index.html": "<h1>Hello</h1>"})
	dev := w.token("dev@example.com", "developer")
	user := w.token("ann@example.com", "user")

	var (
		mu   sync.Mutex
		seen []exportapi.Request
	)
	expires := time.Now().Add(time.Hour)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	csvFile := exportapi.Log{ID: exReady, Slug: "hello", Type: exportapi.ResearchData, Version: 1, Status: exportapi.StatusReady, Progress: 1,
		Checksum: "c0ffee", FileName: "hello-answers-20260101T000000Z.csv", ExpiresAt: &expires, UpdatedAt: time.Now(),
		Data: &exportapi.DataQuery{Collection: "answers", Format: exportapi.FormatCSV, From: &from}}
	csvFile.StorageKey = csvFile.StorageKeyOf()
	owner := func(email string) error {
		if email != "dev@example.com" {
			return apierr.New(apierr.CodeForbidden, "only the experiment's owner and admins download its research data")
		}
		return nil
	}
	w.standIn(exportapi.Service,
		bus.Endpoint(exportapi.EndpointData, func(_ context.Context, r exportapi.DataList) (exportapi.DataCollections, error) {
			if err := owner(r.Caller.Email); err != nil {
				return exportapi.DataCollections{}, err
			}
			return exportapi.DataCollections{Slug: r.Slug, Collections: []exportapi.DataCollection{{Name: "answers", Documents: 3}}}, nil
		}),
		bus.Endpoint(exportapi.EndpointRequest, func(_ context.Context, r exportapi.Request) (exportapi.Requested, error) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
			if err := owner(r.Caller.Email); err != nil {
				return exportapi.Requested{}, err
			}
			return exportapi.Requested{Export: exportapi.Log{ID: exRunning, Slug: r.Slug, Type: r.Type, Data: r.Data, UserEmail: r.Caller.Email, Status: exportapi.StatusQueued}}, nil
		}),
		bus.Endpoint(exportapi.EndpointDownload, func(_ context.Context, g exportapi.Get) (exportapi.Download, error) {
			return exportapi.Download{Export: csvFile, StorageKey: csvFile.StorageKey}, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.d.Topology.EnsureObjectStores(ctx, bus.ObjectExports); err != nil {
		t.Fatal(err)
	}
	body := "_id,name\r\n1,'=1+1\r\n"
	if _, err := exportstore.NewObjectStore(w.d.JS, bus.ObjectExports).Put(ctx, csvFile.StorageKey, bytes.NewReader([]byte(body))); err != nil {
		t.Fatal(err)
	}

	const path = "/api/experiments/hello/data"
	crossSite := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}
	otherOrigin := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Origin": "http://evil.example"}
	ok := `{"collection":"answers","format":"csv","from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00+01:00"}`
	w.run([]scenario{
		{name: "list, anonymous", path: path, status: 401, code: "unauthenticated"},
		{name: "list, not the owner", path: path, token: user, status: 403, code: "forbidden"},
		{name: "list, unknown experiment", path: "/api/experiments/nope/data", token: dev, status: 404, code: "not_found"},
		{name: "list", path: path, token: dev, status: 200, want: []string{`"collections":[{"name":"answers","documents":3}]`},
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "request, anonymous", method: "POST", path: path, header: jsonType, body: ok, status: 401, code: "unauthenticated"},
		{name: "request by cookie from another site", method: "POST", path: path, header: crossSite, body: ok, status: 403, code: "csrf_rejected"},
		{name: "request by cookie from another origin", method: "POST", path: path, header: otherOrigin, body: ok, status: 403, code: "csrf_rejected"},
		{name: "request, not JSON", method: "POST", path: path, token: dev, body: ok, status: 415, code: "unsupported_media_type"},
		{name: "request, unknown field", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers","filter":{"$where":"1"}}`, status: 400, code: "invalid_json"},
		{name: "request, no collection", method: "POST", path: path, token: dev, header: jsonType, body: `{"format":"csv"}`, status: 422, code: "validation_failed", want: []string{`"field":"/collection"`}},
		{name: "request, dotted collection", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers.x"}`, status: 422, code: "validation_failed", want: []string{`"field":"/collection"`}},
		{name: "request, $ collection", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"$cmd"}`, status: 422, code: "validation_failed"},
		{name: "request, 1000-character collection", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"` + strings.Repeat("a", 1000) + `"}`, status: 422, code: "validation_failed"},
		{name: "request, other experiment's collection", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"x.other.answers"}`, status: 422, code: "validation_failed"},
		{name: "request, bad format", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers","format":"xlsx"}`, status: 422, code: "validation_failed", want: []string{`"field":"/format"`}},
		{name: "request, bad time", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers","from":"yesterday"}`, status: 422, code: "validation_failed", want: []string{`"field":"/from"`}},
		{name: "request, time without zone", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers","to":"2026-01-01T00:00:00"}`, status: 422, code: "validation_failed", want: []string{`"field":"/to"`}},
		{name: "request, from after to", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers","from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, status: 422, code: "validation_failed", want: []string{"from must be before to"}},
		{name: "request, not the owner", method: "POST", path: path, token: user, header: jsonType, body: ok, status: 403, code: "forbidden"},
		{name: "request", method: "POST", path: path, token: dev, header: jsonType, body: ok, status: 202,
			want:       []string{`"type":"research-data"`, `"collection":"answers"`, `"status":"queued"`},
			wantHeader: map[string]string{"Location": "/api/exports/" + exRunning}},
		{name: "request, csv by default", method: "POST", path: path, token: dev, header: jsonType, body: `{"collection":"answers"}`, status: 202, want: []string{`"format":"csv"`}},
		{name: "download", path: "/api/exports/" + exReady + "/download", token: dev, status: 200, want: []string{body},
			wantHeader: map[string]string{"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": `attachment; filename="hello-answers-20260101T000000Z.csv"`}},
	})
	mu.Lock()
	defer mu.Unlock()
	// Only well-formed requests reached the service (and the non-owner's,
	// which the service refused itself): the first as sent, times in UTC.
	if len(seen) != 3 {
		t.Fatalf("%d requests reached the service: %+v", len(seen), seen)
	}
	q := seen[1].Data
	if seen[1].Type != exportapi.ResearchData || q == nil || q.Collection != "answers" || q.Format != "csv" ||
		!q.From.Equal(from) || q.To.Format(time.RFC3339) != "2026-01-31T23:00:00Z" {
		t.Errorf("the service was asked %+v %+v", seen[1], q)
	}
}
