package authn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

const secret = "unit-test-secret-key-0123456789abcdef"

func signer(t testing.TB) *authn.Signer {
	t.Helper()
	k, err := authn.DeriveKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return authn.NewSigner(k)
}

func verifierFor(s *authn.Signer) *authn.Verifier {
	v := authn.NewVerifier()
	kid, pub := s.Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	return v
}

var alice = authn.Subject{ID: "u1", Email: "alice@example.com", Roles: []string{"user"}, TokenVersion: 3}

func TestDeriveKeyIsStableAndSecretBound(t *testing.T) {
	a, _ := authn.DeriveKey(secret)
	b, _ := authn.DeriveKey(secret)
	c, _ := authn.DeriveKey(secret + "x")
	if !a.Equal(b) {
		t.Fatal("the same secret derived two keys")
	}
	if a.Equal(c) {
		t.Fatal("different secrets derived the same key")
	}
	if _, err := authn.DeriveKey("short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestMintAndVerify(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	now := time.Now()
	tok, c, err := s.Mint(alice, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok, now)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.Email != alice.Email || got.Subject != "u1" || got.TokenVersion != 3 || got.ID != c.ID || !got.HasRole("user") {
		t.Fatalf("claims = %+v", got)
	}
	if got.Issuer != authn.Issuer || len(got.Audience) != 1 || got.Audience[0] != authn.Audience {
		t.Fatalf("iss/aud = %q %v", got.Issuer, got.Audience)
	}
	if d := got.ExpiresAt.Sub(got.IssuedAt.Time); d != authn.TokenTTL {
		t.Fatalf("lifetime = %v, want 24h", d)
	}
	// The cache answers again, and expiry still applies to cached tokens.
	if _, err := v.Verify(tok, now.Add(time.Hour)); err != nil {
		t.Fatalf("second verify: %v", err)
	}
	if _, err := v.Verify(tok, now.Add(authn.TokenTTL+time.Minute)); !errors.Is(err, authn.ErrExpired) {
		t.Fatalf("expired token: err = %v", err)
	}
}

func rawToken(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func TestVerifyRefusesForgeries(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	kid, _ := s.Public()
	now := time.Now()
	good, _, _ := s.Mint(alice, now)
	claims := map[string]any{"sub": "u1", "email": "alice@example.com", "roles": []string{"admin"}, "tv": 9,
		"iss": authn.Issuer, "aud": authn.Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "x1"}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherPub := otherKey.Public().(ed25519.PublicKey)
	signWith := func(key ed25519.PrivateKey, header map[string]any, cl jwt.MapClaims) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, cl)
		for k, val := range header {
			tk.Header[k] = val
		}
		out, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	realKey, _ := authn.DeriveKey(secret)
	mc := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{}
		for k, val := range claims {
			m[k] = val
		}
		mod(m)
		return m
	}
	parts := strings.Split(good, ".")

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", authn.ErrMalformed},
		{"garbage", "not-a-token", authn.ErrMalformed},
		{"too long", strings.Repeat("a", authn.MaxTokenLen+1), authn.ErrMalformed},
		{"alg none", rawToken(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, claims, ""), authn.ErrInvalid},
		{"alg HS256 with the public key as secret", func() string {
			_, pub := s.Public()
			tk := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
			tk.Header["kid"] = kid
			out, _ := tk.SignedString([]byte(pub))
			return out
		}(), authn.ErrInvalid},
		{"another key under our kid", signWith(otherKey, map[string]any{"kid": kid}, mc(func(jwt.MapClaims) {})), authn.ErrInvalid},
		{"unknown kid", signWith(otherKey, map[string]any{"kid": "attacker"}, mc(func(jwt.MapClaims) {})), authn.ErrNoKey},
		{"embedded jwk is ignored", signWith(otherKey, map[string]any{"jwk": map[string]string{"kty": "OKP", "crv": "Ed25519",
			"x": base64.RawURLEncoding.EncodeToString(otherPub)}}, mc(func(jwt.MapClaims) {})), authn.ErrNoKey},
		{"jku is ignored", signWith(otherKey, map[string]any{"jku": "http://127.0.0.1:1/keys"}, mc(func(jwt.MapClaims) {})), authn.ErrNoKey},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u1","email":"alice@example.com","roles":["admin"]}`)) + "." + parts[2], authn.ErrInvalid},
		{"wrong audience", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { m["aud"] = "other" })), authn.ErrInvalid},
		{"wrong issuer", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { m["iss"] = "other" })), authn.ErrInvalid},
		{"no exp", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { delete(m, "exp") })), authn.ErrInvalid},
		{"expired", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Hour).Unix() })), authn.ErrExpired},
		{"issued in the future", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { m["iat"] = now.Add(time.Hour).Unix() })), authn.ErrInvalid},
		{"no jti", signWith(realKey, map[string]any{"kid": kid}, mc(func(m jwt.MapClaims) { delete(m, "jti") })), authn.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(c.token, now)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// The genuine token still verifies.
	if _, err := v.Verify(good, now); err != nil {
		t.Fatal(err)
	}
	// A token signed with the real key and valid claims verifies too: the
	// table's refusals are about the flaws, not the harness.
	if _, err := v.Verify(signWith(realKey, map[string]any{"kid": kid}, mc(func(jwt.MapClaims) {})), now); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestDenyAndVersionRevoke(t *testing.T) {
	s := signer(t)
	v := verifierFor(s)
	now := time.Now()
	tok, c, _ := s.Mint(alice, now)
	v.Deny(c.ID, now.Add(time.Hour))
	if _, err := v.Verify(tok, now); !errors.Is(err, authn.ErrRevoked) {
		t.Fatalf("denied token: err = %v", err)
	}
	v.Undeny(c.ID)
	if _, err := v.Verify(tok, now); err != nil {
		t.Fatalf("undenied token: %v", err)
	}
	v.SetVersion("u1", 4)
	if _, err := v.Verify(tok, now); !errors.Is(err, authn.ErrRevoked) {
		t.Fatalf("token of an older version: err = %v", err)
	}
	tok2, _, _ := s.Mint(authn.Subject{ID: "u1", Email: alice.Email, TokenVersion: 4}, now)
	if _, err := v.Verify(tok2, now); err != nil {
		t.Fatalf("token of the current version: %v", err)
	}
}

func TestTokenFromRequest(t *testing.T) {
	cases := []struct {
		cookie, authz, want string
		byCookie            bool
	}{
		{"", "", "", false},
		{"c", "", "c", true},
		{"c", "Bearer b", "b", false},
		{"c", "bearer  b ", "b", false},
		{"c", "Basic Zm9v", "", false},
		{"c", "Bearer ", "", false},
		{strings.Repeat("x", authn.MaxTokenLen+1), "", "", false},
	}
	for _, c := range cases {
		got, by := authn.TokenFromRequest(c.cookie, c.authz)
		if got != c.want || by != c.byCookie {
			t.Errorf("TokenFromRequest(%q, %q) = %q %v, want %q %v", c.cookie, c.authz, got, by, c.want, c.byCookie)
		}
	}
}

// The buckets reach a watching verifier: key publication, a revocation and
// a version bump each take effect within a second.
func TestWatchFollowsTheBuckets(t *testing.T) {
	env := testenv.Start(t)
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topo := bus.Topology{JS: js}
	if err := topo.EnsureBuckets(ctx, bus.BucketAuthKeys, bus.BucketRevokedTokens, bus.BucketUserVersions); err != nil {
		t.Fatal(err)
	}
	keys, _ := js.KeyValue(ctx, bus.BucketAuthKeys)
	revoked, _ := js.KeyValue(ctx, bus.BucketRevokedTokens)
	versions, _ := js.KeyValue(ctx, bus.BucketUserVersions)

	s := signer(t)
	kid, pub := s.Public()
	// A stale key from an earlier secret is retired by publishing.
	if _, err := keys.Put(ctx, "old-key", []byte(base64.StdEncoding.EncodeToString(pub))); err != nil {
		t.Fatal(err)
	}
	if err := authn.PublishKey(ctx, keys, kid, pub); err != nil {
		t.Fatal(err)
	}
	v := authn.NewVerifier()
	if err := v.Watch(ctx, js); err != nil {
		t.Fatal(err)
	}
	if v.Keys() != 1 {
		t.Fatalf("verifier knows %d keys, want 1", v.Keys())
	}
	now := time.Now()
	tok, c, _ := s.Mint(alice, now)
	if _, err := v.Verify(tok, now); err != nil {
		t.Fatal(err)
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen within a second", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := authn.Revoke(ctx, revoked, c.ID, c.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	within("revocation", func() bool { _, err := v.Verify(tok, time.Now()); return errors.Is(err, authn.ErrRevoked) })
	// Revoking twice is harmless.
	if err := authn.Revoke(ctx, revoked, c.ID, c.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	tok2, _, _ := s.Mint(alice, now)
	if err := authn.SetUserVersion(ctx, versions, "u1", 4); err != nil {
		t.Fatal(err)
	}
	within("version bump", func() bool { _, err := v.Verify(tok2, time.Now()); return errors.Is(err, authn.ErrRevoked) })

	// A second verifier started later loads the same state at once.
	v2 := authn.NewVerifier()
	if err := v2.Watch(ctx, js); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []string{tok, tok2} {
		if _, err := v2.Verify(tk, time.Now()); !errors.Is(err, authn.ErrRevoked) {
			t.Fatalf("late verifier accepted a revoked token: %v", err)
		}
	}
}
