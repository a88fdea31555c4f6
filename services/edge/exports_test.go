package edge_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportstore"
)

// Export IDs of the stand-in export service, one per answer it gives.
var (
	exReady       = "ex-" + strings.Repeat("a", 32)
	exInvalidated = "ex-" + strings.Repeat("b", 32)
	exRunning     = "ex-" + strings.Repeat("c", 32)
	exExpired     = "ex-" + strings.Repeat("d", 32)
	exLinked      = "ex-" + strings.Repeat("e", 32)
	exUnstored    = "ex-" + strings.Repeat("f", 32)
	exUnknown     = "ex-" + strings.Repeat("0", 32)
)

// standInExport answers as the export service would for the IDs above:
// the download decision is the service's, and the edge must pass it on.
func standInExport(w *world) {
	expires := time.Now().Add(time.Hour)
	ready := func(id string) exportapi.Log {
		return exportapi.Log{ID: id, Slug: "hello", Type: exportapi.Standalone, Version: 1, Status: exportapi.StatusReady, Progress: 1,
			Checksum: "c0ffee", FileName: "hello-v1-standalone.zip", ExpiresAt: &expires, UpdatedAt: time.Now()}
	}
	get := func(_ context.Context, g exportapi.Get) (exportapi.Log, error) {
		if g.ID == exReady {
			return ready(g.ID), nil
		}
		return exportapi.Log{}, apierr.New(apierr.CodeNotFound, "no export %s", g.ID)
	}
	download := func(_ context.Context, g exportapi.Get) (exportapi.Download, error) {
		switch g.ID {
		case exReady, exUnstored:
			return exportapi.Download{Export: ready(g.ID), StorageKey: exportapi.StorageKey(g.ID)}, nil
		case exLinked:
			return exportapi.Download{Export: ready(g.ID), URL: "https://files.example/x.zip"}, nil
		case exInvalidated:
			return exportapi.Download{}, apierr.New(apierr.CodeGone, "export %s was invalidated (root@example.com)", g.ID)
		case exRunning:
			return exportapi.Download{}, apierr.New(apierr.CodeConflict, "export %s is running, not ready", g.ID)
		case exExpired:
			return exportapi.Download{}, apierr.New(apierr.CodeNotFound, "the export has expired")
		}
		return exportapi.Download{}, apierr.New(apierr.CodeNotFound, "no export %s", g.ID)
	}
	request := func(_ context.Context, r exportapi.Request) (exportapi.Requested, error) {
		if r.Type == exportapi.Docker {
			return exportapi.Requested{Export: ready(exReady), Reused: true}, nil
		}
		return exportapi.Requested{Export: exportapi.Log{ID: exRunning, Slug: r.Slug, Type: r.Type, UserEmail: r.Caller.Email, Status: exportapi.StatusQueued}}, nil
	}
	w.standIn(exportapi.Service, bus.Endpoint(exportapi.EndpointGet, get), bus.Endpoint(exportapi.EndpointDownload, download),
		bus.Endpoint(exportapi.EndpointRequest, request))
}

func TestExports(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("hello", "dev@example.com", "active", helloManifest, map[string]string{"index.html": "<h1>Hello</h1>"})
	root := w.admin("root@example.com")
	user := w.token("ann@example.com", "user")
	standInExport(w)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.d.Topology.EnsureObjectStores(ctx, bus.ObjectExports); err != nil {
		t.Fatal(err)
	}
	pkg := []byte("PK\x03\x04 the package")
	if _, err := exportstore.NewObjectStore(w.d.JS, bus.ObjectExports).Put(ctx, exportapi.StorageKey(exReady), bytes.NewReader(pkg)); err != nil {
		t.Fatal(err)
	}

	crossSite := map[string]string{"Cookie": "token=" + user, "Sec-Fetch-Site": "cross-site"}
	w.run([]scenario{
		{name: "request, anonymous", method: "POST", path: "/api/experiments/hello/exports", header: jsonType, body: `{"type":"standalone"}`, status: 401, code: "unauthenticated"},
		{name: "request, bad JSON", method: "POST", path: "/api/experiments/hello/exports", token: user, header: jsonType, body: `{"type":`, status: 400, code: "invalid_json"},
		{name: "request, no type", method: "POST", path: "/api/experiments/hello/exports", token: user, header: jsonType, body: `{}`, status: 422, code: "validation_failed", want: []string{`"field":"/type"`}},
		{name: "request, unknown type", method: "POST", path: "/api/experiments/hello/exports", token: user, header: jsonType, body: `{"type":"tarball"}`, status: 422, code: "validation_failed"},
		{name: "request, unknown experiment", method: "POST", path: "/api/experiments/nope/exports", token: user, header: jsonType, body: `{"type":"standalone"}`, status: 404, code: "not_found"},
		{name: "request, queued", method: "POST", path: "/api/experiments/hello/exports", token: user, header: jsonType, body: `{"type":"standalone"}`, status: 202,
			want:       []string{`"status":"queued"`, `"user_email":"ann@example.com"`, `"reused":false`, `"events_url":"/api/exports/` + exRunning + `/events"`},
			wantHeader: map[string]string{"Location": "/api/exports/" + exRunning}},
		{name: "request, reused", method: "POST", path: "/api/experiments/hello/exports", token: user, header: jsonType, body: `{"type":"docker"}`, status: 200,
			want: []string{`"reused":true`, `"download_url":"/api/exports/` + exReady + `/download"`}},
		{name: "alias, HEAD", method: "HEAD", path: "/api/package-standalone/hello", token: user, status: 405},
		{name: "alias, from another site", path: "/api/package-standalone/hello", header: crossSite, status: 403, code: "csrf_rejected"},
		{name: "alias", path: "/api/package-upload-ready/hello", token: user, status: 202, want: []string{`"type":"upload-ready"`}},
		{name: "one, not an export ID", path: "/api/exports/nope", token: user, status: 404, code: "not_found"},
		{name: "one, anonymous", path: "/api/exports/" + exReady, status: 401, code: "unauthenticated"},
		{name: "one, unknown", path: "/api/exports/" + exUnknown, token: user, status: 404, code: "not_found"},
		{name: "one", path: "/api/exports/" + exReady, token: user, status: 200, want: []string{`"status":"ready"`, `"download_url":"/api/exports/` + exReady + `/download"`}},
		{name: "events, unknown", path: "/api/exports/" + exUnknown + "/events", token: user, status: 404, code: "not_found"},
		{name: "events of a final export", path: "/api/exports/" + exReady + "/events", token: user, status: 200,
			want: []string{"event: export\ndata: {", `"status":"ready"`}, wantHeader: map[string]string{"Content-Type": "text/event-stream"}},
		{name: "download, anonymous", path: "/api/exports/" + exReady + "/download", status: 401, code: "unauthenticated"},
		{name: "download, not an export ID", path: "/api/exports/ex-1/download", token: user, status: 404, code: "not_found"},
		{name: "download, invalidated", path: "/api/exports/" + exInvalidated + "/download", token: user, status: 410, code: "gone", want: []string{"(root@example.com)"}},
		{name: "download, not ready", path: "/api/exports/" + exRunning + "/download", token: user, status: 409, code: "conflict", want: []string{"is running, not ready"}},
		{name: "download, expired", path: "/api/exports/" + exExpired + "/download", token: user, status: 404, code: "not_found", want: []string{"has expired"}},
		{name: "download, file gone from storage", path: "/api/exports/" + exUnstored + "/download", token: user, status: 404, code: "not_found", want: []string{"no longer stored"}},
		{name: "download, by link", path: "/api/exports/" + exLinked + "/download", token: user, status: 302, wantHeader: map[string]string{"Location": "https://files.example/x.zip"}},
		{name: "download", path: "/api/exports/" + exReady + "/download", token: user, status: 200, want: []string{string(pkg)},
			wantHeader: map[string]string{"Content-Type": "application/zip", "Content-Disposition": `attachment; filename="hello-v1-standalone.zip"`, "ETag": `"c0ffee"`, "X-Checksum-Sha256": "c0ffee"}},
		{name: "download, unchanged", path: "/api/exports/" + exReady + "/download", token: user, header: map[string]string{"If-None-Match": `W/"c0ffee"`}, status: 304},
		{name: "admin list, not an admin", path: "/admin/api/exports", token: user, status: 403, code: "forbidden"},
		{name: "admin list, bad limit", path: "/admin/api/exports?limit=x", token: root, status: 422, code: "validation_failed", want: []string{`"field":"/limit"`}},
		{name: "admin list, service without the endpoint", path: "/admin/api/exports", token: root, status: 503, code: "unavailable"},
		{name: "invalidate, not an admin", method: "POST", path: "/admin/api/exports/" + exReady + "/invalidate", token: user, status: 403, code: "forbidden"},
		{name: "invalidate, bad JSON", method: "POST", path: "/admin/api/exports/" + exReady + "/invalidate", token: root, header: jsonType, body: `{"delete_files":"yes"}`, status: 400, code: "invalid_json"},
		{name: "invalidate, not an export ID", method: "POST", path: "/admin/api/exports/x/invalidate", token: root, status: 404, code: "not_found"},
	})
}
