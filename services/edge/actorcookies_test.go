package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// cookieActor answers slug's actor calls in the actor's stead: it hands
// each request it gets to the test and answers with headers.
func (w *world) cookieActor(slug string, headers map[string][]string) <-chan actorapi.Request {
	w.t.Helper()
	got := make(chan actorapi.Request, 16)
	sub, err := w.d.NC.QueueSubscribe(actorapi.Subject(slug), actorapi.QueueGroup, func(m *nats.Msg) {
		var req actorapi.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			w.t.Errorf("the edge sent a malformed envelope: %v", err)
			return
		}
		got <- req
		data, _ := json.Marshal(actorapi.Response{Status: 200, Headers: headers, Body: []byte("ok")})
		_ = m.Respond(data)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := w.d.NC.Flush(); err != nil {
		w.t.Fatal(err)
	}
	return got
}

func received(t *testing.T, got <-chan actorapi.Request) actorapi.Request {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the actor got no request")
		return actorapi.Request{}
	}
}

// setCookies are the Set-Cookie lines of a reply, by cookie name.
func setCookies(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range h.Values("Set-Cookie") {
		name, _, _ := strings.Cut(line, "=")
		if _, dup := out[name]; dup {
			t.Errorf("cookie %s set twice", name)
		}
		out[name] = line
	}
	return out
}

// An actor reads the visitor's cookies and sets its own on its origin, but
// never sees nor sets the platform's, nor widens a cookie past its host,
// nor sets more or larger cookies than the limits; what it sets is
// HttpOnly and SameSite=Lax unless it says otherwise.
func TestActorCookies(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("jar", "dev@example.com", "active", `{"slug":"jar","name":"Jar","status":"active","actor":{"module":"actor.wasm"},
		"sub_auth":{"enabled":true,"strategy":"experiment_users","session_cookie_name":"jar_session"}}`,
		map[string]string{"index.html": "jar", "actor.wasm": "\x00asm"})
	hostile := []string{
		"gnome_session=stolen",
		"__Host-gnome_session=stolen; Path=/; Secure",
		"GNOME_Participant=forged",
		"__Secure-gnome_x=1; Secure",
		"jar_session=forged", // the session cookie its sub_auth names
		"wide=1; Domain=localhost",
		"wide2=1; Path=/; Domain=.jar.localhost",
		"big=" + strings.Repeat("x", 4094), // one byte over
		"bad name=1",
		"semi;colon=1",
		"inj=a\r\nSet-Cookie: gnome_session=evil",
		"nul=a\x00b",
		"=nameless",
		"",
	}
	good := []string{
		"theme=light",
		"lang=de; Path=/experiments/jar/; SameSite=Strict; Max-Age=60; Unknown=attr",
		"widget=1; SameSite=None",
		"visible=1; HttpOnly",
		"fits=" + strings.Repeat("y", 4096-len("fits")),
	}
	var many []string
	for i := range 25 {
		many = append(many, fmt.Sprintf("c%d=%d", i, i))
	}
	got := w.cookieActor("jar", map[string][]string{
		"Set-Cookie":           append(append(append([]string{}, hostile[:6]...), good...), append(hostile[6:], many...)...),
		"Gnome-Script-Cookies": {"visible, c0"},
		"Content-Type":         {"text/plain"},
	})

	user := w.token("ada@example.com", "user")
	r := w.do("GET", "/experiments/jar/api/cookies", user, map[string]string{
		"Cookie": "gnome_session=secret; theme=dark; __Host-gnome_session=secret2; gnome_participant=p1; GNOME_X=1; " +
			"__Secure-gnome_y=2; jar_session=s; lang=fr",
	}, "")
	if r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("call: %d %s", r.status, r.body)
	}
	req := received(t, got)
	if c := req.Headers["Cookie"]; len(c) != 1 || c[0] != "theme=dark; lang=fr" {
		t.Errorf("the actor saw the cookies %q, want only theme and lang", c)
	}
	if req.Caller.Kind != actorapi.CallerUser || req.Caller.ID != "u-ada@example.com" || req.Caller.Email != "ada@example.com" || req.Caller.Anonymous {
		t.Errorf("caller %+v", req.Caller)
	}
	if r.header.Get("Gnome-Script-Cookies") != "" {
		t.Error("the opt-out header reached the browser")
	}

	set := setCookies(t, r.header)
	for _, h := range hostile {
		name, _, _ := strings.Cut(h, "=")
		if line, ok := set[name]; ok && name != "" {
			t.Errorf("hostile cookie %q came through as %q", h, line)
		}
	}
	for name, line := range set {
		if strings.Contains(strings.ToLower(line), "domain") || strings.ContainsAny(line, "\r\n\x00") || strings.Contains(strings.ToLower(line), "gnome_") {
			t.Errorf("cookie %s: %q", name, line)
		}
	}
	want := map[string][]string{
		"theme":   {"Path=/", "HttpOnly", "SameSite=Lax"},
		"lang":    {"Path=/experiments/jar/", "Max-Age=60", "HttpOnly", "SameSite=Strict"},
		"widget":  {"Path=/", "HttpOnly", "SameSite=Lax"}, // None needs Secure, which plain HTTP has not
		"visible": {"Path=/", "SameSite=Lax"},
		"fits":    {"HttpOnly"},
		"c0":      {"SameSite=Lax"},
	}
	for name, parts := range want {
		line, ok := set[name]
		if !ok {
			t.Errorf("good cookie %s was dropped", name)
			continue
		}
		for _, p := range parts {
			if !strings.Contains(line, "; "+p) {
				t.Errorf("cookie %s: %q lacks %s", name, line, p)
			}
		}
		if strings.Contains(line, "Unknown") || strings.Contains(line, "Secure") {
			t.Errorf("cookie %s: %q", name, line)
		}
	}
	for _, name := range []string{"visible", "c0"} {
		if strings.Contains(set[name], "HttpOnly") {
			t.Errorf("cookie %s was opted out of HttpOnly: %q", name, set[name])
		}
	}
	// 5 good ones, then c0... up to 20 in all.
	if len(set) != 20 || set["c14"] == "" || set["c15"] != "" {
		t.Errorf("%d cookies set, want the first 20 valid ones: %v", len(set), set)
	}

	// An anonymous visitor is a caller of kind anonymous with no ID.
	if r := w.do("GET", "/experiments/jar/api/cookies", "", nil, ""); r.status != 200 {
		t.Fatalf("anonymous call: %d %s", r.status, r.body)
	}
	if c := received(t, got).Caller; c.Kind != actorapi.CallerAnonymous || c.ID != "" || !c.Anonymous || c.Email != "" {
		t.Errorf("anonymous caller %+v", c)
	}
}

// In production every cookie an actor sets is Secure, and SameSite=None
// (which needs Secure) is kept.
func TestActorCookiesInProduction(t *testing.T) {
	w := startWorld(t, map[string]string{
		"G_NOME_ENV": "production", "SECRET_KEY": strings.Repeat("p", 40), "ADMIN_PASSWORD": "a-production-admin-passphrase",
		"PUBLIC_URL": "https://gnome.example", "EXPERIMENT_ORIGIN": "https://{slug}.labs.example",
	})
	w.experiment("jar", "dev@example.com", "active", `{"slug":"jar","name":"Jar","status":"active","actor":{"module":"actor.wasm"}}`,
		map[string]string{"index.html": "jar", "actor.wasm": "\x00asm"})
	got := w.cookieActor("jar", map[string][]string{"Set-Cookie": {"a=1", "b=2; SameSite=None", "__Host-c=3; Path=/x", "__Host-gnome_session=x"}})
	r := w.send("GET", w.base+"/experiments/jar/api/x", w.token("ada@example.com", "user"),
		map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jar.labs.example", "Cookie": "__Host-gnome_session=s; a=0"}, "")
	if r.status != 200 {
		t.Fatalf("call: %d %s", r.status, r.body)
	}
	if c := received(t, got).Headers["Cookie"]; len(c) != 1 || c[0] != "a=0" {
		t.Errorf("the actor saw %q", c)
	}
	set := setCookies(t, r.header)
	if len(set) != 3 {
		t.Errorf("cookies %v", set)
	}
	for name, line := range set {
		if !strings.Contains(line, "; Secure") || !strings.Contains(line, "; HttpOnly") {
			t.Errorf("cookie %s in production: %q", name, line)
		}
	}
	if !strings.Contains(set["b"], "SameSite=None") || !strings.Contains(set["__Host-c"], "Path=/;") && !strings.HasSuffix(set["__Host-c"], "Path=/") {
		t.Errorf("cookies %v", set)
	}
}

// An anonymous participant (sub_auth anonymous_session) reaches the actor
// as a caller of kind participant with a stable ID; the participant's
// cookie, which carries it, is the platform's: the actor neither sees it
// nor can replace it.
func TestActorSeesParticipants(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("survey", "dev@example.com", "active", `{"slug":"survey","name":"Survey","status":"active","actor":{"module":"actor.wasm"},
		"sub_auth":{"enabled":true,"strategy":"anonymous_session"}}`, map[string]string{"index.html": "survey", "actor.wasm": "\x00asm"})
	got := w.cookieActor("survey", map[string][]string{"Set-Cookie": {"gnome_participant=forged; Path=/", "answered=1"}})

	r := w.do("GET", "/experiments/survey/api/q", "", nil, "")
	if r.status != 200 {
		t.Fatalf("call: %d %s", r.status, r.body)
	}
	first := received(t, got).Caller
	if first.Kind != actorapi.CallerParticipant || first.ID == "" || !first.Anonymous || first.Email != "" || len(first.Roles) != 0 {
		t.Fatalf("participant caller %+v", first)
	}
	var cookie string
	for _, line := range r.header.Values("Set-Cookie") {
		if strings.Contains(line, "forged") {
			t.Errorf("the actor replaced the participant's cookie: %q", line)
		}
		if v, ok := strings.CutPrefix(line, "gnome_participant="); ok {
			cookie, _, _ = strings.Cut(v, ";")
		}
	}
	if cookie == "" || setCookies(t, r.header)["answered"] == "" {
		t.Fatalf("cookies set: %q", r.header.Values("Set-Cookie"))
	}

	r = w.do("GET", "/experiments/survey/api/q", "", map[string]string{"Cookie": "gnome_participant=" + cookie + "; answered=1"}, "")
	if r.status != 200 {
		t.Fatalf("second call: %d %s", r.status, r.body)
	}
	again := received(t, got)
	if again.Caller.Kind != actorapi.CallerParticipant || again.Caller.ID != first.ID {
		t.Errorf("the participant came back as %+v, was %s", again.Caller, first.ID)
	}
	if c := again.Headers["Cookie"]; len(c) != 1 || c[0] != "answered=1" {
		t.Errorf("the actor saw the cookies %q", c)
	}
}
