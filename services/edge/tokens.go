package edge

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

// Personal API tokens on the edge: the routes that create, list and revoke
// them (the auth service owns them), and their use as a Bearer token. A
// presented personal token is traded with the auth service for a
// short-lived access token, which is cached here and checked on every
// request against the deny-list and token versions like any session token:
// revoking the personal token (its ID on the deny-list) or changing its
// user reaches every edge at once, and the bus is asked about once a
// minute per token and edge.

const (
	// personalCacheFor is how long an exchange is reused.
	personalCacheFor = time.Minute
	// personalRefusalFor is how long a refusal is reused, so that a
	// script hammering with a dead token does not hammer the bus.
	personalRefusalFor = 5 * time.Second
	personalCacheMax   = 10_000
)

// personalRefusal is why the auth service refused a personal token, in
// its words: the caller reads them.
type personalRefusal struct {
	code apierr.Code
	msg  string
}

func (e *personalRefusal) Error() string { return e.msg }

// Unwrap lets the refusal count as the verifier's errors do.
func (e *personalRefusal) Unwrap() error {
	if e.code == apierr.CodeTokenRevoked {
		return authn.ErrRevoked
	}
	return authn.ErrInvalid
}

type personalEntry struct {
	access string // the access token, or "" for a refusal
	err    error
	until  time.Time
}

// personalTokens caches exchanges of personal tokens by their SHA-256 (the
// tokens themselves are not kept).
type personalTokens struct {
	auth     authapi.Client
	verifier *authn.Verifier
	mu       sync.Mutex
	cache    map[[32]byte]personalEntry
}

func newPersonalTokens(auth authapi.Client, v *authn.Verifier) *personalTokens {
	return &personalTokens{auth: auth, verifier: v, cache: map[[32]byte]personalEntry{}}
}

// claims are the claims of token's current access token, and that token.
func (p *personalTokens) claims(ctx context.Context, token string, now time.Time) (string, *authn.Claims, error) {
	if _, _, ok := authn.ParsePersonal(token); !ok {
		// Its shape is wrong: no need to ask anyone.
		return "", nil, &personalRefusal{code: apierr.CodeUnauthenticated, msg: "the API token is not valid"}
	}
	key := sha256.Sum256([]byte(token))
	p.mu.Lock()
	e, ok := p.cache[key]
	p.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.err != nil {
			return "", nil, e.err
		}
		c, err := p.verifier.Verify(e.access, now)
		if err == nil {
			return e.access, c, nil
		}
		// Revoked or its user changed: ask again, the answer says which.
	}
	acc, err := p.auth.ExchangeToken(ctx, authapi.TokenExchange{Token: token})
	if err != nil {
		ae := apierr.From(err)
		switch ae.Code {
		case apierr.CodeTokenRevoked, apierr.CodeUnauthenticated:
			err = &personalRefusal{code: ae.Code, msg: ae.Message}
		default:
			// The auth service is away: nothing to remember.
			return "", nil, fmt.Errorf("check API token: %w", err)
		}
		p.put(key, personalEntry{err: err, until: now.Add(personalRefusalFor)})
		return "", nil, err
	}
	c, err := p.verifier.Verify(acc.Token, now)
	if err != nil {
		return "", nil, err
	}
	until := now.Add(personalCacheFor)
	if c.ExpiresAt.Time.Before(until) {
		until = c.ExpiresAt.Time
	}
	p.put(key, personalEntry{access: acc.Token, until: until})
	return acc.Token, c, nil
}

func (p *personalTokens) put(key [32]byte, e personalEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cache) >= personalCacheMax {
		// Forget an arbitrary tenth; a forgotten token is exchanged again.
		n := 0
		for k := range p.cache {
			delete(p.cache, k)
			if n++; n >= personalCacheMax/10 {
				break
			}
		}
	}
	p.cache[key] = e
}

// tokensAPI is the personal tokens' routes.
type tokensAPI struct {
	auth authapi.Client
	id   *identity
}

func (x *tokensAPI) routes(app *fiber.App) {
	app.Get("/api/tokens", x.id.requireUser, x.list)
	app.Post("/api/tokens", x.id.requireUser, x.create)
	app.Delete("/api/tokens/:id", x.id.requireUser, x.revoke)
	app.Get("/admin/api/users/:email/tokens", x.id.requireAdmin, x.list)
	app.Delete("/admin/api/users/:email/tokens/:id", x.id.requireAdmin, x.revoke)
}

// tokenCreate is the body of POST /api/tokens.
type tokenCreate struct {
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	ExpiresInDays *int     `json:"expires_in_days"`
}

func (x *tokensAPI) create(c *fiber.Ctx) error {
	var req tokenCreate
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	out, err := x.auth.CreateToken(c.UserContext(), authapi.TokenCreate{Actor: actorOf(c), Name: req.Name, Roles: req.Roles, ExpiresInDays: req.ExpiresInDays})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (x *tokensAPI) list(c *fiber.Ctx) error {
	email, err := pathEmail(c)
	if err != nil {
		return err
	}
	out, err := x.auth.Tokens(c.UserContext(), authapi.TokensList{Actor: actorOf(c), Email: email})
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (x *tokensAPI) revoke(c *fiber.Ctx) error {
	email, err := pathEmail(c)
	if err != nil {
		return err
	}
	if err := x.auth.RevokeToken(c.UserContext(), authapi.TokenRevoke{Actor: actorOf(c), ID: c.Params("id"), Email: email}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
