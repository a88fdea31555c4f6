package edge_test

import (
	"strings"
	"testing"
)

const helloManifest = `{"slug":"hello","name":"Hello","status":"active"}`

func TestExperiments(t *testing.T) {
	w := startWorld(t, map[string]string{"MAX_UPLOAD_SIZE_MB": "1"})
	w.experiment("hello", "dev@example.com", "active", helloManifest, map[string]string{"index.html": "<h1>Hello</h1>"})
	w.experiment("secret", "dev@example.com", "draft", `{"slug":"secret","name":"Secret"}`, map[string]string{"index.html": "<h1>Secret</h1>"})
	dev := w.developer("dev@example.com")
	other := w.developer("other@example.com")
	user := w.token("ann@example.com", "user")
	zip := map[string]string{"Content-Type": "application/zip"}
	w.run([]scenario{
		{name: "list, anonymous", path: "/api/experiments", status: 200, want: []string{`"slug":"hello"`, `"actor":{"state":"none"}`}},
		{name: "list, the owner sees drafts", path: "/api/experiments", token: dev, status: 200, want: []string{`"slug":"hello"`, `"slug":"secret"`}},
		{name: "one", path: "/api/experiments/hello", status: 200, want: []string{`"slug":"hello"`, `"manifest":{"slug":"hello"`, `"versions":[{"version":1`, `"indexes":[]`}},
		{name: "one, unknown", path: "/api/experiments/nope", status: 404, code: "not_found"},
		{name: "one, malformed slug", path: "/api/experiments/No.Such", status: 404, code: "not_found"},
		{name: "a draft, anonymous", path: "/api/experiments/secret", status: 404, code: "not_found"},
		{name: "a draft, its owner", path: "/api/experiments/secret", token: dev, status: 200, want: []string{`"status":"draft"`}},
		{name: "home page", path: "/", status: 200, want: []string{"Hello"}},
		{name: "upload, anonymous", method: "POST", path: "/api/experiments", header: zip, body: "PK", status: 401, code: "unauthenticated"},
		{name: "upload, a user", method: "POST", path: "/api/experiments", token: user, header: zip, body: "PK", status: 403, code: "forbidden"},
		{name: "upload, admin route, a user", method: "POST", path: "/admin/api/upload-experiment", token: user, header: zip, body: "PK", status: 403, code: "forbidden"},
		{name: "upload, not a ZIP", method: "POST", path: "/api/experiments", token: dev, header: jsonType, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "upload, a form without the file", method: "POST", path: "/api/experiments", token: dev,
			header: map[string]string{"Content-Type": "multipart/form-data; boundary=XX"},
			body:   "--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XX--\r\n", status: 422, code: "validation_failed", want: []string{`"field":"/file"`}},
		// Over the limit by less than a multipart envelope's allowance, so
		// that the body is read and counted. A declared length far over it
		// is refused unread, and then the client, still sending, may see
		// the connection reset instead of the 413 (a known fault, with the
		// isolation work).
		{name: "upload, over the limit", method: "POST", path: "/api/experiments", token: dev, header: zip, body: strings.Repeat("x", 1<<20+1000), status: 413, code: "bundle_too_large"},
		// No credentials: told to sign in, not to reload the page.
		{name: "upload as a form, anonymous", method: "POST", path: "/api/experiments",
			header: map[string]string{"Content-Type": "multipart/form-data; boundary=XX"}, body: "--XX--\r\n", status: 401, code: "unauthenticated"},
		{name: "upload, by cookie without CSRF token", method: "POST", path: "/api/experiments",
			header: map[string]string{"Cookie": "token=" + dev, "Content-Type": "multipart/form-data; boundary=XX"}, body: "--XX--\r\n", status: 403, code: "csrf_rejected"},
		{name: "change, anonymous", method: "PATCH", path: "/api/experiments/hello", header: jsonType, body: `{}`, status: 401, code: "unauthenticated"},
		{name: "change, bad JSON", method: "PATCH", path: "/api/experiments/hello", token: dev, header: jsonType, body: `{"version":"one"}`, status: 400, code: "invalid_json"},
		{name: "change, unknown field", method: "PATCH", path: "/api/experiments/hello", token: other, header: jsonType, body: `{"owner":"me"}`, status: 400, code: "invalid_json"},
		{name: "change, upload service down", method: "PATCH", path: "/api/experiments/hello", token: dev, header: jsonType, body: `{"status":"draft"}`, status: 503, code: "unavailable"},
		{name: "delete, anonymous", method: "DELETE", path: "/api/experiments/hello", header: jsonType, body: `{"confirm":"hello"}`, status: 401, code: "unauthenticated"},
		{name: "delete, not JSON", method: "DELETE", path: "/api/experiments/hello", token: dev, body: "hello", status: 415, code: "unsupported_media_type"},
		{name: "delete, body over 8 KiB", method: "DELETE", path: "/api/experiments/hello", token: dev, header: jsonType,
			body: `{"confirm":"` + strings.Repeat("h", 9<<10) + `"}`, status: 413, code: "payload_too_large"},
	})
	// Still there: nothing above changed or deleted it.
	if r := w.do("GET", "/api/experiments/hello", "", nil, ""); r.status != 200 {
		t.Errorf("hello after the refused changes = %d %s", r.status, r.body)
	}
}
