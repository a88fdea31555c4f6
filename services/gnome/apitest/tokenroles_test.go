package apitest

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"testing"
)

// A personal token carries its user's roles or fewer, and every check of a
// role honours the token's: a developer's token made with ["user"] opens and
// reads, but uploads, changes, deletes, exports data and grants nothing,
// not even on the developer's own experiment, through every route that
// manages one. The same developer's full token still may.
func TestNarrowedTokenManagesNothing(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const dev, pw = "narrow-dev@example.com", "a developer passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": dev, "password": pw, "roles": []string{"developer", "user"}}, nil); r.status != 201 {
		t.Fatalf("create developer: %d %s", r.status, r.body)
	}
	d := p.client(t, 0)
	d.login(dev, pw)
	for _, slug := range []string{"narrow-own", "narrow-reader"} {
		if r := d.upload(experimentZip(t, slug, "<h1>"+slug+"</h1>", nil)); r.status != 201 {
			t.Fatalf("upload %s with the session: %d %s", slug, r.status, r.body)
		}
	}
	mint := func(body string) string {
		r := d.do("POST", "/api/tokens", body, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + d.token()})
		var out struct {
			Token string `json:"token"`
		}
		if r.status != 201 || json.Unmarshal(r.body, &out) != nil || out.Token == "" {
			t.Fatalf("create token %s: %d %s", body, r.status, r.body)
		}
		return out.Token
	}
	narrow, full := mint(`{"name":"read only","roles":["user"]}`), mint(`{"name":"all"}`)
	script := p.client(t, 0) // no cookies: the token alone speaks
	as := func(tok, method, path string, body any) response {
		t.Helper()
		return script.do(method, path, body, map[string]string{"Authorization": "Bearer " + tok})
	}
	var zipBody bytes.Buffer
	mw := multipart.NewWriter(&zipBody)
	fw, _ := mw.CreateFormFile("file", "narrow-new.zip")
	fw.Write(experimentZip(t, "narrow-own", "<h1>replaced</h1>", nil))
	mw.Close()

	refused := []struct {
		what, method, path string
		body               any
		hdr                map[string]string
	}{
		{"upload a new version", "POST", "/api/experiments", zipBody.String(), map[string]string{"Content-Type": mw.FormDataContentType()}},
		{"upload through the alias", "POST", "/admin/api/upload-experiment", string(experimentZip(t, "narrow-other", "<h1>x</h1>", nil)), map[string]string{"Content-Type": "application/zip"}},
		{"archive it", "PATCH", "/api/experiments/narrow-own", map[string]any{"status": "archived"}, nil},
		{"delete it", "DELETE", "/api/experiments/narrow-own", map[string]any{"confirm": "narrow-own"}, nil},
		{"export it with its data", "POST", "/api/experiments/narrow-own/exports", map[string]any{"type": "standalone"}, nil},
		{"export it as docker", "POST", "/api/experiments/narrow-own/exports", map[string]any{"type": "docker"}, nil},
		{"download research data", "POST", "/api/experiments/narrow-own/data", map[string]any{"collection": "visits"}, nil},
		{"list its collections", "GET", "/api/experiments/narrow-own/data", nil, nil},
		{"grant its data", "POST", "/api/experiments/narrow-own/grants", map[string]any{"to": "narrow-reader"}, nil},
		{"list its grants", "GET", "/api/experiments/narrow-own/grants", nil, nil},
		{"set a secret", "PUT", "/api/experiments/narrow-own/secrets/API_KEY", map[string]any{"value": "stolen"}, nil},
		{"list its versions", "GET", "/api/experiments/narrow-own/versions", nil, nil},
		{"roll it back", "POST", "/api/experiments/narrow-own/rollback", map[string]any{"version": 1}, nil},
		{"read its actor's logs", "GET", "/api/experiments/narrow-own/logs", nil, nil},
		{"make study links", "POST", "/api/experiments/narrow-own/links", map[string]any{"kind": "multi"}, nil},
		{"list its permissions", "GET", "/api/experiments/narrow-own/permissions", nil, nil},
		{"grant a permission", "POST", "/api/experiments/narrow-own/permissions", map[string]any{"email": "x@example.com", "actions": []string{"access"}}, nil},
		{"list its accounts", "GET", "/api/experiments/narrow-own/users", nil, nil},
	}
	for _, c := range refused {
		hdr := map[string]string{"Authorization": "Bearer " + narrow}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		r := script.do(c.method, c.path, c.body, hdr)
		if r.status != 403 || r.errorCode() != "forbidden" {
			t.Errorf("the narrowed token may %s: %d %s, want 403 forbidden", c.what, r.status, r.body)
		}
	}

	// Nothing changed: one version, still active, no grant, no secret.
	if r := as(full, "GET", "/api/experiments/narrow-own", nil); r.status != 200 {
		t.Fatalf("read with the full token: %d %s", r.status, r.body)
	} else if m := r.json(t); m["status"] != "active" || m["version"] != float64(1) {
		t.Errorf("after the refusals: status %v, version %v; want active, 1", m["status"], m["version"])
	}
	if r := as(full, "GET", "/api/experiments/narrow-own/grants", nil); r.status != 200 || bytes.Contains(r.body, []byte("narrow-reader")) {
		t.Errorf("grants after the refusals: %d %s", r.status, r.body)
	}
	if r := as(full, "GET", "/api/experiments/narrow-own/secrets", nil); r.status != 200 || bytes.Contains(r.body, []byte("API_KEY")) {
		t.Errorf("secrets after the refusals: %d %s", r.status, r.body)
	}

	// What a user may do, the narrowed token still does.
	if r := as(narrow, "GET", "/api/experiments/narrow-own", nil); r.status != 200 {
		t.Errorf("read with the narrowed token: %d %s", r.status, r.body)
	}
	if r := as(narrow, "POST", "/api/experiments/narrow-own/exports", map[string]any{"type": "upload-ready"}); r.status != 200 && r.status != 202 {
		t.Errorf("an upload-ready export (per access rules) with the narrowed token: %d %s", r.status, r.body)
	}
	// The full token manages: the refusals were the token's roles, not the route.
	if r := as(full, "PATCH", "/api/experiments/narrow-own", map[string]any{"status": "archived"}); r.status != 200 {
		t.Errorf("archive with the full token: %d %s", r.status, r.body)
	}
	// An admin's token made with no roles is no admin, and owns nothing.
	a := admin.do("POST", "/api/tokens", `{"name":"admin read only","roles":[]}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + admin.token()})
	var at struct {
		Token string `json:"token"`
	}
	if a.status != 201 || json.Unmarshal(a.body, &at) != nil {
		t.Fatalf("admin token: %d %s", a.status, a.body)
	}
	for _, c := range []struct{ what, method, path string }{
		{"delete another's experiment", "DELETE", "/api/experiments/narrow-reader"},
		{"list the users", "GET", "/admin/api/users"},
	} {
		body := any(nil)
		if c.method == "DELETE" {
			body = map[string]any{"confirm": "narrow-reader"}
		}
		if r := as(at.Token, c.method, c.path, body); r.status != 403 {
			t.Errorf("the admin's narrowed token may %s: %d %s", c.what, r.status, r.body)
		}
	}
}
