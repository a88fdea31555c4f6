package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// Accounts of one experiment (sub_auth experiment_users) live apart from
// the platform's users: another collection, tokens whose audience is the
// experiment's origin alone. Their IDs have the platform's shape (random,
// 96 bits, so never one a platform user has), so the token-version bucket
// serves both. An experiment account's email never
// becomes a platform account, and the platform's sign-in never looks here.

// subAuth is slug's experiment and its sub_auth, refusing a slug that is
// not an experiment with accounts of its own.
func (s *Service) subAuth(ctx context.Context, slug string) (*experiments.Config, *bundle.SubAuth, error) {
	if !slugSyntax.MatchString(slug) {
		return nil, nil, apierr.New(apierr.CodeValidationFailed, "slug %q is not a slug", slug).OnField("/slug")
	}
	cfg, err := s.d.Store.Experiments().Get(ctx, slug)
	if err != nil {
		return nil, nil, fmt.Errorf("read experiment %s: %w", slug, err)
	}
	if cfg == nil {
		return nil, nil, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
	}
	sa := bundle.SubAuthOf([]byte(cfg.Manifest))
	if !sa.Accounts() {
		return nil, nil, apierr.New(apierr.CodeNotFound, "experiment %q has no accounts of its own", slug)
	}
	if err := s.ensureDemoUsers(ctx, cfg, sa); err != nil {
		return nil, nil, err
	}
	return cfg, sa, nil
}

func (s *Service) expSession(a *store.ExpAccount, ttl time.Duration) (authapi.Session, error) {
	roles := []string{}
	mint := s.signer.MintExperimentUser
	if a.Kind == store.ExpKindDemo {
		// A demo account's role (sub_auth.demo_users[].role) is the
		// experiment's, for its actor; the platform gives it no right.
		mint = s.signer.MintExperimentDemo
		if a.Role != "" {
			roles = []string{a.Role}
		}
	}
	sub := authn.Subject{ID: a.UID, Email: a.Email, Roles: roles, TokenVersion: a.TokenVersion}
	token, c, err := mint(sub, a.Slug, ttl, time.Now())
	if err != nil {
		return authapi.Session{}, err
	}
	// User.Roles are platform roles: a demo account's experiment role is
	// in its token alone.
	return authapi.Session{Token: token, ExpiresAt: c.ExpiresAt.Time, User: authapi.User{
		ID: a.UID, Email: a.Email, Roles: []string{}, Disabled: a.Disabled, CreatedAt: a.CreatedAt,
	}}, nil
}

// expRegister creates an account of an experiment that allows registration
// and signs it in.
func (s *Service) expRegister(ctx context.Context, req authapi.ExpCredentials) (authapi.Session, error) {
	_, sa, err := s.subAuth(ctx, req.Slug)
	if err != nil {
		return authapi.Session{}, err
	}
	if !sa.AllowRegistration {
		return authapi.Session{}, apierr.New(apierr.CodeNotFound, "registration is closed")
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.Session{}, err
	}
	if err := passwords.Check(req.Password); err != nil {
		return authapi.Session{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/password")
	}
	hash, err := passwords.Hash(req.Password)
	if err != nil {
		return authapi.Session{}, fmt.Errorf("hash password: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := &store.ExpAccount{Slug: req.Slug, Email: email, UID: newUID(), PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.d.Store.ExpAccounts().Create(ctx, a); err != nil {
		if errors.Is(err, store.ErrDuplicateAccount) {
			return authapi.Session{}, apierr.New(apierr.CodeConflict, "an account with this email exists already").OnField("/email")
		}
		return authapi.Session{}, err
	}
	return s.expSession(a, sa.TTL())
}

// expLogin checks an experiment account's credentials. An unknown email, a
// disabled account and a wrong password give the same answer in about the
// same time, as on the platform.
func (s *Service) expLogin(ctx context.Context, req authapi.ExpCredentials) (authapi.Session, error) {
	_, sa, err := s.subAuth(ctx, req.Slug)
	if err != nil {
		return authapi.Session{}, err
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil || req.Password == "" || len(req.Password) > 1024 {
		passwords.Verify("", req.Password)
		return authapi.Session{}, errBadCredentials
	}
	a, err := s.d.Store.ExpAccounts().ByEmail(ctx, req.Slug, email)
	if err != nil {
		return authapi.Session{}, err
	}
	hash := ""
	if a != nil {
		hash = a.PasswordHash
	}
	if !passwords.Verify(hash, req.Password) || a == nil || a.Disabled {
		return authapi.Session{}, errBadCredentials
	}
	return s.expSession(a, sa.TTL())
}

// expOwner checks that actor is slug's owner or an administrator: only
// they manage the experiment's accounts. As everywhere, the token decides,
// never the email beside it.
func (s *Service) expOwner(ctx context.Context, actor authapi.Actor, slug string) (authapi.Actor, error) {
	return s.ownerOf(ctx, actor, slug, "its accounts")
}

// ownerOf checks that actor is slug's owner or an administrator, who alone
// manage what (named in the refusal).
func (s *Service) ownerOf(ctx context.Context, actor authapi.Actor, slug, what string) (authapi.Actor, error) {
	cl, err := s.identity.Claims(actor.Token)
	if err != nil {
		return authapi.Actor{}, err
	}
	if !slugSyntax.MatchString(slug) {
		return authapi.Actor{}, apierr.New(apierr.CodeValidationFailed, "slug %q is not a slug", slug).OnField("/slug")
	}
	cfg, err := s.d.Store.Experiments().Get(ctx, slug)
	if err != nil {
		return authapi.Actor{}, fmt.Errorf("read experiment %s: %w", slug, err)
	}
	admin := cl.RoleInScope(authz.RoleAdmin) && s.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess)
	if cfg == nil {
		return authapi.Actor{}, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
	}
	// A personal token made without the developer role does not manage
	// even its user's own experiments.
	if !admin && !(strings.EqualFold(cfg.OwnerEmail, cl.Email) && cl.RoleInScope(authz.RoleDeveloper)) {
		return authapi.Actor{}, apierr.New(apierr.CodeForbidden, "only the experiment's owner and administrators manage %s", what)
	}
	return authapi.Actor{Email: cl.Email, RequestID: actor.RequestID}, nil
}

func expPublic(a *store.ExpAccount) authapi.ExpUser {
	return authapi.ExpUser{ID: a.UID, Slug: a.Slug, Email: a.Email, Kind: a.Kind, Role: a.Role, Disabled: a.Disabled, CreatedAt: a.CreatedAt}
}

func (s *Service) expUsersList(ctx context.Context, req authapi.ExpUsersList) (authapi.ExpUsers, error) {
	if _, err := s.expOwner(ctx, req.Actor, req.Slug); err != nil {
		return authapi.ExpUsers{}, err
	}
	// The owner sees the demo accounts as soon as the version is stored.
	if _, _, err := s.subAuth(ctx, req.Slug); err != nil && apierr.From(err).Code != apierr.CodeNotFound {
		return authapi.ExpUsers{}, err
	}
	list, err := s.d.Store.ExpAccounts().List(ctx, req.Slug)
	if err != nil {
		return authapi.ExpUsers{}, err
	}
	out := authapi.ExpUsers{Users: make([]authapi.ExpUser, 0, len(list))}
	for i := range list {
		out.Users = append(out.Users, expPublic(&list[i]))
	}
	return out, nil
}

func (s *Service) expUserUpdate(ctx context.Context, req authapi.ExpUserUpdate) (authapi.ExpUser, error) {
	actor, err := s.expOwner(ctx, req.Actor, req.Slug)
	if err != nil {
		return authapi.ExpUser{}, err
	}
	if req.Disabled == nil {
		return authapi.ExpUser{}, apierr.New(apierr.CodeValidationFailed, "nothing to change: give disabled").OnField("/disabled")
	}
	a, err := s.d.Store.ExpAccounts().SetDisabled(ctx, req.Slug, req.ID, *req.Disabled)
	if err != nil {
		return authapi.ExpUser{}, err
	}
	if a == nil {
		return authapi.ExpUser{}, apierr.New(apierr.CodeNotFound, "experiment %s has no account %q", req.Slug, req.ID)
	}
	// Every edge refuses the account's older tokens within a second.
	if err := authn.SetUserVersion(ctx, s.versions, a.UID, a.TokenVersion); err != nil {
		return authapi.ExpUser{}, err
	}
	if err := audit(ctx, s.d.Store, actor, "experiment_user.update", req.Slug+"/"+a.Email, map[string]any{"disabled": a.Disabled}); err != nil {
		return authapi.ExpUser{}, err
	}
	return expPublic(a), nil
}

func (s *Service) expUserDelete(ctx context.Context, req authapi.ExpUserDelete) (authapi.Empty, error) {
	actor, err := s.expOwner(ctx, req.Actor, req.Slug)
	if err != nil {
		return authapi.Empty{}, err
	}
	a, err := s.d.Store.ExpAccounts().Delete(ctx, req.Slug, req.ID)
	if err != nil {
		return authapi.Empty{}, err
	}
	if a == nil {
		return authapi.Empty{}, apierr.New(apierr.CodeNotFound, "experiment %s has no account %q", req.Slug, req.ID)
	}
	// The ID is never given again; a version past every token ends them.
	if err := authn.SetUserVersion(ctx, s.versions, a.UID, a.TokenVersion+1); err != nil {
		return authapi.Empty{}, err
	}
	return authapi.Empty{}, audit(ctx, s.d.Store, actor, "experiment_user.delete", req.Slug+"/"+a.Email, nil)
}
