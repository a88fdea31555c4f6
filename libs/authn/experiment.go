package authn

import (
	"errors"
	"time"
)

// An experiment token is what an experiment's own origin knows of a visitor
// signed in on the platform: the same user, for one experiment only (its
// audience names the slug), tied to the platform session it was handed off
// from (Claims.Session), so signing out of the platform ends it too. It is
// never good on the platform, and one experiment's token is never good on
// another's origin: a page of experiment A that somehow obtained it could
// act as the visitor on A alone.

// ExperimentAudience is the audience of slug's experiment tokens.
func ExperimentAudience(slug string) string { return "gnome:experiment:" + slug }

// ExperimentTTL bounds an experiment token's life; it never outlives the
// platform token it was handed off from.
const ExperimentTTL = 12 * time.Hour

// MintExperiment signs slug's experiment token for the holder of the
// platform token whose claims are from.
func (s *Signer) MintExperiment(from *Claims, slug string, now time.Time) (string, *Claims, error) {
	if from == nil || from.ExpiresAt == nil || slug == "" {
		return "", nil, errors.New("an experiment token needs a platform session and a slug")
	}
	if from.Session != "" {
		return "", nil, errors.New("an experiment token cannot be handed off again")
	}
	expires := now.Add(ExperimentTTL)
	if from.ExpiresAt.Time.Before(expires) {
		expires = from.ExpiresAt.Time
	}
	sub := Subject{ID: from.Subject, Email: from.Email, Roles: from.Roles, TokenVersion: from.TokenVersion}
	return s.mint(sub, ExperimentAudience(slug), from.ID, now, expires)
}

// VerifyExperiment checks a token presented on slug's origin: an
// experiment token of that slug, alive, and its platform session not ended.
func (v *Verifier) VerifyExperiment(token, slug string, now time.Time) (*Claims, error) {
	return v.verify(token, ExperimentAudience(slug), now)
}
