package authapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Password recovery. An administrator resets a user's password: the old
// one stops working and every session of the user ends at once, and the
// answer holds a one-time reset code, shown once, that the administrator
// passes on; the user opens the link with it and chooses a new password
// themselves. The platform sends no mail, so the administrator is the
// channel either way; a link rather than a temporary password means the
// administrator never knows the password the user will use, and there is
// no "must change at next sign-in" state to enforce on every route.
var (
	EndpointPasswordReset         = contract.Endpoint[PasswordReset, PasswordResetIssued]{Service: Service, Name: "password.reset"}
	EndpointPasswordResetComplete = contract.Endpoint[PasswordResetComplete, Session]{Service: Service, Name: "password.reset.complete"}
)

// ResetTTL is how long a reset code works if it is not used.
const ResetTTL = 24 * time.Hour

// ResetCodeLen is the length of a reset code: 32 random bytes, base64url.
const ResetCodeLen = 43

// PasswordReset is an administrator (Actor's token) resetting Email's
// password.
type PasswordReset struct {
	Actor Actor  `json:"actor"`
	Email string `json:"email"`
}

// PasswordResetIssued is the reset code, shown this once: the auth service
// keeps only its SHA-256. A new reset replaces an unused code.
type PasswordResetIssued struct {
	Email     string    `json:"email"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PasswordResetComplete is anyone holding a reset code choosing the
// account's new password. The code works once; the reply signs the user in.
type PasswordResetComplete struct {
	Code string `json:"code"`
	New  string `json:"new_password"`
}

// ResetPassword resets a user's password (administrators).
func (c Client) ResetPassword(ctx context.Context, r PasswordReset) (PasswordResetIssued, error) {
	return EndpointPasswordReset.Call(ctx, c.T, r)
}

// CompleteReset sets a new password with a reset code.
func (c Client) CompleteReset(ctx context.Context, r PasswordResetComplete) (Session, error) {
	return EndpointPasswordResetComplete.Call(ctx, c.T, r)
}
