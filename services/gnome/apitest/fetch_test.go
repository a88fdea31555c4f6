package apitest

import (
	"encoding/json"
	"strings"
	"testing"
)

// fetchZip is an experiment whose actor is the fetch test guest of the
// actor worker, with actor.http as given.
func fetchZip(t *testing.T, slug string, http map[string]any) []byte {
	t.Helper()
	m := map[string]any{"actor": map[string]any{"module": "actor.wasm", "http": http}, "auth_policy": map[string]any{"allow_anonymous": true}}
	return zipOf(t, map[string]string{"manifest.json": manifest(slug, m), "index.html": "<p>" + slug + "</p>",
		"actor.wasm": string(guest(t, "services/actorworker/testdata/fetch"))})
}

// Outbound HTTP through the whole platform: a bad actor.http is refused at
// upload naming the entry and why; a good one reaches the running actor,
// whose requests to hosts not allowed, and to addresses, are refused with
// the catalogue's codes. (Reaching an allowed host needs a test server that
// only the actor worker's own tests can open to actors: its
// httpfetch_test.go covers that path, the SSRF refusals after resolution
// and every limit, with the real bus and store.)
func TestOutboundHTTPThroughThePlatform(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)

	for _, tc := range []struct {
		allow []string
		field string
		says  string
	}{
		{[]string{"*"}, "/actor/http/allow/0", "every host"},
		{[]string{"api.example.com", "169.254.169.254"}, "/actor/http/allow/1", "IP addresses"},
		{[]string{"localhost"}, "/actor/http/allow/0", "single-label"},
		{[]string{"api.example.com:8443"}, "/actor/http/allow/0", "ports"},
	} {
		r := admin.upload(fetchZip(t, "fetcher", map[string]any{"allow": tc.allow}))
		var body struct {
			Error struct{ Code, Message, Field string }
		}
		_ = json.Unmarshal(r.body, &body)
		if r.status != 422 || body.Error.Code != "manifest_invalid" || body.Error.Field != tc.field || !strings.Contains(body.Error.Message, tc.says) {
			t.Errorf("upload with allow %v: %d %s", tc.allow, r.status, r.body)
		}
	}
	if r := admin.do("GET", "/api/experiments/fetcher", nil, nil); r.status != 404 {
		t.Fatalf("a refused upload stored something: %d %s", r.status, r.body)
	}

	if r := admin.upload(fetchZip(t, "fetcher", map[string]any{"allow": []string{"api.example.com", "*.example.org"}, "timeout_ms": 5000})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("fetcher")
	for url, code := range map[string]string{
		"https://example.net/":                      "http_forbidden_host",
		"https://example.org/":                      "http_forbidden_host", // the apex of *.example.org
		"http://169.254.169.254/latest/meta-data/":  "http_forbidden_host",
		"http://127.0.0.1:8080/health":              "http_forbidden_host",
		"http://[::1]/":                             "http_forbidden_host",
		"ftp://api.example.com/":                    "http_forbidden_scheme",
		"https://user:pw@api.example.com/":          "bad_request",
		"https://api.example.com.evil.example.net/": "http_forbidden_host",
	} {
		r := admin.do("POST", "/experiments/fetcher/api/fetch", map[string]any{"url": url}, nil)
		var body struct {
			Error *struct{ Code string } `json:"error"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil || body.Error == nil || body.Error.Code != code {
			t.Errorf("fetch %s: %d %s, want %s", url, r.status, r.body, code)
		}
	}
}
