package authn

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks tokens locally: signature and claims against the known
// public keys, then the deny-list and the user's current token version. The
// keys, deny-list and versions are kept current by Watch (see watch.go).
//
// A token whose signature and claims passed is remembered (up to
// cacheMax tokens, never past its expiry), so a signed-in request costs a
// map lookup instead of an Ed25519 verification; the deny-list and version
// checks still run on every request, so revocation is never cached.
type Verifier struct {
	keys atomic.Pointer[map[string]ed25519.PublicKey]

	mu       sync.RWMutex
	denied   map[string]time.Time // jti → when the entry may be forgotten
	versions map[string]int64     // user id → current token version

	cacheMu sync.Mutex
	cache   map[string]*Claims
}

const cacheMax = 20_000

// NewVerifier knows no keys yet; SetKey or Watch provides them.
func NewVerifier() *Verifier {
	v := &Verifier{
		denied:   map[string]time.Time{},
		versions: map[string]int64{},
		cache:    map[string]*Claims{},
	}
	empty := map[string]ed25519.PublicKey{}
	v.keys.Store(&empty)
	return v
}

// SetKeys replaces the known verification keys.
func (v *Verifier) SetKeys(keys map[string]ed25519.PublicKey) {
	cp := make(map[string]ed25519.PublicKey, len(keys))
	for k, p := range keys {
		cp[k] = p
	}
	v.keys.Store(&cp)
	v.cacheMu.Lock()
	v.cache = map[string]*Claims{}
	v.cacheMu.Unlock()
}

// Keys is the number of known verification keys.
func (v *Verifier) Keys() int { return len(*v.keys.Load()) }

// Deny puts a token ID on the deny-list until forget.
func (v *Verifier) Deny(jti string, forget time.Time) {
	v.mu.Lock()
	v.denied[jti] = forget
	v.mu.Unlock()
}

// Undeny removes a deny-list entry (its bucket entry expired).
func (v *Verifier) Undeny(jti string) {
	v.mu.Lock()
	delete(v.denied, jti)
	v.mu.Unlock()
}

// SetVersion records a user's current token version.
func (v *Verifier) SetVersion(userID string, version int64) {
	v.mu.Lock()
	v.versions[userID] = version
	v.mu.Unlock()
}

// Verify checks a platform token and returns its claims. An experiment
// token is refused here: it is good on its experiment's origin only.
func (v *Verifier) Verify(token string, now time.Time) (*Claims, error) {
	return v.verify(token, Audience, now)
}

func (v *Verifier) verify(token, audience string, now time.Time) (*Claims, error) {
	c, err := v.verifySignature(token, audience, now)
	if err != nil {
		return nil, err
	}
	v.mu.RLock()
	_, denied := v.denied[c.ID]
	_, sessionEnded := v.denied[c.Session]
	_, personalEnded := v.denied[c.PAT]
	current := v.versions[c.Subject]
	v.mu.RUnlock()
	if denied || (c.Session != "" && sessionEnded) || (c.PAT != "" && personalEnded) || c.TokenVersion < current {
		return nil, ErrRevoked
	}
	return c, nil
}

// StillValid reports whether claims, verified earlier, still hold at now:
// not expired, and neither the token, its session nor its user's tokens
// revoked since. Holders of long-lived connections ask it from time to time.
func (v *Verifier) StillValid(c *Claims, now time.Time) bool {
	if c.ExpiresAt != nil && !now.Before(c.ExpiresAt.Time) {
		return false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, denied := v.denied[c.ID]
	_, sessionEnded := v.denied[c.Session]
	_, personalEnded := v.denied[c.PAT]
	return !denied && !(c.Session != "" && sessionEnded) && !(c.PAT != "" && personalEnded) && c.TokenVersion >= v.versions[c.Subject]
}

func (v *Verifier) verifySignature(token, audience string, now time.Time) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLen {
		return nil, ErrMalformed
	}
	v.cacheMu.Lock()
	c, ok := v.cache[token]
	v.cacheMu.Unlock()
	if ok {
		// The cache holds tokens of every audience; each use checks its own.
		if !slices.Contains(c.Audience, audience) {
			return nil, ErrInvalid
		}
		if !now.Before(c.ExpiresAt.Time) {
			v.cacheMu.Lock()
			delete(v.cache, token)
			v.cacheMu.Unlock()
			return nil, ErrExpired
		}
		return c, nil
	}
	c, err := v.parse(token, audience, now)
	if err != nil {
		return nil, err
	}
	v.cacheMu.Lock()
	if len(v.cache) >= cacheMax {
		// Forget an arbitrary tenth; a forgotten token is verified again.
		n := 0
		for k := range v.cache {
			delete(v.cache, k)
			if n++; n >= cacheMax/10 {
				break
			}
		}
	}
	// The caller's string may alias a reused request buffer (fasthttp):
	// the map keeps its own copy.
	v.cache[strings.Clone(token)] = c
	v.cacheMu.Unlock()
	return c, nil
}

// parse verifies the signature with a known key chosen by the header's kid
// only: key material or key locations in the header (jwk, jku, x5u, x5c) are
// never used.
func (v *Verifier) parse(token, audience string, now time.Time) (*Claims, error) {
	if strings.Count(token, ".") != 2 {
		return nil, ErrMalformed
	}
	keys := *v.keys.Load()
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithAudience(audience),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	t, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, ErrNoKey
	})
	switch {
	case err == nil && t.Valid:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, ErrMalformed
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case errors.Is(err, ErrNoKey):
		return nil, ErrNoKey
	default:
		return nil, ErrInvalid
	}
	if c.ID == "" || c.Subject == "" || c.IssuedAt == nil {
		return nil, ErrInvalid
	}
	// Every holder has an email but a study link's participant, whose
	// token carries their run instead.
	if (c.Kind == KindParticipant) != (c.Email == "") || (c.Kind == KindParticipant) != (c.Run != nil) {
		return nil, ErrInvalid
	}
	return &c, nil
}

// Prune forgets deny-list entries past their time (their tokens have
// expired anyway).
func (v *Verifier) Prune(now time.Time) {
	v.mu.Lock()
	for jti, until := range v.denied {
		if now.After(until) {
			delete(v.denied, jti)
		}
	}
	v.mu.Unlock()
}
