package httpx_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/httpx"
)

func TestHTTPSOnlyInProduction(t *testing.T) {
	dev := newApp(t, appOptions{production: false, trusted: []string{"10.0.0.0/8"}, publicURL: "https://platform.example"})
	resp := dev.do(t, request{target: "/small", peer: "203.0.113.5:1"})
	if resp.StatusCode() != 200 || header(resp, fiber.HeaderStrictTransportSecurity) != "" {
		t.Errorf("development: status %d HSTS %q, want 200 without HSTS", resp.StatusCode(), header(resp, fiber.HeaderStrictTransportSecurity))
	}
	resp = dev.do(t, request{target: "/small", peer: "10.0.0.2:1", headers: [][2]string{{"X-Forwarded-Proto", "https"}}})
	if header(resp, fiber.HeaderStrictTransportSecurity) != "" {
		t.Error("development sets HSTS")
	}

	prod := newApp(t, appOptions{production: true, trusted: []string{"10.0.0.0/8"}, publicURL: "https://platform.example"})
	for _, tc := range []struct {
		name     string
		r        request
		status   int
		location string
	}{
		{"POST keeps its method with 308", request{method: "POST", target: "/small", peer: "203.0.113.5:1", body: "{}"}, 308, "https://platform.example/small"},
		{"query kept", request{target: "/items/1?a=b&c=d", peer: "203.0.113.5:1"}, 308, "https://platform.example/items/1?a=b&c=d"},
		{"path kept undecoded", request{target: "/items/a%2Fb?x=%20", peer: "203.0.113.5:1"}, 308, "https://platform.example/items/a%2Fb?x=%20"},
		{"unknown route redirected first", request{target: "/nowhere", peer: "203.0.113.5:1"}, 308, "https://platform.example/nowhere"},
		{"a trusted proxy's forwarded host is not a redirect target", request{target: "/small", peer: "10.0.0.2:1",
			headers: [][2]string{{"X-Forwarded-Proto", "http"}, {"X-Forwarded-Host", "evil.example"}}}, 308, "https://platform.example/small"},
		{"health over HTTP", request{target: "/health", peer: "203.0.113.5:1"}, 200, ""},
		{"health with a query over HTTP", request{target: "/health?deep=1", peer: "203.0.113.5:1"}, 200, ""},
		{"HTTPS via trusted proxy", request{target: "/small", peer: "10.0.0.2:1", headers: [][2]string{{"X-Forwarded-Proto", "https"}}}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := prod.do(t, tc.r)
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode(), tc.status)
			}
			if got := header(resp, "Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if tc.status == 308 && header(resp, fiber.HeaderStrictTransportSecurity) != "" {
				t.Error("HSTS on a plain-HTTP response")
			}
			if tc.status == 200 && tc.r.peer == "10.0.0.2:1" && header(resp, fiber.HeaderStrictTransportSecurity) != "max-age=31536000; includeSubDomains" {
				t.Error("no HSTS on an HTTPS response")
			}
		})
	}
}

// Hostile Host headers and request lines, over a real connection, since
// some of them are what a client can put on the wire but not in a URL: no
// Location ever names a host but the configured origin.
func TestHTTPSRedirectNeverFollowsTheClient(t *testing.T) {
	ta := newApp(t, appOptions{production: true, trusted: []string{"127.0.0.1/32"}, publicURL: "https://platform.example"})
	addr := ta.serve(t)
	for _, tc := range []struct{ name, requestLine, host, want string }{
		{"evil Host", "GET /small?a=1 HTTP/1.1", "evil.example", "https://platform.example/small?a=1"},
		{"evil Host with port", "GET /x HTTP/1.1", "evil.example:443", "https://platform.example/x"},
		{"absolute-form target", "GET http://evil.example/steal?q=1 HTTP/1.1", "evil.example", "https://platform.example/steal?q=1"},
		{"absolute-form https target", "GET https://evil.example HTTP/1.1", "evil.example", "https://platform.example/"},
		{"protocol-relative path", "GET //evil.example/x HTTP/1.1", "evil.example", "https://platform.example//evil.example/x"},
		{"backslash path", `GET /\evil.example HTTP/1.1`, "evil.example", `https://platform.example/\evil.example`},
		{"userinfo trick", "GET @evil.example/x HTTP/1.1", "evil.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, addr, tc.requestLine+"\r\nHost: "+tc.host+"\r\nX-Forwarded-Host: evil.example\r\n\r\n")
			loc := resp.Header.Get("Location")
			if strings.Contains(strings.SplitN(strings.TrimPrefix(loc, "https://"), "/", 2)[0], "evil") {
				t.Fatalf("Location %q sends the client to the attacker's host", loc)
			}
			if tc.want == "" {
				// Whatever the server makes of it, the answer stays on the platform.
				if loc != "" && !strings.HasPrefix(loc, "https://platform.example/") {
					t.Errorf("status %d Location %q", resp.StatusCode, loc)
				}
				return
			}
			if resp.StatusCode != http.StatusPermanentRedirect || loc != tc.want {
				t.Errorf("status %d Location %q, want 308 to %q", resp.StatusCode, loc, tc.want)
			}
		})
	}
}

// Without PUBLIC_URL there is nowhere safe to send a plain-HTTP client: it
// is told why instead, in the contract's error shape.
func TestHTTPSWithoutAPublicURLRedirectsNowhere(t *testing.T) {
	ta := newApp(t, appOptions{production: true})
	for _, target := range []string{"/small", "/nowhere", "/items/1?a=b"} {
		resp := ta.do(t, request{target: target, peer: "203.0.113.5:1", headers: [][2]string{{"Host", "evil.example"}}})
		if resp.StatusCode() != fiber.StatusBadRequest || header(resp, "Location") != "" {
			t.Fatalf("%s: status %d Location %q, want 400 without a redirect", target, resp.StatusCode(), header(resp, "Location"))
		}
		be := errorBody(t, resp)
		if be.Code != "https_required" || !strings.Contains(be.Message, "PUBLIC_URL") || !strings.Contains(be.Message, "HTTPS") {
			t.Errorf("%s: %s %q", target, be.Code, be.Message)
		}
	}
	if resp := ta.do(t, request{target: "/health", peer: "203.0.113.5:1"}); resp.StatusCode() != 200 {
		t.Errorf("/health over HTTP: %d", resp.StatusCode())
	}
}

// An experiment host is sent to its own https origin, as the canonical
// function maps it; a host it does not know goes to the platform.
func TestHTTPSRedirectsAnExperimentHostToItsOrigin(t *testing.T) {
	canonical := func(c *fiber.Ctx) string {
		if slug, ok := strings.CutSuffix(httpx.Host(c), ".labs.example"); ok && httpx.SlugPattern.MatchString(slug) {
			return "https://" + slug + ".labs.example"
		}
		if httpx.Host(c) == "bad.example" {
			return "http://bad.example" // not https: ignored
		}
		return ""
	}
	ta := newApp(t, appOptions{production: true, publicURL: "https://platform.example", canonical: canonical})
	for _, tc := range []struct{ host, target, want string }{
		{"clicks.labs.example", "/api/click?n=1", "https://clicks.labs.example/api/click?n=1"},
		{"Evil!.labs.example", "/", "https://platform.example/"},
		{"evil.example", "/x", "https://platform.example/x"},
		{"bad.example", "/x", "https://platform.example/x"},
	} {
		resp := ta.do(t, request{target: tc.target, peer: "203.0.113.5:1", headers: [][2]string{{"Host", tc.host}}})
		if resp.StatusCode() != 308 || header(resp, "Location") != tc.want {
			t.Errorf("Host %s %s: %d to %q, want 308 to %q", tc.host, tc.target, resp.StatusCode(), header(resp, "Location"), tc.want)
		}
	}
}

// rawRequest writes a request as given on a new connection and reads the
// answer.
func rawRequest(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	resp.Body.Close()
	return resp
}
