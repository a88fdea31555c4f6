package auth_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/auth"
)

const (
	rootEmail    = "root@example.com"
	rootPassword = "a-long-admin-passphrase"
)

// world is an auth service on its own bus user, and a client holding the
// edge's credentials: what a compromised edge, or any process that got
// onto the bus as one, could send.
type world struct {
	t     *testing.T
	env   *testenv.Env
	ctx   context.Context
	admin *storeView
	edge  authapi.Client
	// js is the edge's JetStream, for verifiers that watch the buckets.
	js jetstream.JetStream
}

type storeView struct{ st *store.Store }

func start(t *testing.T) *world {
	t.Helper()
	env := testenv.Start(t)
	cfg := env.Config(t, map[string]string{"ADMIN_EMAIL": rootEmail, "ADMIN_PASSWORD": rootPassword})
	d := env.Deps(t, cfg)
	s := auth.New(env.DepsAs(t, d, "auth"))
	s.Out = io.Discard
	testenv.Run(t, d, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	edge := env.DepsAs(t, d, "edge")
	return &world{t: t, env: env, ctx: ctx, admin: &storeView{d.Store}, edge: authapi.Client{T: bus.Client{NC: edge.NC}}, js: edge.JS}
}

func (w *world) login(email, password string) string {
	w.t.Helper()
	s, err := w.edge.Login(w.ctx, authapi.Credentials{Email: email, Password: password})
	if err != nil {
		w.t.Fatalf("login %s: %v", email, err)
	}
	return s.Token
}

func wantCode(t *testing.T, what string, err error, code apierr.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want %s", what, code)
		return
	}
	if got := apierr.From(err).Code; got != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// The administration endpoints act on the identity the caller's token
// proves. A message naming an admin without the admin's token, or with a
// developer's, or with a token signed by another key, changes nothing.
func TestAdministrationNeedsAnAdminsToken(t *testing.T) {
	w := start(t)
	root := w.login(rootEmail, rootPassword)
	asRoot := func(token string) authapi.Actor { return authapi.Actor{Email: rootEmail, Token: token} }

	if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: asRoot(root), Email: "dev@example.com", Password: "a developer's passphrase", Roles: []string{"developer"}}); err != nil {
		t.Fatalf("the admin creates a developer: %v", err)
	}
	dev := w.login("dev@example.com", "a developer's passphrase")
	other, err := authn.DeriveKey("another platform's secret key, 0123456789")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := authn.NewSigner(other).Mint(authn.Subject{ID: "f00d", Email: rootEmail, Roles: []string{"admin"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		actor authapi.Actor
		code  apierr.Code
	}{
		{"no token, the admin named", asRoot(""), apierr.CodeUnauthenticated},
		{"a developer's token, the admin named", asRoot(dev), apierr.CodeForbidden},
		{"garbage for a token", asRoot("not.a.token"), apierr.CodeUnauthenticated},
		{"an admin token signed with another key", asRoot(foreign), apierr.CodeUnauthenticated},
	} {
		_, err := w.edge.Users(w.ctx, tc.actor)
		wantCode(t, "users.list, "+tc.name, err, tc.code)
		_, err = w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: tc.actor, Email: "mallory@example.com", Password: "mallory's long passphrase", Roles: []string{"admin"}})
		wantCode(t, "users.create, "+tc.name, err, tc.code)
		_, err = w.edge.GrantRole(w.ctx, authapi.RoleChange{Actor: tc.actor, Email: "dev@example.com", Role: "admin"})
		wantCode(t, "roles.grant, "+tc.name, err, tc.code)
		yes := true
		_, err = w.edge.UpdateUser(w.ctx, authapi.UpdateUser{Actor: tc.actor, Email: rootEmail, Disabled: &yes})
		wantCode(t, "users.update, "+tc.name, err, tc.code)
		_, err = w.edge.RevokeRole(w.ctx, authapi.RoleChange{Actor: tc.actor, Email: rootEmail, Role: "admin"})
		wantCode(t, "roles.revoke, "+tc.name, err, tc.code)
	}

	// Nothing changed.
	list, err := w.edge.Users(w.ctx, asRoot(root))
	if err != nil {
		t.Fatalf("users.list with the admin's token: %v", err)
	}
	var emails []string
	for _, u := range list.Users {
		emails = append(emails, u.Email)
		if u.Email == "dev@example.com" && slices.Contains(u.Roles, "admin") {
			t.Error("the developer became an admin")
		}
		if u.Email == rootEmail && (u.Disabled || !slices.Contains(u.Roles, "admin")) {
			t.Errorf("the admin was changed: %+v", u)
		}
	}
	if !slices.Equal(emails, []string{"dev@example.com", rootEmail}) {
		t.Errorf("accounts: %v", emails)
	}

	// The audit log names the token's user, not the name in the message.
	if _, err := w.edge.GrantRole(w.ctx, authapi.RoleChange{Actor: authapi.Actor{Email: "someone-else@example.com", Token: root, RequestID: "audited"}, Email: "dev@example.com", Role: "user"}); err != nil {
		t.Fatalf("grant with the admin's token: %v", err)
	}
	var entry struct {
		Who string `bson:"who"`
	}
	if err := w.admin.st.Collection(store.AuditLog).FindOne(w.ctx, bson.D{{Key: "request_id", Value: "audited"}}).Decode(&entry); err != nil {
		t.Fatalf("audit entry: %v", err)
	}
	if entry.Who != rootEmail {
		t.Errorf("audit log records %q, want the token's %s", entry.Who, rootEmail)
	}
}

// A token stops working for administration as soon as it is signed out or
// its user loses the admin role.
func TestEndedTokensAreRefused(t *testing.T) {
	w := start(t)
	root := w.login(rootEmail, rootPassword)
	actor := authapi.Actor{Email: rootEmail, Token: root}
	if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: actor, Email: "second@example.com", Password: "the second admin's passphrase", Roles: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	second := w.login("second@example.com", "the second admin's passphrase")
	if _, err := w.edge.Users(w.ctx, authapi.Actor{Email: "second@example.com", Token: second}); err != nil {
		t.Fatalf("the second admin lists users: %v", err)
	}
	// The first admin takes the role away: the second's token is outdated.
	if _, err := w.edge.RevokeRole(w.ctx, authapi.RoleChange{Actor: actor, Email: "second@example.com", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, w, "the demoted admin's token", authapi.Actor{Email: "second@example.com", Token: second}, apierr.CodeTokenRevoked)

	// Signing out ends the first admin's token.
	claims := parse(t, root)
	if err := w.edge.Logout(w.ctx, authapi.Logout{TokenID: claims.ID, Until: claims.ExpiresAt.Time, UserID: claims.Subject}); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, w, "the signed-out token", actor, apierr.CodeTokenRevoked)
}

func waitRefused(t *testing.T, w *world, what string, a authapi.Actor, code apierr.Code) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := w.edge.Users(w.ctx, a)
		if err != nil && apierr.From(err).Code == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %s within 10 s", what, err, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parse reads a token's claims the way the edge has them after verifying.
func parse(t *testing.T, token string) *authn.Claims {
	t.Helper()
	v := authn.NewVerifier()
	key, err := authn.DeriveKey("test-secret-key-0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := authn.NewSigner(key).Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	c, err := v.Verify(token, time.Now())
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return c
}
