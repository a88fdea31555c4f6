package httpx_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/httpx"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, tc := range []struct {
		name, incoming string
		kept           bool
	}{
		{"none", "", false},
		{"eight characters", "abcd1234", true},
		{"every allowed character", "Req_1.2:3-4", true},
		{"a uuid", "0b7c3f6e-5d2a-4e8f-9a1b-2c3d4e5f6a7b", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"too short", "abc1234", false},
		{"too long", strings.Repeat("a", 129), false},
		{"space", "abcd 1234", false},
		{"slash", "abcd/1234", false},
		{"quote", `abcd"1234`, false},
		{"non-ASCII", "äbcd12345", false},
		{"log injection", "abcd1234\tlevel=ERROR", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr [][2]string
			if tc.incoming != "" {
				hdr = [][2]string{{httpx.HeaderRequestID, tc.incoming}}
			}
			resp := ta.do(t, request{target: "/info", headers: hdr})
			got := header(resp, httpx.HeaderRequestID)
			if tc.kept {
				if got != tc.incoming {
					t.Errorf("X-Request-ID %q, want the incoming %q kept", got, tc.incoming)
				}
			} else if !generatedID.MatchString(got) || got == tc.incoming {
				t.Errorf("X-Request-ID %q, want a fresh one in place of %q", got, tc.incoming)
			}
			body := jsonBody(t, resp)
			if body["request_id"] != got || body["ctx_request_id"] != got {
				t.Errorf("handler saw request ID %q in Locals and %q in its context, response says %q", body["request_id"], body["ctx_request_id"], got)
			}
		})
	}
	a := header(ta.do(t, request{target: "/small"}), httpx.HeaderRequestID)
	b := header(ta.do(t, request{target: "/small"}), httpx.HeaderRequestID)
	if a == b {
		t.Error("two requests got the same generated ID")
	}
}

func TestProxyClientFacts(t *testing.T) {
	ta := newApp(t, appOptions{trusted: []string{"10.0.0.0/8", "fd00::/8"}})
	for _, tc := range []struct {
		name    string
		peer    string
		headers [][2]string
		client  string
		scheme  string
		host    string
	}{
		{"direct client", "203.0.113.5:1000", nil, "203.0.113.5", "http", "example.test"},
		{"untrusted peer's headers are ignored", "203.0.113.5:1000",
			[][2]string{{"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "evil.example"}},
			"203.0.113.5", "http", "example.test"},
		{"trusted proxy", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "public.example"}},
			"1.2.3.4", "https", "public.example"},
		{"rightmost untrusted address wins over a spoofed one", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.9"}}, "1.2.3.4", "http", "example.test"},
		{"chain of trusted proxies", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "198.51.100.7, 10.1.1.1, 10.2.2.2"}}, "198.51.100.7", "http", "example.test"},
		{"every hop trusted", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "10.0.0.7, 10.0.0.8"}}, "10.0.0.7", "http", "example.test"},
		{"unparseable rightmost entry", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "1.2.3.4, not-an-ip"}}, "10.0.0.2", "http", "example.test"},
		{"IPv6 client", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "2001:db8::1"}}, "2001:db8::1", "http", "example.test"},
		{"IPv4-mapped client", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "::ffff:198.51.100.7"}}, "198.51.100.7", "http", "example.test"},
		{"IPv6 trusted proxy", "[fd00::1]:1000",
			[][2]string{{"X-Forwarded-For", "198.51.100.7"}}, "198.51.100.7", "http", "example.test"},
		{"header split over two lines", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-For", "6.6.6.6"}, {"X-Forwarded-For", "1.2.3.4"}}, "1.2.3.4", "http", "example.test"},
		{"first proto of a list", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-Proto", "HTTPS, http"}}, "10.0.0.2", "https", "example.test"},
		{"unknown proto ignored", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-Proto", "gopher"}}, "10.0.0.2", "http", "example.test"},
		{"malformed forwarded host ignored", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-Host", "evil.example/path"}}, "10.0.0.2", "http", "example.test"},
		{"forwarded host with port", "10.0.0.2:1000",
			[][2]string{{"X-Forwarded-Host", "public.example:8443, other"}}, "10.0.0.2", "http", "public.example:8443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := jsonBody(t, ta.do(t, request{target: "/info", peer: tc.peer, headers: tc.headers}))
			if body["client_ip"] != tc.client || body["scheme"] != tc.scheme || body["host"] != tc.host {
				t.Errorf("client %s scheme %s host %s, want %s %s %s", body["client_ip"], body["scheme"], body["host"], tc.client, tc.scheme, tc.host)
			}
			peer := strings.Trim(tc.peer[:strings.LastIndex(tc.peer, ":")], "[]")
			if body["peer_ip"] != peer {
				t.Errorf("peer %s, want %s", body["peer_ip"], peer)
			}
		})
	}
}

func TestExperimentScope(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, tc := range []struct {
		path   string
		status int
		slug   string
	}{
		{"/experiments/demo/", 200, "demo"},
		{"/experiments/demo", 200, "demo"},
		{"/experiments/demo/static/app.js", 200, "demo"},
		{"/experiments/my_exp-2/api/x", 200, "my_exp-2"},
		{"/api/experiments/demo-1/exports", 200, "demo-1"},
		{"/experiments/" + strings.Repeat("a", 64) + "/", 200, strings.Repeat("a", 64)},
		{"/experiments", 200, ""},
		{"/experiments/BAD!/", 404, ""},
		{"/experiments/Upper/", 404, ""},
		{"/experiments/a.b/", 404, ""},
		{"/experiments/%2e%2e/", 404, ""},
		{"/experiments/" + strings.Repeat("a", 65) + "/", 404, ""},
		{"/api/experiments/bad%20slug/x", 404, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := ta.do(t, request{target: tc.path})
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode(), tc.status, resp.Body())
			}
			if tc.status == 404 {
				if be := errorBody(t, resp); be.Code != "not_found" {
					t.Errorf("code %s, want not_found", be.Code)
				}
				return
			}
			if got := string(resp.Body()); got != "slug="+tc.slug {
				t.Errorf("handler saw %q, want slug=%s", got, tc.slug)
			}
		})
	}
}
