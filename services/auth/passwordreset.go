package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// Password recovery (authapi.EndpointPasswordReset): an administrator
// resets a user's password and passes the one-time code on; the user
// chooses the new password with it. `gnome admin reset-password` sets a
// password directly, on the server's machine (SetPassword).

func resetHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// resetPassword ends the user's password and sessions and issues a code.
// The old password stops working at once: a reset is also what an
// administrator does for an account that may be in someone else's hands.
func (s *Service) resetPassword(ctx context.Context, req authapi.PasswordReset) (authapi.PasswordResetIssued, error) {
	actor, err := s.admin(req.Actor)
	if err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return authapi.PasswordResetIssued{}, fmt.Errorf("make reset code: %w", err)
	}
	code := base64.RawURLEncoding.EncodeToString(buf)
	u, err := s.users.update(ctx, email, func(cur *user) (bool, error) {
		if cur.Disabled {
			return false, apierr.New(apierr.CodeConflict, "the account %s is disabled: enable it first", email)
		}
		cur.PasswordHash = ""
		return true, nil
	})
	if err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	if err := s.publishVersion(ctx, u); err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := passwordReset{Hash: resetHash(code), Email: email, UID: u.UID, CreatedBy: actor.Email, CreatedAt: now, ExpiresAt: now.Add(authapi.ResetTTL)}
	// One code per account: a new reset replaces an unused one.
	if err := (resets{s.d.Store.Collection(resetsCollection)}).replace(ctx, r); err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	if err := audit(ctx, s.d.Store, actor, "user.password_reset", email, map[string]any{"expires_at": r.ExpiresAt}); err != nil {
		return authapi.PasswordResetIssued{}, err
	}
	return authapi.PasswordResetIssued{Email: email, Code: code, ExpiresAt: r.ExpiresAt}, nil
}

var errResetCode = apierr.New(apierr.CodeGone, "this reset link is not valid: it expired, was used, or was replaced by a newer one; ask an administrator for a new one")

// completeReset sets the new password of a code's account, once. An
// unknown, used and expired code answer alike.
func (s *Service) completeReset(ctx context.Context, req authapi.PasswordResetComplete) (authapi.Session, error) {
	if len(req.Code) != authapi.ResetCodeLen {
		return authapi.Session{}, errResetCode
	}
	if _, err := base64.RawURLEncoding.DecodeString(req.Code); err != nil {
		return authapi.Session{}, errResetCode
	}
	if err := passwords.Check(req.New); err != nil {
		return authapi.Session{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/new_password")
	}
	next, err := passwords.Hash(req.New)
	if err != nil {
		return authapi.Session{}, fmt.Errorf("hash password: %w", err)
	}
	// Taking the code out is what uses it: of two requests with the same
	// code, one finds it.
	r, err := (resets{s.d.Store.Collection(resetsCollection)}).take(ctx, resetHash(req.Code))
	if err != nil {
		return authapi.Session{}, err
	}
	if r == nil || !time.Now().Before(r.ExpiresAt) {
		return authapi.Session{}, errResetCode
	}
	u, err := s.users.update(ctx, r.Email, func(cur *user) (bool, error) {
		// A deleted and recreated account is someone else.
		if cur.UID != r.UID || cur.Disabled {
			return false, errResetCode
		}
		cur.PasswordHash = next
		return true, nil
	})
	if err != nil {
		if apierr.From(err).Code == apierr.CodeNotFound {
			return authapi.Session{}, errResetCode
		}
		return authapi.Session{}, err
	}
	if err := s.publishVersion(ctx, u); err != nil {
		return authapi.Session{}, err
	}
	if err := audit(ctx, s.d.Store, authapi.Actor{Email: u.Email}, "user.password", u.Email, map[string]any{"via": "reset"}); err != nil {
		return authapi.Session{}, err
	}
	return s.session(u)
}

// SetPassword sets email's password directly, for `gnome admin
// reset-password` on the server's machine: whoever can read DATA_DIR owns
// the platform anyway. Like a change, it raises the token version (every
// session of the user ends, on every edge that runs) and drops any pending
// reset code; personal API tokens are left alone. Audited as
// user.password with who.
func SetPassword(ctx context.Context, d *svc.Deps, rawEmail, password, who string) (authapi.User, error) {
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return authapi.User{}, err
	}
	if err := passwords.Check(password); err != nil {
		return authapi.User{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/password")
	}
	hash, err := passwords.Hash(password)
	if err != nil {
		return authapi.User{}, fmt.Errorf("hash password: %w", err)
	}
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketUserVersions); err != nil {
		return authapi.User{}, err
	}
	versions, err := d.Topology.Bucket(ctx, bus.BucketUserVersions)
	if err != nil {
		return authapi.User{}, fmt.Errorf("open token versions bucket: %w", err)
	}
	us := users{d.Store.Collection(store.Users)}
	u, err := us.update(ctx, email, func(cur *user) (bool, error) {
		cur.PasswordHash = hash
		return true, nil
	})
	if err != nil {
		return authapi.User{}, err
	}
	if err := authn.SetUserVersion(ctx, versions, u.UID, u.TokenVersion); err != nil {
		return authapi.User{}, err
	}
	if err := (resets{d.Store.Collection(resetsCollection)}).dropFor(ctx, email); err != nil {
		return authapi.User{}, err
	}
	if err := audit(ctx, d.Store, authapi.Actor{Email: who}, "user.password", email, map[string]any{"via": "console"}); err != nil {
		return authapi.User{}, err
	}
	return u.public(), nil
}
