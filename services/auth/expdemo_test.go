package auth_test

import (
	"context"
	"io"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/auth"
)

const demoManifest = `{"slug":"tickets","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_demo_access":true,
 "demo_users":[{"email":"Staff@Example.com","password":"demo","role":"staff","extra_data":{"desk":3}},
 {"email":"guest@example.com"},{"email":"later@example.com","password":"x","auto_create":false}]}}`

// Demo accounts are made once, from the stored manifest, as accounts of
// kind demo; demo access signs them in without a password and opens no
// other account.
func TestDemoAccounts(t *testing.T) {
	w := start(t)
	w.experimentWith("tickets", "dev@example.com", demoManifest)
	w.experimentWith("nodemo", "dev@example.com", `{"slug":"nodemo","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true,
 "demo_users":[{"email":"d@example.com","password":"demo"}]}}`)
	root := authapi.Actor{Email: rootEmail, Token: w.login(rootEmail, rootPassword)}

	// The owner's list shows them as soon as the version is stored.
	list, err := w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: root, Slug: "tickets"})
	if err != nil || len(list.Users) != 2 {
		t.Fatalf("the demo accounts: %+v %v", list, err)
	}
	for _, u := range list.Users {
		if u.Kind != "demo" || (u.Email != "staff@example.com" && u.Email != "guest@example.com") {
			t.Errorf("a demo account: %+v", u)
		}
	}

	// A demo password signs in, as a demo token with the demo user's role.
	sess, err := w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "tickets", Email: "staff@example.com", Password: "demo"})
	if err != nil {
		t.Fatalf("demo password sign-in: %v", err)
	}
	c := parseExp(t, sess.Token, "tickets")
	if c.Kind != authn.KindDemo || len(c.Roles) != 1 || c.Roles[0] != "staff" || c.Subject != sess.User.ID {
		t.Fatalf("demo claims: %+v", c)
	}
	// No password: demo access alone. An empty password is refused.
	_, err = w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "tickets", Email: "guest@example.com", Password: ""})
	wantCode(t, "a demo account without a password", err, apierr.CodeInvalidCredentials)

	// Demo access: the first demo user by default, or the one named.
	first, err := w.edge.ExpDemo(w.ctx, authapi.ExpDemo{Slug: "tickets"})
	if err != nil || first.User.ID != sess.User.ID {
		t.Fatalf("demo access: %+v %v", first, err)
	}
	guest, err := w.edge.ExpDemo(w.ctx, authapi.ExpDemo{Slug: "tickets", Email: " GUEST@example.com"})
	if err != nil || guest.User.Email != "guest@example.com" || parseExp(t, guest.Token, "tickets").Kind != authn.KindDemo {
		t.Fatalf("demo access by email: %+v %v", guest, err)
	}
	for what, r := range map[string]authapi.ExpDemo{
		"an unknown demo email":          {Slug: "tickets", Email: "root@example.com"},
		"a demo user not auto-created":   {Slug: "tickets", Email: "later@example.com"},
		"not an email":                   {Slug: "tickets", Email: "<script>"},
		"demo access not allowed":        {Slug: "nodemo"},
		"demo access not allowed, named": {Slug: "nodemo", Email: "d@example.com"},
		"no experiment":                  {Slug: "nothing"},
	} {
		_, err := w.edge.ExpDemo(w.ctx, r)
		wantCode(t, what, err, apierr.CodeNotFound)
	}
	_, err = w.edge.ExpDemo(w.ctx, authapi.ExpDemo{Slug: "../x"})
	wantCode(t, "a bad slug", err, apierr.CodeValidationFailed)

	// A sign-up account is never a demo account, even under a demo email
	// of a later version: demo access does not open it.
	if _, err := w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "nodemo", Email: "taken@example.com", Password: "a shopper's long passphrase"}); err != nil {
		t.Fatal(err)
	}
	// A new version (as upload or PATCH store it) adds a demo user and
	// changes a password: the new one is made, nothing is duplicated,
	// and the existing account keeps its password.
	if _, err := w.admin.st.Collection(store.ExperimentsConfig).UpdateOne(w.ctx, bson.D{{Key: "_id", Value: "nodemo"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 2}, {Key: "manifest", Value: `{"slug":"nodemo","sub_auth":{"enabled":true,
 "strategy":"experiment_users","allow_demo_access":true,"demo_users":[{"email":"d@example.com","password":"changed"},
 {"email":"taken@example.com"},{"email":"new@example.com"}]}}`}}}}); err != nil {
		t.Fatal(err)
	}
	l2, err := w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: root, Slug: "nodemo"})
	if err != nil || len(l2.Users) != 3 {
		t.Fatalf("accounts after the new version: %+v %v", l2, err)
	}
	if _, err := w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "nodemo", Email: "d@example.com", Password: "demo"}); err != nil {
		t.Fatalf("the kept password: %v", err)
	}
	_, err = w.edge.ExpDemo(w.ctx, authapi.ExpDemo{Slug: "nodemo", Email: "taken@example.com"})
	wantCode(t, "demo access to a sign-up account", err, apierr.CodeNotFound)
	if s, err := w.edge.ExpDemo(w.ctx, authapi.ExpDemo{Slug: "nodemo", Email: "new@example.com"}); err != nil || s.User.Email != "new@example.com" {
		t.Fatalf("the new demo user: %+v %v", s, err)
	}
}

// ENABLE_DEMO's account exists after start, with the role demo alone; a
// second start with another password sets it, and never makes a second
// account.
func TestPlatformDemoAccount(t *testing.T) {
	env := testenv.Start(t)
	run := func(password string) authapi.Client {
		cfg := env.Config(t, map[string]string{"ADMIN_EMAIL": rootEmail, "ADMIN_PASSWORD": rootPassword, "ENABLE_DEMO": "Demo@Example.com:" + password})
		d := env.Deps(t, cfg)
		s := auth.New(env.DepsAs(t, d, "auth"))
		s.Out = io.Discard
		testenv.Run(t, d, s)
		return authapi.Client{T: bus.Client{NC: env.DepsAs(t, d, "edge").NC}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	edge := run("demo")
	sess, err := edge.Login(ctx, authapi.Credentials{Email: "demo@example.com", Password: "demo"})
	if err != nil || len(sess.User.Roles) != 1 || sess.User.Roles[0] != authz.RoleDemo {
		t.Fatalf("the demo account: %+v %v", sess.User, err)
	}
	root, err := edge.Login(ctx, authapi.Credentials{Email: rootEmail, Password: rootPassword})
	if err != nil {
		t.Fatal(err)
	}
	// The role demo is granted and revoked as any other; a made-up one is not.
	if _, err := edge.GrantRole(ctx, authapi.RoleChange{Actor: authapi.Actor{Email: rootEmail, Token: root.Token}, Email: "demo@example.com", Role: "demigod"}); apierr.From(err).Code != apierr.CodeValidationFailed {
		t.Errorf("an unknown role: %v", err)
	}

	edge = run("another demo password")
	if _, err := edge.Login(ctx, authapi.Credentials{Email: "demo@example.com", Password: "another demo password"}); err != nil {
		t.Fatalf("the demo password after a restart with another: %v", err)
	}
	_, err = edge.Login(ctx, authapi.Credentials{Email: "demo@example.com", Password: "demo"})
	wantCode(t, "the old demo password", err, apierr.CodeInvalidCredentials)
	users, err := edge.Users(ctx, authapi.Actor{Email: rootEmail, Token: root.Token})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range users.Users {
		if u.Email == "demo@example.com" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d demo accounts, want 1", n)
	}
}

// A platform user handed off to a hybrid experiment is linked to one
// account of it: the token carries the account's ID, the same every
// time; the account has no password; a disabled one refuses the hand-off;
// a sign-up account of the same email is never taken over.
func TestHybridLinking(t *testing.T) {
	w := start(t)
	root := authapi.Actor{Email: rootEmail, Token: w.login(rootEmail, rootPassword)}
	for _, u := range []string{"ada@example.com", "eve@example.com"} {
		if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: root, Email: u, Password: "a platform passphrase", Roles: []string{"user"}}); err != nil {
			t.Fatal(err)
		}
	}
	w.experimentWith("lab", "dev@example.com", `{"slug":"lab","sub_auth":{"enabled":true,"strategy":"hybrid","allow_registration":true}}`)
	w.experimentWith("nolink", "dev@example.com", `{"slug":"nolink","sub_auth":{"enabled":true,"strategy":"hybrid","link_platform_users":false}}`)
	ada := w.login("ada@example.com", "a platform passphrase")
	hand := func(token, slug string) (*authn.Claims, error) {
		s, err := w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: token, Slug: slug})
		if err != nil {
			return nil, err
		}
		return parseExp(t, s.Token, slug), nil
	}
	c1, err := hand(ada, "lab")
	if err != nil || c1.Linked == "" || c1.Linked == c1.Subject || c1.Kind != "" {
		t.Fatalf("linked hand-off: %+v %v", c1, err)
	}
	if c2, err := hand(ada, "lab"); err != nil || c2.Linked != c1.Linked {
		t.Fatalf("the second hand-off: %+v %v", c2, err)
	}
	if c, err := hand(ada, "nolink"); err != nil || c.Linked != "" {
		t.Errorf("link_platform_users false: %+v %v", c, err)
	}
	_, err = w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "lab", Email: "ada@example.com", Password: "a platform passphrase"})
	wantCode(t, "password sign-in to a linked account", err, apierr.CodeInvalidCredentials)

	// A squatter's sign-up under eve's email: eve is not linked to it.
	if _, err := w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "lab", Email: "eve@example.com", Password: "the squatter's passphrase"}); err != nil {
		t.Fatal(err)
	}
	if c, err := hand(w.login("eve@example.com", "a platform passphrase"), "lab"); err != nil || c.Linked != "" {
		t.Errorf("eve beside a squatted email: %+v %v", c, err)
	}

	// Disabled by the owner's side: ada's next hand-off is refused.
	yes := true
	if _, err := w.edge.ExpUserUpdate(w.ctx, authapi.ExpUserUpdate{Actor: root, Slug: "lab", ID: c1.Linked, Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	_, err = hand(ada, "lab")
	wantCode(t, "a hand-off to a disabled linked account", err, apierr.CodeForbidden)
}
