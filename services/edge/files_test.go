package edge_test

import "testing"

func TestFiles(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("hello", "dev@example.com", "active", `{"slug":"hello","name":"Hello","status":"active","actor":{"module":"actor.wasm"}}`, map[string]string{
		"index.html": "<h1>Hello</h1>", "app.js": "console.log(1)", "docs/index.html": "<p>docs</p>", "actor.wasm": "\x00asm",
	})
	w.experiment("members", "dev@example.com", "active", `{"slug":"members","name":"Members","status":"active","auth_required":true}`, map[string]string{"index.html": "members"})
	r := w.do("GET", "/experiments/hello/", "", nil, "")
	etag := r.header.Get("ETag")
	if r.status != 200 || etag == "" {
		t.Fatalf("index = %d, ETag %q", r.status, etag)
	}
	w.run([]scenario{
		{name: "no trailing slash", path: "/experiments/hello", status: 301, wantHeader: map[string]string{"Location": "/experiments/hello/"}},
		{name: "index", path: "/experiments/hello/", status: 200, want: []string{"<h1>Hello</h1>"},
			wantHeader: map[string]string{"Content-Type": "text/html", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}},
		{name: "unchanged", path: "/experiments/hello/", header: map[string]string{"If-None-Match": etag}, status: 304},
		{name: "a file", path: "/experiments/hello/app.js", status: 200, want: []string{"console.log(1)"}, wantHeader: map[string]string{"Content-Type": "text/javascript"}},
		{name: "a directory without its slash", path: "/experiments/hello/docs", status: 301, wantHeader: map[string]string{"Location": "/experiments/hello/docs/"}},
		{name: "a directory", path: "/experiments/hello/docs/", status: 200, want: []string{"<p>docs</p>"}},
		{name: "the manifest is private", path: "/experiments/hello/manifest.json", status: 404, code: "not_found"},
		{name: "the actor module is private", path: "/experiments/hello/actor.wasm", status: 404, code: "not_found"},
		{name: "no such file", path: "/experiments/hello/nope.css", status: 404, code: "not_found"},
		{name: "no such experiment", path: "/experiments/nope/", status: 404, code: "not_found"},
		// A browser without a session goes through the platform's hand-off.
		{name: "sign-in required, browser", path: "/experiments/members/", header: map[string]string{"Accept": "text/html"}, status: 303,
			wantHeader: map[string]string{"Location": "/auth/experiment?next=%2Fexperiments%2Fmembers%2F&slug=members"}},
		{name: "sign-in required, script", path: "/experiments/members/", status: 401, code: "unauthenticated"},
		{name: "sign-in required, signed in", path: "/experiments/members/", token: w.token("ann@example.com", "user"), status: 200, want: []string{"members"}},
	})
}
