package platform_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/export"
	"github.com/gnome-platform/gnome/services/upload"
)

// With the edge's bus credentials, as a compromised edge (or any process
// holding them) would: every request naming a user is judged by the token
// it carries. A forged admin gets nothing; a developer's token naming the
// admin acts as the developer.
func TestServicesActOnVerifiedIdentity(t *testing.T) {
	env := testenv.Start(t)
	cfg := env.Config(t, busTestConfig)
	d := env.Deps(t, cfg)
	a := auth.New(env.DepsAs(t, d, "auth"))
	a.Out = io.Discard
	testenv.Run(t, d, a, upload.New(env.DepsAs(t, d, "upload")), export.New(env.DepsAs(t, d, "export")))
	edge := env.DepsAs(t, d, "edge")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	T := bus.Client{NC: edge.NC}
	uploads, err := edge.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	up := uploadapi.Client{T: T, Staging: bus.ObjectStaging{Store: uploads}}
	ex := exportapi.Client{T: T}
	admins := authapi.Client{T: T}

	forgedAdmin := uploadapi.Caller{Email: busAdminEmail, Roles: []string{"admin"}, IsAdmin: true}
	zip := func(slug string) io.Reader {
		return bytesReader(experimentZIP(t, map[string]any{"schema_version": "2.0", "slug": slug, "name": slug, "status": "active"}))
	}

	// No token: refused, nothing stored.
	_, err = up.Upload(ctx, zip("forged"), forgedAdmin)
	wantCode(t, "an upload naming the admin without a token", err, apierr.CodeUnauthenticated)
	_, err = ex.List(ctx, exportapi.List{Caller: forgedAdmin})
	wantCode(t, "the export logs for a forged admin", err, apierr.CodeUnauthenticated)
	_, err = admins.Users(ctx, authapi.Actor{Email: busAdminEmail})
	wantCode(t, "users.list for a forged admin", err, apierr.CodeUnauthenticated)
	_, err = admins.CreateUser(ctx, authapi.CreateUser{Actor: authapi.Actor{Email: busAdminEmail}, Email: "mallory@example.com", Password: "mallory's long passphrase", Roles: []string{"admin"}})
	wantCode(t, "users.create for a forged admin", err, apierr.CodeUnauthenticated)

	// A developer's token with the admin's name and flags beside it: the
	// services see the developer.
	dev := testenv.Caller("dev@example.com", "developer")
	claiming := dev
	claiming.Email, claiming.Roles, claiming.IsAdmin = busAdminEmail, []string{"admin"}, true
	res, err := up.Upload(ctx, zip("devs"), claiming)
	if err != nil {
		t.Fatalf("the developer's upload: %v", err)
	}
	if res.Experiment.OwnerEmail != "dev@example.com" {
		t.Errorf("the upload is owned by %q, want the token's dev@example.com", res.Experiment.OwnerEmail)
	}
	_, err = ex.List(ctx, exportapi.List{Slug: "devs", Caller: claiming})
	wantCode(t, "the export logs for a developer claiming admin", err, apierr.CodeForbidden)
	user := testenv.Caller("user@example.com", "user")
	user.Email, user.IsAdmin = "dev@example.com", true
	err = up.Delete(ctx, uploadapi.Delete{Slug: "devs", Confirm: "devs", Caller: user})
	wantCode(t, "a delete by a user naming the owner", err, apierr.CodeForbidden)
	_, err = admins.Users(ctx, authapi.Actor{Email: busAdminEmail, Token: dev.Token})
	wantCode(t, "users.list with a developer's token", err, apierr.CodeForbidden)

	// The owner's own token works.
	if err := up.Delete(ctx, uploadapi.Delete{Slug: "devs", Confirm: "devs", Caller: dev}); err != nil {
		t.Errorf("the owner deletes: %v", err)
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
