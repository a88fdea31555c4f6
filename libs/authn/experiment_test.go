package authn_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authn"
)

func TestExperimentTokenIsGoodOnItsOriginOnly(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	now := time.Now()
	platform, pc, err := s.Mint(alice, now)
	if err != nil {
		t.Fatal(err)
	}
	exp, ec, err := s.MintExperiment(pc, "clicks", now)
	if err != nil {
		t.Fatal(err)
	}
	if ec.Email != alice.Email || ec.Session != pc.ID || ec.ID == pc.ID {
		t.Fatalf("experiment claims: %+v (platform jti %s)", ec, pc.ID)
	}
	if c, err := v.VerifyExperiment(exp, "clicks", now); err != nil || c.Email != alice.Email {
		t.Fatalf("on its own origin: %v %+v", err, c)
	}
	// Verified once (cached), then presented where it does not belong.
	if _, err := v.Verify(exp, now); !errors.Is(err, authn.ErrInvalid) {
		t.Errorf("an experiment token was accepted on the platform: %v", err)
	}
	if _, err := v.VerifyExperiment(exp, "other", now); !errors.Is(err, authn.ErrInvalid) {
		t.Errorf("clicks's token was accepted on another experiment's origin: %v", err)
	}
	if _, err := v.VerifyExperiment(platform, "clicks", now); !errors.Is(err, authn.ErrInvalid) {
		t.Errorf("a platform token passed as an experiment token: %v", err)
	}
	if _, _, err := s.MintExperiment(ec, "clicks", now); err == nil {
		t.Error("an experiment token was handed off again")
	}
}

func TestEndingThePlatformSessionEndsItsExperimentTokens(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	now := time.Now()
	_, pc, _ := s.Mint(alice, now)
	exp, _, _ := s.MintExperiment(pc, "clicks", now)
	if _, err := v.VerifyExperiment(exp, "clicks", now); err != nil {
		t.Fatal(err)
	}
	v.Deny(pc.ID, now.Add(time.Hour))
	if _, err := v.VerifyExperiment(exp, "clicks", now); !errors.Is(err, authn.ErrRevoked) {
		t.Errorf("after sign-out: %v, want revoked", err)
	}
}

func TestExperimentTokenNeverOutlivesItsSession(t *testing.T) {
	s := signer(t)
	now := time.Now()
	_, pc, _ := s.Mint(alice, now.Add(-authn.TokenTTL+time.Minute))
	_, ec, err := s.MintExperiment(pc, "clicks", now)
	if err != nil {
		t.Fatal(err)
	}
	if ec.ExpiresAt.After(pc.ExpiresAt.Time) {
		t.Errorf("experiment token expires %v, after its session %v", ec.ExpiresAt, pc.ExpiresAt)
	}
	v := verifierFor(s)
	exp, _, _ := s.MintExperiment(pc, "clicks", now)
	if _, err := v.VerifyExperiment(exp, "clicks", now.Add(2*time.Minute)); !errors.Is(err, authn.ErrExpired) {
		t.Errorf("past its session's end: %v", err)
	}
}

func TestExperimentAccountTokens(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	now := time.Now()
	sub := authn.Subject{ID: "665f1c2a3b4d5e6f7a8b9c0d", Email: "shopper@example.com", TokenVersion: 2}
	tok, c, err := s.MintExperimentUser(sub, "shop", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.VerifyExperiment(tok, "shop", now)
	if err != nil || got.Kind != authn.KindExperimentUser || got.Subject != sub.ID || got.Session != "" || got.ID != c.ID {
		t.Fatalf("on its origin: %v %+v", err, got)
	}
	if d := got.ExpiresAt.Sub(got.IssuedAt.Time); d != time.Hour {
		t.Errorf("lifetime %v, want an hour", d)
	}
	if _, err := v.Verify(tok, now); !errors.Is(err, authn.ErrInvalid) {
		t.Errorf("an experiment account's token was accepted on the platform: %v", err)
	}
	if _, err := v.VerifyExperiment(tok, "other", now); !errors.Is(err, authn.ErrInvalid) {
		t.Errorf("shop's account was accepted on another origin: %v", err)
	}
	if _, _, err := s.MintExperiment(got, "shop", now); err == nil {
		t.Error("an experiment account's token was handed off as a platform session")
	}
	v.SetVersion(sub.ID, 3)
	if _, err := v.VerifyExperiment(tok, "shop", now); !errors.Is(err, authn.ErrRevoked) {
		t.Errorf("after a version bump: %v", err)
	}
	// A lifetime past the cap is held to it.
	_, long, _ := s.MintExperimentUser(sub, "shop", 365*24*time.Hour, now)
	if d := long.ExpiresAt.Sub(long.IssuedAt.Time); d != authn.MaxExperimentUserTTL {
		t.Errorf("lifetime %v, want the cap", d)
	}
	if _, _, err := s.MintExperimentUser(authn.Subject{}, "shop", time.Hour, now); err == nil {
		t.Error("a token without an account was minted")
	}
}
