package apitest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The imaging example (examples/imaging) through the whole platform, as far
// as it goes without an embeddings API: the platform opens a local server
// to actors only in the actor worker's own tests (its
// imaging_example_test.go runs the example against one). Here: the upload,
// the answer before the owner sets the secret, bad input, and the
// platform refusing the example's key a way to a local address even when
// its owner points it there.

// imagingZip is the example as make examples packs it, with actor.config's
// base_url replaced when base is not empty.
func imagingZip(t *testing.T, base string) []byte {
	t.Helper()
	files := exampleFiles(t, "imaging")
	if base != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(files["manifest.json"]), &m); err != nil {
			t.Fatal(err)
		}
		m["actor"].(map[string]any)["config"].(map[string]any)["base_url"] = base
		b, _ := json.Marshal(m)
		files["manifest.json"] = string(b)
	}
	return zipOf(t, files)
}

func TestImagingExample(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	r := admin.upload(imagingZip(t, ""))
	if r.status != 201 {
		t.Fatalf("upload the example: %d %s", r.status, r.body)
	}
	if w, _ := r.json(t)["warnings"].([]any); len(w) > 0 {
		t.Errorf("the example uploads with warnings: %v", w)
	}
	admin.running("imaging")

	// The owner's key is spent on signed-in users only.
	anon := p.client(t, 0)
	wantError(t, "an anonymous search", anon.do("POST", "/experiments/imaging/api/search", map[string]any{"text": "cat"}, nil), 401, "unauthenticated", "")

	st := admin.do("GET", "/experiments/imaging/api/status", nil, nil)
	if st.status != 200 || st.json(t)["configured"] != false || st.json(t)["api"] != "api.voyageai.com" {
		t.Errorf("status before the secret: %d %s", st.status, st.body)
	}
	// Before the owner sets API_KEY: 503 saying how.
	wantError(t, "storing before the secret", admin.do("POST", "/experiments/imaging/api/texts", map[string]any{"text": "The cat sat on the mat"}, nil),
		503, "unavailable", `this experiment has no API key yet: its owner sets one with PUT /api/experiments/imaging/secrets/API_KEY {"value": "..."}`)
	for body, says := range map[string]string{
		`{"text": ""}`:                                  "text is empty",
		`{"text": "cat", "k": 99}`:                      "k must be a whole number from 1 to 10",
		`{"text": "cat", "url": "x"}`:                   `unknown field "url"`,
		`{"text": ["cat"]}`:                             "text must be a string",
		`{"text": "` + strings.Repeat("x", 1001) + `"}`: "over the limit of 1000",
	} {
		wantError(t, "search "+body[:min(len(body), 30)], admin.do("POST", "/experiments/imaging/api/search", body, map[string]string{"Content-Type": "application/json"}), 422, "validation_failed", says)
	}

	// The owner points the example at a server on the platform's own
	// machine and sets the key: the platform refuses the request before
	// anything is sent, and the answer names neither the key nor more than
	// the host.
	var hits atomic.Int64
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"data": [{"embedding": [1, 0]}]}`))
	}))
	t.Cleanup(local.Close)
	port := local.Listener.Addr().(*net.TCPAddr).Port
	const key = "pa-e2e-imaging-Qw3Er4Ty5"
	version := 1
	for _, base := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/v1", port),
		fmt.Sprintf("http://localhost:%d/v1", port),
		fmt.Sprintf("http://[::1]:%d/v1", port),
	} {
		r := admin.upload(imagingZip(t, base))
		version++
		if r.status != 201 || !strings.Contains(string(r.body), fmt.Sprintf(`"version":%d`, version)) {
			t.Fatalf("upload with base_url %s: %d %s", base, r.status, r.body)
		}
		eventually(t, 30*time.Second, fmt.Sprintf("version %d to run", version), func() bool {
			h := admin.health("imaging")
			return h.State == "running" && h.Version == version
		})
		if version == 2 {
			if r := admin.do("PUT", "/api/experiments/imaging/secrets/API_KEY", map[string]string{"value": key}, map[string]string{"Authorization": "Bearer " + admin.token()}); r.status != 201 {
				t.Fatalf("set the secret: %d %s", r.status, r.body)
			}
			if st := admin.do("GET", "/experiments/imaging/api/status", nil, nil); st.json(t)["configured"] != true {
				t.Errorf("status with the secret: %s", st.body)
			}
		}
		r = admin.do("POST", "/experiments/imaging/api/texts", map[string]any{"text": "The cat sat on the mat"}, nil)
		if r.status != 403 || !strings.HasPrefix(r.errorCode(), "http_forbidden_") || !strings.Contains(string(r.body), "calling the embeddings API") {
			t.Errorf("base_url %s: %d %s, want 403 http_forbidden_*", base, r.status, r.body)
		}
		if strings.Contains(string(r.body), key) {
			t.Errorf("base_url %s: the answer holds the key: %s", base, r.body)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the local server was reached %d times", n)
	}
	if st := admin.do("GET", "/experiments/imaging/api/status", nil, nil); st.json(t)["stored"] != 0.0 {
		t.Errorf("a refused request stored a text: %s", st.body)
	}
	if rec := admin.do("GET", "/api/experiments/imaging", nil, nil); rec.status != 200 || strings.Contains(string(rec.body), key) {
		t.Errorf("the experiment's record: %d, holds the key: %v", rec.status, strings.Contains(string(rec.body), key))
	}
}
