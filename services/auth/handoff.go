package auth

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

// The auth service verifies the tokens it is shown with the same verifier
// every edge runs (keys, deny-list and token versions from the bus; see
// svc.Identity), so a token revoked anywhere is refused here within the
// same second.

var slugSyntax = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// tokenError is why a presented token is not accepted.
func tokenError(err error) error {
	if errors.Is(err, authn.ErrRevoked) {
		return apierr.New(apierr.CodeTokenRevoked, "this session has ended; sign in again")
	}
	return apierr.New(apierr.CodeUnauthenticated, "the token is not valid; sign in again")
}

// experimentToken hands the holder of a platform token to one experiment's
// origin: the same user, good for that slug only, ending with the session.
func (s *Service) experimentToken(ctx context.Context, req authapi.ExperimentTokenRequest) (authapi.Session, error) {
	if !slugSyntax.MatchString(req.Slug) {
		return authapi.Session{}, apierr.New(apierr.CodeValidationFailed, "slug %q is not a slug", req.Slug).OnField("/slug")
	}
	now := time.Now()
	from, err := s.identity.Verifier().Verify(req.Token, now)
	if err != nil {
		return authapi.Session{}, tokenError(err)
	}
	if from.Kind != "" || from.Session != "" || from.PAT != "" {
		// MintExperiment refuses these too; no account is linked first.
		return authapi.Session{}, apierr.New(apierr.CodeUnauthenticated, "the token is not valid; sign in again")
	}
	linked, err := s.linkPlatformUser(ctx, req.Slug, from)
	if err != nil {
		return authapi.Session{}, err
	}
	token, c, err := s.signer.MintExperimentLinked(from, req.Slug, linked, now)
	if err != nil {
		return authapi.Session{}, err
	}
	return authapi.Session{Token: token, ExpiresAt: c.ExpiresAt.Time, User: authapi.User{
		ID: c.Subject, Email: c.Email, Roles: append([]string{}, c.Roles...),
	}}, nil
}

// endSession revokes a token and the platform session it belongs to, so
// signing out on an experiment's origin signs out everywhere.
func (s *Service) endSession(ctx context.Context, req authapi.EndSession) (authapi.Empty, error) {
	now := time.Now()
	var c *authn.Claims
	var err error
	if req.Slug != "" {
		c, err = s.identity.Verifier().VerifyExperiment(req.Token, req.Slug, now)
	} else {
		c, err = s.identity.Verifier().Verify(req.Token, now)
	}
	if errors.Is(err, authn.ErrRevoked) {
		return authapi.Empty{}, nil // already ended
	}
	if err != nil {
		return authapi.Empty{}, tokenError(err)
	}
	// The platform token lives at most TokenTTL from its experiment
	// token's issue; its entry may be forgotten after that.
	if err := authn.Revoke(ctx, s.revoked, c.ID, c.ExpiresAt.Time); err != nil {
		return authapi.Empty{}, err
	}
	if c.Session != "" {
		if err := authn.Revoke(ctx, s.revoked, c.Session, c.IssuedAt.Add(authn.TokenTTL)); err != nil {
			return authapi.Empty{}, err
		}
	}
	return authapi.Empty{}, nil
}
