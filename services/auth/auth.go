// Package auth is the auth service: it owns users, tokens and roles, and
// answers sign-in, sign-up, sign-out and administration over NATS. It alone
// holds the token signing key.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// Name is the service's name on the bus.
const Name = authapi.Service

// Service is one instance of the auth service.
type Service struct {
	svc.Base
	d        *svc.Deps
	users    users
	tokens   apiTokens
	signer   *authn.Signer
	enforcer *authz.Enforcer
	revoked  jetstream.KeyValue
	versions jetstream.KeyValue
	// demo remembers the experiment versions whose demo accounts exist.
	demo demoSeen
	// identity verifies the tokens of administrative requests and of the
	// hand-off to experiments (handoff.go).
	identity *svc.Identity
	// Out receives the one-time admin password announcement (stdout).
	Out io.Writer
}

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{d: d, users: users{d.Store.Collection(store.Users)}, tokens: apiTokens{d.Store.Collection(tokensCollection)}, Out: os.Stdout}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "accounts, tokens and roles",
		Provision:   s.provision,
		Endpoints:   s.endpoints,
	}
	return s
}

func (s *Service) provision(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketRevokedTokens, bus.BucketAuthKeys, bus.BucketUserVersions); err != nil {
		return err
	}
	if err := d.Store.EnsureIndexes(ctx, store.Users, store.AuditLog); err != nil {
		return err
	}
	if err := s.tokens.ensureIndexes(ctx); err != nil {
		return err
	}
	if err := d.Store.ExpAccounts().EnsureIndexes(ctx); err != nil {
		return err
	}
	if err := d.Store.StudyLinks().EnsureIndexes(ctx); err != nil {
		return err
	}
	key, err := authn.DeriveKey(d.Config.SecretKey)
	if err != nil {
		return fmt.Errorf("SECRET_KEY: %w", err)
	}
	s.signer = authn.NewSigner(key)
	keys, err := d.Topology.Bucket(ctx, bus.BucketAuthKeys)
	if err != nil {
		return fmt.Errorf("open keys bucket: %w", err)
	}
	kid, pub := s.signer.Public()
	if err := authn.PublishKey(ctx, keys, kid, pub); err != nil {
		return err
	}
	if s.revoked, err = d.Topology.Bucket(ctx, bus.BucketRevokedTokens); err != nil {
		return fmt.Errorf("open deny-list bucket: %w", err)
	}
	if s.versions, err = d.Topology.Bucket(ctx, bus.BucketUserVersions); err != nil {
		return fmt.Errorf("open token versions bucket: %w", err)
	}
	if s.enforcer, err = authz.New(ctx, d.Store.DB, d.NC, d.Log); err != nil {
		return err
	}
	if err := s.enforcer.Seed(); err != nil {
		return err
	}
	// After the key is published, so that the verifier starts knowing it.
	if s.identity, err = d.Identity(ctx); err != nil {
		return err
	}
	if err := s.bootstrapAdmin(ctx); err != nil {
		return err
	}
	return s.bootstrapDemo(ctx)
}

// admin checks that an administrative request comes from an administrator:
// its token must be valid and current, and the shared policy must let the
// token's user into the admin panel, as the edge decides for its routes.
// The actor returned is the token's; the email a message names is ignored,
// so a forged actor changes nothing.
func (s *Service) admin(a authapi.Actor) (authapi.Actor, error) {
	cl, err := s.identity.Claims(a.Token)
	if err != nil {
		return authapi.Actor{}, err
	}
	// A personal token carrying fewer roles than its user gets no more.
	if !cl.RoleInScope(authz.RoleAdmin) || !s.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess) {
		return authapi.Actor{}, apierr.New(apierr.CodeForbidden, "administrators only")
	}
	return authapi.Actor{Email: cl.Email, RequestID: a.RequestID}, nil
}

// Stop leaves the bus and stops watching the policy.
func (s *Service) Stop(ctx context.Context) error {
	err := s.Base.Stop(ctx)
	if s.enforcer != nil {
		s.enforcer.Close()
	}
	return err
}

// bootstrapAdmin makes sure an admin exists: ADMIN_EMAIL, with
// ADMIN_PASSWORD or, in development without one, a random password shown
// once. (Production refuses to start without a strong ADMIN_PASSWORD.)
func (s *Service) bootstrapAdmin(ctx context.Context) error {
	cfg := s.d.Config
	has, err := s.users.anyAdmin(ctx)
	if err != nil || has {
		return err
	}
	email, err := NormalizeEmail(cfg.AdminEmail)
	if err != nil {
		return fmt.Errorf("ADMIN_EMAIL: %w", err)
	}
	if u, err := s.users.get(ctx, email); err != nil {
		return err
	} else if u != nil {
		// The account exists but lost its admin role: give it back.
		_, err := s.setRoles(ctx, authapi.Actor{Email: "bootstrap"}, email, func(roles []string) ([]string, error) {
			return addRole(roles, authz.RoleAdmin), nil
		})
		return err
	}
	password, generated := cfg.AdminPassword, false
	if password == "" {
		buf := make([]byte, 18)
		_, _ = rand.Read(buf)
		password, generated = base64.RawURLEncoding.EncodeToString(buf), true
	}
	hash, err := passwords.Hash(password)
	if err != nil {
		return fmt.Errorf("hash admin password: %w", err)
	}
	if _, err := s.users.create(ctx, email, hash, []string{authz.RoleAdmin}); err != nil {
		if apierr.From(err).Code == apierr.CodeConflict {
			return nil // another auth instance created it first
		}
		return err
	}
	if err := s.enforcer.SetRoles(email, []string{authz.RoleAdmin}); err != nil {
		return err
	}
	s.d.Log.Info("admin account created", "email", email)
	if generated {
		fmt.Fprintf(s.Out, "\nAn admin account was created: %s\nIts password, shown only this once: %s\nSet ADMIN_PASSWORD to choose it yourself.\n\n", email, password)
	}
	return nil
}

func (s *Service) endpoints(srv *bus.Server) error {
	return srv.Register(
		bus.Endpoint(authapi.EndpointLogin, s.login),
		bus.Endpoint(authapi.EndpointRegister, s.register),
		bus.Endpoint(authapi.EndpointLogout, s.logout),
		bus.Endpoint(authapi.EndpointUsersList, s.listUsers),
		bus.Endpoint(authapi.EndpointUsersCreate, s.createUser),
		bus.Endpoint(authapi.EndpointUsersUpdate, s.updateUser),
		bus.Endpoint(authapi.EndpointRoleGrant, s.grant),
		bus.Endpoint(authapi.EndpointRoleRevoke, s.revoke),
		bus.Endpoint(authapi.EndpointExperimentToken, s.experimentToken),
		bus.Endpoint(authapi.EndpointEndSession, s.endSession),
		bus.Endpoint(authapi.EndpointExpRegister, s.expRegister),
		bus.Endpoint(authapi.EndpointExpLogin, s.expLogin),
		bus.Endpoint(authapi.EndpointExpDemo, s.expDemo),
		bus.Endpoint(authapi.EndpointExpUsersList, s.expUsersList),
		bus.Endpoint(authapi.EndpointExpUsersUpdate, s.expUserUpdate),
		bus.Endpoint(authapi.EndpointExpUsersDelete, s.expUserDelete),
		bus.Endpoint(authapi.EndpointLinksCreate, s.linksCreate),
		bus.Endpoint(authapi.EndpointLinksList, s.linksList),
		bus.Endpoint(authapi.EndpointLinksRevoke, s.linkRevoke),
		bus.Endpoint(authapi.EndpointLinksRuns, s.linksRuns),
		bus.Endpoint(authapi.EndpointLinksOpen, s.linkOpen),
		bus.Endpoint(authapi.EndpointPermsList, s.permsList),
		bus.Endpoint(authapi.EndpointPermsGrant, s.permsGrant),
		bus.Endpoint(authapi.EndpointPermsRevoke, s.permsRevoke),
		bus.Endpoint(authapi.EndpointTokensCreate, s.tokensCreate),
		bus.Endpoint(authapi.EndpointTokensList, s.tokensList),
		bus.Endpoint(authapi.EndpointTokensRevoke, s.tokensRevoke),
		bus.Endpoint(authapi.EndpointTokensExchange, s.tokensExchange),
		bus.Endpoint(authapi.EndpointPasswordChange, s.changePassword),
		bus.Endpoint(authapi.EndpointPasswordReset, s.resetPassword), bus.Endpoint(authapi.EndpointPasswordResetComplete, s.completeReset),
		bus.Endpoint(authapi.EndpointAuditList, s.auditList),
	)
}

var errBadCredentials = apierr.New(apierr.CodeInvalidCredentials, "email or password is wrong")

func (s *Service) session(u *user) (authapi.Session, error) {
	token, c, err := s.signer.Mint(authn.Subject{ID: u.UID, Email: u.Email, Roles: u.Roles, TokenVersion: u.TokenVersion}, time.Now())
	if err != nil {
		return authapi.Session{}, err
	}
	return authapi.Session{Token: token, ExpiresAt: c.ExpiresAt.Time, User: u.public()}, nil
}

// login checks credentials. An unknown email, a disabled account and a wrong
// password give the same answer in about the same time.
func (s *Service) login(ctx context.Context, req authapi.Credentials) (authapi.Session, error) {
	email, err := NormalizeEmail(req.Email)
	if err != nil || req.Password == "" || len(req.Password) > 1024 {
		passwords.Verify("", req.Password)
		return authapi.Session{}, errBadCredentials
	}
	u, err := s.users.get(ctx, email)
	if err != nil {
		return authapi.Session{}, err
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	}
	if !passwords.Verify(hash, req.Password) || u == nil || u.Disabled {
		return authapi.Session{}, errBadCredentials
	}
	return s.session(u)
}

func (s *Service) register(ctx context.Context, req authapi.Credentials) (authapi.Session, error) {
	if !s.d.Config.EnableRegistration {
		return authapi.Session{}, apierr.New(apierr.CodeNotFound, "registration is closed")
	}
	u, err := s.newUser(ctx, req.Email, req.Password, []string{authz.RoleUser})
	if err != nil {
		return authapi.Session{}, err
	}
	return s.session(u)
}

func (s *Service) newUser(ctx context.Context, rawEmail, password string, roles []string) (*user, error) {
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return nil, err
	}
	if err := passwords.Check(password); err != nil {
		return nil, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/password")
	}
	for _, r := range roles {
		if !authz.KnownRole(r) {
			return nil, apierr.New(apierr.CodeValidationFailed, "unknown role %q (roles: admin, developer, user)", r).OnField("/roles")
		}
	}
	hash, err := passwords.Hash(password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u, err := s.users.create(ctx, email, hash, roles)
	if err != nil {
		return nil, err
	}
	if err := s.enforcer.SetRoles(email, roles); err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Service) logout(ctx context.Context, req authapi.Logout) (authapi.Empty, error) {
	if req.TokenID == "" || req.Until.IsZero() {
		return authapi.Empty{}, apierr.New(apierr.CodeBadRequest, "token id and expiry are required")
	}
	return authapi.Empty{}, authn.Revoke(ctx, s.revoked, req.TokenID, req.Until)
}

func (s *Service) listUsers(ctx context.Context, req authapi.ListUsers) (authapi.Users, error) {
	if _, err := s.admin(req.Actor); err != nil {
		return authapi.Users{}, err
	}
	list, err := s.users.list(ctx)
	if err != nil {
		return authapi.Users{}, err
	}
	out := authapi.Users{Users: make([]authapi.User, 0, len(list))}
	for i := range list {
		out.Users = append(out.Users, list[i].public())
	}
	return out, nil
}

func (s *Service) createUser(ctx context.Context, req authapi.CreateUser) (authapi.User, error) {
	var err error
	if req.Actor, err = s.admin(req.Actor); err != nil {
		return authapi.User{}, err
	}
	roles := req.Roles
	if len(roles) == 0 {
		roles = []string{authz.RoleUser}
	}
	u, err := s.newUser(ctx, req.Email, req.Password, dedupe(roles))
	if err != nil {
		return authapi.User{}, err
	}
	if err := audit(ctx, s.d.Store, req.Actor, "user.create", u.Email, map[string]any{"roles": u.Roles}); err != nil {
		return authapi.User{}, err
	}
	return u.public(), nil
}

func (s *Service) updateUser(ctx context.Context, req authapi.UpdateUser) (authapi.User, error) {
	var err error
	if req.Actor, err = s.admin(req.Actor); err != nil {
		return authapi.User{}, err
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.User{}, err
	}
	if req.Disabled == nil {
		return authapi.User{}, apierr.New(apierr.CodeValidationFailed, "nothing to change: give disabled").OnField("/disabled")
	}
	if *req.Disabled && email == req.Actor.Email {
		return authapi.User{}, apierr.New(apierr.CodeConflict, "you cannot disable your own account")
	}
	u, err := s.users.update(ctx, email, func(u *user) (bool, error) {
		changed := u.Disabled != *req.Disabled
		u.Disabled = *req.Disabled
		return changed, nil
	})
	if err != nil {
		return authapi.User{}, err
	}
	if err := s.publishVersion(ctx, u); err != nil {
		return authapi.User{}, err
	}
	if err := audit(ctx, s.d.Store, req.Actor, "user.update", email, map[string]any{"disabled": u.Disabled}); err != nil {
		return authapi.User{}, err
	}
	return u.public(), nil
}

func (s *Service) grant(ctx context.Context, req authapi.RoleChange) (authapi.User, error) {
	var err error
	if req.Actor, err = s.admin(req.Actor); err != nil {
		return authapi.User{}, err
	}
	return s.changeRole(ctx, req, "role.grant", func(roles []string) ([]string, error) {
		return addRole(roles, req.Role), nil
	})
}

func (s *Service) revoke(ctx context.Context, req authapi.RoleChange) (authapi.User, error) {
	var err error
	if req.Actor, err = s.admin(req.Actor); err != nil {
		return authapi.User{}, err
	}
	return s.changeRole(ctx, req, "role.revoke", func(roles []string) ([]string, error) {
		if req.Role == authz.RoleAdmin && sameEmail(req.Email, req.Actor.Email) {
			return nil, apierr.New(apierr.CodeConflict, "you cannot take the admin role from yourself")
		}
		out := roles[:0:0]
		for _, r := range roles {
			if r != req.Role {
				out = append(out, r)
			}
		}
		return out, nil
	})
}

// sameEmail compares two addresses as accounts are keyed: normalised, so
// that "Root@Example.com " in a path is the signed-in root@example.com.
func sameEmail(a, b string) bool {
	na, errA := NormalizeEmail(a)
	nb, errB := NormalizeEmail(b)
	return errA == nil && errB == nil && na == nb
}

func (s *Service) changeRole(ctx context.Context, req authapi.RoleChange, what string, change func([]string) ([]string, error)) (authapi.User, error) {
	if !authz.KnownRole(req.Role) {
		return authapi.User{}, apierr.New(apierr.CodeValidationFailed, "unknown role %q (roles: admin, developer, user)", req.Role).OnField("/role")
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.User{}, err
	}
	req.Email = email
	u, err := s.setRoles(ctx, req.Actor, email, change)
	if err != nil {
		return authapi.User{}, err
	}
	if err := audit(ctx, s.d.Store, req.Actor, what, email, map[string]any{"role": req.Role, "roles": u.Roles}); err != nil {
		return authapi.User{}, err
	}
	return u.public(), nil
}

// setRoles changes a user's roles; a real change ends their sessions and
// reaches every enforcer through the policy watcher.
func (s *Service) setRoles(ctx context.Context, _ authapi.Actor, email string, change func([]string) ([]string, error)) (*user, error) {
	u, err := s.users.update(ctx, email, func(u *user) (bool, error) {
		next, err := change(u.Roles)
		if err != nil {
			return false, err
		}
		next = dedupe(next)
		changed := !sameSet(next, u.Roles)
		u.Roles = next
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.enforcer.SetRoles(email, u.Roles); err != nil {
		return nil, err
	}
	return u, s.publishVersion(ctx, u)
}

func (s *Service) publishVersion(ctx context.Context, u *user) error {
	return authn.SetUserVersion(ctx, s.versions, u.UID, u.TokenVersion)
}

func addRole(roles []string, r string) []string {
	if contains(roles, r) {
		return roles
	}
	return append(append([]string{}, roles...), r)
}

func dedupe(in []string) []string {
	out := []string{}
	for _, r := range in {
		if !contains(out, r) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !contains(b, x) {
			return false
		}
	}
	return true
}
