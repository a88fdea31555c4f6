package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/store"
)

// A platform user handed off to a hybrid experiment whose sub_auth links
// platform users (link_platform_users, true when not given) gets an
// experiment account of their own there on the first visit: kind linked,
// the same normalised email, no password (the platform's session is its
// only way in), recorded as linked to the platform user's ID. The
// hand-off's token stays the platform user's (their revocation, versions
// and sign-out apply) and carries the account's ID, which the actor sees
// as the caller's ID: stable for that person in that experiment, and not
// the platform-wide ID, so experiments cannot match their visitors up.
//
// Experiment accounts' emails are not verified, so a link never takes over
// an account made by sign-up (or a demo account) of the same email: its
// password holder could be anyone. Such a platform user is then not
// linked and reaches the experiment as a platform user (their platform
// ID), and the service says so in its log.

// linkPlatformUser is the ID of the experiment account linked to the
// platform user of from on slug, creating it on the first visit; "" where
// the experiment does not link platform users.
func (s *Service) linkPlatformUser(ctx context.Context, slug string, from *authn.Claims) (string, error) {
	cfg, err := s.d.Store.Experiments().Get(ctx, slug)
	if err != nil {
		return "", fmt.Errorf("read experiment %s: %w", slug, err)
	}
	if cfg == nil {
		return "", nil // the edge answers 404 for the experiment itself
	}
	sa := bundle.SubAuthOf([]byte(cfg.Manifest))
	if !sa.On() || sa.Strategy != bundle.StrategyHybrid || !sa.LinksPlatformUsers() {
		return "", nil
	}
	email, err := NormalizeEmail(from.Email)
	if err != nil {
		return "", nil // a token's email is the platform's; nothing to link
	}
	repo := s.d.Store.ExpAccounts()
	for attempt := 0; attempt < 2; attempt++ {
		a, err := repo.ByEmail(ctx, slug, email)
		if err != nil {
			return "", err
		}
		if a != nil {
			switch {
			case a.Kind != store.ExpKindLinked || a.LinkedTo != from.Subject:
				s.d.Log.Warn("a platform user is not linked: the experiment has another account of that email",
					"slug", slug, "user_id", from.Subject, "account_kind", a.Kind)
				return "", nil
			case a.Disabled:
				return "", apierr.New(apierr.CodeForbidden, "your account of this experiment is disabled")
			}
			return a.UID, nil
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		a = &store.ExpAccount{Slug: slug, Email: email, UID: newUID(), Kind: store.ExpKindLinked, LinkedTo: from.Subject,
			CreatedAt: now, UpdatedAt: now}
		err = repo.Create(ctx, a)
		if err == nil {
			s.d.Log.Info("platform user linked to an experiment account", "slug", slug, "user_id", from.Subject, "account_id", a.UID)
			return a.UID, nil
		}
		if !errors.Is(err, store.ErrDuplicateAccount) {
			return "", err
		}
		// Another hand-off of the same person made it: read it again.
	}
	return "", fmt.Errorf("link a platform user to %s: the account changed meanwhile", slug)
}
