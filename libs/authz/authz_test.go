package authz_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

type world struct {
	env *testenv.Env
	st  *store.Store
}

func setup(t *testing.T) *world {
	t.Helper()
	env := testenv.Start(t)
	st, err := store.Open(context.Background(), store.Options{URI: env.MongoURI, Database: "authz_test", MaxPool: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return &world{env: env, st: st}
}

// enforcer is one process's enforcer, on its own NATS connection.
func (w *world) enforcer(t *testing.T) *authz.Enforcer {
	t.Helper()
	nc, err := nats.Connect(w.env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e, err := authz.New(context.Background(), w.st.DB, nc, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestSeededPolicies(t *testing.T) {
	w := setup(t)
	e := w.enforcer(t)
	if err := e.Seed(); err != nil {
		t.Fatal(err)
	}
	if err := e.Seed(); err != nil { // idempotent
		t.Fatal(err)
	}
	n, _ := w.st.Collection(authz.Collection).CountDocuments(context.Background(), bson.D{})
	if n != int64(len(authz.Seeded)) {
		t.Fatalf("%d rules stored after seeding twice, want %d", n, len(authz.Seeded))
	}
	if err := e.SetRoles("ada@example.com", []string{authz.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRoles("dev@example.com", []string{authz.RoleDeveloper}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRoles("uma@example.com", []string{authz.RoleUser}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		sub, obj, act string
		want          bool
	}{
		{"ada@example.com", authz.ObjAdminPanel, authz.ActAccess, true},
		{"dev@example.com", authz.ObjAdminPanel, authz.ActAccess, false},
		{"dev@example.com", authz.ObjExperiments, authz.ActView, true},
		{"dev@example.com", authz.ObjExperiments, authz.ActManageOwn, true},
		{"uma@example.com", authz.ObjExperiments, authz.ActView, true},
		{"uma@example.com", authz.ObjExperiments, authz.ActManageOwn, false},
		{"nobody@example.com", authz.ObjExperiments, authz.ActView, false},
		// The role name itself is a subject of the policy, as in the original model.
		{authz.RoleUser, authz.ObjExperiments, authz.ActView, true},
	}
	for _, c := range cases {
		if got := e.Allowed(c.sub, c.obj, c.act); got != c.want {
			t.Errorf("Allowed(%s, %s, %s) = %v, want %v", c.sub, c.obj, c.act, got, c.want)
		}
	}
	// Replacing the roles removes what is no longer granted.
	if err := e.SetRoles("ada@example.com", []string{authz.RoleUser}); err != nil {
		t.Fatal(err)
	}
	if e.Allowed("ada@example.com", authz.ObjAdminPanel, authz.ActAccess) {
		t.Error("admin access kept after the role was removed")
	}
	if got := e.RolesOf("ada@example.com"); len(got) != 1 || got[0] != authz.RoleUser {
		t.Errorf("roles = %v", got)
	}
}

// A change made through one enforcer reaches another process's enforcer
// within a second, through the watcher, without any reload of its own.
func TestChangesReachEveryEnforcer(t *testing.T) {
	w := setup(t)
	a := w.enforcer(t)
	b := w.enforcer(t)
	if err := a.Seed(); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRoles("eve@example.com", []string{authz.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for !b.Allowed("eve@example.com", authz.ObjAdminPanel, authz.ActAccess) {
		if time.Now().After(deadline) {
			t.Fatal("the grant did not reach the other enforcer within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.SetRoles("eve@example.com", nil); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Second)
	for a.Allowed("eve@example.com", authz.ObjAdminPanel, authz.ActAccess) {
		if time.Now().After(deadline) {
			t.Fatal("the revocation did not reach the other enforcer within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAdapterRoundTrip(t *testing.T) {
	w := setup(t)
	a := authz.NewAdapter(w.st.DB)
	m, err := model.NewModelFromString(`
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
`)
	if err != nil {
		t.Fatal(err)
	}
	e, err := casbin.NewEnforcer(m, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]string{{"r1", "o1", "read"}, {"r1", "o2", "read"}, {"r2", "o1", "write"}} {
		if _, err := e.AddPolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	// Storing a rule twice keeps one copy.
	if err := a.AddPolicy("p", "p", []string{"r1", "o1", "read"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddGroupingPolicy("u", "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RemoveFilteredPolicy(0, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadPolicy(); err != nil {
		t.Fatal(err)
	}
	pol, _ := e.GetPolicy()
	if len(pol) != 1 || pol[0][0] != "r2" {
		t.Fatalf("policy after filtered removal = %v", pol)
	}
	if ok, _ := e.Enforce("u", "o1", "read"); ok {
		t.Error("removed rule still enforced")
	}
	// SavePolicy replaces everything with the model's rules.
	if _, err := e.AddPolicy("r3", "o3", "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.SavePolicy(); err != nil {
		t.Fatal(err)
	}
	n, _ := w.st.Collection(authz.Collection).CountDocuments(context.Background(), bson.D{})
	if n != 3 { // r2 policy, r3 policy, u→r1 grouping
		t.Fatalf("%d rules stored after SavePolicy, want 3", n)
	}
}

func TestKnownRole(t *testing.T) {
	for _, r := range []string{"admin", "developer", "user"} {
		if !authz.KnownRole(r) {
			t.Errorf("%s unknown", r)
		}
	}
	for _, r := range []string{"", "root", "Admin", "admin "} {
		if authz.KnownRole(r) {
			t.Errorf("%q known", r)
		}
	}
}
