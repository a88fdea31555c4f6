package httpx_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"

	"github.com/gnome-platform/gnome/libs/httpx"
)

func TestChainOrder(t *testing.T) {
	steps := httpx.Chain(httpx.ChainOptions{Log: discard(), Metrics: httpx.NewMetrics(prometheus.NewRegistry()), ErrorHandler: httpx.ErrorHandler(nil)})
	var names []string
	for _, s := range steps {
		if s.Handler == nil {
			t.Errorf("step %s has no handler", s.Name)
		}
		names = append(names, s.Name)
	}
	want := []string{"request_id", "security_headers", "observe", "proxy", "declared_body_limit", "experiment_scope", "https", "compress"}
	if !slices.Equal(names, want) {
		t.Fatalf("chain order %v, want %v", names, want)
	}
}

// The order is also visible from outside; each case shows one pair.
func TestChainOrderIsObservable(t *testing.T) {
	ta := newApp(t, appOptions{production: true, trusted: []string{"10.0.0.0/8"}, publicURL: "https://platform.example"})

	t.Run("request_id before https: a redirect carries the request ID", func(t *testing.T) {
		resp := ta.do(t, request{target: "/small?x=1", peer: "203.0.113.5:5000"})
		if resp.StatusCode() != fiber.StatusPermanentRedirect {
			t.Fatalf("status %d, want 308", resp.StatusCode())
		}
		if got := header(resp, "Location"); got != "https://platform.example/small?x=1" {
			t.Errorf("Location %q", got)
		}
		if header(resp, httpx.HeaderRequestID) == "" {
			t.Error("the redirect has no X-Request-ID")
		}
	})

	t.Run("proxy before https: a trusted proxy's https is believed", func(t *testing.T) {
		resp := ta.do(t, request{target: "/small", peer: "10.0.0.2:5000", headers: [][2]string{{"X-Forwarded-Proto", "https"}}})
		if resp.StatusCode() != fiber.StatusOK {
			t.Fatalf("status %d, want 200 (no redirect)", resp.StatusCode())
		}
		if got := header(resp, fiber.HeaderStrictTransportSecurity); got != "max-age=31536000; includeSubDomains" {
			t.Errorf("HSTS %q", got)
		}
		if got := header(resp, fiber.HeaderContentSecurityPolicy); got != httpx.APIPolicy {
			t.Errorf("CSP %q, want the API policy", got)
		}
	})

	t.Run("proxy before https: an untrusted peer's header is ignored", func(t *testing.T) {
		resp := ta.do(t, request{target: "/small", peer: "203.0.113.5:5000", headers: [][2]string{{"X-Forwarded-Proto", "https"}}})
		if resp.StatusCode() != fiber.StatusPermanentRedirect {
			t.Fatalf("status %d, want 308", resp.StatusCode())
		}
		if header(resp, fiber.HeaderStrictTransportSecurity) != "" {
			t.Error("HSTS on a plain-HTTP response")
		}
	})

	t.Run("experiment_scope before https: a malformed slug is not found, not redirected", func(t *testing.T) {
		resp := ta.do(t, request{target: "/experiments/BAD!/", peer: "203.0.113.5:5000"})
		if resp.StatusCode() != fiber.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode())
		}
		if be := errorBody(t, resp); be.Code != "not_found" {
			t.Errorf("code %s", be.Code)
		}
	})

	t.Run("observe outside https: the redirect is counted and logged with its request ID", func(t *testing.T) {
		// The redirect happens before routing: no route template is known.
		before := testutil.ToFloat64(ta.metrics.Requests.WithLabelValues("unmatched", "GET", "308"))
		resp := ta.do(t, request{target: "/items/9", peer: "203.0.113.5:5000"})
		if got := testutil.ToFloat64(ta.metrics.Requests.WithLabelValues("unmatched", "GET", "308")); got != before+1 {
			t.Errorf("308s counted %v, want %v", got, before+1)
		}
		rid := header(resp, httpx.HeaderRequestID)
		found := false
		for _, l := range ta.logs.lines(t) {
			if l["request_id"] == rid && l["status"] == float64(308) {
				found = true
			}
		}
		if !found {
			t.Errorf("no log line for the redirect with request_id %s:\n%s", rid, ta.logs.String())
		}
	})

	t.Run("compress last: a large body is encoded and keeps the request ID", func(t *testing.T) {
		resp := ta.do(t, request{target: "/big", peer: "10.0.0.2:5000", headers: [][2]string{{"X-Forwarded-Proto", "https"}, {"Accept-Encoding", "gzip"}}})
		if header(resp, fiber.HeaderContentEncoding) != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", header(resp, fiber.HeaderContentEncoding))
		}
		if header(resp, httpx.HeaderRequestID) == "" || header(resp, fiber.HeaderStrictTransportSecurity) == "" {
			t.Error("the compressed response lost headers set by earlier steps")
		}
		plain, err := fasthttp.AppendGunzipBytes(nil, resp.Body())
		if err != nil || string(plain) != bigJSON {
			t.Errorf("gunzip: %v; body intact %v", err, string(plain) == bigJSON)
		}
	})

	t.Run("health stays reachable over plain HTTP", func(t *testing.T) {
		resp := ta.do(t, request{target: "/health", peer: "203.0.113.5:5000"})
		if resp.StatusCode() != fiber.StatusOK {
			t.Errorf("status %d, want 200", resp.StatusCode())
		}
	})
}

// The whole chain over a real loopback connection: what a client sees.
func TestChainOverALoopbackListener(t *testing.T) {
	ta := newApp(t, appOptions{production: true, trusted: []string{"127.0.0.1/32"}, publicURL: "https://platform.example"})
	base := "http://" + ta.serve(t)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, _ := get("/small", map[string]string{"X-Request-ID": "client-chosen-id-1"})
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://platform.example/small" {
		t.Errorf("plain HTTP: %d to %q, want 308 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := resp.Header.Get("X-Request-ID"); got != "client-chosen-id-1" {
		t.Errorf("redirect X-Request-ID %q, want the client's", got)
	}

	for _, tc := range []struct {
		accept, want string
		decode       func([]byte) ([]byte, error)
	}{
		{"br", "br", func(b []byte) ([]byte, error) { return fasthttp.AppendUnbrotliBytes(nil, b) }},
		{"gzip", "gzip", func(b []byte) ([]byte, error) { return fasthttp.AppendGunzipBytes(nil, b) }},
		{"gzip;q=1, br;q=0.5", "gzip", func(b []byte) ([]byte, error) { return fasthttp.AppendGunzipBytes(nil, b) }},
		{"br;q=0, gzip;q=0", "", func(b []byte) ([]byte, error) { return b, nil }},
	} {
		resp, body := get("/big", map[string]string{"X-Forwarded-Proto": "https", "Accept-Encoding": tc.accept})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Accept-Encoding %q: status %d", tc.accept, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Encoding"); got != tc.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.want)
		}
		if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("Accept-Encoding %q: response lacks X-Request-ID or HSTS", tc.accept)
		}
		if tc.want != "" && len(body) >= len(bigJSON) {
			t.Errorf("Accept-Encoding %q: %d bytes sent for %d", tc.accept, len(body), len(bigJSON))
		}
		plain, err := tc.decode(body)
		if err != nil || !bytes.Equal(plain, []byte(bigJSON)) {
			t.Errorf("Accept-Encoding %q: decoded body differs (%v)", tc.accept, err)
		}
	}

	resp, body := get("/nowhere", map[string]string{"X-Forwarded-Proto": "https"})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"code":"not_found"`) {
		t.Errorf("unknown route: %d %s", resp.StatusCode, body)
	}
}
