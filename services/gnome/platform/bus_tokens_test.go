package platform_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

// ridTokenRevoked is the exchange of a revoked personal token, which fails.
const ridTokenRevoked = "probe-token-revoked"

func init() {
	maps.Copy(wantErrors, map[string]apierr.Code{ridTokenRevoked: apierr.CodeTokenRevoked})
}

// exerciseTokens calls every personal-token endpoint as the edge does: the
// admin creates a token, lists it, the edge exchanges it, the admin revokes
// it, and its exchange is refused.
func exerciseTokens(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	sess, err := call(ctx, nc, "tokens-login", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	actor := authapi.Actor{Email: sess.User.Email, Token: sess.Token, RequestID: "tokens-create"}
	days := 30
	created, err := call(ctx, nc, "tokens-create", authapi.EndpointTokensCreate, authapi.TokenCreate{Actor: actor, Name: "ci", ExpiresInDays: &days})
	if err != nil || !strings.HasPrefix(created.Token, authn.PersonalPrefix) {
		t.Fatalf("tokens.create: %+v %v", created, err)
	}
	list, err := call(ctx, nc, "tokens-list", authapi.EndpointTokensList, authapi.TokensList{Actor: actor})
	if err != nil || len(list.Tokens) != 1 || list.Tokens[0].ID != created.ID {
		t.Fatalf("tokens.list: %+v %v", list, err)
	}
	if _, err := call(ctx, nc, "tokens-exchange", authapi.EndpointTokensExchange, authapi.TokenExchange{Token: created.Token}); err != nil {
		t.Fatalf("tokens.exchange: %v", err)
	}
	if _, err := call(ctx, nc, "tokens-revoke", authapi.EndpointTokensRevoke, authapi.TokenRevoke{Actor: actor, ID: created.ID}); err != nil {
		t.Fatalf("tokens.revoke: %v", err)
	}
	_, err = call(ctx, nc, ridTokenRevoked, authapi.EndpointTokensExchange, authapi.TokenExchange{Token: created.Token})
	wantCode(t, "exchange of a revoked token", err, apierr.CodeTokenRevoked)
}
