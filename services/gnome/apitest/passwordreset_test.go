package apitest

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type resetIssued struct {
	Email     string    `json:"email"`
	ResetURL  string    `json:"reset_url"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// An administrator resets a user's password through the edge: the user's
// sessions and old password end at once, the one-time link's code sets a
// new password once and signs in; the route is the admin's alone, and
// every wrong, used, replaced or expired code is refused alike.
func TestAdminPasswordReset(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const ann, annPW = "ann@example.com", "ann's first passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": ann, "password": annPW}, nil); r.status != 201 {
		t.Fatalf("create ann: %d %s", r.status, r.body)
	}
	user := p.client(t, 0)
	user.login(ann, annPW)
	bearer := func(c *client) map[string]string { return map[string]string{"Authorization": "Bearer " + c.token()} }
	issue := func(email string) response {
		return admin.do("POST", "/admin/api/users/"+url.PathEscape(email)+"/password-reset", nil, bearer(admin))
	}

	// Only administrators, and not across sites.
	if r := user.do("POST", "/admin/api/users/"+ann+"/password-reset", nil, bearer(user)); r.status != 403 {
		t.Errorf("a user resets their own password as admin: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).do("POST", "/admin/api/users/"+ann+"/password-reset", nil, nil); r.status != 401 {
		t.Errorf("anonymous reset: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/admin/api/users/"+ann+"/password-reset", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 403 || r.errorCode() != "csrf_rejected" {
		t.Errorf("reset from another site with the admin's cookie: %d %s", r.status, r.body)
	}
	rl := admin.do("POST", "/api/tokens", `{"name":"no roles","roles":[]}`, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + admin.token()})
	var roleless struct {
		Token string `json:"token"`
	}
	if rl.status != 201 || json.Unmarshal(rl.body, &roleless) != nil {
		t.Fatalf("admin token: %d %s", rl.status, rl.body)
	}
	if r := admin.do("POST", "/admin/api/users/"+ann+"/password-reset", nil, map[string]string{"Authorization": "Bearer " + roleless.Token}); r.status != 403 {
		t.Errorf("reset with the admin's role-less token: %d %s", r.status, r.body)
	}
	for email, want := range map[string]int{"nobody@example.com": 404, "not an email": 422, "x@y": 422} {
		if r := issue(email); r.status != want {
			t.Errorf("reset %q: %d %s, want %d", email, r.status, r.body, want)
		}
	}
	if r := user.do("GET", "/api/me", nil, nil); r.status != 200 {
		t.Fatalf("refused resets ended ann's session: %d", r.status)
	}

	// The reset: the link and its code, shown once, not cached.
	r := issue(ann)
	var first resetIssued
	if r.status != 200 || json.Unmarshal(r.body, &first) != nil || first.Email != ann || len(first.Code) != 43 ||
		!strings.HasSuffix(first.ResetURL, "/auth/reset#code="+first.Code) || time.Until(first.ExpiresAt) < 23*time.Hour {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("reset answer Cache-Control %q", cc)
	}
	var stored bson.M
	if err := p.deps.Store.Collection("password_resets").FindOne(context.Background(), bson.D{{Key: "email", Value: ann}}).Decode(&stored); err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(stored); strings.Contains(string(raw), first.Code) {
		t.Errorf("the code is stored readable: %s", raw)
	}
	eventually(t, 10*time.Second, "ann's session to end", func() bool { return user.do("GET", "/api/me", nil, nil).status == 401 })
	if r := p.client(t, 0).do("POST", "/auth/login", map[string]string{"email": ann, "password": annPW}, nil); r.status != 401 {
		t.Errorf("the old password after the reset: %d", r.status)
	}

	// A second reset replaces the first code.
	var second resetIssued
	if r := issue(ann); r.status != 200 || json.Unmarshal(r.body, &second) != nil || second.Code == first.Code {
		t.Fatalf("second reset: %d %s", r.status, r.body)
	}

	// Hostile and wrong codes, each from a client of its own (the limit is per client).
	complete := func(code, pw string) response {
		return p.client(t, 0).do("POST", "/auth/reset", map[string]string{"code": code, "new_password": pw}, nil)
	}
	for name, code := range map[string]string{
		"the replaced code":  first.Code,
		"a made-up code":     strings.Repeat("A", 43),
		"a short code":       "abc",
		"an operator":        `{"$ne":""}`,
		"a code with a dot":  second.Code[:42] + ".",
		"a 2 KB code":        strings.Repeat("q", 2048),
		"the code uppercase": strings.ToUpper(second.Code),
	} {
		if name == "the code uppercase" && strings.ToUpper(second.Code) == second.Code {
			continue
		}
		if r := complete(code, "a brand new passphrase"); r.status != 410 || r.errorCode() != "gone" {
			t.Errorf("%s: %d %s, want 410 gone", name, r.status, r.body)
		}
	}
	if r := complete("", "a brand new passphrase"); r.status != 422 {
		t.Errorf("no code: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).do("POST", "/auth/reset", `{"code":"x","new_password":"y","admin":true}`, map[string]string{"Content-Type": "application/json"}); r.status != 400 {
		t.Errorf("an unknown field: %d %s", r.status, r.body)
	}
	// A weak password does not use the code up.
	if r := complete(second.Code, "password"); r.status != 422 || r.errorCode() != "validation_failed" {
		t.Errorf("a weak password: %d %s", r.status, r.body)
	}
	// The code: a new password, signed in.
	annNew := p.client(t, 0)
	r = annNew.do("POST", "/auth/reset", map[string]string{"code": second.Code, "new_password": "ann's own new passphrase"}, nil)
	if r.status != 200 || !strings.Contains(string(r.body), ann) || annNew.token() == "" {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	if r := annNew.do("GET", "/api/me", nil, nil); r.status != 200 {
		t.Errorf("signed in after the reset: %d", r.status)
	}
	if r := complete(second.Code, "another new passphrase"); r.status != 410 {
		t.Errorf("the code used twice: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).do("POST", "/auth/login", map[string]string{"email": ann, "password": "ann's own new passphrase"}, nil); r.status != 200 {
		t.Errorf("sign in with the new password: %d %s", r.status, r.body)
	}

	// An expired code is refused too.
	var third resetIssued
	if r := issue(ann); r.status != 200 || json.Unmarshal(r.body, &third) != nil {
		t.Fatalf("third reset: %d %s", r.status, r.body)
	}
	if _, err := p.deps.Store.Collection("password_resets").UpdateMany(context.Background(), bson.D{{Key: "email", Value: ann}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: time.Now().Add(-time.Minute)}}}}); err != nil {
		t.Fatal(err)
	}
	if r := complete(third.Code, "a passphrase too late"); r.status != 410 {
		t.Errorf("an expired code: %d %s", r.status, r.body)
	}

	// The page's form: refused without the page's CSRF token; with it,
	// 303 to the account page, signed in.
	var fourth resetIssued
	if r := issue(ann); r.status != 200 || json.Unmarshal(r.body, &fourth) != nil {
		t.Fatalf("fourth reset: %d %s", r.status, r.body)
	}
	form := url.Values{"code": {fourth.Code}, "new_password": {"ann's form passphrase"}, "confirm_password": {"ann's form passphrase"}}
	if r := p.client(t, 0).do("POST", "/auth/reset", form, nil); r.status != 403 || r.errorCode() != "csrf_rejected" {
		t.Errorf("the form without its CSRF token: %d %s", r.status, r.body)
	}
	browser := p.client(t, 0)
	if r := browser.do("GET", "/auth/reset", nil, map[string]string{"Accept": "text/html"}); r.status != 200 || !strings.Contains(string(r.body), `for="reset-code"`) {
		t.Fatalf("reset page: %d %s", r.status, r.body)
	}
	mismatch := url.Values{"code": {fourth.Code}, "new_password": {"one passphrase here"}, "confirm_password": {"another passphrase"}, "csrf_token": {browser.cookie("csrf_token")}}
	if r := browser.do("POST", "/auth/reset", mismatch, nil); r.status != 422 || !strings.Contains(string(r.body), "differ") {
		t.Errorf("confirmation differs: %d", r.status)
	}
	form.Set("csrf_token", browser.cookie("csrf_token"))
	if r := browser.do("POST", "/auth/reset", form, nil); r.status != 303 || r.header.Get("Location") != "/account?done=password" {
		t.Errorf("the form: %d %v %s", r.status, r.header, r.body)
	}
	if r := browser.do("GET", "/api/me", nil, nil); r.status != 200 {
		t.Errorf("signed in by the form: %d", r.status)
	}

	// Audited.
	n, err := p.deps.Store.Collection("audit_log").CountDocuments(context.Background(), bson.D{{Key: "what", Value: "user.password_reset"}, {Key: "target", Value: ann}})
	if err != nil || n != 4 {
		t.Errorf("audit entries user.password_reset for ann: %d %v, want 4", n, err)
	}
}
