package edge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

func TestAdmin(t *testing.T) {
	w := startWorld(t, nil)
	root := w.admin("root@example.com")
	user := w.token("ann@example.com", "user")
	list := func(context.Context, authapi.ListUsers) (authapi.Users, error) {
		return authapi.Users{Users: []authapi.User{{ID: "u-1", Email: "ann@example.com", Roles: []string{"user"}}}}, nil
	}
	// The grant answers with who asked for what, so the scenario sees what
	// the edge sent.
	grant := func(_ context.Context, r authapi.RoleChange) (authapi.User, error) {
		return authapi.User{ID: r.Actor.Email, Email: r.Email, Roles: []string{r.Role}}, nil
	}
	// The audit stand-in answers with one entry whose texts are the filters
	// it was sent (the target too, unless it is empty: then one with
	// markup, which the page must show as text).
	audit := func(_ context.Context, q authapi.AuditList) (authapi.AuditPage, error) {
		e := authapi.AuditEntry{ID: "665b1c2e9f1a2b3c4d5e6f70", Who: q.Who, What: q.What, Target: q.Target,
			Details: map[string]any{"since": fmt.Sprint(q.Since), "until": fmt.Sprint(q.Until), "limit": q.Limit, "cursor": q.Cursor}}
		if e.Target == "" {
			e.Target = "<b>ann</b>@example.com"
		}
		return authapi.AuditPage{Entries: []authapi.AuditEntry{e}, Next: "next-page"}, nil
	}
	w.standIn(authapi.Service, bus.Endpoint(authapi.EndpointUsersList, list), bus.Endpoint(authapi.EndpointRoleGrant, grant), bus.Endpoint(authapi.EndpointAuditList, audit))
	w.run([]scenario{
		{name: "users, anonymous", path: "/admin/api/users", status: 401, code: "unauthenticated"},
		{name: "users, not an admin", path: "/admin/api/users", token: user, status: 403, code: "forbidden"},
		{name: "users", path: "/admin/api/users", token: root, status: 200, want: []string{`"users":[`, `"email":"ann@example.com"`}},
		{name: "admin page, anonymous browser", path: "/admin", header: map[string]string{"Accept": "text/html"}, status: 303,
			wantHeader: map[string]string{"Location": "/auth/login?next=%2Fadmin"}},
		// The pages render without the export service, saying so.
		{name: "admin page", path: "/admin", token: root, status: 200, want: []string{"<h2 id=\"experiments\">", "Export counts are unavailable right now (unavailable)."}},
		{name: "users page", path: "/admin/users", token: root, status: 200, want: []string{"ann@example.com", `data-grant`}},
		{name: "exports page", path: "/admin/exports", token: root, status: 200, want: []string{"Exports are unavailable right now (unavailable)."}},
		{name: "health page", path: "/admin/health", token: root, status: 200, want: []string{`id="health-components"`}},
		{name: "an unknown status", path: "/admin?status=%7B%22%24ne%22%3A1%7D", token: root, status: 200, want: []string{"There is no status “{&#34;$ne&#34;:1}”"}},
		{name: "users page, not an admin", path: "/admin/users", token: user, status: 403, code: "forbidden"},
		{name: "audit, anonymous", path: "/admin/api/audit", status: 401, code: "unauthenticated"},
		{name: "audit, not an admin", path: "/admin/api/audit", token: user, status: 403, code: "forbidden"},
		// Filters reach the auth service as the text they are.
		{name: "audit", path: "/admin/api/audit?who=%7B%22%24gt%22%3A%22%22%7D&what=role.*&target=a%2Bb&since=2025-06-01&until=2025-06-02&limit=5&cursor=abc", token: root, status: 200,
			want: []string{`"who":"{\"$gt\":\"\"}"`, `"what":"role.*"`, `"target":"a+b"`, `"since":"2025-06-01 00:00:00 +0000 UTC"`, `"until":"2025-06-03 00:00:00 +0000 UTC"`, `"limit":5`, `"cursor":"abc"`, `"next":"next-page"`}},
		{name: "audit page", path: "/admin/audit?what=%3Cb%3Ex&who=a%40b", token: root, status: 200,
			want: []string{`value="&lt;b&gt;x"`, "&lt;b&gt;ann&lt;/b&gt;@example.com", `href="/admin/audit?cursor=next-page&amp;what=%3Cb%3Ex&amp;who=a%40b"`}},
		{name: "audit, a bad date", path: "/admin/api/audit?since=yesterday", token: root, status: 422, code: "validation_failed"},
		{name: "audit, a bad limit", path: "/admin/api/audit?limit=1000", token: root, status: 422, code: "validation_failed"},
		{name: "create, not an admin", method: "POST", path: "/admin/api/users", token: user, header: jsonType, body: `{}`, status: 403, code: "forbidden"},
		{name: "create, bad JSON", method: "POST", path: "/admin/api/users", token: root, header: jsonType, body: `{"email":1}`, status: 400, code: "invalid_json"},
		{name: "create, not JSON", method: "POST", path: "/admin/api/users", token: root, header: map[string]string{"Content-Type": "text/csv"}, body: "a,b", status: 415, code: "unsupported_media_type"},
		{name: "create, auth service down", method: "POST", path: "/admin/api/users", token: root, header: jsonType, body: `{"email":"x@example.com","password":"a-long-passphrase"}`, status: 503, code: "unavailable"},
		{name: "disable, unknown field", method: "PATCH", path: "/admin/api/users/ann@example.com", token: root, header: jsonType, body: `{"disabled":true,"roles":[]}`, status: 400, code: "invalid_json"},
		{name: "grant, anonymous", method: "POST", path: "/admin/api/users/ann@example.com/roles/developer", status: 401, code: "unauthenticated"},
		{name: "grant", method: "POST", path: "/admin/api/users/ann%40example.com/roles/developer", token: root, status: 200,
			want: []string{`"id":"root@example.com"`, `"email":"ann@example.com"`, `"roles":["developer"]`}},
		{name: "revoke, not an admin", method: "DELETE", path: "/admin/api/users/ann@example.com/roles/developer", token: user, status: 403, code: "forbidden"},
	})
}
