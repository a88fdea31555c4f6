package edge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/edge"
)

// tokenWorld is an edge with the real auth service, an admin and a
// developer signed in.
type tokenWorld struct {
	*world
	auth       authapi.Client
	root, dev  string // session tokens
	eve        string
	rootActor  authapi.Actor
	secondBase string
}

func startTokenWorld(t *testing.T) *tokenWorld {
	w := startWorld(t, map[string]string{"ADMIN_EMAIL": "root@example.com", "ADMIN_PASSWORD": "a-long-admin-passphrase"})
	w.withAuth()
	tw := &tokenWorld{world: w, auth: authapi.Client{T: bus.Client{NC: w.d.NC}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, 10*time.Second, "the admin to sign in", func() bool {
		s, err := tw.auth.Login(ctx, authapi.Credentials{Email: "root@example.com", Password: "a-long-admin-passphrase"})
		tw.root = s.Token
		return err == nil
	})
	tw.rootActor = authapi.Actor{Email: "root@example.com", Token: tw.root}
	for email, roles := range map[string][]string{"dev@example.com": {"developer", "user"}, "eve@example.com": {"user"}} {
		if _, err := tw.auth.CreateUser(ctx, authapi.CreateUser{Actor: tw.rootActor, Email: email, Password: "a long passphrase", Roles: roles}); err != nil {
			t.Fatal(err)
		}
	}
	login := func(email string) string {
		s, err := tw.auth.Login(ctx, authapi.Credentials{Email: email, Password: "a long passphrase"})
		if err != nil {
			t.Fatal(err)
		}
		return s.Token
	}
	tw.dev, tw.eve = login("dev@example.com"), login("eve@example.com")
	return tw
}

// create makes a personal token through the API.
func (w *tokenWorld) create(session, body string) authapi.TokenCreated {
	w.t.Helper()
	r := w.do("POST", "/api/tokens", session, jsonType, body)
	if r.status != http.StatusCreated {
		w.t.Fatalf("create token %s: %d %s", body, r.status, r.body)
	}
	var out authapi.TokenCreated
	if err := json.Unmarshal(r.body, &out); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *tokenWorld) want(what string, r reply, status int, code string) {
	w.t.Helper()
	if r.status != status || r.code() != code {
		w.t.Errorf("%s: %d %s, want %d %q", what, r.status, r.body, status, code)
	}
}

// refusedWithin waits for token to be refused as revoked: the deny-list
// reaches the edge's watcher asynchronously. The bound is generous, as a
// shared CI machine may stall; how fast revocation actually travels ("within
// a second") is measured by make bench (bench_tokens.go), not timed here.
func (w *tokenWorld) refusedWithin(what, token string) {
	w.t.Helper()
	eventually(w.t, 15*time.Second, what+" to be refused", func() bool {
		r := w.do("GET", "/api/me", token, nil, "")
		return r.status == 401 && r.code() == "token_revoked"
	})
}

func TestTokensCreateListUseRevoke(t *testing.T) {
	w := startTokenWorld(t)
	ci := w.create(w.dev, `{"name":"ci","roles":["user"],"expires_in_days":30}`)
	if !strings.HasPrefix(ci.Token, authn.PersonalPrefix) || ci.ID == "" || ci.Name != "ci" || ci.ExpiresAt == nil {
		t.Fatalf("created: %+v", ci)
	}
	full := w.create(w.dev, `{"name":"laptop"}`)

	// Listed without secrets.
	r := w.do("GET", "/api/tokens", w.dev, nil, "")
	w.want("list", r, 200, "")
	if strings.Contains(string(r.body), ci.Token[len(authn.PersonalPrefix)+33:]) || !strings.Contains(string(r.body), ci.ID) {
		t.Errorf("list shows a secret or misses a token: %s", r.body)
	}

	// Used as a Bearer token, with its roles.
	r = w.do("GET", "/api/me", ci.Token, nil, "")
	w.want("/api/me with the token", r, 200, "")
	if !strings.Contains(string(r.body), "dev@example.com") {
		t.Errorf("/api/me: %s", r.body)
	}
	w.want("an admin route with a developer's token", w.do("GET", "/admin/api/users", full.Token, nil, ""), 403, "forbidden")
	r = w.do("GET", "/api/tokens", w.dev, nil, "")
	if !strings.Contains(string(r.body), `"last_used_at":"`) {
		t.Errorf("the use is not listed: %s", r.body)
	}
	// A state-changing request with a token needs no CSRF token.
	viaToken := w.create(ci.Token, `{"name":"made by a token"}`)
	if len(viaToken.Roles) != 1 || viaToken.Roles[0] != "user" {
		t.Errorf("a token's token carries %v, want the creating token's [user]", viaToken.Roles)
	}

	// An admin's tokens: all roles, or fewer.
	rootAll := w.create(w.root, `{"name":"admin"}`)
	rootUser := w.create(w.root, `{"name":"no roles","roles":[]}`)
	w.want("an admin route with the admin's token", w.do("GET", "/admin/api/users", rootAll.Token, nil, ""), 200, "")
	w.want("the admin's role-less token on /api/me", w.do("GET", "/api/me", rootUser.Token, nil, ""), 200, "")
	w.want("an admin route with the admin's role-less token", w.do("GET", "/admin/api/users", rootUser.Token, nil, ""), 403, "forbidden")
	w.want("an admin's role-less token lists another's tokens", w.do("GET", "/admin/api/users/dev@example.com/tokens", rootUser.Token, nil, ""), 403, "forbidden")

	// Roles and fields refused.
	for name, body := range map[string]string{
		"a role not held":                        `{"name":"x","roles":["admin"]}`,
		"an unknown role":                        `{"name":"x","roles":["root"]}`,
		"no name":                                `{"roles":["user"]}`,
		"a long name":                            `{"name":"` + strings.Repeat("n", 101) + `"}`,
		"3651 days":                              `{"name":"x","expires_in_days":3651}`,
		"negative days":                          `{"name":"x","expires_in_days":-1}`,
		"a user-only token asking for developer": `{"name":"x","roles":["developer"]}`,
	} {
		session := w.dev
		if name == "a user-only token asking for developer" {
			session = ci.Token
		}
		w.want(name, w.do("POST", "/api/tokens", session, jsonType, body), 422, "validation_failed")
	}
	w.want("an unknown field", w.do("POST", "/api/tokens", w.dev, jsonType, `{"name":"x","secret":"mine"}`), 400, "invalid_json")
	w.want("anonymous", w.do("POST", "/api/tokens", "", jsonType, `{"name":"x"}`), 401, "unauthenticated")

	// Revoked by the owner; another's ID is not found, but to an admin.
	w.want("eve revokes dev's token", w.do("DELETE", "/api/tokens/"+full.ID, w.eve, nil, ""), 404, "not_found")
	w.want("eve lists dev's tokens", w.do("GET", "/admin/api/users/dev@example.com/tokens", w.eve, nil, ""), 403, "forbidden")
	w.want("the admin lists dev's tokens", w.do("GET", "/admin/api/users/dev@example.com/tokens", w.root, nil, ""), 200, "")
	w.want("dev revokes", w.do("DELETE", "/api/tokens/"+ci.ID, w.dev, nil, ""), 204, "")
	w.refusedWithin("the revoked token", ci.Token)
	w.want("revoked again", w.do("DELETE", "/api/tokens/"+ci.ID, w.dev, nil, ""), 404, "not_found")
	w.want("the admin revokes under eve's name", w.do("DELETE", "/admin/api/users/eve@example.com/tokens/"+full.ID, w.root, nil, ""), 404, "not_found")
	w.want("the admin revokes dev's", w.do("DELETE", "/admin/api/users/dev@example.com/tokens/"+full.ID, w.root, nil, ""), 204, "")
	w.refusedWithin("the admin-revoked token", full.Token)
}

// The cookie path keeps its CSRF rules, and a personal token is no cookie.
func TestTokensHostileInputs(t *testing.T) {
	w := startTokenWorld(t)
	tok := w.create(w.dev, `{"name":"ci"}`)
	cookie := func(v string, extra map[string]string) map[string]string {
		h := map[string]string{"Cookie": "token=" + v, "Content-Type": "application/json"}
		for k, x := range extra {
			h[k] = x
		}
		return h
	}
	w.want("create from another site with the session cookie", w.do("POST", "/api/tokens", "", cookie(w.dev, map[string]string{"Sec-Fetch-Site": "cross-site"}), `{"name":"x"}`), 403, "csrf_rejected")
	w.want("create from another origin with the session cookie", w.do("POST", "/api/tokens", "", cookie(w.dev, map[string]string{"Origin": "http://evil.example"}), `{"name":"x"}`), 403, "csrf_rejected")
	w.want("revoke from another site with the session cookie", w.do("DELETE", "/api/tokens/"+tok.ID, "", cookie(w.dev, map[string]string{"Sec-Fetch-Site": "cross-site"}), ""), 403, "csrf_rejected")
	w.want("create with the session cookie, same origin", w.do("POST", "/api/tokens", "", cookie(w.dev, map[string]string{"Sec-Fetch-Site": "same-origin"}), `{"name":"x"}`), 201, "")
	w.want("the personal token as the cookie", w.do("GET", "/api/me", "", cookie(tok.Token, nil), ""), 401, "unauthenticated")

	id, secret, _ := authn.ParsePersonal(tok.Token)
	flipped := []byte(secret)
	flipped[len(flipped)-2] ^= 2
	for name, bearer := range map[string]string{
		"a wrong secret":      authn.PersonalPrefix + id + "_" + string(flipped),
		"an unknown id":       authn.PersonalPrefix + strings.Repeat("a", 32) + "_" + secret,
		"the prefix alone":    authn.PersonalPrefix,
		"the prefix on a JWT": authn.PersonalPrefix + w.dev,
		"an operator for id":  authn.PersonalPrefix + `{"$gt":""}_` + secret,
		"3000 bytes":          authn.PersonalPrefix + id + "_" + strings.Repeat("x", 3000),
	} {
		w.want(name, w.do("GET", "/api/me", bearer, nil, ""), 401, "unauthenticated")
	}
	huge := w.do("GET", "/api/me", authn.PersonalPrefix+strings.Repeat("y", 64<<10), nil, "")
	if (huge.status != 400 && huge.status != 401 && huge.status != 431) || huge.code() == "" {
		t.Errorf("a 64 KiB token: %d %s, want a refusal in the error shape", huge.status, huge.body)
	}
	w.want("the real token still works", w.do("GET", "/api/me", tok.Token, nil, ""), 200, "")
}

// A token revoked through one edge is refused by another, although that
// edge had it cached; a disabled account's and an expired
// token stop too.
func TestTokensRevokedEverywhere(t *testing.T) {
	w := startTokenWorld(t)
	ed := w.env.Deps(t, w.cfg)
	second := edge.New(ed)
	testenv.Run(t, ed, second)
	on2 := func(token string) reply { return w.send("GET", "http://"+second.Addr+"/api/me", token, nil, "") }

	tok := w.create(w.dev, `{"name":"ci"}`)
	other := w.create(w.dev, `{"name":"other"}`)
	eventually(t, 10*time.Second, "the second edge to accept the token", func() bool { return on2(tok.Token).status == 200 })
	w.want("second edge, other token", on2(other.Token), 200, "")

	// Once cached, a token costs no round trip to the auth service.
	exchanges := make(chan struct{}, 100)
	sub, err := w.d.NC.Subscribe(authapi.EndpointTokensExchange.Subject(), func(*nats.Msg) { exchanges <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = w.d.NC.Flush()
	for i := 0; i < 5; i++ {
		w.want("a cached token", on2(tok.Token), 200, "")
	}
	_ = w.d.NC.Flush() // the exchanges, had there been any, are delivered before the flush answers
	if n := len(exchanges); n != 0 {
		t.Errorf("5 requests with a cached token asked the auth service %d times", n)
	}

	w.want("revoke on the first edge", w.do("DELETE", "/api/tokens/"+tok.ID, w.dev, nil, ""), 204, "")
	revokedAt := time.Now()
	// A condition with a generous bound: the propagation time is a figure
	// of make bench (revocation p50/p99 across two edges), not a test.
	eventually(t, 15*time.Second, "the second edge to refuse the revoked token", func() bool {
		r := on2(tok.Token)
		return r.status == 401 && r.code() == "token_revoked"
	})
	t.Logf("refused by the second edge after %v", time.Since(revokedAt))
	w.want("the other token on the second edge", on2(other.Token), 200, "")

	// A disabled account's tokens stop on every edge.
	w.want("disable dev", w.do("PATCH", "/admin/api/users/dev@example.com", w.root, jsonType, `{"disabled":true}`), 200, "")
	eventually(t, 15*time.Second, "the disabled user's token to be refused", func() bool {
		return on2(other.Token).status == 401 && w.do("GET", "/api/me", other.Token, nil, "").status == 401
	})

	// Expiry: the access token never outlives the personal token.
	soon := w.create(w.eve, `{"name":"short","expires_in_days":1}`)
	if _, err := w.d.Store.Collection("api_tokens").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: soon.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: time.Now().Add(2 * time.Second)}}}}); err != nil {
		t.Fatal(err)
	}
	w.want("before expiry", w.do("GET", "/api/me", soon.Token, nil, ""), 200, "")
	eventually(t, 10*time.Second, "the expired token to be refused", func() bool {
		r := w.do("GET", "/api/me", soon.Token, nil, "")
		return r.status == 401 && r.code() == "unauthenticated" && strings.Contains(string(r.body), "expired")
	})
}
