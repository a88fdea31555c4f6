package authn_test

import (
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authn"
)

// Arbitrary cookies and Authorization headers never panic, and nothing but a
// token minted by the signer is ever accepted.
func FuzzTokenParsing(f *testing.F) {
	s := signer(f)
	v := verifierFor(s)
	now := time.Now()
	good, _, _ := s.Mint(alice, now)
	f.Add(good, "")
	f.Add("", "Bearer "+good)
	f.Add("a.b.c", "Bearer a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.", "")
	f.Add(good[:len(good)-2], "bearer x")
	f.Fuzz(func(t *testing.T, cookie, authorization string) {
		tok, _ := authn.TokenFromRequest(cookie, authorization)
		if len(tok) > authn.MaxTokenLen {
			t.Fatalf("token of %d bytes passed the length cap", len(tok))
		}
		c, err := v.Verify(tok, now)
		// Any change to a signed token's header or claims breaks its
		// signature, so whatever is accepted must carry exactly the claims
		// the signer minted.
		if err == nil && (c.Email != alice.Email || c.Subject != alice.ID || c.TokenVersion != alice.TokenVersion || len(c.Roles) != 1) {
			t.Fatalf("accepted claims the signer never minted: %+v", c)
		}
	})
}
