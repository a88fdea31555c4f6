package auth_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/auth"
)

// startWatching is start with an enforcer of another process (the edge's),
// which sees the auth service's policy changes through the watcher.
func startWatching(t *testing.T) (*world, *authz.Enforcer) {
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
	en, err := authz.New(ctx, d.Store.DB, edge.NC, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(en.Close)
	return &world{t: t, env: env, ctx: ctx, admin: &storeView{d.Store}, edge: authapi.Client{T: bus.Client{NC: edge.NC}}, js: edge.JS}, en
}

func (w *world) experimentIn(slug, owner, status, manifest string) {
	w.t.Helper()
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: owner, Status: status,
		Version: 1, Manifest: manifest, CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := w.admin.st.Collection(store.ExperimentsConfig).InsertOne(w.ctx, cfg); err != nil {
		w.t.Fatal(err)
	}
}

func waitPolicy(t *testing.T, en *authz.Enforcer, sub, obj, act string, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for en.Allowed(sub, obj, act) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the edge's enforcer: %s %s %s still %v", sub, obj, act, !want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An experiment's owner grants and revokes actions of its custom_actions
// on its own custom resource; anything that would let an owner write the
// platform's policies, or another experiment's, is refused.
func TestExperimentPermissions(t *testing.T) {
	w, edgeEnforcer := startWatching(t)
	root := w.login(rootEmail, rootPassword)
	for email, role := range map[string]string{"dev@example.com": "developer", "eve@example.com": "developer", "ann@example.com": "user"} {
		if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: authapi.Actor{Token: root}, Email: email, Password: "a long passphrase of " + email, Roles: []string{role}}); err != nil {
			t.Fatal(err)
		}
	}
	dev := authapi.Actor{Email: "dev@example.com", Token: w.login("dev@example.com", "a long passphrase of dev@example.com"), RequestID: "perm-dev"}
	eve := authapi.Actor{Email: "eve@example.com", Token: w.login("eve@example.com", "a long passphrase of eve@example.com")}
	admin := authapi.Actor{Email: rootEmail, Token: root}
	w.experimentIn("notes", "dev@example.com", "active", `{"slug":"notes","name":"Notes","auth_policy":{"custom_resource":"experiment:notes:lab","custom_actions":["access","read"]}}`)
	w.experimentIn("plain", "dev@example.com", "active", `{"slug":"plain","name":"Plain"}`)
	w.experimentIn("sneaky", "dev@example.com", "active", `{"slug":"sneaky","name":"Sneaky","auth_policy":{"custom_resource":"admin_panel"}}`)
	w.experimentIn("poach", "dev@example.com", "active", `{"slug":"poach","name":"Poach","auth_policy":{"custom_resource":"experiment:victim","custom_actions":["access"]}}`)
	w.experimentIn("note", "dev@example.com", "active", `{"slug":"note","name":"Lookalike","auth_policy":{"custom_resource":"experiment:notes"}}`)
	w.experimentIn("victim", "eve@example.com", "active", `{"slug":"victim","name":"Victim","auth_policy":{"custom_actions":["access"]}}`)
	w.experimentIn("hidden", "eve@example.com", "draft", `{"slug":"hidden","name":"Hidden"}`)

	// The owner's own resource.
	list, err := w.edge.Perms(w.ctx, authapi.PermsList{Actor: dev, Slug: "notes"})
	if err != nil || list.Resource != "experiment:notes:lab" || !slices.Equal(list.Actions, []string{"access", "read"}) || !list.Enforced || !list.Own || len(list.Holders) != 0 {
		t.Fatalf("list: %+v %v", list, err)
	}
	ch, err := w.edge.PermsGrant(w.ctx, authapi.PermsGrant{Actor: dev, Slug: "notes", Email: " Ann@Example.com ", Actions: []string{"read", "access", "read"}})
	if err != nil || ch.Email != "ann@example.com" || ch.Resource != "experiment:notes:lab" || !slices.Equal(ch.Changed, []string{"read", "access"}) || !slices.Equal(ch.Actions, []string{"access", "read"}) {
		t.Fatalf("grant: %+v %v", ch, err)
	}
	waitPolicy(t, edgeEnforcer, "ann@example.com", "experiment:notes:lab", "read", true)
	if ch, err := w.edge.PermsGrant(w.ctx, authapi.PermsGrant{Actor: dev, Slug: "notes", Email: "ann@example.com", Actions: []string{"read"}}); err != nil || len(ch.Changed) != 0 {
		t.Errorf("grant again: %+v %v", ch, err)
	}
	if l, err := w.edge.Perms(w.ctx, authapi.PermsList{Actor: dev, Slug: "notes"}); err != nil || len(l.Holders) != 1 || l.Holders[0].Subject != "ann@example.com" || !slices.Equal(l.Holders[0].Actions, []string{"access", "read"}) {
		t.Errorf("list after the grant: %+v %v", l, err)
	}
	// The defaults: experiment:{slug}, ["access"].
	if l, err := w.edge.Perms(w.ctx, authapi.PermsList{Actor: dev, Slug: "plain"}); err != nil || l.Resource != "experiment:plain" || !slices.Equal(l.Actions, []string{"access"}) || l.Enforced || !l.Own {
		t.Errorf("list of an experiment without custom fields: %+v %v", l, err)
	}

	// Bad requests change nothing.
	grant := func(a authapi.Actor, slug, email string, acts ...string) error {
		_, err := w.edge.PermsGrant(w.ctx, authapi.PermsGrant{Actor: a, Slug: slug, Email: email, Actions: acts})
		return err
	}
	wantCode(t, "an action the manifest does not name", grant(dev, "notes", "ann@example.com", "write"), apierr.CodeValidationFailed)
	wantCode(t, "the admin action on its own resource", grant(dev, "notes", "ann@example.com", "access", "admin"), apierr.CodeValidationFailed)
	wantCode(t, "no actions", grant(dev, "notes", "ann@example.com"), apierr.CodeValidationFailed)
	wantCode(t, "an email without an account", grant(dev, "notes", "ghost@example.com", "read"), apierr.CodeNotFound)
	wantCode(t, "not an email", grant(dev, "notes", "admin", "read"), apierr.CodeValidationFailed)
	wantCode(t, "a role for an email", grant(dev, "notes", "", "read"), apierr.CodeValidationFailed)

	// An owner naming the platform's resource, then granting themselves.
	err = grant(dev, "sneaky", "dev@example.com", "access")
	wantCode(t, "an owner granting admin_panel access", err, apierr.CodeForbidden)
	if err == nil || !strings.Contains(err.Error(), "only administrators") || !strings.Contains(err.Error(), "experiment:sneaky") {
		t.Errorf("the refusal does not say why: %v", err)
	}
	_, err = w.edge.Perms(w.ctx, authapi.PermsList{Actor: dev, Slug: "sneaky"})
	wantCode(t, "an owner listing admin_panel", err, apierr.CodeForbidden)
	_, err = w.edge.PermsRevoke(w.ctx, authapi.PermsRevoke{Actor: dev, Slug: "sneaky", Email: rootEmail})
	wantCode(t, "an owner revoking admin_panel", err, apierr.CodeForbidden)
	// Another experiment's resource, through one's own manifest, and a
	// name that only begins like one's own.
	wantCode(t, "another experiment's resource", grant(dev, "poach", "dev@example.com", "access"), apierr.CodeForbidden)
	_, err = w.edge.Perms(w.ctx, authapi.PermsList{Actor: dev, Slug: "poach"})
	wantCode(t, "listing another experiment's holders", err, apierr.CodeForbidden)
	wantCode(t, "a resource that only begins like its own", grant(dev, "note", "dev@example.com", "access"), apierr.CodeForbidden)
	// Someone else's experiment, straight.
	wantCode(t, "someone else's experiment", grant(dev, "victim", "dev@example.com", "access"), apierr.CodeForbidden)
	wantCode(t, "someone else's draft", grant(dev, "hidden", "dev@example.com", "access"), apierr.CodeNotFound)
	wantCode(t, "not the owner of notes", grant(eve, "notes", "eve@example.com", "access"), apierr.CodeForbidden)
	wantCode(t, "no such experiment", grant(dev, "nowhere", "dev@example.com", "access"), apierr.CodeNotFound)
	wantCode(t, "a path for a slug", grant(dev, "../notes", "dev@example.com", "access"), apierr.CodeValidationFailed)
	// The token decides, not the email beside it.
	wantCode(t, "the admin named, the developer's token", grant(authapi.Actor{Email: rootEmail, Token: dev.Token}, "sneaky", "dev@example.com", "access"), apierr.CodeForbidden)
	wantCode(t, "no token", grant(authapi.Actor{Email: "dev@example.com"}, "notes", "dev@example.com", "access"), apierr.CodeUnauthenticated)
	for _, p := range [][3]string{
		{"dev@example.com", authz.ObjAdminPanel, authz.ActAccess},
		{"dev@example.com", "experiment:victim", "access"},
		{"dev@example.com", "experiment:notes", "access"},
		{"eve@example.com", "experiment:notes:lab", "access"},
		{"ann@example.com", "experiment:notes:lab", "write"},
		{"ghost@example.com", "experiment:notes:lab", "read"},
	} {
		if edgeEnforcer.Allowed(p[0], p[1], p[2]) {
			t.Errorf("a refused request granted %v", p)
		}
	}

	// An admin may grant any resource an experiment names.
	if _, err := w.edge.PermsGrant(w.ctx, authapi.PermsGrant{Actor: admin, Slug: "poach", Email: "ann@example.com", Actions: []string{"access"}}); err != nil {
		t.Fatalf("an admin granting another experiment's resource: %v", err)
	}
	waitPolicy(t, edgeEnforcer, "ann@example.com", "experiment:victim", "access", true)
	if l, err := w.edge.Perms(w.ctx, authapi.PermsList{Actor: eve, Slug: "victim"}); err != nil || len(l.Holders) != 1 {
		t.Errorf("the victim's owner sees the grant on their resource: %+v %v", l, err)
	}

	// Revocation: one action, then all.
	revoke := func(a authapi.Actor, slug, email, act string) (authapi.PermsChange, error) {
		return w.edge.PermsRevoke(w.ctx, authapi.PermsRevoke{Actor: a, Slug: slug, Email: email, Action: act})
	}
	_, err = revoke(eve, "notes", "ann@example.com", "")
	wantCode(t, "revoking on someone else's experiment", err, apierr.CodeForbidden)
	if ch, err := revoke(dev, "notes", "ANN@example.com", "read"); err != nil || !slices.Equal(ch.Changed, []string{"read"}) || !slices.Equal(ch.Actions, []string{"access"}) {
		t.Fatalf("revoke one: %+v %v", ch, err)
	}
	waitPolicy(t, edgeEnforcer, "ann@example.com", "experiment:notes:lab", "read", false)
	_, err = revoke(dev, "notes", "ann@example.com", "read")
	wantCode(t, "revoking what is not held", err, apierr.CodeNotFound)
	if ch, err := revoke(dev, "notes", "ann@example.com", ""); err != nil || !slices.Equal(ch.Changed, []string{"access"}) || len(ch.Actions) != 0 {
		t.Fatalf("revoke all: %+v %v", ch, err)
	}
	waitPolicy(t, edgeEnforcer, "ann@example.com", "experiment:notes:lab", "access", false)
	_, err = revoke(dev, "notes", "ann@example.com", "")
	wantCode(t, "revoking from someone holding nothing", err, apierr.CodeNotFound)
	if !edgeEnforcer.Allowed("ann@example.com", "experiment:victim", "access") {
		t.Error("revoking on one resource took a grant on another")
	}

	// Grants are audited under the token's user.
	var entry struct {
		Who    string `bson:"who"`
		What   string `bson:"what"`
		Target string `bson:"target"`
	}
	if err := w.admin.st.Collection(store.AuditLog).FindOne(w.ctx, bson.D{{Key: "request_id", Value: "perm-dev"}, {Key: "what", Value: "experiment.permission.grant"}}).Decode(&entry); err != nil {
		t.Fatalf("audit entry: %v", err)
	}
	if entry.Who != "dev@example.com" || entry.Target != "notes/ann@example.com" {
		t.Errorf("audit entry: %+v", entry)
	}
}
