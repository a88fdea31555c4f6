package auth_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

// Personal API tokens: created by their user with a subset of the user's
// roles, shown once, stored hashed, listed without secrets, revoked by
// their owner or an admin, and exchanged for access tokens that carry the
// roles the user still holds.
func TestPersonalTokens(t *testing.T) {
	w := start(t)
	root := w.login(rootEmail, rootPassword)
	rootActor := authapi.Actor{Email: rootEmail, Token: root}
	if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: rootActor, Email: "dev@example.com", Password: "a developer's passphrase", Roles: []string{"developer", "user"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: rootActor, Email: "eve@example.com", Password: "eve's long passphrase", Roles: []string{"user"}}); err != nil {
		t.Fatal(err)
	}
	dev := authapi.Actor{Email: "dev@example.com", Token: w.login("dev@example.com", "a developer's passphrase")}
	eve := authapi.Actor{Email: "eve@example.com", Token: w.login("eve@example.com", "eve's long passphrase")}
	days := func(n int) *int { return &n }

	// Refusals, each naming its field.
	for _, tc := range []struct {
		name  string
		req   authapi.TokenCreate
		field string
	}{
		{"no name", authapi.TokenCreate{Actor: dev, Name: "  "}, "/name"},
		{"a name of 101 characters", authapi.TokenCreate{Actor: dev, Name: strings.Repeat("é", 101)}, "/name"},
		{"a control character", authapi.TokenCreate{Actor: dev, Name: "ci\x00"}, "/name"},
		{"a role not held", authapi.TokenCreate{Actor: dev, Name: "ci", Roles: []string{"admin"}}, "/roles"},
		{"an unknown role", authapi.TokenCreate{Actor: dev, Name: "ci", Roles: []string{"root"}}, "/roles"},
		{"0 days", authapi.TokenCreate{Actor: dev, Name: "ci", ExpiresInDays: days(0)}, "/expires_in_days"},
		{"3651 days", authapi.TokenCreate{Actor: dev, Name: "ci", ExpiresInDays: days(3651)}, "/expires_in_days"},
	} {
		_, err := w.edge.CreateToken(w.ctx, tc.req)
		wantCode(t, tc.name, err, apierr.CodeValidationFailed)
		if err != nil && apierr.From(err).Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, apierr.From(err).Field, tc.field)
		}
	}
	_, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: authapi.Actor{Email: "dev@example.com"}, Name: "ci"})
	wantCode(t, "no caller token", err, apierr.CodeUnauthenticated)

	// All roles by default; a subset on request; the secret once.
	all, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: dev, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all.Roles, []string{"developer", "user"}) || all.ExpiresAt != nil || !strings.HasPrefix(all.Token, authn.PersonalPrefix) {
		t.Errorf("default token: %+v", all)
	}
	ci, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: dev, Name: "ci", Roles: []string{"user"}, ExpiresInDays: days(30)})
	if err != nil {
		t.Fatal(err)
	}
	if ci.ExpiresAt == nil || ci.ExpiresAt.Sub(ci.CreatedAt) != 30*24*time.Hour || !slices.Equal(ci.Roles, []string{"user"}) {
		t.Errorf("ci token: %+v", ci)
	}
	// The store holds a hash, never the secret.
	raw, err := w.admin.st.Collection("api_tokens").Find(w.ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := raw.All(w.ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("stored tokens: %d, want 2", len(docs))
	}
	for _, d := range docs {
		text := fmt.Sprint(d)
		_, secret, _ := authn.ParsePersonal(all.Token)
		_, secret2, _ := authn.ParsePersonal(ci.Token)
		if strings.Contains(text, secret) || strings.Contains(text, secret2) || strings.Contains(text, authn.PersonalPrefix) {
			t.Errorf("a stored token holds its secret: %v", d)
		}
		if h, _ := d["hash"].(string); len(h) != 64 {
			t.Errorf("stored hash %q is not a SHA-256", h)
		}
	}
	list, err := w.edge.Tokens(w.ctx, authapi.TokensList{Actor: dev})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tokens) != 2 || list.Tokens[0].ID != ci.ID || list.Tokens[0].LastUsedAt != nil {
		t.Errorf("listed: %+v", list.Tokens)
	}

	// Exchanged: the token's roles, its ID, the use recorded once.
	acc, err := w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: ci.Token})
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, acc.Token)
	if c.Email != "dev@example.com" || !slices.Equal(c.Roles, []string{"user"}) || c.PAT != ci.ID || c.ExpiresAt.Sub(c.IssuedAt.Time) > authn.PersonalAccessTTL {
		t.Errorf("access token claims: %+v", c)
	}
	list, _ = w.edge.Tokens(w.ctx, authapi.TokensList{Actor: dev})
	first := list.Tokens[0].LastUsedAt
	if first == nil {
		t.Fatal("the use was not recorded")
	}
	if _, err := w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: ci.Token}); err != nil {
		t.Fatal(err)
	}
	list, _ = w.edge.Tokens(w.ctx, authapi.TokensList{Actor: dev})
	if !list.Tokens[0].LastUsedAt.Equal(*first) {
		t.Error("a second use within a minute was written again")
	}

	// A token with fewer roles than its admin gets no admin rights, and
	// creates no token with more than it carries.
	rootUser, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: rootActor, Name: "read only", Roles: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	rootAcc, err := w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: rootUser.Token})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.edge.Users(w.ctx, authapi.Actor{Email: rootEmail, Token: rootAcc.Token})
	wantCode(t, "users.list with the admin's role-less token", err, apierr.CodeForbidden)
	_, err = w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: authapi.Actor{Token: rootAcc.Token}, Name: "escalate", Roles: []string{"admin"}})
	wantCode(t, "a role-less token creating an admin token", err, apierr.CodeValidationFailed)
	_, err = w.edge.Tokens(w.ctx, authapi.TokensList{Actor: authapi.Actor{Token: rootAcc.Token}, Email: "dev@example.com"})
	wantCode(t, "a role-less admin token listing another's tokens", err, apierr.CodeForbidden)

	// Wrong tokens: one answer whatever is wrong.
	id, secret, _ := authn.ParsePersonal(ci.Token)
	flipped := []byte(secret)
	flipped[0] ^= 1
	for name, tok := range map[string]string{
		"a wrong secret":       authn.PersonalPrefix + id + "_" + string(flipped),
		"an unknown id":        authn.PersonalPrefix + strings.Repeat("0", 32) + "_" + secret,
		"no secret":            authn.PersonalPrefix + id,
		"an upper-case id":     authn.PersonalPrefix + strings.ToUpper(id) + "_" + secret,
		"a session token":      root,
		"empty":                "",
		"a query for an id":    authn.PersonalPrefix + `{"$ne":null}_` + secret,
		"a very long token":    authn.PersonalPrefix + id + "_" + strings.Repeat("A", 5000),
		"the prefix on a JWT":  authn.PersonalPrefix + root,
		"the hash as a secret": authn.PersonalPrefix + id + "_" + docs[0]["hash"].(string),
	} {
		_, err := w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: tok})
		wantCode(t, name, err, apierr.CodeUnauthenticated)
	}

	// Another user's token is not found; an admin finds it.
	err = w.edge.RevokeToken(w.ctx, authapi.TokenRevoke{Actor: eve, ID: ci.ID})
	wantCode(t, "eve revokes dev's token", err, apierr.CodeNotFound)
	_, err = w.edge.Tokens(w.ctx, authapi.TokensList{Actor: eve, Email: "dev@example.com"})
	wantCode(t, "eve lists dev's tokens", err, apierr.CodeForbidden)
	err = w.edge.RevokeToken(w.ctx, authapi.TokenRevoke{Actor: rootActor, ID: ci.ID, Email: "eve@example.com"})
	wantCode(t, "the admin revokes dev's token as eve's", err, apierr.CodeNotFound)
	adminList, err := w.edge.Tokens(w.ctx, authapi.TokensList{Actor: rootActor, Email: "Dev@Example.com"})
	if err != nil || len(adminList.Tokens) != 2 {
		t.Fatalf("the admin lists dev's tokens: %v %+v", err, adminList)
	}
	if err := w.edge.RevokeToken(w.ctx, authapi.TokenRevoke{Actor: rootActor, ID: ci.ID, Email: "dev@example.com"}); err != nil {
		t.Fatalf("the admin revokes dev's token: %v", err)
	}
	_, err = w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: ci.Token})
	wantCode(t, "a revoked token", err, apierr.CodeTokenRevoked)
	err = w.edge.RevokeToken(w.ctx, authapi.TokenRevoke{Actor: dev, ID: ci.ID})
	wantCode(t, "revoking twice", err, apierr.CodeNotFound)
	// The revocation is on the deny-list the verifiers watch.
	v := authn.NewVerifier()
	wctx, cancel := contextWithCancel(w)
	defer cancel()
	if err := v.Watch(wctx, w.js); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(acc.Token, time.Now()); err != authn.ErrRevoked {
		t.Errorf("the revoked token's access token: %v, want revoked", err)
	}

	// Losing a role loses it in the token; a disabled account's token
	// stops.
	if _, err := w.edge.RevokeRole(w.ctx, authapi.RoleChange{Actor: rootActor, Email: "dev@example.com", Role: "developer"}); err != nil {
		t.Fatal(err)
	}
	acc, err = w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: all.Token})
	if err != nil {
		t.Fatal(err)
	}
	if c := parse(t, acc.Token); !slices.Equal(c.Roles, []string{"user"}) {
		t.Errorf("roles after losing developer: %v", c.Roles)
	}
	yes := true
	if _, err := w.edge.UpdateUser(w.ctx, authapi.UpdateUser{Actor: rootActor, Email: "dev@example.com", Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	_, err = w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: all.Token})
	wantCode(t, "a disabled user's token", err, apierr.CodeUnauthenticated)

	// Expired tokens stop; at most 50 live tokens.
	if _, err := w.admin.st.Collection("api_tokens").UpdateOne(w.ctx, bson.D{{Key: "_id", Value: rootUser.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: time.Now().Add(-time.Second)}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = w.edge.ExchangeToken(w.ctx, authapi.TokenExchange{Token: rootUser.Token})
	wantCode(t, "an expired token", err, apierr.CodeUnauthenticated)
	for i := 0; i < authapi.TokensPerUserMax; i++ {
		if _, err := w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: eve, Name: fmt.Sprint("t", i)}); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	_, err = w.edge.CreateToken(w.ctx, authapi.TokenCreate{Actor: eve, Name: "one too many"})
	wantCode(t, "the 51st token", err, apierr.CodeConflict)
}

func contextWithCancel(w *world) (ctx2 context.Context, cancel context.CancelFunc) {
	return context.WithCancel(w.ctx)
}
