package edge_test

import (
	"strings"
	"testing"
)

// Who may open an experiment's page, /my-experiments/{slug}: its owner
// and admins; a browser of anyone else gets the error page and none of the
// experiment's facts, anonymous browsers are sent to sign in.
func TestExperimentPageAccess(t *testing.T) {
	w := startWorld(t, nil)
	root := w.admin("root@example.com")
	owner := w.developer("owner@example.com")
	other := w.developer("other@example.com")
	user := w.token("plain@example.com", "user")
	w.experiment("lab", "owner@example.com", "active", `{"slug":"lab","name":"Lab","status":"active"}`, map[string]string{"index.html": "lab"})
	w.experiment("sketch", "owner@example.com", "draft", `{"slug":"sketch","name":"Sketch","status":"draft"}`, map[string]string{"index.html": "sketch"})
	page := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
	// browser is page with the session cookie of token: browsers get error
	// pages, Bearer callers JSON.
	browser := func(token string) map[string]string {
		return map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Cookie": "token=" + token}
	}
	w.run([]scenario{
		{name: "owner", path: "/my-experiments/lab", token: owner, header: page, status: 200,
			want:       []string{`data-slug="lab"`, "owner@example.com", `id="status"`, "/api/experiments/", "Request export"},
			wantHeader: map[string]string{"Content-Type": "text/html", "Cache-Control": "no-store", "Content-Security-Policy": "'nonce-"}},
		{name: "owner, a draft", path: "/my-experiments/sketch", token: owner, header: page, status: 200, want: []string{`data-slug="sketch"`}},
		{name: "admin", path: "/my-experiments/lab", token: root, header: page, status: 200, want: []string{`data-slug="lab"`, "owner@example.com"}},
		{name: "another developer", path: "/my-experiments/lab", header: browser(other), status: 403, wantHeader: map[string]string{"Content-Type": "text/html"}},
		{name: "another developer, a draft", path: "/my-experiments/sketch", header: browser(other), status: 404, wantHeader: map[string]string{"Content-Type": "text/html"}},
		{name: "a user", path: "/my-experiments/lab", header: browser(user), status: 403, wantHeader: map[string]string{"Content-Type": "text/html"}},
		{name: "a script", path: "/my-experiments/lab", token: other, status: 403, code: "forbidden"},
		{name: "anonymous browser", path: "/my-experiments/lab", header: page, status: 303,
			wantHeader: map[string]string{"Location": "/auth/login?next=%2Fmy-experiments%2Flab"}},
		{name: "anonymous script", path: "/my-experiments/lab", status: 401, code: "unauthenticated"},
		{name: "no such experiment", path: "/my-experiments/nothing-here", header: browser(root), status: 404, wantHeader: map[string]string{"Content-Type": "text/html"}},
		{name: "not a slug", path: "/my-experiments/..%2Fadmin", token: root, status: 404, code: "not_found"},
	})
	// The refusal tells nothing of the experiment but its slug.
	r := w.do("GET", "/my-experiments/lab", "", browser(other), "")
	if !strings.Contains(string(r.body), "You may not open this page") {
		t.Errorf("the 403 page: %s", r.body)
	}
	for _, leak := range []string{"owner@example.com", "data-csrf", "Request export", ">Lab<"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("the 403 page shows %q", leak)
		}
	}
}
