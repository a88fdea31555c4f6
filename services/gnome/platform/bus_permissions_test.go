package platform_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// exercisePermissions calls every endpoint of an experiment's permissions
// (auth_policy.custom_resource and custom_actions) as the edge does: the
// owner lists, grants, and revokes one action, then the rest.
func exercisePermissions(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug = "bus-perms"
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: busAdminEmail, Status: "active", Version: 1,
		Manifest:  `{"slug":"bus-perms","name":"Bus perms","auth_policy":{"custom_resource":"experiment:bus-perms:notes","custom_actions":["read","write"]}}`,
		CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	owner, err := call(ctx, d.NC, "auth-login-perms", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	actor := authapi.Actor{Email: busAdminEmail, Token: owner.Token}
	list, err := call(ctx, d.NC, "auth-perms-list", authapi.EndpointPermsList, authapi.PermsList{Actor: actor, Slug: slug})
	if err != nil || list.Resource != "experiment:bus-perms:notes" || !list.Own || !list.Enforced || len(list.Holders) != 0 {
		t.Fatalf("perms.list: %+v %v", list, err)
	}
	g, err := call(ctx, d.NC, "auth-perms-grant", authapi.EndpointPermsGrant,
		authapi.PermsGrant{Actor: actor, Slug: slug, Email: busAdminEmail, Actions: []string{"read", "write"}})
	if err != nil || !slices.Equal(g.Changed, []string{"read", "write"}) {
		t.Fatalf("perms.grant: %+v %v", g, err)
	}
	r, err := call(ctx, d.NC, "auth-perms-revoke-one", authapi.EndpointPermsRevoke,
		authapi.PermsRevoke{Actor: actor, Slug: slug, Email: busAdminEmail, Action: "write"})
	if err != nil || !slices.Equal(r.Changed, []string{"write"}) || !slices.Equal(r.Actions, []string{"read"}) {
		t.Fatalf("perms.revoke one: %+v %v", r, err)
	}
	if r, err = call(ctx, d.NC, "auth-perms-revoke-all", authapi.EndpointPermsRevoke,
		authapi.PermsRevoke{Actor: actor, Slug: slug, Email: busAdminEmail}); err != nil || len(r.Actions) != 0 {
		t.Fatalf("perms.revoke all: %+v %v", r, err)
	}
}
