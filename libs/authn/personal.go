package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Personal API tokens are long-lived secrets a user creates for scripts:
// "gnome_pat_<id>_<secret>". The auth service keeps only the secret's
// SHA-256 (a random 256-bit secret needs no slow hash) and trades a valid
// personal token for a short-lived access token (MintPersonal), which the
// edge caches and every service verifies like a session token. Revoking the
// personal token puts its ID on the deny-list, which ends its access tokens
// everywhere (Claims.PAT).
const (
	PersonalPrefix = "gnome_pat_"
	// PersonalAccessTTL is how long an access token minted for a personal
	// token lives: how long a revocation must stay on the deny-list.
	PersonalAccessTTL = 5 * time.Minute
	personalIDBytes   = 16
	personalSecret    = 32
)

// IsPersonal reports whether token looks like a personal API token (it may
// still be wrong).
func IsPersonal(token string) bool { return strings.HasPrefix(token, PersonalPrefix) }

// NewPersonal makes a personal token: its ID, the hash to store and the
// token to show once.
func NewPersonal() (id, hash, token string, err error) {
	idb := make([]byte, personalIDBytes)
	sec := make([]byte, personalSecret)
	if _, err := rand.Read(idb); err != nil {
		return "", "", "", fmt.Errorf("personal token id: %w", err)
	}
	if _, err := rand.Read(sec); err != nil {
		return "", "", "", fmt.Errorf("personal token secret: %w", err)
	}
	id = hex.EncodeToString(idb)
	secret := base64.RawURLEncoding.EncodeToString(sec)
	return id, HashPersonalSecret(secret), PersonalPrefix + id + "_" + secret, nil
}

// ParsePersonal splits a personal token into its ID and secret; ok is false
// when its shape is wrong.
func ParsePersonal(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, PersonalPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != 2*personalIDBytes || len(secret) != base64.RawURLEncoding.EncodedLen(personalSecret) {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// HashPersonalSecret is what is stored of a personal token's secret.
func HashPersonalSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// MintPersonal signs the access token of a personal token (sub.PAT): a
// platform token with the personal token's roles, until expires.
func (s *Signer) MintPersonal(sub Subject, now, expires time.Time) (string, *Claims, error) {
	if sub.PAT == "" {
		return "", nil, fmt.Errorf("mint personal access token: no personal token id")
	}
	return s.mint(sub, Audience, "", now, expires)
}

// RoleInScope reports whether a decision of the shared policy that rests on
// role may stand for these claims: always for a session, whose user holds
// every role the policy knows of; for a personal token's access token only
// when the token carries role, since it may carry fewer than its user.
func (c *Claims) RoleInScope(role string) bool {
	return c.PAT == "" || c.HasRole(role)
}
