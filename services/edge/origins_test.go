package edge_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// standInAuth answers the hand-off's calls as the auth service does: an
// experiment token for a valid platform token, and sign-out of an
// experiment token's session. Ended sessions are recorded.
func (w *world) standInAuth() *[]string {
	w.t.Helper()
	v := authn.NewVerifier()
	kid, pub := w.signer.Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	var mu sync.Mutex
	var ended []string
	w.standIn(authapi.Service,
		bus.Endpoint(authapi.EndpointExperimentToken, func(_ context.Context, r authapi.ExperimentTokenRequest) (authapi.Session, error) {
			c, err := v.Verify(r.Token, time.Now())
			if err != nil {
				return authapi.Session{}, apierr.New(apierr.CodeUnauthenticated, "not valid")
			}
			tok, ec, err := w.signer.MintExperiment(c, r.Slug, time.Now())
			if err != nil {
				return authapi.Session{}, err
			}
			return authapi.Session{Token: tok, ExpiresAt: ec.ExpiresAt.Time, User: authapi.User{Email: c.Email}}, nil
		}),
		bus.Endpoint(authapi.EndpointEndSession, func(_ context.Context, r authapi.EndSession) (authapi.Empty, error) {
			c, err := v.VerifyExperiment(r.Token, r.Slug, time.Now())
			if err != nil {
				return authapi.Empty{}, apierr.New(apierr.CodeUnauthenticated, "not valid")
			}
			mu.Lock()
			ended = append(ended, c.Session)
			mu.Unlock()
			return authapi.Empty{}, nil
		}),
	)
	return &ended
}

// browse is a request as a browser sends it: cookies by name, a page's
// Accept header; no redirect is followed.
func (w *world) browse(method, rawURL string, cookies map[string]string, header map[string]string) *http.Response {
	w.t.Helper()
	req, err := http.NewRequest(method, rawURL, http.NoBody)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for k, v := range w.always {
		req.Header.Set(k, v)
	}
	for k, v := range cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	resp.Body.Close()
	return resp
}

func cookieOf(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestExperimentsAreServedOnTheirOwnOrigin(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("plain", "dev@example.com", "active", `{"slug":"plain","name":"Plain","status":"active"}`, map[string]string{"index.html": "plain page"})
	exp := testenv.ExperimentURL(w.addr, "plain", "")
	user := w.token("user@example.com")

	// On the platform's origin an experiment's paths move to its own,
	// path and query kept, methods too.
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		r := w.onPlatform(m, "/experiments/plain/api/x?a=1&b=2", "", nil, "")
		if r.status != http.StatusPermanentRedirect || r.header.Get("Location") != exp+"/experiments/plain/api/x?a=1&b=2" {
			t.Errorf("%s on the platform: %d %q", m, r.status, r.header.Get("Location"))
		}
	}
	if r := w.onPlatform("GET", "/experiments/plain", "", nil, ""); r.header.Get("Location") != exp+"/experiments/plain" {
		t.Errorf("bare path: %d %q", r.status, r.header.Get("Location"))
	}

	w.run([]scenario{
		{name: "the page, on its origin", path: "/experiments/plain/", token: user, status: 200, want: []string{"plain page"},
			wantHeader: map[string]string{"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "frame-ancestors 'self'"}},
		{name: "its health", path: "/experiments/plain/health", token: user, status: 200, want: []string{`"state":"none"`}},
	})
	// Platform routes do not exist on an experiment's origin.
	for _, p := range []string{"/api/me", "/api/experiments", "/admin", "/admin/api/users", "/auth/login", "/auth/experiment?slug=plain",
		"/metrics", "/health", "/api/exports/x", "/experiments/other/", "/experiments/other/api/x"} {
		r := w.send("GET", exp+p, user, nil, "")
		if r.status != http.StatusNotFound || r.code() != "not_found" {
			t.Errorf("%s on an experiment's origin: %d %s", p, r.status, r.body)
		}
	}
	for _, p := range []string{"/auth/login", "/auth/logout", "/admin/api/users", "/api/experiments"} {
		r := w.send("POST", exp+p, user, jsonType, `{}`)
		if r.status != http.StatusNotFound {
			t.Errorf("POST %s on an experiment's origin: %d %s", p, r.status, r.body)
		}
	}
	if r := w.send("GET", exp+"/", "", nil, ""); r.status != http.StatusFound || r.header.Get("Location") != "/experiments/plain/" {
		t.Errorf("the origin's root: %d %q", r.status, r.header.Get("Location"))
	}
	// The platform's own responses are not an experiment's.
	if r := w.onPlatform("GET", "/api/experiments/plain", user, nil, ""); r.status != 200 {
		t.Errorf("the API on the platform: %d %s", r.status, r.body)
	}
	// Metrics count an experiment origin's requests by their own routes.
	resp, err := http.Get(w.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`route="/experiments/:slug/*",status="200"`, `route="/experiments/:slug/health",status="200"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestUnknownNamesAreNotExperimentOrigins(t *testing.T) {
	w := startWorld(t, nil)
	_, port, _ := strings.Cut(w.addr, ":")
	for _, host := range []string{"localhost:" + port, "UPPER!.localhost:" + port, ".localhost:" + port, "a.b.localhost:" + port + "x"} {
		req, _ := http.NewRequest("GET", w.base+"/api/me", nil)
		req.Host = host
		resp, err := w.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// /api/me is a platform route: 401 there, 404 on an experiment's.
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Host %q: %d", host, resp.StatusCode)
		}
	}
}

func TestPlatformLinksExplainAnUnreachableDefault(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("plain", "dev@example.com", "active", `{"slug":"plain","name":"Plain","status":"active"}`, map[string]string{"index.html": "x"})
	for _, p := range []string{"/experiments/plain/", "/auth/experiment?slug=plain&next=/experiments/plain/"} {
		req, _ := http.NewRequest("GET", w.base+p, nil)
		req.Host = "gnome.lan:8080"
		resp, err := w.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b.String(), "EXPERIMENT_ORIGIN") {
			t.Errorf("%s reached as gnome.lan: %d %s", p, resp.StatusCode, b.String())
		}
	}
}

func TestHandOffCarriesTheVisitorToTheExperimentOrigin(t *testing.T) {
	w := startWorld(t, nil)
	ended := w.standInAuth()
	w.experiment("members", "dev@example.com", "active",
		`{"slug":"members","name":"Members","status":"active","auth_required":true}`, map[string]string{"index.html": "members page", "next.html": "next page"})
	w.experiment("open", "dev@example.com", "active", `{"slug":"open","name":"Open","status":"active"}`, map[string]string{"index.html": "open page"})
	exp := testenv.ExperimentURL(w.addr, "members", "")
	user := w.token("user@example.com")
	platformCookie := map[string]string{authn.CookieName: user}

	// 1. A page without a session is sent to the platform's hand-off.
	r := w.browse("GET", exp+"/experiments/members/next.html?x=1", nil, nil)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || loc.Host != w.addr || loc.Path != "/auth/experiment" ||
		loc.Query().Get("slug") != "members" || loc.Query().Get("next") != "/experiments/members/next.html?x=1" {
		t.Fatalf("a page without a session: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// The platform's cookie is not the experiment's: sent there, it is ignored.
	if r := w.browse("GET", exp+"/experiments/members/next.html", platformCookie, nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the platform cookie on the experiment's origin: %d", r.StatusCode)
	}

	// 2. A signed-in visitor gets a code on a redirect back.
	r = w.browse("GET", loc.String(), platformCookie, nil)
	back, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || back.Scheme+"://"+back.Host != exp || back.Path != "/_gnome/session" || back.Query().Get("code") == "" {
		t.Fatalf("hand-off for a signed-in visitor: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if strings.Contains(back.String(), user) {
		t.Fatal("the platform token travels in the URL")
	}
	// A code for members is worthless on another experiment's origin, and
	// spent by the attempt.
	stolen := w.browse("GET", testenv.ExperimentURL(w.addr, "open", "/_gnome/session?"+back.RawQuery), nil, nil)
	if stolen.StatusCode != http.StatusBadRequest || cookieOf(stolen, "gnome_session") != nil {
		t.Errorf("members' code on open's origin: %d", stolen.StatusCode)
	}
	r = w.browse("GET", loc.String(), platformCookie, nil)
	back, _ = url.Parse(r.Header.Get("Location"))

	// 3. The experiment's origin takes the code once and sets its cookie.
	r = w.browse("GET", back.String(), nil, nil)
	sess := cookieOf(r, "gnome_session")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/experiments/members/next.html?x=1" || sess == nil {
		t.Fatalf("code exchange: %d %q %v", r.StatusCode, r.Header.Get("Location"), r.Cookies())
	}
	if !sess.HttpOnly || sess.Domain != "" || sess.Path != "/" || sess.SameSite != http.SameSiteLaxMode {
		t.Errorf("the experiment cookie is not host-only, HttpOnly and Lax: %+v", sess)
	}
	if again := w.browse("GET", back.String(), nil, nil); again.StatusCode != http.StatusBadRequest || cookieOf(again, "gnome_session") != nil {
		t.Errorf("a code used twice: %d", again.StatusCode)
	}
	expCookie := map[string]string{"gnome_session": sess.Value}
	if r := w.browse("GET", exp+"/experiments/members/next.html", expCookie, nil); r.StatusCode != http.StatusOK {
		t.Errorf("the page with the session: %d", r.StatusCode)
	}
	// The experiment's token is good on its origin alone.
	if r := w.onPlatform("GET", "/api/me", sess.Value, nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("the experiment token on the platform: %d %s", r.status, r.body)
	}
	if r := w.browse("GET", w.base+"/api/me", map[string]string{authn.CookieName: sess.Value}, nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the experiment token as the platform cookie: %d", r.StatusCode)
	}
	if r := w.browse("GET", testenv.ExperimentURL(w.addr, "open", "/experiments/open/"), expCookie, nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("members' token on open's origin was accepted: %d", r.StatusCode)
	}

	// Requests riding on the session from elsewhere are refused.
	for name, h := range map[string]map[string]string{
		"the platform's origin": {"Origin": w.base},
		"a sibling host":        {"Origin": testenv.ExperimentURL(w.addr, "open", "")},
		"same-site":             {"Sec-Fetch-Site": "same-site"},
		"cross-site":            {"Sec-Fetch-Site": "cross-site"},
	} {
		if r := w.browse("POST", exp+"/experiments/members/api/x", expCookie, h); r.StatusCode != http.StatusForbidden {
			t.Errorf("POST from %s: %d", name, r.StatusCode)
		}
	}

	// 4. Signing out on the experiment's origin ends the platform session.
	r = w.browse("POST", exp+"/_gnome/logout", expCookie, map[string]string{"Origin": exp, "Accept": "application/json"})
	if r.StatusCode != http.StatusNoContent || cookieOf(r, "gnome_session") == nil || cookieOf(r, "gnome_session").MaxAge >= 0 {
		t.Errorf("sign-out: %d %v", r.StatusCode, r.Cookies())
	}
	v := authn.NewVerifier()
	kid, pub := w.signer.Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	claims, _ := v.Verify(user, time.Now())
	if len(*ended) != 1 || claims == nil || (*ended)[0] != claims.ID {
		t.Errorf("sign-out ended sessions %v, want the platform session", *ended)
	}
}

func TestHandOffOfAnonymousVisitors(t *testing.T) {
	w := startWorld(t, nil)
	w.standInAuth()
	w.experiment("members", "dev@example.com", "active",
		`{"slug":"members","name":"Members","status":"active","auth_required":true}`, map[string]string{"index.html": "members page"})
	w.experiment("open", "dev@example.com", "active", `{"slug":"open","name":"Open","status":"active"}`, map[string]string{"index.html": "open page"})

	// An experiment anyone may open: the visitor comes back anonymous,
	// and is not sent round again while the marker lasts.
	r := w.browse("GET", w.base+"/auth/experiment?slug=open&next=/experiments/open/", nil, nil)
	back := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(back, testenv.ExperimentURL(w.addr, "open", "/_gnome/session?code=")) {
		t.Fatalf("anonymous hand-off: %d %q", r.StatusCode, back)
	}
	r = w.browse("GET", back, nil, nil)
	marker := cookieOf(r, "gnome_session")
	if marker == nil || marker.Value != "anonymous" {
		t.Fatalf("anonymous marker: %v", r.Cookies())
	}
	if r := w.browse("GET", testenv.ExperimentURL(w.addr, "open", "/experiments/open/"), map[string]string{"gnome_session": "anonymous"}, nil); r.StatusCode != 200 {
		t.Errorf("the page with the marker: %d", r.StatusCode)
	}
	// One that needs sign-in sends the visitor to sign in, then on.
	r = w.browse("GET", w.base+"/auth/experiment?slug=members&next=/experiments/members/", nil, nil)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || loc.Path != "/auth/login" || !strings.HasPrefix(loc.Query().Get("next"), "/auth/experiment?") {
		t.Errorf("members, anonymous: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// With the anonymous marker, members' pages still ask for sign-in.
	r = w.browse("GET", testenv.ExperimentURL(w.addr, "members", "/experiments/members/"), map[string]string{"gnome_session": "anonymous"}, nil)
	loc, _ = url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || loc.Path != "/auth/experiment" || loc.Query().Get("login") != "1" {
		t.Errorf("members with the anonymous marker: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// Bad hand-off requests change nothing and say why.
	for _, p := range []string{"/auth/experiment", "/auth/experiment?slug=NOPE!", "/auth/experiment?slug=ghost"} {
		if r := w.onPlatform("GET", p, "", nil, ""); r.status != http.StatusNotFound {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	for _, code := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("A", 500)} {
		r := w.send("GET", testenv.ExperimentURL(w.addr, "open", "/_gnome/session?code="+code), "", nil, "")
		if r.status != http.StatusBadRequest || r.code() != "bad_request" {
			t.Errorf("code %q: %d %s", code, r.status, r.body)
		}
	}
	// next never leaves the experiment's origin.
	r = w.browse("GET", w.base+"/auth/experiment?slug=open&next=https://evil.example/", nil, nil)
	r = w.browse("GET", r.Header.Get("Location"), nil, nil)
	if r.Header.Get("Location") != "/experiments/open/" {
		t.Errorf("next to another site became %q", r.Header.Get("Location"))
	}
}

// In production the cookies are __Host- (host-only, Secure, Path=/), every
// address comes from PUBLIC_URL and EXPERIMENT_ORIGIN, and plain HTTP is
// sent to the right https origin, never to the request's Host.
func TestHandOffInProduction(t *testing.T) {
	w := startWorld(t, map[string]string{
		"G_NOME_ENV": "production", "SECRET_KEY": strings.Repeat("p", 40), "ADMIN_PASSWORD": "a-production-admin-passphrase",
		"PUBLIC_URL": "https://gnome.example", "EXPERIMENT_ORIGIN": "https://{slug}.labs.example",
	})
	w.standInAuth()
	w.experiment("open", "dev@example.com", "active", `{"slug":"open","name":"Open","status":"active"}`, map[string]string{"index.html": "open page"})
	via := func(host string, extra map[string]string) map[string]string {
		h := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": host}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	user := w.token("user@example.com")
	r := w.browse("GET", w.base+"/auth/experiment?slug=open&next=/experiments/open/x", map[string]string{"__Host-token": user}, via("gnome.example", nil))
	back, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || back.Scheme != "https" || back.Host != "open.labs.example" || back.Path != "/_gnome/session" {
		t.Fatalf("production hand-off: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// The contract's cookie name without the prefix is not the session.
	r = w.browse("GET", w.base+"/auth/experiment?slug=open&next=/", map[string]string{"token": user}, via("gnome.example", nil))
	if loc, _ := url.Parse(r.Header.Get("Location")); loc.Host != "open.labs.example" {
		t.Fatalf("anonymous production hand-off: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = w.browse("GET", w.base+back.RequestURI(), nil, via("open.labs.example", nil))
	sess := cookieOf(r, "__Host-gnome_session")
	if sess == nil || !sess.Secure || sess.Domain != "" || sess.Path != "/" || !sess.HttpOnly {
		t.Fatalf("production session cookie: %v", r.Cookies())
	}
	if r.Header.Get("Location") != "/experiments/open/x" {
		t.Errorf("after the exchange: %q", r.Header.Get("Location"))
	}
	// Plain HTTP goes to the https origin of what was asked for.
	for host, want := range map[string]string{
		"open.labs.example": "https://open.labs.example/experiments/open/?q=1",
		"gnome.example":     "https://gnome.example/experiments/open/?q=1",
		"evil.example":      "https://gnome.example/experiments/open/?q=1",
	} {
		r := w.browse("GET", w.base+"/experiments/open/?q=1", nil, map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": host})
		if r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != want {
			t.Errorf("plain HTTP to %s: %d %q, want %q", host, r.StatusCode, r.Header.Get("Location"), want)
		}
	}
	// On HTTPS the platform's /experiments/ links go to the experiment's origin.
	r = w.browse("GET", w.base+"/experiments/open/?q=1", nil, via("gnome.example", nil))
	if r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != "https://open.labs.example/experiments/open/?q=1" {
		t.Errorf("platform link in production: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}
