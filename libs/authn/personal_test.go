package authn_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authn"
)

func TestPersonalTokenShape(t *testing.T) {
	id, hash, token, err := authn.NewPersonal()
	if err != nil {
		t.Fatal(err)
	}
	gotID, secret, ok := authn.ParsePersonal(token)
	if !ok || gotID != id || authn.HashPersonalSecret(secret) != hash || !authn.IsPersonal(token) {
		t.Fatalf("round trip: %q → %q %q %v", token, gotID, secret, ok)
	}
	if strings.Contains(hash, secret) || len(hash) != 64 {
		t.Errorf("hash %q", hash)
	}
	_, _, again, _ := authn.NewPersonal()
	if again == token {
		t.Error("two tokens are the same")
	}
	for name, bad := range map[string]string{
		"empty":             "",
		"prefix only":       authn.PersonalPrefix,
		"no secret":         authn.PersonalPrefix + id,
		"short secret":      authn.PersonalPrefix + id + "_" + secret[:42],
		"long secret":       authn.PersonalPrefix + id + "_" + secret + "A",
		"upper-case id":     authn.PersonalPrefix + strings.ToUpper(id) + "_" + secret,
		"not hex":           authn.PersonalPrefix + strings.Repeat("g", 32) + "_" + secret,
		"secret not base64": authn.PersonalPrefix + id + "_" + strings.Repeat("=", 43),
		"other prefix":      "gnome_pax_" + id + "_" + secret,
		"a JWT":             "aGVhZGVy.Y2xhaW1z.c2ln",
	} {
		if _, _, ok := authn.ParsePersonal(bad); ok {
			t.Errorf("%s: %q parsed", name, bad)
		}
	}
}

// Revoking a personal token (its ID on the deny-list) ends its access
// tokens; its roles bound what the shared policy's role decisions allow;
// it is not handed off to experiments.
func TestPersonalAccessTokens(t *testing.T) {
	key, err := authn.DeriveKey("test-secret-key-0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	s := authn.NewSigner(key)
	v := authn.NewVerifier()
	kid, pub := s.Public()
	v.SetKeys(map[string]ed25519.PublicKey{kid: pub})
	now := time.Now()
	if _, _, err := s.MintPersonal(authn.Subject{ID: "u1", Email: "a@example.com"}, now, now.Add(time.Minute)); err == nil {
		t.Error("an access token without a personal token ID was minted")
	}
	access, c, err := s.MintPersonal(authn.Subject{ID: "u1", Email: "a@example.com", Roles: []string{"user"}, PAT: "p1"}, now, now.Add(authn.PersonalAccessTTL))
	if err != nil {
		t.Fatal(err)
	}
	if c.PAT != "p1" || !c.RoleInScope("user") || c.RoleInScope("admin") {
		t.Errorf("claims %+v: scope wrong", c)
	}
	session, sc, err := s.Mint(authn.Subject{ID: "u1", Email: "a@example.com"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.RoleInScope("admin") {
		t.Error("a session's role decisions are the policy's alone")
	}
	if _, _, err := s.MintExperiment(c, "survey", now); err == nil {
		t.Error("a personal token's access token was handed off to an experiment")
	}
	got, err := v.Verify(access, now)
	if err != nil || got.PAT != "p1" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	v.Deny("p1", now.Add(time.Hour))
	if _, err := v.Verify(access, now); !errors.Is(err, authn.ErrRevoked) {
		t.Errorf("after revoking the personal token: %v, want revoked", err)
	}
	if v.StillValid(got, now) {
		t.Error("StillValid after revoking the personal token")
	}
	if _, err := v.Verify(session, now); err != nil {
		t.Errorf("the user's session is not ended by revoking a personal token: %v", err)
	}
}

func FuzzParsePersonal(f *testing.F) {
	_, _, token, _ := authn.NewPersonal()
	f.Add(token)
	f.Add(authn.PersonalPrefix + "_")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := authn.ParsePersonal(s)
		if ok && s != authn.PersonalPrefix+id+"_"+secret {
			t.Errorf("%q parsed as %q %q", s, id, secret)
		}
	})
}
