package auth

import (
	"context"
	"fmt"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// changePassword changes the caller's own password once the current one
// is proven. Raising the token version ends every session of the user (a
// stolen cookie too); the caller gets a new one. Personal API tokens are
// not sessions: they keep working, and are revoked on their own.
func (s *Service) changePassword(ctx context.Context, req authapi.PasswordChange) (authapi.Session, error) {
	cl, err := s.identity.Claims(req.Actor.Token)
	if err != nil {
		return authapi.Session{}, err
	}
	if cl.Kind != "" {
		return authapi.Session{}, apierr.New(apierr.CodeForbidden, "an experiment's account has no platform password")
	}
	if req.Current == "" || len(req.Current) > 1024 {
		return authapi.Session{}, apierr.New(apierr.CodeValidationFailed, "the current password is required").OnField("/current_password")
	}
	if err := passwords.Check(req.New); err != nil {
		return authapi.Session{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/new_password")
	}
	u, err := s.users.get(ctx, cl.Email)
	if err != nil {
		return authapi.Session{}, err
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	}
	if !passwords.Verify(hash, req.Current) || u == nil || u.Disabled {
		return authapi.Session{}, apierr.New(apierr.CodeInvalidCredentials, "the current password is wrong").OnField("/current_password")
	}
	next, err := passwords.Hash(req.New)
	if err != nil {
		return authapi.Session{}, fmt.Errorf("hash password: %w", err)
	}
	u, err = s.users.update(ctx, cl.Email, func(cur *user) (bool, error) {
		if cur.PasswordHash != hash {
			return false, apierr.New(apierr.CodeConflict, "the password changed meanwhile; sign in again")
		}
		cur.PasswordHash = next
		return true, nil
	})
	if err != nil {
		return authapi.Session{}, err
	}
	if err := s.publishVersion(ctx, u); err != nil {
		return authapi.Session{}, err
	}
	actor := authapi.Actor{Email: cl.Email, RequestID: req.Actor.RequestID}
	if err := audit(ctx, s.d.Store, actor, "user.password", cl.Email, nil); err != nil {
		return authapi.Session{}, err
	}
	return s.session(u)
}
