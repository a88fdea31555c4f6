package auth

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
)

// Personal API tokens (authn/personal.go): a user's long-lived tokens for
// scripts. The store holds each token's SHA-256 and never its secret.

// tokenOwner is whom a token request is for: the caller, or for an
// administrator, the user the request names.
func (s *Service) tokenOwner(a authapi.Actor, email string) (caller *authn.Claims, owner string, admin bool, err error) {
	cl, err := s.identity.Claims(a.Token)
	if err != nil {
		return nil, "", false, err
	}
	if cl.Kind != "" {
		return nil, "", false, apierr.New(apierr.CodeForbidden, "only platform users have API tokens")
	}
	admin = cl.RoleInScope(authz.RoleAdmin) && s.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess)
	if email == "" {
		return cl, cl.Email, admin, nil
	}
	if !admin {
		return nil, "", false, apierr.New(apierr.CodeForbidden, "administrators only")
	}
	owner, err = NormalizeEmail(email)
	return cl, owner, admin, err
}

func (s *Service) tokensCreate(ctx context.Context, req authapi.TokenCreate) (authapi.TokenCreated, error) {
	cl, email, _, err := s.tokenOwner(req.Actor, "")
	if err != nil {
		return authapi.TokenCreated{}, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > authapi.TokenNameMax || !utf8.ValidString(name) || strings.ContainsFunc(name, isControl) {
		return authapi.TokenCreated{}, apierr.New(apierr.CodeValidationFailed, "name must be 1 to %d characters, without control characters", authapi.TokenNameMax).OnField("/name")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var expires *time.Time
	if req.ExpiresInDays != nil {
		d := *req.ExpiresInDays
		if d < 1 || d > authapi.TokenExpiryDaysMax {
			return authapi.TokenCreated{}, apierr.New(apierr.CodeValidationFailed, "expires_in_days must be 1 to %d", authapi.TokenExpiryDaysMax).OnField("/expires_in_days")
		}
		at := now.AddDate(0, 0, d)
		expires = &at
	}
	u, err := s.users.get(ctx, email)
	if err != nil {
		return authapi.TokenCreated{}, err
	}
	if u == nil || u.Disabled || u.UID != cl.Subject {
		return authapi.TokenCreated{}, apierr.New(apierr.CodeUnauthenticated, "the account is disabled or gone; sign in again")
	}
	// What the caller may give away: the user's roles, and no more than a
	// personal token's when one is asking.
	held := []string{}
	for _, r := range u.Roles {
		if cl.RoleInScope(r) {
			held = append(held, r)
		}
	}
	roles := held
	if req.Roles != nil {
		for _, r := range req.Roles {
			if !authz.KnownRole(r) {
				return authapi.TokenCreated{}, apierr.New(apierr.CodeValidationFailed, "unknown role %q (roles: admin, developer, user, demo)", r).OnField("/roles")
			}
			if !contains(held, r) {
				return authapi.TokenCreated{}, apierr.New(apierr.CodeValidationFailed, "you do not hold the role %q, so a token of yours cannot carry it", r).OnField("/roles")
			}
		}
		roles = dedupe(req.Roles)
	}
	list, err := s.tokens.ofUser(ctx, email)
	if err != nil {
		return authapi.TokenCreated{}, err
	}
	live := 0
	for i := range list {
		if !list[i].expired(now) {
			live++
		}
	}
	if live >= authapi.TokensPerUserMax {
		return authapi.TokenCreated{}, apierr.New(apierr.CodeConflict, "you have %d API tokens, the most one may hold; revoke one first", live)
	}
	id, hash, secret, err := authn.NewPersonal()
	if err != nil {
		return authapi.TokenCreated{}, err
	}
	t := &apiToken{ID: id, User: email, UID: u.UID, Name: name, Hash: hash, Roles: nonNil(roles), CreatedAt: now, ExpiresAt: expires}
	if err := s.tokens.insert(ctx, t); err != nil {
		return authapi.TokenCreated{}, err
	}
	actor := authapi.Actor{Email: cl.Email, RequestID: req.Actor.RequestID}
	if err := audit(ctx, s.d.Store, actor, "token.create", email, map[string]any{"id": id, "name": name, "roles": t.Roles}); err != nil {
		return authapi.TokenCreated{}, err
	}
	return authapi.TokenCreated{Token: secret, ID: id, Name: name, Roles: t.Roles, CreatedAt: now, ExpiresAt: expires}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func (s *Service) tokensList(ctx context.Context, req authapi.TokensList) (authapi.Tokens, error) {
	_, email, _, err := s.tokenOwner(req.Actor, req.Email)
	if err != nil {
		return authapi.Tokens{}, err
	}
	list, err := s.tokens.ofUser(ctx, email)
	if err != nil {
		return authapi.Tokens{}, err
	}
	out := authapi.Tokens{Tokens: make([]authapi.Token, 0, len(list))}
	for i := range list {
		out.Tokens = append(out.Tokens, list[i].public())
	}
	return out, nil
}

// tokensRevoke marks the token revoked and puts its ID on the deny-list,
// which every edge watches: its access tokens stop working at once, and
// the deny-list entry outlives the last of them.
func (s *Service) tokensRevoke(ctx context.Context, req authapi.TokenRevoke) (authapi.Empty, error) {
	cl, email, admin, err := s.tokenOwner(req.Actor, req.Email)
	if err != nil {
		return authapi.Empty{}, err
	}
	notFound := apierr.New(apierr.CodeNotFound, "no API token %q", req.ID)
	if len(req.ID) > 64 {
		return authapi.Empty{}, notFound
	}
	t, err := s.tokens.get(ctx, req.ID)
	if err != nil {
		return authapi.Empty{}, err
	}
	// Another user's token is as unknown as a made-up ID, but to an
	// administrator; an administrator naming a user must name its owner.
	if t == nil || t.RevokedAt != nil || (t.User != email && (!admin || req.Email != "")) {
		return authapi.Empty{}, notFound
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.tokens.revoke(ctx, t.ID, now); err != nil {
		return authapi.Empty{}, err
	}
	if err := authn.Revoke(ctx, s.revoked, t.ID, now.Add(authn.PersonalAccessTTL+time.Minute)); err != nil {
		return authapi.Empty{}, err
	}
	actor := authapi.Actor{Email: cl.Email, RequestID: req.Actor.RequestID}
	return authapi.Empty{}, audit(ctx, s.d.Store, actor, "token.revoke", t.User, map[string]any{"id": t.ID, "name": t.Name})
}

// missingHash is compared against when no token has the presented ID, so
// that an unknown ID and a wrong secret cost the same.
var missingHash = authn.HashPersonalSecret("no such token")

// tokensExchange checks a personal token and mints its access token: the
// token's roles that its user still holds, the user's current token
// version (a role change or a disabled account ends it), and the token's ID
// (revoking the token ends it).
func (s *Service) tokensExchange(ctx context.Context, req authapi.TokenExchange) (authapi.TokenAccess, error) {
	bad := apierr.New(apierr.CodeUnauthenticated, "the API token is not valid")
	id, secret, ok := authn.ParsePersonal(req.Token)
	var t *apiToken
	if ok {
		var err error
		if t, err = s.tokens.get(ctx, id); err != nil {
			return authapi.TokenAccess{}, err
		}
	}
	want := missingHash
	if t != nil {
		want = t.Hash
	}
	match := subtle.ConstantTimeCompare([]byte(authn.HashPersonalSecret(secret)), []byte(want)) == 1
	if !ok || t == nil || !match {
		return authapi.TokenAccess{}, bad
	}
	now := time.Now()
	switch {
	case t.RevokedAt != nil:
		return authapi.TokenAccess{}, apierr.New(apierr.CodeTokenRevoked, "this API token was revoked")
	case t.expired(now):
		return authapi.TokenAccess{}, apierr.New(apierr.CodeUnauthenticated, "this API token has expired")
	}
	u, err := s.users.get(ctx, t.User)
	if err != nil {
		return authapi.TokenAccess{}, err
	}
	if u == nil || u.UID != t.UID || u.Disabled {
		return authapi.TokenAccess{}, apierr.New(apierr.CodeUnauthenticated, "the account of this API token is disabled or gone")
	}
	roles := []string{}
	for _, r := range t.Roles {
		if contains(u.Roles, r) {
			roles = append(roles, r)
		}
	}
	expires := now.Add(authn.PersonalAccessTTL)
	if t.ExpiresAt != nil && t.ExpiresAt.Before(expires) {
		expires = *t.ExpiresAt
	}
	token, c, err := s.signer.MintPersonal(authn.Subject{ID: u.UID, Email: u.Email, Roles: roles, TokenVersion: u.TokenVersion, PAT: t.ID}, now, expires)
	if err != nil {
		return authapi.TokenAccess{}, err
	}
	s.touchToken(ctx, t.ID, now)
	return authapi.TokenAccess{Token: token, ExpiresAt: c.ExpiresAt.Time}, nil
}

// touchToken records a use unless one within lastUseEvery is recorded; a
// failure costs only the record, never the request.
func (s *Service) touchToken(ctx context.Context, id string, now time.Time) {
	if err := s.tokens.touch(ctx, id, now.UTC().Truncate(time.Millisecond)); err != nil {
		s.d.Log.WarnContext(ctx, "record token use", "token_id", id, "err", err)
	}
}
