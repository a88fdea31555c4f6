package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// Demo accounts (sub_auth.demo_users) are experiment accounts of kind
// demo. The auth service creates them itself the first time it serves an
// experiment's accounts after a version is stored (a sign-in, sign-up,
// demo sign-in or the owner's list), so that upload and PATCH need no
// call of their own and a lost call cannot leave them missing. Creation
// is idempotent: an account that exists (by its normalised email) is left
// as it is, its password included, so that a participant's demo session
// and any data the actor keeps under its ID survive new versions. A
// manifest that changes a demo password changes nothing for an existing
// account; the owner deletes the account to have it made again.

// demoSeen are the experiment versions whose demo accounts exist
// ("slug@version"), so that a sign-in does not read them every time.
type demoSeen struct{ m sync.Map }

func (d *demoSeen) key(cfg *experiments.Config) string {
	return cfg.Slug + "@" + strconv.Itoa(cfg.Version)
}

// ensureDemoUsers creates the demo accounts of cfg's version that do not
// exist yet. A demo user with auto_create false is not made.
func (s *Service) ensureDemoUsers(ctx context.Context, cfg *experiments.Config, sa *bundle.SubAuth) error {
	if len(sa.DemoUsers) == 0 {
		return nil
	}
	key := s.demo.key(cfg)
	if _, ok := s.demo.m.Load(key); ok {
		return nil
	}
	repo := s.d.Store.ExpAccounts()
	for _, du := range sa.DemoUsers {
		if du.AutoCreate != nil && !*du.AutoCreate {
			continue
		}
		email, err := NormalizeEmail(du.Email)
		if err != nil {
			// The manifest's check refuses it; a stored one is skipped.
			continue
		}
		a, err := repo.ByEmail(ctx, cfg.Slug, email)
		if err != nil {
			return err
		}
		if a != nil {
			continue
		}
		hash := ""
		if du.Password != "" {
			// Demo passwords are public by nature (the manifest gives them
			// out), so the platform's strength rules do not apply.
			if hash, err = passwords.Hash(du.Password); err != nil {
				return fmt.Errorf("hash a demo password: %w", err)
			}
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		a = &store.ExpAccount{Slug: cfg.Slug, Email: email, UID: newUID(), PasswordHash: hash, Kind: store.ExpKindDemo,
			Role: du.Role, ExtraData: du.ExtraData, CreatedAt: now, UpdatedAt: now}
		if err := repo.Create(ctx, a); err != nil && !errors.Is(err, store.ErrDuplicateAccount) {
			return err
		}
	}
	s.demo.m.Store(key, true)
	return nil
}

// expDemo signs a demo account in without a password, where the manifest
// allows demo access: the account of req.Email, or the first demo user's.
// An email that is no demo user of the experiment is not_found, as is an
// experiment that does not allow demo access.
func (s *Service) expDemo(ctx context.Context, req authapi.ExpDemo) (authapi.Session, error) {
	_, sa, err := s.subAuth(ctx, req.Slug)
	if err != nil {
		return authapi.Session{}, err
	}
	if !sa.AllowDemoAccess || len(sa.DemoUsers) == 0 {
		return authapi.Session{}, apierr.New(apierr.CodeNotFound, "experiment %q has no demo access", req.Slug)
	}
	email := ""
	if req.Email == "" {
		email, _ = NormalizeEmail(sa.DemoUsers[0].Email)
	} else if e, err := NormalizeEmail(req.Email); err == nil {
		for _, du := range sa.DemoUsers {
			if d, _ := NormalizeEmail(du.Email); d == e {
				email = e
			}
		}
	}
	if email == "" {
		return authapi.Session{}, apierr.New(apierr.CodeNotFound, "%q is not a demo user of this experiment", req.Email).OnField("/email")
	}
	a, err := s.d.Store.ExpAccounts().ByEmail(ctx, req.Slug, email)
	if err != nil {
		return authapi.Session{}, err
	}
	// An account of that email made by sign-up is no demo account: demo
	// access never opens it.
	if a == nil || a.Kind != store.ExpKindDemo || a.Disabled {
		return authapi.Session{}, apierr.New(apierr.CodeNotFound, "%q is not a demo user of this experiment", req.Email).OnField("/email")
	}
	return s.expSession(a, sa.TTL())
}

// bootstrapDemo makes sure the platform-wide demo account of ENABLE_DEMO
// exists, with the role demo alone (it views experiments and changes
// nothing). The variable is the truth for a demo-only account: a changed
// password is set again at start. An account of that email that holds
// other roles is the operator's real user and is left as it is.
func (s *Service) bootstrapDemo(ctx context.Context) error {
	cfg := s.d.Config
	if cfg.DemoEmail == "" {
		return nil
	}
	email, err := NormalizeEmail(cfg.DemoEmail)
	if err != nil {
		return fmt.Errorf("ENABLE_DEMO: %w", err)
	}
	u, err := s.users.get(ctx, email)
	if err != nil {
		return err
	}
	if u != nil {
		if len(u.Roles) != 1 || u.Roles[0] != authz.RoleDemo {
			s.d.Log.Warn("ENABLE_DEMO names an account with other roles; it is left as it is", "email", email, "roles", u.Roles)
			return nil
		}
		if passwords.Verify(u.PasswordHash, cfg.DemoPassword) && !u.Disabled {
			return s.enforcer.SetRoles(email, []string{authz.RoleDemo})
		}
		hash, err := passwords.Hash(cfg.DemoPassword)
		if err != nil {
			return fmt.Errorf("hash the demo password: %w", err)
		}
		if _, err := s.users.update(ctx, email, func(u *user) (bool, error) {
			// Sessions signed in with the old password stay: the
			// operator changed the variable, nobody stole the account.
			u.PasswordHash, u.Disabled = hash, false
			return false, nil
		}); err != nil {
			return fmt.Errorf("reset the demo account: %w", err)
		}
		return s.enforcer.SetRoles(email, []string{authz.RoleDemo})
	}
	hash, err := passwords.Hash(cfg.DemoPassword)
	if err != nil {
		return fmt.Errorf("hash the demo password: %w", err)
	}
	if _, err := s.users.create(ctx, email, hash, []string{authz.RoleDemo}); err != nil {
		if apierr.From(err).Code == apierr.CodeConflict {
			return nil // another auth instance created it first
		}
		return err
	}
	s.d.Log.Info("demo account created", "email", email)
	return s.enforcer.SetRoles(email, []string{authz.RoleDemo})
}
