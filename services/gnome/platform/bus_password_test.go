package platform_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
)

func init() {
	maps.Copy(wantErrors, map[string]apierr.Code{"probe-password-wrong": apierr.CodeInvalidCredentials, "probe-reset-gone": apierr.CodeGone})
}

// exercisePassword changes a user's password as the edge does: a wrong
// current password is refused, the right one changes it, and the new
// password signs in.
func exercisePassword(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	sess, err := call(ctx, nc, "password-login", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	actor := authapi.Actor{Email: sess.User.Email, Token: sess.Token, RequestID: "password-change"}
	_, err = call(ctx, nc, "probe-password-wrong", authapi.EndpointPasswordChange, authapi.PasswordChange{Actor: actor, Current: "not it at all", New: "a brand new passphrase"})
	wantCode(t, "a wrong current password", err, apierr.CodeInvalidCredentials)
	next := busAdminPassword + " and more"
	if _, err := call(ctx, nc, "password-change", authapi.EndpointPasswordChange, authapi.PasswordChange{Actor: actor, Current: busAdminPassword, New: next}); err != nil {
		t.Fatalf("password.change: %v", err)
	}
	// Back as it was, for the exercises after this one.
	fresh, err := call(ctx, nc, "password-login-new", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: next})
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	back := authapi.Actor{Email: fresh.User.Email, Token: fresh.Token, RequestID: "password-back"}
	if _, err := call(ctx, nc, "password-back", authapi.EndpointPasswordChange, authapi.PasswordChange{Actor: back, Current: next, New: busAdminPassword}); err != nil {
		t.Fatalf("password.change back: %v", err)
	}

	// An administrator resets another's password; the code sets a new one once.
	again, err := call(ctx, nc, "password-login-again", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	admin := authapi.Actor{Email: again.User.Email, Token: again.Token, RequestID: "password-reset"}
	if _, err := call(ctx, nc, "password-reset-user", authapi.EndpointUsersCreate, authapi.CreateUser{Actor: admin, Email: "forgetful@example.com", Password: "a forgettable passphrase"}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	issued, err := call(ctx, nc, "password-reset", authapi.EndpointPasswordReset, authapi.PasswordReset{Actor: admin, Email: "forgetful@example.com"})
	if err != nil || len(issued.Code) != authapi.ResetCodeLen {
		t.Fatalf("password.reset: %+v %v", issued, err)
	}
	_, err = call(ctx, nc, "probe-reset-gone", authapi.EndpointPasswordResetComplete, authapi.PasswordResetComplete{Code: strings.Repeat("A", authapi.ResetCodeLen), New: "a remembered passphrase"})
	wantCode(t, "an unknown reset code", err, apierr.CodeGone)
	if _, err := call(ctx, nc, "password-reset-complete", authapi.EndpointPasswordResetComplete, authapi.PasswordResetComplete{Code: issued.Code, New: "a remembered passphrase"}); err != nil {
		t.Fatalf("password.reset.complete: %v", err)
	}
}
