// Package authz is the platform's role-based access control: Casbin with the
// original platform's model, its policies kept in MongoDB (adapter.go), and
// every enforcer in every process reloaded within moments of any change
// through a watcher on NATS (watcher.go). There is no other authorization
// cache.
package authz

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Roles of the platform.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	// RoleDemo is the platform-wide demo account's (ENABLE_DEMO): it may
	// view experiments and change nothing (the edge refuses its writes).
	RoleDemo = "demo"
)

// Roles lists every role a user may hold.
var Roles = []string{RoleAdmin, RoleDeveloper, RoleUser, RoleDemo}

// KnownRole reports whether r is a platform role.
func KnownRole(r string) bool {
	for _, k := range Roles {
		if k == r {
			return true
		}
	}
	return false
}

// Objects and actions of the seeded policies.
const (
	ObjAdminPanel  = "admin_panel"
	ObjExperiments = "experiments"
	ActAccess      = "access"
	ActView        = "view"
	ActManageOwn   = "manage_own"
)

// modelText is the original platform's model.
const modelText = `
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
`

// Seeded are the policies every deployment starts with.
var Seeded = [][]string{
	{RoleAdmin, ObjAdminPanel, ActAccess},
	{RoleDeveloper, ObjExperiments, ActView},
	{RoleDeveloper, ObjExperiments, ActManageOwn},
	{RoleUser, ObjExperiments, ActView},
	{RoleDemo, ObjExperiments, ActView},
}

// ReloadEvery is the safety net behind the watcher: a process that missed a
// change notification (disconnected at that moment) catches up this often,
// and at once on reconnecting.
const ReloadEvery = 30 * time.Second

// Enforcer decides requests from the shared policy.
type Enforcer struct {
	// mu keeps a reload from reading the store while this process changes
	// the policy, which would apply a snapshot older than the change.
	mu      sync.Mutex
	e       *casbin.SyncedEnforcer
	watcher *Watcher
	stop    chan struct{}
	log     *slog.Logger
}

// New loads the policy from db and subscribes to changes on nc.
func New(ctx context.Context, db *mongo.Database, nc *nats.Conn, log *slog.Logger) (*Enforcer, error) {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("casbin model: %w", err)
	}
	a := NewAdapter(db)
	e, err := casbin.NewSyncedEnforcer(m, a)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	w, err := NewWatcher(nc, log)
	if err != nil {
		return nil, err
	}
	if err := e.SetWatcher(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("set policy watcher: %w", err)
	}
	en := &Enforcer{e: e, watcher: w, stop: make(chan struct{}), log: log}
	// SetWatcher installs the unsynchronised Enforcer.LoadPolicy as the
	// callback; reload through the synced enforcer instead.
	// A change this process made is in its memory already.
	_ = w.SetUpdateCallback(func(origin string) {
		if origin != w.origin {
			en.reload()
		}
	})
	w.onReconnect = en.reload
	go en.loop()
	return en, nil
}

func (en *Enforcer) loop() {
	t := time.NewTicker(ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			en.reload()
		case <-en.stop:
			return
		}
	}
}

func (en *Enforcer) reload() {
	en.mu.Lock()
	defer en.mu.Unlock()
	if err := en.e.LoadPolicy(); err != nil {
		en.log.Warn("reload authorization policy failed", "err", err)
	}
}

// Close stops watching.
func (en *Enforcer) Close() {
	close(en.stop)
	en.watcher.Close()
}

// Allowed reports whether sub may act on obj. An error (a broken policy) is
// a refusal.
func (en *Enforcer) Allowed(sub, obj, act string) bool {
	ok, err := en.e.Enforce(sub, obj, act)
	return err == nil && ok
}

// Seed adds the seeded policies that are missing.
func (en *Enforcer) Seed() error {
	en.mu.Lock()
	defer en.mu.Unlock()
	for _, p := range Seeded {
		if ok, err := en.e.HasPolicy(p); err == nil && ok {
			continue
		}
		if _, err := en.e.AddPolicy(p); err != nil {
			return fmt.Errorf("seed policy %v: %w", p, err)
		}
	}
	return nil
}

// SetRoles makes the user's grouping rules exactly roles, saving the change
// and notifying every enforcer.
func (en *Enforcer) SetRoles(email string, roles []string) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	have, err := en.e.GetRolesForUser(email)
	if err != nil {
		return fmt.Errorf("roles of %s: %w", email, err)
	}
	want := map[string]bool{}
	for _, r := range roles {
		want[r] = true
	}
	for _, r := range have {
		if !want[r] {
			if _, err := en.e.RemoveGroupingPolicy(email, r); err != nil {
				return fmt.Errorf("remove role %s from %s: %w", r, email, err)
			}
		}
		delete(want, r)
	}
	for r := range want {
		if _, err := en.e.AddGroupingPolicy(email, r); err != nil {
			return fmt.Errorf("grant role %s to %s: %w", r, email, err)
		}
	}
	return nil
}

// RolesOf lists the roles the policy gives email.
func (en *Enforcer) RolesOf(email string) []string {
	r, _ := en.e.GetRolesForUser(email)
	return r
}
