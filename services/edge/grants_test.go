package edge_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The grant routes translate HTTP to the upload service's grant endpoints
// and back: the caller comes from the token, the answer's status from the
// service (201 for a new grant, its errors in the contract's shape), and
// what is shaped like no slug is 404 without asking.
func TestGrantRoutes(t *testing.T) {
	w := startWorld(t, nil)
	dev := w.developer("dev@example.com")
	var mu sync.Mutex
	var asked []string
	note := func(s string) { mu.Lock(); asked = append(asked, s); mu.Unlock() }
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	list := func(_ context.Context, q uploadapi.GrantsQuery) (uploadapi.Grants, error) {
		note("list " + q.Slug + " by " + q.Caller.Email)
		if q.Slug != "alpha" {
			return uploadapi.Grants{}, apierr.New(apierr.CodeNotFound, "no experiment %q", q.Slug)
		}
		return uploadapi.Grants{Slug: "alpha", Granted: []uploadapi.Grant{{From: "alpha", To: "beta", GrantedBy: "dev@example.com", GrantedAt: at}},
			Received: []uploadapi.Grant{}, Requested: []uploadapi.ScopeEntry{{Slug: "gamma", State: uploadapi.ScopeMissing}}, RequestedBy: []string{}}, nil
	}
	grant := func(_ context.Context, r uploadapi.GrantRequest) (uploadapi.GrantResult, error) {
		note("grant " + r.Slug + " to " + r.To + " by " + r.Caller.Email)
		switch r.To {
		case "alpha":
			return uploadapi.GrantResult{}, apierr.New(apierr.CodeBadRequest, "an experiment reads its own data without a grant").OnField("/to")
		case "theirs":
			return uploadapi.GrantResult{}, apierr.New(apierr.CodeForbidden, "only the owner of %q and admins grant the data of it", r.Slug)
		case "again":
			return uploadapi.GrantResult{Grant: uploadapi.Grant{From: r.Slug, To: r.To, GrantedBy: r.Caller.Email, GrantedAt: at}}, nil
		}
		return uploadapi.GrantResult{Grant: uploadapi.Grant{From: r.Slug, To: r.To, GrantedBy: r.Caller.Email, GrantedAt: at}, Created: true}, nil
	}
	revoke := func(_ context.Context, r uploadapi.RevokeRequest) (uploadapi.Grant, error) {
		note("revoke " + r.Slug + " from " + r.Reader + " by " + r.Caller.Email)
		if r.Reader != "beta" {
			return uploadapi.Grant{}, apierr.New(apierr.CodeNotFound, "%q has no grant of its data to %q", r.Slug, r.Reader)
		}
		return uploadapi.Grant{From: r.Slug, To: r.Reader, GrantedBy: "dev@example.com", GrantedAt: at}, nil
	}
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointGrants, list), bus.Endpoint(uploadapi.EndpointGrant, grant), bus.Endpoint(uploadapi.EndpointRevoke, revoke))

	w.run([]scenario{
		{name: "list, anonymous", path: "/api/experiments/alpha/grants", status: 401, code: "unauthenticated"},
		{name: "grant, anonymous", method: "POST", path: "/api/experiments/alpha/grants", header: jsonType, body: `{"to":"beta"}`, status: 401, code: "unauthenticated"},
		{name: "list", path: "/api/experiments/alpha/grants", token: dev, status: 200,
			want:       []string{`"granted":[{"from":"alpha","to":"beta","granted_by":"dev@example.com","granted_at":"2026-12-01T10:00:00Z"}]`, `"requested":[{"slug":"gamma","state":"missing"}]`},
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "list, unknown", path: "/api/experiments/nowhere/grants", token: dev, status: 404, code: "not_found"},
		{name: "list, no slug", path: "/api/experiments/Alpha%2E..%2Fx/grants", token: dev, status: 404, code: "not_found"},
		{name: "grant", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":"beta"}`, status: 201,
			want: []string{`"created":true`, `"from":"alpha"`, `"to":"beta"`, `"granted_by":"dev@example.com"`}},
		{name: "grant again", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":"again"}`, status: 200, want: []string{`"created":false`}},
		{name: "grant to itself", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":"alpha"}`, status: 400, code: "bad_request", want: []string{`"field":"/to"`}},
		{name: "grant, not the owner", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":"theirs"}`, status: 403, code: "forbidden"},
		{name: "grant, not JSON", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":`, status: 400, code: "invalid_json"},
		{name: "grant, unknown field", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: jsonType, body: `{"to":"beta","granted_by":"root@example.com"}`, status: 400, code: "invalid_json"},
		{name: "grant, a form", method: "POST", path: "/api/experiments/alpha/grants", token: dev, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: `to=beta`, status: 415, code: "unsupported_media_type"},
		{name: "revoke", method: "DELETE", path: "/api/experiments/alpha/grants/beta", token: dev, status: 200, want: []string{`"revoked":{"from":"alpha","to":"beta"`}},
		{name: "revoke what is not granted", method: "DELETE", path: "/api/experiments/alpha/grants/gamma", token: dev, status: 404, code: "not_found"},
		{name: "revoke, no reader slug", method: "DELETE", path: "/api/experiments/alpha/grants/BETA", token: dev, status: 404, code: "not_found"},
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"list alpha by dev@example.com", "list nowhere by dev@example.com",
		"grant alpha to beta by dev@example.com", "grant alpha to again by dev@example.com",
		"grant alpha to alpha by dev@example.com", "grant alpha to theirs by dev@example.com",
		"revoke alpha from beta by dev@example.com", "revoke alpha from gamma by dev@example.com",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("the upload service was asked\n%q\nwant\n%q", asked, want)
	}
}
