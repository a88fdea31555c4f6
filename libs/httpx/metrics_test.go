package httpx_test

import (
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

const metricsToken = "scrape-0123456789abcdefghij"

// Who reads /metrics: the client as decided behind trusted proxies, and
// bearers of the token from anywhere. Each case is a request as an
// attacker, a proxy or a scraper would send it.
func TestMetricsAccess(t *testing.T) {
	ta := newApp(t, appOptions{
		trusted:   []string{"203.0.113.0/24", "127.0.0.1/32"},
		metricsOK: []string{"10.20.0.0/16"}, metricsToken: metricsToken,
	})
	ta.do(t, request{target: "/items/1"}) // something to count
	const ok, forbidden, unauthenticated = 200, 403, 401
	xff := func(v string) [2]string { return [2]string{"X-Forwarded-For", v} }
	bearer := func(v string) [2]string { return [2]string{"Authorization", v} }
	for _, tc := range []struct {
		name    string
		peer    string
		headers [][2]string
		status  int
	}{
		{"IPv4 loopback", "127.0.0.1:9000", nil, ok},
		{"other loopback address", "127.0.0.2:9000", nil, ok},
		{"IPv6 loopback", "[::1]:9000", nil, ok},
		{"allowed network", "10.20.3.4:9000", nil, ok},
		{"outside", "198.51.100.1:9000", nil, forbidden},
		{"neighbour of the allowed network", "10.21.0.1:9000", nil, forbidden},

		// The reverse proxy on the same host is a trusted proxy: the
		// client it names decides, not its own loopback address.
		{"through the local proxy, an outside client", "127.0.0.1:9000", [][2]string{xff("198.51.100.7")}, forbidden},
		{"through the local proxy, a client in the allowed network", "127.0.0.1:9000", [][2]string{xff("10.20.9.9")}, ok},
		{"through the local proxy, a client on its loopback", "127.0.0.1:9000", [][2]string{xff("127.0.0.1")}, ok},
		{"a client claiming loopback in its own header", "127.0.0.1:9000", [][2]string{xff("127.0.0.1, 198.51.100.7")}, forbidden},
		{"a client's header split over two lines", "203.0.113.10:9000", [][2]string{xff("127.0.0.1"), xff("198.51.100.7")}, forbidden},
		{"a proxy naming no client, only the scheme", "127.0.0.1:9000", [][2]string{{"X-Forwarded-Proto", "https"}}, forbidden},
		{"a proxy naming an unparseable client", "127.0.0.1:9000", [][2]string{xff("unknown")}, forbidden},
		{"a trusted remote proxy forwarding an outside client", "203.0.113.10:9000", [][2]string{xff("198.51.100.7")}, forbidden},

		// A loopback peer not known as a proxy that says it forwards
		// someone: that someone is unknown, so the address lets no one in.
		{"untrusted loopback forwarding", "127.0.0.2:9000", [][2]string{xff("198.51.100.7")}, forbidden},
		{"untrusted loopback with Forwarded", "127.0.0.2:9000", [][2]string{{"Forwarded", "for=198.51.100.7"}}, forbidden},
		{"untrusted loopback with X-Real-IP", "[::1]:9000", [][2]string{{"X-Real-IP", "198.51.100.7"}}, forbidden},
		{"outside peer spoofing loopback", "198.51.100.1:9000", [][2]string{xff("127.0.0.1")}, forbidden},

		{"token from outside", "198.51.100.1:9000", [][2]string{bearer("Bearer " + metricsToken)}, ok},
		{"token, scheme in lower case", "198.51.100.1:9000", [][2]string{bearer("bearer " + metricsToken)}, ok},
		{"token through the proxy for an outside client", "127.0.0.1:9000", [][2]string{xff("198.51.100.7"), bearer("Bearer " + metricsToken)}, ok},
		{"wrong token", "198.51.100.1:9000", [][2]string{bearer("Bearer " + strings.Repeat("x", len(metricsToken)))}, unauthenticated},
		{"token prefix", "198.51.100.1:9000", [][2]string{bearer("Bearer " + metricsToken[:10])}, unauthenticated},
		{"token with a suffix", "198.51.100.1:9000", [][2]string{bearer("Bearer " + metricsToken + "x")}, unauthenticated},
		{"token as Basic credentials", "198.51.100.1:9000", [][2]string{bearer("Basic " + metricsToken)}, unauthenticated},
		{"empty bearer", "198.51.100.1:9000", [][2]string{bearer("Bearer ")}, unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ta.do(t, request{target: "/metrics", peer: tc.peer, headers: tc.headers})
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode(), tc.status, resp.Body())
			}
			if tc.status != ok {
				be := errorBody(t, resp)
				want := map[int]string{forbidden: "forbidden", unauthenticated: "unauthenticated"}[tc.status]
				if string(be.Code) != want {
					t.Errorf("code %s, want %s", be.Code, want)
				}
				if tc.status == unauthenticated && header(resp, fiber.HeaderWWWAuthenticate) != `Bearer realm="metrics"` {
					t.Errorf("WWW-Authenticate %q", header(resp, fiber.HeaderWWWAuthenticate))
				}
				if strings.Contains(string(resp.Body()), "gnome_http") {
					t.Error("metrics leaked")
				}
				return
			}
			if ct := header(resp, fiber.HeaderContentType); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("content type %q, want Prometheus text", ct)
			}
			body := string(resp.Body())
			if !strings.Contains(body, "# TYPE gnome_http_requests_total counter") ||
				!strings.Contains(body, `gnome_http_requests_total{method="GET",route="/items/:id",status="200"} 1`) {
				t.Errorf("metrics text lacks the request counter:\n%.2000s", body)
			}
		})
	}
}

// Without METRICS_TOKEN no bearer opens the endpoint, not even an empty
// token's.
func TestMetricsWithoutATokenAcceptsNone(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, auth := range []string{"Bearer ", "Bearer x", "Bearer " + metricsToken} {
		resp := ta.do(t, request{target: "/metrics", peer: "198.51.100.1:9000", headers: [][2]string{{"Authorization", auth}}})
		if resp.StatusCode() != 401 {
			t.Errorf("%q: status %d, want 401", auth, resp.StatusCode())
		}
	}
	if resp := ta.do(t, request{target: "/metrics", peer: "127.0.0.1:9000"}); resp.StatusCode() != 200 {
		t.Errorf("loopback: status %d, want 200", resp.StatusCode())
	}
}
