package auth_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
)

// experimentWith stores an experiment record as the upload service would.
func (w *world) experimentWith(slug, owner, manifest string) {
	w.t.Helper()
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: owner, Status: "active",
		Version: 1, Manifest: manifest, CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := w.admin.st.Collection(store.ExperimentsConfig).InsertOne(w.ctx, cfg); err != nil {
		w.t.Fatal(err)
	}
}

// An experiment's accounts are its own: sign-up where allowed, sign-in
// with the platform's answers to bad credentials, tokens good on that
// experiment's origin alone, and nothing of them on the platform.
func TestExperimentAccounts(t *testing.T) {
	w := start(t)
	w.experimentWith("shop", "dev@example.com", `{"slug":"shop","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true,"session_ttl_seconds":3600}}`)
	w.experimentWith("closed", "dev@example.com", `{"slug":"closed","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":false}}`)
	w.experimentWith("plain", "dev@example.com", `{"slug":"plain"}`)
	const pw = "a shopper's long passphrase"

	sess, err := w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: " Shopper@Example.com ", Password: pw})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	c := parseExp(t, sess.Token, "shop")
	if c.Kind != authn.KindExperimentUser || c.Email != "shopper@example.com" || c.Subject != sess.User.ID ||
		len(c.Audience) != 1 || c.Audience[0] != authn.ExperimentAudience("shop") {
		t.Fatalf("claims: %+v", c)
	}
	if d := c.ExpiresAt.Sub(c.IssuedAt.Time); d != time.Hour {
		t.Errorf("session lasts %v, want the manifest's hour", d)
	}
	_, err = w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "shopper@example.com", Password: pw})
	wantCode(t, "the same email again", err, apierr.CodeConflict)
	_, err = w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "weak@example.com", Password: "password"})
	wantCode(t, "a weak password", err, apierr.CodeValidationFailed)
	_, err = w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "closed", Email: "a@example.com", Password: pw})
	wantCode(t, "registration off", err, apierr.CodeNotFound)
	_, err = w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "plain", Email: "a@example.com", Password: pw})
	wantCode(t, "no sub_auth", err, apierr.CodeNotFound)
	_, err = w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "../x", Email: "a@example.com", Password: pw})
	wantCode(t, "a bad slug", err, apierr.CodeValidationFailed)

	if _, err := w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "SHOPPER@example.com", Password: pw}); err != nil {
		t.Fatalf("login: %v", err)
	}
	for what, cr := range map[string]authapi.ExpCredentials{
		"wrong password":           {Slug: "shop", Email: "shopper@example.com", Password: pw + "x"},
		"unknown email":            {Slug: "shop", Email: "nobody@example.com", Password: pw},
		"another experiment's one": {Slug: "closed", Email: "shopper@example.com", Password: pw},
	} {
		_, err := w.edge.ExpLogin(w.ctx, cr)
		wantCode(t, what, err, apierr.CodeInvalidCredentials)
	}
	// The platform knows nothing of the account.
	_, err = w.edge.Login(w.ctx, authapi.Credentials{Email: "shopper@example.com", Password: pw})
	wantCode(t, "platform sign-in with an experiment account", err, apierr.CodeInvalidCredentials)
	root := w.login(rootEmail, rootPassword)
	users, err := w.edge.Users(w.ctx, authapi.Actor{Email: rootEmail, Token: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Users {
		if u.Email == "shopper@example.com" {
			t.Fatal("the experiment's account is a platform user")
		}
	}
	// Its token is no platform token: the platform's administration and
	// hand-off refuse it.
	_, err = w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: authapi.Actor{Token: sess.Token}, Slug: "shop"})
	wantCode(t, "an experiment token managing accounts", err, apierr.CodeUnauthenticated)
	_, err = w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: sess.Token, Slug: "closed"})
	wantCode(t, "an experiment token handed off", err, apierr.CodeUnauthenticated)
}

// The owner and administrators list, disable and delete an experiment's
// accounts; others cannot; disabling and deleting end the sessions.
func TestManagingExperimentAccounts(t *testing.T) {
	w := start(t)
	root := w.login(rootEmail, rootPassword)
	asRoot := authapi.Actor{Email: rootEmail, Token: root}
	for _, u := range []string{"dev@example.com", "other@example.com"} {
		if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: asRoot, Email: u, Password: "a developer's passphrase", Roles: []string{"developer"}}); err != nil {
			t.Fatal(err)
		}
	}
	owner := authapi.Actor{Token: w.login("dev@example.com", "a developer's passphrase")}
	other := authapi.Actor{Email: "dev@example.com", Token: w.login("other@example.com", "a developer's passphrase")}
	w.experimentWith("shop", "dev@example.com", `{"slug":"shop","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true}}`)
	const pw = "a shopper's long passphrase"
	sess, err := w.edge.ExpRegister(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "shopper@example.com", Password: pw})
	if err != nil {
		t.Fatal(err)
	}

	list, err := w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: owner, Slug: "shop"})
	if err != nil || len(list.Users) != 1 || list.Users[0].Email != "shopper@example.com" || list.Users[0].ID != sess.User.ID {
		t.Fatalf("the owner's list: %+v %v", list, err)
	}
	if l, err := w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: asRoot, Slug: "shop"}); err != nil || len(l.Users) != 1 {
		t.Fatalf("an admin's list: %+v %v", l, err)
	}
	_, err = w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: other, Slug: "shop"})
	wantCode(t, "another developer's list (naming the owner)", err, apierr.CodeForbidden)
	yes := true
	_, err = w.edge.ExpUserUpdate(w.ctx, authapi.ExpUserUpdate{Actor: other, Slug: "shop", ID: sess.User.ID, Disabled: &yes})
	wantCode(t, "another developer disabling", err, apierr.CodeForbidden)
	err = w.edge.ExpUserDelete(w.ctx, authapi.ExpUserDelete{Actor: other, Slug: "shop", ID: sess.User.ID})
	wantCode(t, "another developer deleting", err, apierr.CodeForbidden)
	_, err = w.edge.ExpUserUpdate(w.ctx, authapi.ExpUserUpdate{Actor: owner, Slug: "shop", ID: "nobody", Disabled: &yes})
	wantCode(t, "an unknown account", err, apierr.CodeNotFound)

	// A verifier as every edge runs it sees the session end.
	v := authn.NewVerifier()
	if err := v.Watch(w.ctx, w.js); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyExperiment(sess.Token, "shop", time.Now()); err != nil {
		t.Fatalf("the session before: %v", err)
	}
	u, err := w.edge.ExpUserUpdate(w.ctx, authapi.ExpUserUpdate{Actor: owner, Slug: "shop", ID: sess.User.ID, Disabled: &yes})
	if err != nil || !u.Disabled {
		t.Fatalf("disable: %+v %v", u, err)
	}
	within(t, "the disabled account's session to end", func() bool {
		_, err := v.VerifyExperiment(sess.Token, "shop", time.Now())
		return err != nil
	})
	_, err = w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "shopper@example.com", Password: pw})
	wantCode(t, "a disabled account's sign-in", err, apierr.CodeInvalidCredentials)

	no := false
	if _, err := w.edge.ExpUserUpdate(w.ctx, authapi.ExpUserUpdate{Actor: owner, Slug: "shop", ID: sess.User.ID, Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	again, err := w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "shopper@example.com", Password: pw})
	if err != nil {
		t.Fatalf("sign-in once enabled: %v", err)
	}
	within(t, "the new session to be accepted", func() bool {
		_, err := v.VerifyExperiment(again.Token, "shop", time.Now())
		return err == nil
	})
	if err := w.edge.ExpUserDelete(w.ctx, authapi.ExpUserDelete{Actor: asRoot, Slug: "shop", ID: sess.User.ID}); err != nil {
		t.Fatalf("an admin deleting: %v", err)
	}
	within(t, "the deleted account's session to end", func() bool {
		_, err := v.VerifyExperiment(again.Token, "shop", time.Now())
		return err != nil
	})
	_, err = w.edge.ExpLogin(w.ctx, authapi.ExpCredentials{Slug: "shop", Email: "shopper@example.com", Password: pw})
	wantCode(t, "a deleted account's sign-in", err, apierr.CodeInvalidCredentials)
	if l, err := w.edge.ExpUsers(w.ctx, authapi.ExpUsersList{Actor: owner, Slug: "shop"}); err != nil || len(l.Users) != 0 {
		t.Fatalf("the list after deleting: %+v %v", l, err)
	}
}

func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within a second", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parseExp reads an experiment token's claims as slug's origin has them.
func parseExp(t *testing.T, token, slug string) *authn.Claims {
	t.Helper()
	v := authn.NewVerifier()
	key, err := authn.DeriveKey("test-secret-key-0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := authn.NewSigner(key).Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	c, err := v.VerifyExperiment(token, slug, time.Now())
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return c
}
