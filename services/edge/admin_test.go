package edge_test

import (
	"context"
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
	w.standIn(authapi.Service, bus.Endpoint(authapi.EndpointUsersList, list), bus.Endpoint(authapi.EndpointRoleGrant, grant))
	w.run([]scenario{
		{name: "users, anonymous", path: "/admin/api/users", status: 401, code: "unauthenticated"},
		{name: "users, not an admin", path: "/admin/api/users", token: user, status: 403, code: "forbidden"},
		{name: "users", path: "/admin/api/users", token: root, status: 200, want: []string{`"users":[`, `"email":"ann@example.com"`}},
		{name: "admin page, anonymous browser", path: "/admin", header: map[string]string{"Accept": "text/html"}, status: 303,
			wantHeader: map[string]string{"Location": "/auth/login?next=%2Fadmin"}},
		// The page renders without the export service, saying so.
		{name: "admin page", path: "/admin", token: root, status: 200, want: []string{"ann@example.com", "Exports are unavailable right now (unavailable)."}},
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
