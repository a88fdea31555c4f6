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
	return s.MintExperimentLinked(from, slug, "", now)
}

// MintExperimentLinked is MintExperiment for a platform user linked to
// the experiment account linked (sub_auth link_platform_users): the token
// stays the platform user's (its subject, version and session), and
// carries the account's ID for the actor.
func (s *Signer) MintExperimentLinked(from *Claims, slug, linked string, now time.Time) (string, *Claims, error) {
	if from == nil || from.ExpiresAt == nil || slug == "" {
		return "", nil, errors.New("an experiment token needs a platform session and a slug")
	}
	if from.Session != "" || from.Kind != "" {
		return "", nil, errors.New("an experiment token cannot be handed off again")
	}
	if from.PAT != "" {
		// Its experiment token would outlive the personal token's revocation.
		return "", nil, errors.New("a personal API token is not handed off to experiments")
	}
	expires := now.Add(ExperimentTTL)
	if from.ExpiresAt.Time.Before(expires) {
		expires = from.ExpiresAt.Time
	}
	sub := Subject{ID: from.Subject, Email: from.Email, Roles: from.Roles, TokenVersion: from.TokenVersion, Linked: linked}
	return s.mint(sub, ExperimentAudience(slug), from.ID, now, expires)
}

// VerifyExperiment checks a token presented on slug's origin: an
// experiment token of that slug, alive, and its platform session not ended.
func (v *Verifier) VerifyExperiment(token, slug string, now time.Time) (*Claims, error) {
	return v.verify(token, ExperimentAudience(slug), now)
}

// MaxExperimentUserTTL bounds an experiment account's session, whatever
// its manifest's session_ttl_seconds asks for.
const MaxExperimentUserTTL = 30 * 24 * time.Hour

// MintExperimentUser signs a session of an account that belongs to slug's
// experiment alone (sub_auth experiment_users): its audience is slug's, so
// it is good on that origin only, and its Kind tells every reader it is no
// platform user. sub.ID is the account's ID; its TokenVersion ends every
// session at once when bumped (disabled, deleted).
func (s *Signer) MintExperimentUser(sub Subject, slug string, ttl time.Duration, now time.Time) (string, *Claims, error) {
	if slug == "" || sub.ID == "" {
		return "", nil, errors.New("an experiment account's token needs a slug and an account")
	}
	if ttl <= 0 || ttl > MaxExperimentUserTTL {
		ttl = MaxExperimentUserTTL
	}
	return s.mintKind(sub, KindExperimentUser, ExperimentAudience(slug), now, now.Add(ttl))
}

// MintExperimentDemo signs a session of a demo account of slug's
// experiment (sub_auth demo_users): as MintExperimentUser, of kind
// KindDemo, so that the actor and the edge tell it from a real account.
func (s *Signer) MintExperimentDemo(sub Subject, slug string, ttl time.Duration, now time.Time) (string, *Claims, error) {
	if slug == "" || sub.ID == "" {
		return "", nil, errors.New("a demo account's token needs a slug and an account")
	}
	if ttl <= 0 || ttl > MaxExperimentUserTTL {
		ttl = MaxExperimentUserTTL
	}
	return s.mintKind(sub, KindDemo, ExperimentAudience(slug), now, now.Add(ttl))
}

// MaxParticipantTTL bounds a study-link participant's session.
const MaxParticipantTTL = 30 * 24 * time.Hour

// MintParticipant signs the session of a participant who opened a study
// link of slug: sub.ID is their participant ID, sub.Run their run.
func (s *Signer) MintParticipant(sub Subject, slug string, ttl time.Duration, now time.Time) (string, *Claims, error) {
	if slug == "" || sub.ID == "" || sub.Run == nil || sub.Run.ID == "" {
		return "", nil, errors.New("a participant's token needs a slug, a participant and a run")
	}
	if ttl <= 0 || ttl > MaxParticipantTTL {
		ttl = MaxParticipantTTL
	}
	return s.mintKind(sub, KindParticipant, ExperimentAudience(slug), now, now.Add(ttl))
}
