package authz_test

import (
	"slices"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authz"
)

// waitAllowed waits until e decides sub/obj/act as want.
func waitAllowed(t *testing.T, e *authz.Enforcer, sub, obj, act string, want bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for e.Allowed(sub, obj, act) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s %s: still %v after 2s", sub, obj, act, !want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Grants and revocations of permissions on a resource are stored, reach
// every enforcer, and touch nothing but the lines they name.
func TestPermissionsGrantRevoke(t *testing.T) {
	w := setup(t)
	a := w.enforcer(t)
	b := w.enforcer(t)
	if err := a.Seed(); err != nil {
		t.Fatal(err)
	}
	const res = "experiment:notes"
	added, err := a.Grant("ann@example.com", res, []string{"read", "write"})
	if err != nil || !slices.Equal(added, []string{"read", "write"}) {
		t.Fatalf("grant: %q %v", added, err)
	}
	waitAllowed(t, b, "ann@example.com", res, "write", true)
	if b.Allowed("ann@example.com", "experiment:other", "read") || b.Allowed("ann@example.com", authz.ObjAdminPanel, authz.ActAccess) {
		t.Fatal("a grant on one resource allows another")
	}
	// Again: nothing new.
	if added, err := b.Grant("ann@example.com", res, []string{"write", "access"}); err != nil || !slices.Equal(added, []string{"access"}) {
		t.Fatalf("second grant: %q %v", added, err)
	}
	if _, err := a.Grant("bob@example.com", res, []string{"read"}); err != nil {
		t.Fatal(err)
	}
	waitAllowed(t, a, "ann@example.com", res, "access", true)
	h, err := a.Holders(res)
	if err != nil {
		t.Fatal(err)
	}
	want := []authz.Holding{{Subject: "ann@example.com", Actions: []string{"access", "read", "write"}}, {Subject: "bob@example.com", Actions: []string{"read"}}}
	if len(h) != 2 || h[0].Subject != want[0].Subject || !slices.Equal(h[0].Actions, want[0].Actions) || h[1].Subject != want[1].Subject || !slices.Equal(h[1].Actions, want[1].Actions) {
		t.Fatalf("holders: %+v", h)
	}

	// One action, on the other process: it starts from the stored
	// policy, whatever its memory holds.
	removed, err := b.Revoke("ann@example.com", res, "write")
	if err != nil || !slices.Equal(removed, []string{"write"}) {
		t.Fatalf("revoke one: %q %v", removed, err)
	}
	waitAllowed(t, a, "ann@example.com", res, "write", false)
	if !a.Allowed("ann@example.com", res, "read") {
		t.Fatal("revoking one action took another")
	}
	// Every action; bob's and the seeded lines stay.
	removed, err = a.Revoke("ann@example.com", res, "")
	if err != nil || !slices.Equal(removed, []string{"access", "read"}) {
		t.Fatalf("revoke all: %q %v", removed, err)
	}
	waitAllowed(t, b, "ann@example.com", res, "read", false)
	if !b.Allowed("bob@example.com", res, "read") {
		t.Fatal("revoking ann's took bob's")
	}
	if removed, err := a.Revoke("ann@example.com", res, ""); err != nil || len(removed) != 0 {
		t.Fatalf("revoking nothing: %q %v", removed, err)
	}
	if err := a.SetRoles("dev@example.com", []string{authz.RoleDeveloper}); err != nil {
		t.Fatal(err)
	}
	if h, _ := a.Holders(authz.ObjExperiments); len(h) != 3 {
		t.Errorf("holders of the seeded resource: %+v", h)
	}
	if !a.Allowed("dev@example.com", authz.ObjExperiments, authz.ActView) {
		t.Error("the seeded policies were touched")
	}
}
