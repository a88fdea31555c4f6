package httpx_test

import (
	"bufio"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gnome-platform/gnome/libs/httpx"
)

var formTargets = []string{"https://*.labs.example"}

// platformHeaders checks what every platform response must carry and
// returns its Content-Security-Policy.
func assertPlatformHeaders(t *testing.T, what string, resp *fasthttp.Response) string {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":       "nosniff",
		"X-Frame-Options":              "DENY",
		"Referrer-Policy":              httpx.ReferrerPolicy,
		"Cross-Origin-Resource-Policy": "same-origin",
	} {
		if got := header(resp, name); got != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
	csps := resp.Header.PeekAll(fiber.HeaderContentSecurityPolicy)
	if len(csps) != 1 {
		t.Fatalf("%s: %d Content-Security-Policy headers, want 1", what, len(csps))
	}
	csp := string(csps[0])
	if !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q lacks frame-ancestors 'none'", what, csp)
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP %q allows inline code", what, csp)
	}
	return csp
}

var nonceAttr = regexp.MustCompile(`nonce="([A-Za-z0-9_-]{22})"`)

func TestSecurityHeadersOnPlatformResponses(t *testing.T) {
	ta := newApp(t, appOptions{formTargets: formTargets, publicURL: "https://platform.example"})
	html := [][2]string{{"Accept", "text/html"}}

	for _, tc := range []struct {
		name   string
		r      request
		status int
	}{
		{"API JSON", request{target: "/small"}, 200},
		{"API error", request{target: "/api/conflict"}, 409},
		{"unknown route", request{target: "/nowhere"}, 404},
		{"server fault", request{target: "/boom"}, 500},
		{"wrong method", request{method: "DELETE", target: "/small"}, 405},
		{"plain text", request{target: "/items/1"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ta.do(t, tc.r)
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode(), tc.status)
			}
			if csp := assertPlatformHeaders(t, tc.name, resp); csp != httpx.APIPolicy {
				t.Errorf("CSP %q, want the API policy", csp)
			}
			if header(resp, "Cross-Origin-Opener-Policy") != "" {
				t.Error("COOP on a response that is not a page")
			}
		})
	}

	// Pages: the policy names the nonce the page's inline code carries,
	// and a fresh one each time.
	seen := map[string]bool{}
	for _, tc := range []struct {
		name   string
		r      request
		status int
	}{
		{"page", request{target: "/page"}, 200},
		{"page again", request{target: "/page"}, 200},
		{"error page, not found", request{target: "/nowhere", headers: html}, 404},
		{"error page, server fault", request{target: "/boom", headers: html}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ta.do(t, tc.r)
			if resp.StatusCode() != tc.status || !strings.HasPrefix(header(resp, fiber.HeaderContentType), "text/html") {
				t.Fatalf("status %d %s, want %d HTML", resp.StatusCode(), header(resp, fiber.HeaderContentType), tc.status)
			}
			csp := assertPlatformHeaders(t, tc.name, resp)
			m := nonceAttr.FindAllSubmatch(resp.Body(), -1)
			if len(m) == 0 {
				t.Fatalf("no nonce on the page's inline code: %s", resp.Body())
			}
			nonce := string(m[0][1])
			for _, x := range m {
				if string(x[1]) != nonce {
					t.Errorf("two nonces on one page")
				}
			}
			if seen[nonce] {
				t.Errorf("nonce %s served twice", nonce)
			}
			seen[nonce] = true
			if want := httpx.PagePolicy(false, formTargets, nonce); csp != want {
				t.Errorf("CSP %q, want %q", csp, want)
			}
			if strings.Count(string(resp.Body()), "<style")+strings.Count(string(resp.Body()), "<script") != len(m) {
				t.Errorf("inline code without a nonce: %s", resp.Body())
			}
			if header(resp, "Cross-Origin-Opener-Policy") != "same-origin" {
				t.Error("a page without COOP same-origin")
			}
		})
	}

	resp := ta.do(t, request{target: "/plain-page"})
	csp := assertPlatformHeaders(t, "page without inline code", resp)
	if strings.Contains(csp, "nonce-") || !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "form-action 'self' https://*.labs.example;") {
		t.Errorf("page without inline code: CSP %q", csp)
	}
}

func TestSecurityHeadersInProduction(t *testing.T) {
	ta := newApp(t, appOptions{production: true, publicURL: "https://platform.example", trusted: []string{"10.0.0.0/8"}})
	https := [][2]string{{"X-Forwarded-Proto", "https"}}
	resp := ta.do(t, request{target: "/page", peer: "10.0.0.2:1", headers: https})
	csp := assertPlatformHeaders(t, "page", resp)
	if !strings.HasSuffix(csp, "; upgrade-insecure-requests") {
		t.Errorf("CSP %q lacks upgrade-insecure-requests", csp)
	}
	// The redirect and the refusal to redirect carry them too.
	for _, r := range []request{
		{target: "/page", peer: "203.0.113.5:1"},
		{target: "/small", peer: "10.0.0.2:1", headers: https},
	} {
		assertPlatformHeaders(t, r.target, ta.do(t, r))
	}
	noURL := newApp(t, appOptions{production: true})
	resp = noURL.do(t, request{target: "/small", peer: "203.0.113.5:1"})
	if resp.StatusCode() != 400 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	assertPlatformHeaders(t, "https_required", resp)
}

// Experiment content gets nosniff and its frame-ancestors, never the
// platform's page policy; a policy of its own is kept beside it.
func TestExperimentHeaders(t *testing.T) {
	isLab := func(c *fiber.Ctx) bool { return strings.HasSuffix(httpx.Host(c), ".labs.example") }
	for _, tc := range []struct {
		name      string
		o         appOptions
		r         request
		wantCSPs  []string
		ancestors string
	}{
		{"file under /experiments/, by default", appOptions{}, request{target: "/experiments/demo/index.html"},
			[]string{"frame-ancestors 'self'"}, ""},
		{"experiment host", appOptions{isExperiment: isLab}, request{target: "/page", headers: [][2]string{{"Host", "demo.labs.example"}}},
			[]string{"frame-ancestors 'self'"}, ""},
		{"actor's own policy kept", appOptions{isExperiment: isLab}, request{target: "/actor", headers: [][2]string{{"Host", "demo.labs.example"}}},
			[]string{"script-src 'self' 'unsafe-inline'", "frame-ancestors 'self'"}, ""},
		{"platform host, same route", appOptions{isExperiment: isLab}, request{target: "/experiments/demo/index.html"},
			nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newApp(t, tc.o).do(t, tc.r)
			if resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			if tc.wantCSPs == nil {
				assertPlatformHeaders(t, tc.name, resp)
				return
			}
			if header(resp, "X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
			var got []string
			for _, v := range resp.Header.PeekAll(fiber.HeaderContentSecurityPolicy) {
				got = append(got, string(v))
			}
			if strings.Join(got, " | ") != strings.Join(tc.wantCSPs, " | ") {
				t.Errorf("CSPs %q, want %q", got, tc.wantCSPs)
			}
			if strings.Contains(strings.Join(got, ";"), "default-src") || strings.Contains(strings.Join(got, ";"), "nonce-") {
				t.Errorf("the platform's page policy on experiment content: %q", got)
			}
			if header(resp, "X-Frame-Options") != "" || header(resp, "Cross-Origin-Opener-Policy") != "" {
				t.Errorf("platform-only headers on experiment content")
			}
		})
	}
}

// An error on experiment content is the platform's own page: it keeps the
// error page's strict policy, and gets the experiment's framing rule too.
func TestExperimentErrorPage(t *testing.T) {
	resp := newApp(t, appOptions{}).do(t, request{target: "/experiments/BAD!/", headers: [][2]string{{"Accept", "text/html"}}})
	if resp.StatusCode() != 404 || header(resp, "X-Content-Type-Options") != "nosniff" {
		t.Fatalf("status %d nosniff %q", resp.StatusCode(), header(resp, "X-Content-Type-Options"))
	}
	csps := resp.Header.PeekAll(fiber.HeaderContentSecurityPolicy)
	m := nonceAttr.FindSubmatch(resp.Body())
	if len(csps) != 2 || m == nil || !strings.Contains(string(csps[0]), "style-src 'nonce-"+string(m[1])+"'") ||
		!strings.Contains(string(csps[0]), "frame-ancestors 'none'") || string(csps[1]) != "frame-ancestors 'self'" {
		t.Errorf("CSPs %q", csps)
	}
}

// Errors fasthttp meets before the chain runs (here a header over the read
// buffer) are rendered by the error handler alone: they carry the headers too.
func TestSecurityHeadersOnServerLevelErrors(t *testing.T) {
	ta := newApp(t, appOptions{})
	addr := ta.serve(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/small", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 431 or 400", resp.StatusCode)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", resp.Header)
	}
}

func TestExperimentSource(t *testing.T) {
	for _, tc := range []struct{ template, want string }{
		{"https://{slug}.labs-usercontent.example", "https://*.labs-usercontent.example"},
		{"http://{slug}.localhost:8080", "http://*.localhost:8080"},
		{"https://{slug}.labs.example/", "https://*.labs.example"},
		{"https://exp-{slug}.example", "https:"},
		{"https://labs.example", ""},
		{"", ""},
	} {
		if got := httpx.ExperimentSource(tc.template); got != tc.want {
			t.Errorf("ExperimentSource(%q) = %q, want %q", tc.template, got, tc.want)
		}
	}
	// A form target cannot smuggle a directive into the policy.
	p := httpx.PagePolicy(false, []string{"https://*.labs.example; script-src *", " ", "https://ok.example"}, "")
	if strings.Contains(p, "script-src *") || !strings.Contains(p, "form-action 'self' https://ok.example;") {
		t.Errorf("policy %q", p)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
