package edge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/auth"
)

// withAuth runs the real auth service beside the world's edge, on the same
// bus and store and with the same SECRET_KEY (so the same signing key).
func (w *world) withAuth() {
	w.t.Helper()
	s := auth.New(w.d)
	s.Out = io.Discard
	testenv.Run(w.t, w.d, s)
}

// visit is a browser's request on an experiment's origin: cookies by name,
// a fixed client address when ip is set.
func (w *world) visit(method, slug, path, contentType, body, ip string, cookies map[string]string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(method, testenv.ExperimentURL(w.addr, slug, path), strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method == "GET" && contentType == "" {
		req.Header.Set("Accept", "text/html")
	}
	if ip == "" {
		n := ipSeq.Add(1)
		ip = "203.0." + itoa(113+int(n/250)) + "." + itoa(int(n%250)+1)
	}
	req.Header.Set("X-Forwarded-For", ip)
	for k, v := range cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := w.http.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

const formType = "application/x-www-form-urlencoded"

// Every visitor of an anonymous_session experiment gets a participant ID on
// the first request, without the hand-off's round trip; it is kept while
// genuine, and a forged one, or another experiment's, is replaced.
func TestAnonymousParticipants(t *testing.T) {
	w := startWorld(t, nil)
	page := map[string]string{"index.html": "survey page"}
	w.experiment("survey", "dev@example.com", "active", `{"slug":"survey","status":"active","sub_auth":{"enabled":true,"strategy":"anonymous_session","session_ttl_seconds":600}}`, page)
	w.experiment("poll", "dev@example.com", "active", `{"slug":"poll","status":"active","sub_auth":{"enabled":true,"strategy":"anonymous_session"}}`, map[string]string{"index.html": "poll page"})
	w.experiment("plain", "dev@example.com", "active", `{"slug":"plain","status":"active"}`, map[string]string{"index.html": "plain page"})

	resp, body := w.visit("GET", "survey", "/experiments/survey/", "", "", "", nil)
	first := cookieOf(resp, "gnome_participant")
	if resp.StatusCode != 200 || body != "survey page" || first == nil {
		t.Fatalf("first visit: %d %q, participant cookie %v", resp.StatusCode, body, first)
	}
	if !first.HttpOnly || first.MaxAge != 600 || first.Path != "/" || first.Domain != "" || first.SameSite != http.SameSiteLaxMode {
		t.Errorf("the participant cookie: %+v", first)
	}
	id, mac, _ := strings.Cut(first.Value, ".")
	if len(id) < 22 || len(mac) < 43 {
		t.Errorf("participant cookie value %q is not an ID and its MAC", first.Value)
	}
	// The same visitor keeps the ID: no new cookie.
	resp, _ = w.visit("GET", "survey", "/experiments/survey/", "", "", "", map[string]string{"gnome_participant": first.Value})
	if c := cookieOf(resp, "gnome_participant"); resp.StatusCode != 200 || c != nil {
		t.Errorf("a returning participant: %d, new cookie %v", resp.StatusCode, c)
	}
	// A second visitor gets another ID.
	resp, _ = w.visit("GET", "survey", "/experiments/survey/", "", "", "", nil)
	if c := cookieOf(resp, "gnome_participant"); c == nil || c.Value == first.Value {
		t.Errorf("a second visitor's cookie: %v", c)
	}
	// Hostile cookies: each is refused and replaced by a fresh ID.
	otherID := "AAAAAAAAAAAAAAAAAAAAAA"
	hostile := map[string]string{
		"forged MAC":           otherID + "." + mac,
		"no MAC":               id,
		"tampered ID":          tamper(id) + "." + mac,
		"garbage":              "%%%not-a-cookie",
		"oversized":            strings.Repeat("a", 3000) + "." + mac,
		"empty parts":          ".",
		"another experiment's": "",
	}
	resp, _ = w.visit("GET", "poll", "/experiments/poll/", "", "", "", nil)
	pollCookie := cookieOf(resp, "gnome_participant")
	if pollCookie == nil {
		t.Fatal("poll gave no participant cookie")
	}
	hostile["another experiment's"] = pollCookie.Value
	for name, v := range hostile {
		resp, _ := w.visit("GET", "survey", "/experiments/survey/", "", "", "", map[string]string{"gnome_participant": v})
		c := cookieOf(resp, "gnome_participant")
		if resp.StatusCode != 200 || c == nil || c.Value == v || strings.HasPrefix(c.Value, strings.SplitN(v, ".", 2)[0]+".") {
			t.Errorf("%s: %d, cookie %v", name, resp.StatusCode, c)
		}
	}
	// An experiment without sub_auth still asks the platform (the hand-off)
	// and gives no participant ID.
	resp, _ = w.visit("GET", "plain", "/experiments/plain/", "", "", "", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/auth/experiment?") ||
		cookieOf(resp, "gnome_participant") != nil {
		t.Errorf("plain experiment: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	// Accounts' routes do not exist where the experiment has none.
	if resp, _ := w.visit("GET", "survey", "/_gnome/auth/login", "", "", "", nil); resp.StatusCode != 404 {
		t.Errorf("sign-in page of an experiment without accounts: %d", resp.StatusCode)
	}
}

// An experiment's own accounts, on its origin: sign-up, sign-in, who am I
// and sign-out, as JSON and as forms, and what must be refused.
func TestExperimentAccountsOnTheOrigin(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	const accounts = `{"slug":"%s","status":"active","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":%s}}`
	for slug, reg := range map[string]string{"shop": "true", "other": "true", "closed": "false"} {
		w.experiment(slug, "dev@example.com", "active", strings.ReplaceAll(strings.Replace(accounts, "%s", slug, 1), "%s", reg),
			map[string]string{"index.html": slug + " page"})
	}
	const pw = "a shopper's long passphrase"
	creds := func(email, password string) string {
		b, _ := json.Marshal(map[string]string{"email": email, "password": password})
		return string(b)
	}
	errOf := func(body string) (code, message string) {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		return e.Error.Code, e.Error.Message
	}

	// No hand-off: the experiment's visitors are its own.
	resp, body := w.visit("GET", "shop", "/experiments/shop/", "", "", "", nil)
	if resp.StatusCode != 200 || body != "shop page" {
		t.Fatalf("an anonymous page view: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = w.visit("GET", "shop", "/_gnome/auth/login?next=/experiments/shop/x", "", "", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `action="/_gnome/auth/login"`) || !strings.Contains(body, `value="/experiments/shop/x"`) ||
		strings.Contains(body, "http") && strings.Contains(body, "src=") {
		t.Errorf("the default sign-in page: %d %s", resp.StatusCode, body)
	}
	if resp, body := w.visit("GET", "shop", "/_gnome/auth/register", "", "", "", nil); resp.StatusCode != 200 || !strings.Contains(body, `action="/_gnome/auth/register"`) {
		t.Errorf("the default sign-up page: %d %s", resp.StatusCode, body)
	}

	// Sign-up (JSON), then who am I.
	resp, body = w.visit("POST", "shop", "/_gnome/auth/register", "application/json", creds("Shopper@Example.com", pw), "", nil)
	session := cookieOf(resp, "gnome_session")
	if resp.StatusCode != 201 || session == nil || !session.HttpOnly || !strings.Contains(body, `"kind":"experiment_user"`) {
		t.Fatalf("sign-up: %d %s %v", resp.StatusCode, body, session)
	}
	jar := map[string]string{"gnome_session": session.Value}
	resp, body = w.visit("GET", "shop", "/_gnome/auth/me", "application/json", "", "", jar)
	if resp.StatusCode != 200 || !strings.Contains(body, `"email":"shopper@example.com"`) || !strings.Contains(body, `"kind":"experiment_user"`) {
		t.Errorf("me: %d %s", resp.StatusCode, body)
	}
	// A token of shop is refused on other's origin, and on the platform.
	if resp, body := w.visit("GET", "other", "/_gnome/auth/me", "application/json", "", "", jar); resp.StatusCode != 401 {
		t.Errorf("shop's session on other's origin: %d %s", resp.StatusCode, body)
	}
	if r := w.onPlatform("GET", "/api/me", session.Value, nil, ""); r.status != 401 {
		t.Errorf("shop's session on the platform: %d %s", r.status, r.body)
	}

	// Sign-out ends the session: its token is refused from then on.
	resp, body = w.visit("POST", "shop", "/_gnome/auth/logout", "application/json", "{}", "", jar)
	if resp.StatusCode != 200 || !strings.Contains(body, "signed_out") {
		t.Errorf("sign-out: %d %s", resp.StatusCode, body)
	}
	if c := cookieOf(resp, "gnome_session"); c == nil || c.Value != "" {
		t.Errorf("sign-out left the cookie: %v", c)
	}
	eventually(t, 2*time.Second, "the ended session to be refused", func() bool {
		resp, _ := w.visit("GET", "shop", "/_gnome/auth/me", "application/json", "", "", jar)
		return resp.StatusCode == 401
	})

	// Sign-in: JSON; a wrong password and an unknown email get the same answer.
	resp, body = w.visit("POST", "shop", "/_gnome/auth/login", "application/json", creds("shopper@example.com", pw), "", nil)
	if resp.StatusCode != 200 || cookieOf(resp, "gnome_session") == nil {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	_, wrong := w.visit("POST", "shop", "/_gnome/auth/login", "application/json", creds("shopper@example.com", pw+"!"), "", nil)
	resp, unknown := w.visit("POST", "shop", "/_gnome/auth/login", "application/json", creds("nobody@example.com", pw), "", nil)
	wc, wm := errOf(wrong)
	uc, um := errOf(unknown)
	if resp.StatusCode != 401 || wc != "invalid_credentials" || wc != uc || wm != um {
		t.Errorf("wrong password %s %q, unknown email %d %s %q", wc, wm, resp.StatusCode, uc, um)
	}
	// The account is shop's alone.
	if resp, _ := w.visit("POST", "other", "/_gnome/auth/login", "application/json", creds("shopper@example.com", pw), "", nil); resp.StatusCode != 401 {
		t.Errorf("shop's account on other: %d", resp.StatusCode)
	}

	// Forms: sent on to a safe next on this origin, or shown again.
	form := func(email, password, next string) string {
		return url.Values{"email": {email}, "password": {password}, "next": {next}}.Encode()
	}
	resp, _ = w.visit("POST", "shop", "/_gnome/auth/login", formType, form("shopper@example.com", pw, "/experiments/shop/cart?x=1"), "", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/experiments/shop/cart?x=1" || cookieOf(resp, "gnome_session") == nil {
		t.Errorf("form sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", ""} {
		resp, _ = w.visit("POST", "shop", "/_gnome/auth/login", formType, form("shopper@example.com", pw, next), "", nil)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/experiments/shop/" {
			t.Errorf("form sign-in with next %q: %d %q", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, body = w.visit("POST", "shop", "/_gnome/auth/login", formType, form("shopper@example.com", "not it at all", "/experiments/shop/"), "", nil)
	if resp.StatusCode != 401 || !strings.Contains(body, "Email or password is wrong.") || cookieOf(resp, "gnome_session") != nil {
		t.Errorf("form sign-in, wrong password: %d %s", resp.StatusCode, body)
	}
	resp, _ = w.visit("POST", "shop", "/_gnome/auth/register", formType, form("second@example.com", pw, "/experiments/shop/welcome"), "", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/experiments/shop/welcome" {
		t.Errorf("form sign-up: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = w.visit("POST", "shop", "/_gnome/auth/register", formType, form("second@example.com", pw, ""), "", nil)
	if resp.StatusCode != 409 || !strings.Contains(body, "exists already") {
		t.Errorf("form sign-up, taken email: %d %s", resp.StatusCode, body)
	}
	// A sign-in form posted from another site is refused.
	req, _ := http.NewRequest("POST", testenv.ExperimentURL(w.addr, "shop", "/_gnome/auth/login"), strings.NewReader(form("shopper@example.com", pw, "")))
	req.Header.Set("Content-Type", formType)
	req.Header.Set("Origin", "http://evil.example")
	if r, err := w.http.Do(req); err != nil || r.StatusCode != 403 {
		t.Errorf("a cross-site sign-in form: %v %v", r, err)
	} else {
		r.Body.Close()
	}

	// Registration off: its routes do not exist.
	if resp, _ := w.visit("POST", "closed", "/_gnome/auth/register", "application/json", creds("a@example.com", pw), "", nil); resp.StatusCode != 404 {
		t.Errorf("sign-up where registration is off: %d", resp.StatusCode)
	}
	if resp, _ := w.visit("GET", "closed", "/_gnome/auth/register", "", "", "", nil); resp.StatusCode != 404 {
		t.Errorf("sign-up page where registration is off: %d", resp.StatusCode)
	}

	// The platform's limit of five sign-ins a minute, per experiment and client.
	ip := "192.0.2.77"
	for i := 0; i < 5; i++ {
		if resp, _ := w.visit("POST", "other", "/_gnome/auth/login", "application/json", creds("x@example.com", pw), ip, nil); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, body = w.visit("POST", "other", "/_gnome/auth/login", "application/json", creds("x@example.com", pw), ip, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the sixth attempt: %d %s", resp.StatusCode, body)
	}
	// Counted per experiment: the same client may still sign in to shop.
	if resp, _ := w.visit("POST", "shop", "/_gnome/auth/login", "application/json", creds("shopper@example.com", pw), ip, nil); resp.StatusCode != 200 {
		t.Errorf("the same client on another experiment: %d", resp.StatusCode)
	}
}

// The owner disables and deletes accounts through the platform's API; the
// account's session on the experiment's origin ends within a second.
func TestOwnerManagesExperimentAccounts(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	w.experiment("shop", "dev@example.com", "active", `{"slug":"shop","status":"active","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true}}`,
		map[string]string{"index.html": "shop page"})
	const pw = "a shopper's long passphrase"
	resp, body := w.visit("POST", "shop", "/_gnome/auth/register", "application/json", `{"email":"shopper@example.com","password":"`+pw+`"}`, "", nil)
	if resp.StatusCode != 201 {
		t.Fatalf("sign-up: %d %s", resp.StatusCode, body)
	}
	var signed struct {
		User struct{ ID string } `json:"user"`
	}
	_ = json.Unmarshal([]byte(body), &signed)
	jar := map[string]string{"gnome_session": cookieOf(resp, "gnome_session").Value}

	owner := w.developer("dev@example.com")
	stranger := w.developer("stranger@example.com")
	r := w.onPlatform("GET", "/api/experiments/shop/users", owner, nil, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"email":"shopper@example.com"`) || !strings.Contains(string(r.body), signed.User.ID) {
		t.Fatalf("the owner's list: %d %s", r.status, r.body)
	}
	w.run([]scenario{
		{name: "a stranger's list", path: "/api/experiments/shop/users", token: stranger, status: 403, code: "forbidden"},
		{name: "anonymous list", path: "/api/experiments/shop/users", status: 401, code: "unauthenticated"},
		{name: "a stranger disabling", method: "PATCH", path: "/api/experiments/shop/users/" + signed.User.ID, token: stranger, header: jsonType, body: `{"disabled":true}`, status: 403, code: "forbidden"},
		{name: "no change given", method: "PATCH", path: "/api/experiments/shop/users/" + signed.User.ID, token: owner, header: jsonType, body: `{}`, status: 422, code: "validation_failed"},
		{name: "an unknown field", method: "PATCH", path: "/api/experiments/shop/users/" + signed.User.ID, token: owner, header: jsonType, body: `{"disabled":true,"admin":true}`, status: 400, code: "invalid_json"},
		{name: "an unknown account", method: "PATCH", path: "/api/experiments/shop/users/nobody", token: owner, header: jsonType, body: `{"disabled":true}`, status: 404, code: "not_found"},
	})
	if resp, _ := w.visit("GET", "shop", "/_gnome/auth/me", "application/json", "", "", jar); resp.StatusCode != 200 {
		t.Fatalf("the session before: %d", resp.StatusCode)
	}
	if r := w.onPlatform("PATCH", "/api/experiments/shop/users/"+signed.User.ID, owner, jsonType, `{"disabled":true}`); r.status != 200 || !strings.Contains(string(r.body), `"disabled":true`) {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	eventually(t, time.Second, "the disabled account's session to end", func() bool {
		resp, _ := w.visit("GET", "shop", "/_gnome/auth/me", "application/json", "", "", jar)
		return resp.StatusCode == 401
	})
	if resp, _ := w.visit("POST", "shop", "/_gnome/auth/login", "application/json", `{"email":"shopper@example.com","password":"`+pw+`"}`, "", nil); resp.StatusCode != 401 {
		t.Errorf("a disabled account signs in: %d", resp.StatusCode)
	}
	if r := w.onPlatform("DELETE", "/api/experiments/shop/users/"+signed.User.ID, owner, nil, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := w.onPlatform("GET", "/api/experiments/shop/users", owner, nil, ""); r.status != 200 || strings.Contains(string(r.body), "shopper@") {
		t.Errorf("the list after deleting: %d %s", r.status, r.body)
	}
}

// An experiment account named like a platform user is not that user: not
// the owner, not on an allow-list, not an admin.
func TestExperimentAccountIsNoPlatformUser(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	w.admin("root@example.com")
	w.experiment("club", "dev@example.com", "active", `{"slug":"club","name":"Club","status":"active","auth_policy":{"allowed_users":["member@example.com"]},`+
		`"sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true}}`, map[string]string{"index.html": "members only"})
	for _, email := range []string{"dev@example.com", "member@example.com", "root@example.com"} {
		resp, body := w.visit("POST", "club", "/_gnome/auth/register", "application/json", `{"email":"`+email+`","password":"a long and unusual passphrase"}`, "", nil)
		if resp.StatusCode != 201 {
			t.Fatalf("sign-up as %s: %d %s", email, resp.StatusCode, body)
		}
		jar := map[string]string{"gnome_session": cookieOf(resp, "gnome_session").Value}
		resp, body = w.visit("GET", "club", "/experiments/club/", "application/json", "", "", jar)
		if resp.StatusCode != 403 || strings.Contains(body, "members only") {
			t.Errorf("the experiment account %s opened the members' page: %d %s", email, resp.StatusCode, body)
		}
	}
	// The real member, through the hand-off's token, is let in.
	if r := w.do("GET", "/experiments/club/", w.token("member@example.com"), nil, ""); r.status != 200 || string(r.body) != "members only" {
		t.Errorf("the platform's member: %d %s", r.status, r.body)
	}
}

// tamper changes the first character of a base64url ID to another one.
func tamper(id string) string {
	if id[0] == 'B' {
		return "C" + id[1:]
	}
	return "B" + id[1:]
}
