package edge_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The versions routes translate HTTP to the upload service's versions and
// rollback endpoints and back: the caller comes from the token, the body's
// version must be a JSON integer before anything is asked, and the
// service's refusals keep their status (410 for a bundle gone). Forged
// cookie requests never reach the service.
func TestVersionRoutes(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("alpha", "dev@example.com", "active", `{"slug":"alpha","name":"Alpha","status":"active"}`, map[string]string{"index.html": "<p>a</p>"})
	dev := w.developer("dev@example.com")
	var mu sync.Mutex
	var asked []string
	note := func(s string) { mu.Lock(); asked = append(asked, s); mu.Unlock() }
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	list := func(_ context.Context, q uploadapi.VersionsQuery) (uploadapi.Versions, error) {
		note("list " + q.Slug + " by " + q.Caller.Email)
		return uploadapi.Versions{Slug: q.Slug, Current: 1, Keep: 5, Versions: []uploadapi.VersionInfo{{Version: 1, Checksum: sum, Size: 10, Files: 2,
			UploadedAt: at, UploadedBy: "dev@example.com", Current: true, Available: true, Name: "Alpha"}}}, nil
	}
	rollback := func(ctx context.Context, r uploadapi.Rollback) (uploadapi.RollbackResult, error) {
		note(fmt.Sprintf("rollback %s to %d by %s", r.Slug, r.Version, r.Caller.Email))
		switch r.Version {
		case 2:
			return uploadapi.RollbackResult{}, apierr.New(apierr.CodeGone, "the bundle of version 2 is no longer stored").OnField("/version")
		case 3:
			return uploadapi.RollbackResult{}, apierr.New(apierr.CodeNotFound, "keeps no version 3").OnField("/version")
		case 0:
			return uploadapi.RollbackResult{}, apierr.New(apierr.CodeValidationFailed, "version must be a whole number from 1 up").OnField("/version")
		}
		cfg, err := w.d.Store.Experiments().Get(ctx, r.Slug)
		if err != nil || cfg == nil {
			return uploadapi.RollbackResult{}, fmt.Errorf("read %s: %v", r.Slug, err)
		}
		return uploadapi.RollbackResult{Experiment: *cfg, From: 1, Warnings: []uploadapi.Warning{}}, nil
	}
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointVersions, list), bus.Endpoint(uploadapi.EndpointRollback, rollback))

	body := func(v string) string { return `{"version":` + v + `}` }
	post := func(name, v string, status int, code string, want ...string) scenario {
		return scenario{name: name, method: "POST", path: "/api/experiments/alpha/rollback", token: dev, header: jsonType, body: body(v), status: status, code: code, want: want}
	}
	cookie := func(extra map[string]string) map[string]string {
		h := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	w.run([]scenario{
		{name: "list, anonymous", path: "/api/experiments/alpha/versions", status: 401, code: "unauthenticated"},
		{name: "rollback, anonymous", method: "POST", path: "/api/experiments/alpha/rollback", header: jsonType, body: body("1"), status: 401, code: "unauthenticated"},
		{name: "list", path: "/api/experiments/alpha/versions", token: dev, status: 200,
			want:       []string{`"current":1`, `"keep":5`, `"uploaded_at":"2026-12-01T10:00:00Z"`, `"uploaded_by":"dev@example.com"`, `"available":true`, `"name":"Alpha"`},
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "list, no slug", path: "/api/experiments/Alpha%2E..%2Fx/versions", token: dev, status: 404, code: "not_found"},
		post("current already", "1", 200, "", `"changed":false`, `"from":1`, `"experiment":{"slug":"alpha"`),
		post("bundle gone", "2", 410, "gone", `"field":"/version"`),
		post("not kept", "3", 404, "not_found"),
		post("version 0", "0", 422, "validation_failed"),
		post("a string", `"1"`, 422, "validation_failed", `"field":"/version"`),
		post("a fraction", "1.5", 422, "validation_failed"),
		post("an exponent", "1e3", 422, "validation_failed"),
		post("beyond int64", "99999999999999999999999", 422, "validation_failed", "out of range"),
		post("null", "null", 422, "validation_failed"),
		post("an object", `{"n":1}`, 422, "validation_failed"),
		post("an array", `[1]`, 422, "validation_failed"),
		{name: "no version", method: "POST", path: "/api/experiments/alpha/rollback", token: dev, header: jsonType, body: `{}`, status: 422, code: "validation_failed"},
		{name: "unknown field", method: "POST", path: "/api/experiments/alpha/rollback", token: dev, header: jsonType, body: `{"version":1,"slug":"beta"}`, status: 400, code: "invalid_json"},
		{name: "two values", method: "POST", path: "/api/experiments/alpha/rollback", token: dev, header: jsonType, body: `{"version":1}{"version":2}`, status: 400, code: "invalid_json"},
		{name: "not JSON", method: "POST", path: "/api/experiments/alpha/rollback", token: dev, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "version=1", status: 415, code: "unsupported_media_type"},
		{name: "no slug", method: "POST", path: "/api/experiments/..%2Falpha/rollback", token: dev, header: jsonType, body: body("1"), status: 404, code: "not_found"},
		{name: "by cookie from another site", method: "POST", path: "/api/experiments/alpha/rollback", header: cookie(map[string]string{"Sec-Fetch-Site": "cross-site"}), body: body("1"), status: 403, code: "csrf_rejected"},
		{name: "by cookie from an experiment's origin", method: "POST", path: "/api/experiments/alpha/rollback", header: cookie(map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://alpha.localhost"}), body: body("1"), status: 403, code: "csrf_rejected"},
		{name: "by cookie as a text/plain form", method: "POST", path: "/api/experiments/alpha/rollback", header: cookie(map[string]string{"Content-Type": "text/plain"}), body: body("1"), status: 403, code: "csrf_rejected"},
		{name: "by cookie, same origin", method: "POST", path: "/api/experiments/alpha/rollback", header: cookie(map[string]string{"Sec-Fetch-Site": "same-origin"}), body: body("1"), status: 200, want: []string{`"changed":false`}},
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"list alpha by dev@example.com",
		"rollback alpha to 1 by dev@example.com", "rollback alpha to 2 by dev@example.com", "rollback alpha to 3 by dev@example.com",
		"rollback alpha to 0 by dev@example.com", "rollback alpha to 1 by dev@example.com",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("the upload service was asked\n%q\nwant\n%q", asked, want)
	}
}
