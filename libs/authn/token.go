// Package authn is the platform's tokens: minted by the auth service alone
// with an Ed25519 key derived from SECRET_KEY, verified by every edge
// instance locally with the public key it reads from the bus, and ended
// early through a deny-list (sign-out) or a per-user token version (role
// change, disabled account).
package authn

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token facts every deployment shares.
const (
	Issuer     = "gnome"
	Audience   = "gnome"
	TokenTTL   = 24 * time.Hour
	CookieName = "token"
	// Algorithm is the only signing algorithm minted or accepted.
	Algorithm = "EdDSA"
	// MaxTokenLen bounds what is parsed at all.
	MaxTokenLen = 4096
)

// Claims are a token's claims: the registered ones (sub, iat, exp, jti, iss,
// aud) plus the user's email, roles and token version.
type Claims struct {
	Email        string   `json:"email"`
	Roles        []string `json:"roles"`
	TokenVersion int64    `json:"tv"`
	// Session is, in an experiment token, the ID of the platform token it
	// was handed off from: ending that session ends this token too.
	Session string `json:"sid,omitempty"`
	// Kind is who the token is for: "" for a platform user (platform
	// tokens and their hand-offs), KindExperimentUser or KindDemo for an
	// account that belongs to one experiment alone (its audience).
	Kind string `json:"knd,omitempty"`
	// Linked is, in the experiment token of a platform user handed off to
	// a hybrid experiment that links platform users, the ID of the
	// experiment account linked to them: the ID the actor sees.
	Linked string `json:"lnk,omitempty"`
	// Run is, in a participant's token (KindParticipant), the study link
	// they came through and their run.
	Run *Run `json:"run,omitempty"`
	// PAT is, in the access token of a personal API token, that token's
	// ID: revoking it ends this token (personal.go). Its Roles may be
	// fewer than its user's (RoleInScope).
	PAT string `json:"pat,omitempty"`
	jwt.RegisteredClaims
}

// Run is a study-link participant's run as their token carries it: the
// actor sees it in its caller without the platform reading it per call.
type Run struct {
	ID   string `json:"id"`
	Link string `json:"link"`
	// Kind is the link's kind (single, multi, personal); Label a personal
	// link's label.
	Kind  string `json:"kind"`
	Label string `json:"label,omitempty"`
	// Params are the URL parameters the recruiter added to the link.
	Params map[string]string `json:"params,omitempty"`
}

// Kinds of token holders besides platform users.
const (
	KindExperimentUser = "experiment_user"
	KindDemo           = "demo"
	// KindParticipant is a participant who came through a study link.
	KindParticipant = "participant"
)

// HasRole reports whether the claims carry role.
func (c *Claims) HasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Errors of verification. All mean 401 to the caller.
var (
	ErrMalformed = errors.New("token is malformed")
	ErrInvalid   = errors.New("token is not valid")
	ErrExpired   = errors.New("token has expired")
	ErrRevoked   = errors.New("token was revoked")
	ErrNoKey     = errors.New("token signing key is unknown")
)

// hkdfInfo names what the derived key is for; a new purpose needs a new info.
const hkdfInfo = "gnome/token-signing/ed25519/v1"

// DeriveKey derives the Ed25519 signing key from SECRET_KEY with HKDF-SHA256.
// Every auth instance with the same secret derives the same key, so they
// need no coordination; the secret itself never leaves the auth service.
func DeriveKey(secret string) (ed25519.PrivateKey, error) {
	if len(secret) < 16 {
		return nil, errors.New("SECRET_KEY is too short to derive a signing key")
	}
	seed, err := hkdf.Key(sha256.New, []byte(secret), []byte("gnome"), hkdfInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// KeyID names a public key: the first 12 bytes of its SHA-256, base64url.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// Signer mints tokens. Only the auth service has one.
type Signer struct {
	key ed25519.PrivateKey
	kid string
}

// NewSigner signs with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, kid: KeyID(key.Public().(ed25519.PublicKey))}
}

// Public is the verification key and its ID.
func (s *Signer) Public() (string, ed25519.PublicKey) {
	return s.kid, s.key.Public().(ed25519.PublicKey)
}

// Subject is who a token is minted for.
type Subject struct {
	ID           string
	Email        string
	Roles        []string
	TokenVersion int64
	// Linked is the experiment account a hand-off links to (Claims.Linked).
	Linked string
	// Run is a study-link participant's run (Claims.Run).
	Run *Run
	// PAT is the personal token an access token stands for (Claims.PAT).
	PAT string
}

// Mint signs a platform token for sub valid for TokenTTL from now.
func (s *Signer) Mint(sub Subject, now time.Time) (string, *Claims, error) {
	return s.mint(sub, Audience, "", now, now.Add(TokenTTL))
}

func (s *Signer) mint(sub Subject, audience, session string, now, expires time.Time) (string, *Claims, error) {
	return s.sign(sub, "", audience, session, now, expires)
}

// mintKind signs a token of a holder who is not a platform user.
func (s *Signer) mintKind(sub Subject, kind, audience string, now, expires time.Time) (string, *Claims, error) {
	return s.sign(sub, kind, audience, "", now, expires)
}

func (s *Signer) sign(sub Subject, kind, audience, session string, now, expires time.Time) (string, *Claims, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", nil, fmt.Errorf("token id: %w", err)
	}
	c := &Claims{
		Email: sub.Email, Roles: sub.Roles, TokenVersion: sub.TokenVersion, Session: session, Kind: kind, Linked: sub.Linked, Run: sub.Run, PAT: sub.PAT,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub.ID,
			Issuer:    Issuer,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        hex.EncodeToString(jti),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return signed, c, nil
}

// TokenFromRequest picks the token of a request: a Bearer Authorization
// header wins over the cookie. byCookie tells which one it was; a request
// riding on the cookie needs CSRF checks.
func TokenFromRequest(cookie, authorization string) (token string, byCookie bool) {
	if authorization != "" {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(authorization), " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			if t := strings.TrimSpace(rest); t != "" && len(t) <= MaxTokenLen {
				return t, false
			}
		}
		return "", false
	}
	if cookie != "" && len(cookie) <= MaxTokenLen {
		return cookie, true
	}
	return "", false
}
