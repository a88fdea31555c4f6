package svc_test

import (
	"context"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// A service binary finds the credentials the embedded server generated for
// it under DATA_DIR; the settings' win over them.
func TestBusAuthComesFromSettingsOrDataDir(t *testing.T) {
	env := testenv.Start(t)
	cfg := env.Config(t, nil)
	a, err := svc.BusAuth(cfg, "upload")
	if err != nil || a != env.Auth("upload") {
		t.Errorf("from DATA_DIR: %+v %v, want the generated upload credentials", a, err)
	}
	if a, err := svc.BusAuth(cfg, "nobody"); err != nil || a.Set() {
		t.Errorf("an unknown service: %+v %v, want none", a, err)
	}
	cfg = env.Config(t, map[string]string{"NATS_USER": "upload", "NATS_PASSWORD": "from-the-settings"})
	if a, _ := svc.BusAuth(cfg, "upload"); a.Password != "from-the-settings" {
		t.Errorf("settings do not win: %+v", a)
	}
}

// A service's handlers see the caller its token proves: the name, roles
// and admin flag written in the message are replaced, and a message without
// a valid token never reaches them.
func TestServedCallersAreVerified(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	srv, err := d.Serve("verify-test", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	seen := make(chan contract.Caller, 4)
	ep := contract.Endpoint[callerReq, contract.Empty]{Service: "verify-test", Name: "who"}
	if err := srv.Register(bus.Endpoint(ep, func(_ context.Context, r callerReq) (contract.Empty, error) {
		seen <- r.Caller
		return contract.Empty{}, nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 30*time.Second)
	T := bus.Client{NC: d.NC}
	forged := contract.Caller{Email: "root@example.com", Roles: []string{"admin"}, IsAdmin: true}
	if _, err := ep.Call(ctx, T, callerReq{Caller: forged}); apierr.From(err).Code != apierr.CodeUnauthenticated {
		t.Errorf("no token: %v, want unauthenticated", err)
	}
	forged.Token = "x.y.z"
	if _, err := ep.Call(ctx, T, callerReq{Caller: forged}); apierr.From(err).Code != apierr.CodeUnauthenticated {
		t.Errorf("a bad token: %v, want unauthenticated", err)
	}
	user := testenv.Caller("user@example.com", "user")
	forged.Token, forged.RequestID = user.Token, "r-1"
	if _, err := ep.Call(ctx, T, callerReq{Caller: forged}); err != nil {
		t.Fatalf("a user's token: %v", err)
	}
	select {
	case got := <-seen:
		if got.Email != "user@example.com" || got.IsAdmin || len(got.Roles) != 1 || got.Roles[0] != "user" || got.RequestID != "r-1" {
			t.Errorf("the handler saw %+v, want the token's user", got)
		}
	default:
		t.Error("the handler did not run")
	}
	if len(seen) != 0 {
		t.Error("a refused request reached the handler")
	}
}

type callerReq struct {
	Caller contract.Caller `json:"caller"`
}

func (r *callerReq) CallerOf() *contract.Caller { return &r.Caller }
