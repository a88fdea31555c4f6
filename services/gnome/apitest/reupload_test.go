package apitest

import (
	"strings"
	"testing"
)

// Through the whole platform: the same bundle twice makes one version (200,
// unchanged), a desktop-compressed folder without a slug and with Python
// files uploads with the porting warning, its .py files are never served,
// and a session that ended, presented as a Bearer token, is refused on an
// open route while a stale cookie is only anonymous.
func TestReuploadFoldersPythonAndDeadTokens(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	admin.do("POST", "/admin/api/users", map[string]any{"email": "dev@example.com", "password": "developer-passphrase", "roles": []string{"developer"}}, nil)
	dev := p.client(t, 0)
	dev.login("dev@example.com", "developer-passphrase")

	bundle := experimentZip(t, "same", "<h1>same</h1>", nil)
	if r := dev.upload(bundle); r.status != 201 {
		t.Fatalf("first upload: %d %s", r.status, r.body)
	}
	r := dev.uploadRaw(bundle)
	got := r.json(t)
	if r.status != 200 || got["unchanged"] != true || got["created"] != false || !strings.Contains(got["message"].(string), "unchanged") {
		t.Fatalf("the same bundle again: %d %s", r.status, r.body)
	}
	if e := got["experiment"].(map[string]any); e["version"] != float64(1) {
		t.Errorf("the answer's version: %v", e["version"])
	}
	if v := dev.do("GET", "/api/experiments/same/versions", nil, nil); v.status != 200 || strings.Count(string(v.body), `"checksum"`) != 1 {
		t.Errorf("versions after an unchanged upload: %d %s", v.status, v.body)
	}

	folder := zipOf(t, map[string]string{
		"legacy/manifest.json":   `{"name": "Legacy", "status": "active"}`,
		"legacy/index.html":      "<h1>legacy</h1>",
		"legacy/app.py":          "DB_PASSWORD = 'hunter2'",
		"legacy/backend/main.py": "import ray",
		"__MACOSX/legacy/._app":  "fork",
	})
	r = dev.upload(folder)
	if r.status != 201 || !strings.Contains(string(r.body), `"slug":"legacy"`) || !strings.Contains(string(r.body), "docs/porting.md") {
		t.Fatalf("a folder with Python files: %d %s", r.status, r.body)
	}
	anon := p.client(t, 0)
	if page := anon.do("GET", "/experiments/legacy/", nil, nil); page.status != 200 || string(page.body) != "<h1>legacy</h1>" {
		t.Errorf("the page: %d %s", page.status, page.body)
	}
	for _, path := range []string{"/experiments/legacy/app.py", "/experiments/legacy/backend/main.py", "/experiments/legacy/static/../app.py"} {
		if f := anon.do("GET", path, nil, nil); f.status != 404 || strings.Contains(string(f.body), "hunter2") {
			t.Errorf("GET %s: %d %s", path, f.status, f.body)
		}
	}

	// A session that ended: refused as a Bearer token, anonymous as a cookie.
	gone := p.client(t, 0)
	gone.login("dev@example.com", "developer-passphrase")
	token := gone.token()
	if r := gone.do("POST", "/auth/logout", nil, map[string]string{"Authorization": "Bearer " + token}); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	script := p.client(t, 0)
	for _, path := range []string{"/api/experiments", "/api/experiments/same", "/experiments/same/"} {
		r := script.do("GET", path, nil, map[string]string{"Authorization": "Bearer " + token})
		if r.status != 401 || r.errorCode() != "token_revoked" {
			t.Errorf("GET %s with an ended token: %d %s", path, r.status, r.body)
		}
		r = script.do("GET", path, nil, map[string]string{"Authorization": "Bearer forged." + token[strings.IndexByte(token, '.')+1:]})
		if r.status != 401 || r.errorCode() != "unauthenticated" {
			t.Errorf("GET %s with a forged token: %d %s", path, r.status, r.body)
		}
	}
	if r := script.do("GET", "/api/experiments", nil, map[string]string{"Cookie": "token=" + token}); r.status != 200 {
		t.Errorf("an ended session's cookie on an open route: %d %s", r.status, r.body)
	}
}
