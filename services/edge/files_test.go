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

// Python backend files of the original platform are never served, with an
// actor or without, however the path is spelled; the files beside them are.
func TestPythonFilesAreNotServed(t *testing.T) {
	w := startWorld(t, nil)
	py := map[string]string{"index.html": "page", "app.py": "SECRET = 'db password'", "backend/main.py": "import ray",
		"backend/Models.PY": "x", "static/app.js": "1", "backend/readme.txt": "notes"}
	clone := func() map[string]string {
		out := map[string]string{}
		for k, v := range py {
			out[k] = v
		}
		return out
	}
	w.experiment("legacy", "dev@example.com", "active", `{"slug":"legacy","name":"Legacy","status":"active"}`, clone())
	ported := clone()
	ported["actor.wasm"] = "\x00asm"
	w.experiment("ported", "dev@example.com", "active", `{"slug":"ported","name":"Ported","status":"active","actor":{"module":"actor.wasm"}}`, ported)
	for _, slug := range []string{"legacy", "ported"} {
		p := "/experiments/" + slug + "/"
		w.run([]scenario{
			{name: slug + ": app.py", path: p + "app.py", status: 404, code: "not_found"},
			{name: slug + ": a nested .py", path: p + "backend/main.py", status: 404, code: "not_found"},
			{name: slug + ": upper-case .PY", path: p + "backend/Models.PY", status: 404, code: "not_found"},
			{name: slug + ": percent-encoded dot", path: p + "app%2Epy", status: 404, code: "not_found"},
			{name: slug + ": percent-encoded slash", path: p + "backend%2Fmain.py", status: 404, code: "not_found"},
			{name: slug + ": dot segments", path: p + "static/../app.py", status: 404, code: "not_found"},
			{name: slug + ": doubled slash", path: p + "backend//main.py", status: 404, code: "not_found"},
			{name: slug + ": under /static/", path: p + "static/../backend/main.py", status: 404, code: "not_found"},
			{name: slug + ": HEAD", method: "HEAD", path: p + "app.py", status: 404},
			{name: slug + ": the page", path: p, status: 200, want: []string{"page"}},
			{name: slug + ": a file beside them", path: p + "backend/readme.txt", status: 200, want: []string{"notes"}},
		})
		if r := w.do("GET", p+"app.py", "", nil, ""); r.status == 200 || len(r.body) > 0 && string(r.body) == py["app.py"] {
			t.Errorf("%s: app.py served: %d %s", slug, r.status, r.body)
		}
	}
}
