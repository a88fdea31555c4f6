package authapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Personal API tokens: created, listed and revoked by their user (or an
// administrator, for any user), and exchanged by the edge for a short-lived
// access token (authn.MintPersonal) when a request presents one.
var (
	EndpointTokensCreate   = contract.Endpoint[TokenCreate, TokenCreated]{Service: Service, Name: "tokens.create"}
	EndpointTokensList     = contract.Endpoint[TokensList, Tokens]{Service: Service, Name: "tokens.list"}
	EndpointTokensRevoke   = contract.Endpoint[TokenRevoke, Empty]{Service: Service, Name: "tokens.revoke"}
	EndpointTokensExchange = contract.Endpoint[TokenExchange, TokenAccess]{Service: Service, Name: "tokens.exchange"}
)

// Limits of personal tokens.
const (
	TokenNameMax       = 100
	TokenExpiryDaysMax = 3650
	TokensPerUserMax   = 50
)

// TokenCreate is a signed-in user creating a token for themselves. Roles
// nil means every role the user holds; ExpiresInDays nil means no expiry.
type TokenCreate struct {
	Actor         Actor    `json:"actor"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	ExpiresInDays *int     `json:"expires_in_days,omitempty"`
}

// Token is a personal token as it is listed: never its secret.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Roles      []string   `json:"roles"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// TokenCreated is a new token with its secret, shown this once.
type TokenCreated struct {
	Token     string     `json:"token"`
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Roles     []string   `json:"roles"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// TokensList asks for the caller's tokens, or, for an administrator, for
// Email's.
type TokensList struct {
	Actor Actor  `json:"actor"`
	Email string `json:"email,omitempty"`
}

// Tokens is a user's live and expired tokens, newest first.
type Tokens struct {
	Tokens []Token `json:"tokens"`
}

// TokenRevoke revokes one token of the caller, or, for an administrator,
// of anyone (of Email, when set).
type TokenRevoke struct {
	Actor Actor  `json:"actor"`
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
}

// TokenExchange presents a personal token.
type TokenExchange struct {
	Token string `json:"token"`
}

// TokenAccess is the access token a valid personal token is good for now.
type TokenAccess struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateToken creates a personal token.
func (c Client) CreateToken(ctx context.Context, r TokenCreate) (TokenCreated, error) {
	return EndpointTokensCreate.Call(ctx, c.T, r)
}

// Tokens lists personal tokens.
func (c Client) Tokens(ctx context.Context, r TokensList) (Tokens, error) {
	return EndpointTokensList.Call(ctx, c.T, r)
}

// RevokeToken revokes a personal token.
func (c Client) RevokeToken(ctx context.Context, r TokenRevoke) error {
	_, err := EndpointTokensRevoke.Call(ctx, c.T, r)
	return err
}

// ExchangeToken trades a personal token for an access token.
func (c Client) ExchangeToken(ctx context.Context, r TokenExchange) (TokenAccess, error) {
	return EndpointTokensExchange.Call(ctx, c.T, r)
}
