package edge_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// The owner's email, who uploaded what, and the manifest's settings for the
// backend or naming people are for the owner's and admins' eyes.
func TestExperimentViewsHideWhatIsTheOwners(t *testing.T) {
	w := startWorld(t, nil)
	manifest := `{"slug":"keys","name":"Keys","status":"active","developer_id":"dev@example.com",
		"auth_policy":{"allowed_users":["friend@example.com","friend2@example.com"],"denied_users":["foe@example.com"]},
		"sub_auth":{"enabled":true,"demo_users":[{"email":"demo@example.com","password":"demo-pass"}]},
		"actor":{"module":"actor.wasm","config":{"api_key":"sk-secret-value"}}}`
	w.experiment("keys", "dev@example.com", "active", manifest, map[string]string{"index.html": "x", "actor.wasm": "\x00asm"})
	private := []string{"dev@example.com", "sk-secret-value", "foe@example.com", "demo-pass", "allowed_users"}
	owner := w.developer("dev@example.com")
	admin := w.admin("root@example.com")
	for name, token := range map[string]string{"a user it admits": w.token("friend@example.com", "user"), "another developer it admits": w.developer("friend2@example.com")} {
		for _, path := range []string{"/api/experiments/keys", "/api/experiments"} {
			r := w.do("GET", path, token, nil, "")
			if r.status == 403 && path == "/api/experiments/keys" {
				continue // refused whole, which shows nothing either
			}
			if r.status != 200 {
				t.Fatalf("%s, %s: %d %s", name, path, r.status, r.body)
			}
			for _, p := range private {
				if strings.Contains(string(r.body), p) {
					t.Errorf("%s sees %q in %s: %s", name, p, path, r.body)
				}
			}
			if !strings.Contains(string(r.body), `"module":"actor.wasm"`) {
				t.Errorf("%s no longer sees the public manifest: %s", name, r.body)
			}
		}
	}
	for name, token := range map[string]string{"owner": owner, "admin": admin} {
		r := w.do("GET", "/api/experiments/keys", token, nil, "")
		for _, p := range private {
			if !strings.Contains(string(r.body), p) {
				t.Errorf("the %s does not see %q: %s", name, p, r.body)
			}
		}
		var v struct {
			OwnerEmail string `json:"owner_email"`
			URL        string `json:"url"`
			Versions   []struct {
				UploadedBy string `json:"uploaded_by"`
			} `json:"versions"`
		}
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		if v.OwnerEmail != "dev@example.com" || len(v.Versions) != 1 || v.Versions[0].UploadedBy != "dev@example.com" {
			t.Errorf("the %s's view: %+v", name, v)
		}
		if v.URL != testenv.ExperimentURL(w.addr, "keys", "/experiments/keys/") {
			t.Errorf("url %q", v.URL)
		}
	}
}
