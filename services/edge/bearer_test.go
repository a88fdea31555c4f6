package edge_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
)

// TestBearerThatFailsIsRefused: a script that presents a Bearer token that
// does not verify learns so (401 in the contract's shape) on every route,
// open ones included, instead of being served as an anonymous visitor; a
// dead session cookie, which a browser keeps after sign-out, still
// degrades to anonymous and is cleared.
func TestBearerThatFailsIsRefused(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("open", "dev@example.com", "active", `{"slug":"open","name":"Open","status":"active"}`, map[string]string{"index.html": "open page"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The open routes answer an anonymous visitor: the scenarios below are
	// refused for their token, not for the route.
	for _, path := range []string{"/api/experiments", "/api/experiments/open", "/experiments/open/index.html", "/experiments/open/health"} {
		if r := w.do("GET", path, "", nil, ""); r.status != http.StatusOK {
			t.Fatalf("anonymous GET %s: %d %s", path, r.status, r.body)
		}
	}

	other, err := authn.DeriveKey("another platform's secret key, long enough to be one")
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := authn.NewSigner(other).Mint(authn.Subject{ID: "u-root", Email: "root@example.com", Roles: []string{"admin"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := w.signer.Mint(authn.Subject{ID: "u-old", Email: "old@example.com", Roles: []string{"user"}}, time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	revokedTok, claims, err := w.signer.Mint(authn.Subject{ID: "u-gone", Email: "gone@example.com", Roles: []string{"user"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := w.d.JS.KeyValue(ctx, bus.BucketRevokedTokens)
	if err != nil {
		t.Fatal(err)
	}
	if err := authn.Revoke(ctx, kv, claims.ID, claims.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the edge to learn of the revocation", func() bool {
		return w.do("GET", "/api/me", revokedTok, nil, "").code() == "token_revoked"
	})
	// The signature is the last part: flipping its first character breaks it.
	tampered := w.token("eve@example.com", "user")
	dot := strings.LastIndexByte(tampered, '.')
	flip := "A"
	if tampered[dot+1] == 'A' {
		flip = "B"
	}
	tampered = tampered[:dot+1] + flip + tampered[dot+2:]

	bad := []struct{ name, header, code string }{
		{"forged with another key", "Bearer " + forged, "unauthenticated"},
		{"tampered signature", "Bearer " + tampered, "unauthenticated"},
		{"expired", "Bearer " + expired, "unauthenticated"},
		{"revoked", "Bearer " + revokedTok, "token_revoked"},
		{"not a token", "Bearer not-a-token", "unauthenticated"},
		{"three empty parts", "Bearer ..", "unauthenticated"},
		{"empty", "Bearer ", "unauthenticated"},
		{"lower-case scheme", "bearer garbage", "unauthenticated"},
		{"long garbage", "Bearer " + strings.Repeat("A.", 1500), "unauthenticated"},
		{"a personal token's shape", "Bearer " + authn.PersonalPrefix + strings.Repeat("0", 32) + "_secret", "unauthenticated"},
		{"not valid UTF-8", "Bearer \xff\xfe.\xff.\xff", "unauthenticated"},
	}
	routes := []struct{ method, path string }{
		{"GET", "/api/experiments"},
		{"GET", "/api/experiments/open"},
		{"GET", "/"},
		{"GET", "/health/detailed"},
		{"GET", "/experiments/open/index.html"},
		{"GET", "/experiments/open/health"},
		{"POST", "/api/experiments/open/exports"},
	}
	for _, b := range bad {
		for _, rt := range routes {
			r := w.do(rt.method, rt.path, "", map[string]string{"Authorization": b.header, "Content-Type": "application/json"}, `{"type":"upload-ready"}`)
			wantCode := b.code
			if b.name == "a personal token's shape" && strings.HasPrefix(rt.path, "/experiments/") {
				// An experiment's origin takes no personal tokens at all.
				wantCode = "unauthenticated"
			}
			if r.status != http.StatusUnauthorized || r.code() != wantCode {
				t.Errorf("%s on %s %s: %d %q, want 401 %q: %.200s", b.name, rt.method, rt.path, r.status, r.code(), wantCode, r.body)
			}
			if !strings.Contains(string(r.body), `"request_id"`) {
				t.Errorf("%s on %s %s: not the contract's error shape: %.200s", b.name, rt.method, rt.path, r.body)
			}
		}
	}

	// Signing out with a dead token is already done, not an error, and
	// signing in again is not refused for the token that ended.
	if r := w.do("POST", "/auth/logout", revokedTok, nil, ""); r.status != http.StatusOK {
		t.Errorf("sign-out with an ended token: %d %s", r.status, r.body)
	}
	if r := w.do("POST", "/auth/login", expired, jsonType, `{"email":"x@example.com","password":"wrong password"}`); r.code() == "token_revoked" || r.status == http.StatusOK {
		t.Errorf("sign-in with a stale Bearer header: %d %s", r.status, r.body)
	}

	// A dead cookie degrades to anonymous and is cleared.
	for name, cookie := range map[string]string{"forged": forged, "expired": expired, "revoked": revokedTok, "garbage": "garbage"} {
		r := w.do("GET", "/api/experiments", "", map[string]string{"Cookie": authn.CookieName + "=" + cookie}, "")
		if r.status != http.StatusOK {
			t.Errorf("%s cookie on an open route: %d %s", name, r.status, r.body)
		}
		if sc := r.header.Get("Set-Cookie"); !strings.Contains(sc, authn.CookieName+"=;") {
			t.Errorf("%s cookie is not cleared: %q", name, sc)
		}
		if r := w.do("GET", "/api/me", "", map[string]string{"Cookie": authn.CookieName + "=" + cookie}, ""); r.status != http.StatusUnauthorized {
			t.Errorf("%s cookie on /api/me: %d %s", name, r.status, r.body)
		}
	}

	// Another scheme (a proxy's Basic sign-in passing through) is not the
	// platform's: the session cookie still counts, and so does the CSRF
	// check it calls for.
	good := w.token("eve@example.com", "user")
	basic := map[string]string{"Authorization": "Basic dXNlcjpwYXNz", "Cookie": authn.CookieName + "=" + good}
	if r := w.do("GET", "/api/me", "", basic, ""); r.status != http.StatusOK || !strings.Contains(string(r.body), "eve@example.com") {
		t.Errorf("cookie beside a Basic header: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/api/experiments", "", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, ""); r.status != http.StatusOK {
		t.Errorf("a Basic header alone: %d %s", r.status, r.body)
	}
	basic["Sec-Fetch-Site"] = "cross-site"
	if r := w.do("POST", "/auth/logout", "", basic, ""); r.code() != "csrf_rejected" {
		t.Errorf("a cross-site post riding on the cookie beside a Basic header: %d %s", r.status, r.body)
	}
}
