package auth_test

import (
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
)

// A password change needs the current password, refuses a weak new one
// naming the field, ends every session the user had (the one that asked
// too, which gets a new one), keeps personal tokens working, and cannot be
// replayed with a session it ended.
func TestChangePassword(t *testing.T) {
	w := start(t)
	root := authapi.Actor{Email: rootEmail, Token: w.login(rootEmail, rootPassword)}
	const email, password, next = "carol@example.com", "carol's first passphrase", "carol's second passphrase"
	if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: root, Email: email, Password: password}); err != nil {
		t.Fatal(err)
	}
	carol := authapi.Actor{Email: email, Token: w.login(email, password)}
	other := w.login(email, password) // another device's session
	pat, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: carol, Name: "script"})
	if err != nil {
		t.Fatal(err)
	}

	_, err = w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: carol, Current: "not it", New: next})
	wantCode(t, "a wrong current password", err, apierr.CodeInvalidCredentials)
	if f := apierr.From(err).Field; f != "/current_password" {
		t.Errorf("wrong current password: field %q", f)
	}
	_, err = w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: carol, Current: password, New: "password"})
	wantCode(t, "a common new password", err, apierr.CodeValidationFailed)
	if f := apierr.From(err).Field; f != "/new_password" {
		t.Errorf("weak new password: field %q", f)
	}
	_, err = w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: authapi.Actor{Email: email, Token: "forged"}, Current: password, New: next})
	wantCode(t, "a forged caller token", err, apierr.CodeUnauthenticated)
	// The email a message names is ignored: the token says whose password.
	_, err = w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: authapi.Actor{Email: rootEmail, Token: carol.Token}, Current: rootPassword, New: next})
	wantCode(t, "another user's email beside one's token", err, apierr.CodeInvalidCredentials)

	sess, err := w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: carol, Current: password, New: next})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Token == "" || sess.User.Email != email {
		t.Fatalf("the new session: %+v", sess)
	}
	if _, err := w.edge.Login(w.ctx, authapi.Credentials{Email: email, Password: password}); apierr.From(err).Code != apierr.CodeInvalidCredentials {
		t.Errorf("the old password still signs in: %v", err)
	}
	w.login(email, next)
	// Every session from before ends, the asking one's too: replaying it
	// changes nothing.
	for name, tok := range map[string]string{"the asking session": carol.Token, "another device": other} {
		_, err := w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: authapi.Actor{Email: email, Token: tok}, Current: next, New: "an attacker's passphrase here"})
		if err == nil {
			t.Errorf("%s still acts after the change", name)
		}
	}
	if _, err := w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: pat.Token}); err != nil {
		t.Errorf("the personal token stopped working: %v", err)
	}
	if _, err := w.edge.ChangePassword(w.ctx, authapi.PasswordChange{Actor: authapi.Actor{Email: email, Token: sess.Token}, Current: next, New: password + " again"}); err != nil {
		t.Errorf("the new session cannot change it again: %v", err)
	}
}
