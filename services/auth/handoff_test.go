package auth_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

// The hand-off to an experiment's origin: a valid platform token buys an
// experiment token of that slug alone; signing out on the experiment's
// origin ends the platform session too; nothing else buys one.
func TestExperimentTokens(t *testing.T) {
	w := start(t)
	root := w.login(rootEmail, rootPassword)
	pc := parse(t, root)
	sess, err := w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: root, Slug: "clicks"})
	if err != nil {
		t.Fatal(err)
	}
	if sess.User.Email != rootEmail || sess.Token == "" || sess.ExpiresAt.After(pc.ExpiresAt.Time) {
		t.Fatalf("experiment session: %+v", sess)
	}
	v := verifierOf(t)
	ec, err := v.VerifyExperiment(sess.Token, "clicks", time.Now())
	if err != nil || ec.Session != pc.ID {
		t.Fatalf("the experiment token: %v %+v", err, ec)
	}
	if _, err := v.Verify(sess.Token, time.Now()); err == nil {
		t.Error("the experiment token passes as a platform token")
	}

	// Bad requests mint nothing.
	wantCode(t, "no token", errOf(w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Slug: "clicks"})), apierr.CodeUnauthenticated)
	wantCode(t, "a garbage token", errOf(w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: "a.b.c", Slug: "clicks"})), apierr.CodeUnauthenticated)
	wantCode(t, "an experiment token handed off again", errOf(w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: sess.Token, Slug: "other"})), apierr.CodeUnauthenticated)
	for _, slug := range []string{"", "UPPER", "a/b", "x.y"} {
		wantCode(t, "slug "+slug, errOf(w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: root, Slug: slug})), apierr.CodeValidationFailed)
	}
	wantCode(t, "ending another experiment's session", w.edge.EndSession(w.ctx, authapi.EndSession{Token: sess.Token, Slug: "other"}), apierr.CodeUnauthenticated)

	// Signing out on the experiment's origin ends the platform token too.
	if err := w.edge.EndSession(w.ctx, authapi.EndSession{Token: sess.Token, Slug: "clicks"}); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, w, "the platform token after signing out on an experiment", authapi.Actor{Email: rootEmail, Token: root}, apierr.CodeTokenRevoked)
	// Already ended: not an error; and the ended session mints nothing.
	if err := w.edge.EndSession(w.ctx, authapi.EndSession{Token: sess.Token, Slug: "clicks"}); err != nil {
		t.Errorf("ending an ended session: %v", err)
	}
	wantCode(t, "a signed-out token", errOf(w.edge.ExperimentToken(w.ctx, authapi.ExperimentTokenRequest{Token: root, Slug: "clicks"})), apierr.CodeTokenRevoked)
}

func errOf(_ authapi.Session, err error) error { return err }

func verifierOf(t *testing.T) *authn.Verifier {
	t.Helper()
	v := authn.NewVerifier()
	key, err := authn.DeriveKey("test-secret-key-0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := authn.NewSigner(key).Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	return v
}
