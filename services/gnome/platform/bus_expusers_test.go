package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// exerciseExpAccounts calls every endpoint of an experiment's own accounts
// (sub_auth experiment_users) as the edge does: sign-up, sign-in, then the owner's list, disable and delete.
func exerciseExpAccounts(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug = "bus-accounts"
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: busAdminEmail, Status: "active", Version: 1,
		Manifest:  `{"slug":"bus-accounts","sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true,"allow_demo_access":true,"demo_users":[{"email":"demo@example.com","role":"staff"}]}}`,
		CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	creds := authapi.ExpCredentials{Slug: slug, Email: "shopper@example.com", Password: "a shopper's long passphrase"}
	reg, err := call(ctx, d.NC, "auth-exp-register", authapi.EndpointExpRegister, creds)
	if err != nil || reg.User.Email != creds.Email {
		t.Fatalf("exp.register: %+v %v", reg, err)
	}
	if _, err := call(ctx, d.NC, "auth-exp-login", authapi.EndpointExpLogin, creds); err != nil {
		t.Fatalf("exp.login: %v", err)
	}
	if demo, err := call(ctx, d.NC, "auth-exp-demo", authapi.EndpointExpDemo, authapi.ExpDemo{Slug: slug}); err != nil || demo.User.Email != "demo@example.com" {
		t.Fatalf("exp.demo: %+v %v", demo, err)
	}
	admin, err := call(ctx, d.NC, "auth-login-owner", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	actor := authapi.Actor{Email: busAdminEmail, Token: admin.Token}
	list, err := call(ctx, d.NC, "auth-exp-users-list", authapi.EndpointExpUsersList, authapi.ExpUsersList{Actor: actor, Slug: slug})
	if err != nil || len(list.Users) != 2 || list.Users[0].Kind != "demo" || list.Users[1].ID != reg.User.ID {
		t.Fatalf("exp.users.list: %+v %v", list, err)
	}
	yes := true
	u, err := call(ctx, d.NC, "auth-exp-users-update", authapi.EndpointExpUsersUpdate,
		authapi.ExpUserUpdate{Actor: actor, Slug: slug, ID: reg.User.ID, Disabled: &yes})
	if err != nil || !u.Disabled {
		t.Fatalf("exp.users.update: %+v %v", u, err)
	}
	if _, err := call(ctx, d.NC, "auth-exp-users-delete", authapi.EndpointExpUsersDelete,
		authapi.ExpUserDelete{Actor: actor, Slug: slug, ID: reg.User.ID}); err != nil {
		t.Fatalf("exp.users.delete: %v", err)
	}
}
