package svc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
)

// Identity verifies the tokens that requests on the bus carry, the way every
// edge verifies a browser's: the signature with the keys auth publishes,
// then the deny-list and the user's token version, kept current by watching
// their buckets. A service acts on the identity a token proves, never on a
// name written beside it in the message.
type Identity struct {
	v      *authn.Verifier
	cancel context.CancelFunc
	now    func() time.Time
}

// identityState starts one Identity per Deps, on first use.
type identityState struct {
	mu  sync.Mutex
	id  *Identity
	err error
}

// Identity is d's verifier of callers' tokens, started on first use (it
// provisions and watches the token buckets) and stopped by Close.
func (d *Deps) Identity(ctx context.Context) (*Identity, error) {
	if d.identity == nil {
		// A Deps not made by Connect or WithBus; its first use is not
		// concurrent.
		d.identity = &identityState{}
	}
	st := d.identity
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.id != nil {
		return st.id, nil
	}
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketAuthKeys, bus.BucketRevokedTokens, bus.BucketUserVersions); err != nil {
		return nil, err
	}
	v := authn.NewVerifier()
	cancel, err := d.WatchTokens(ctx, v)
	if err != nil {
		return nil, err
	}
	st.id = &Identity{v: v, cancel: cancel, now: time.Now}
	return st.id, nil
}

// WatchTokens keeps v current with the token buckets until the returned
// stop is called, once their current contents are loaded. On a busy or
// recovering cluster the first load can time out: it is tried again, from
// scratch, as provisioning is (Topology.Retry).
func (d *Deps) WatchTokens(ctx context.Context, v *authn.Verifier) (stop func(), err error) {
	err = d.Topology.Retry(ctx, "watch", "token buckets", func(context.Context) error {
		// The watch outlives the attempt: it runs until stop.
		wctx, cancel := context.WithCancel(context.Background())
		if err := v.Watch(wctx, d.JS); err != nil {
			cancel()
			return err
		}
		stop = cancel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watch token keys: %w", err)
	}
	return stop, nil
}

func (d *Deps) stopIdentity() {
	if d.identity == nil {
		return
	}
	d.identity.mu.Lock()
	defer d.identity.mu.Unlock()
	if d.identity.id != nil {
		d.identity.id.cancel()
		d.identity.id = nil
	}
}

// Verifier is the token verifier behind id.
func (id *Identity) Verifier() *authn.Verifier { return id.v }

// Claims verifies token. Its errors are the catalogue's: unauthenticated
// for a missing or invalid token, token_revoked for one signed out or
// outdated by a change of the user's roles or state.
func (id *Identity) Claims(token string) (*authn.Claims, error) {
	if token == "" {
		return nil, apierr.New(apierr.CodeUnauthenticated, "the request carries no token of its caller")
	}
	c, err := id.v.Verify(token, id.now())
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, authn.ErrRevoked):
		return nil, apierr.New(apierr.CodeTokenRevoked, "the caller's session has ended")
	case errors.Is(err, authn.ErrExpired):
		return nil, apierr.New(apierr.CodeUnauthenticated, "the caller's token has expired")
	default:
		return nil, apierr.New(apierr.CodeUnauthenticated, "the caller's token is not valid")
	}
}

// Caller is c as its token proves it: the email and roles are the token's
// and is_admin is decided by isAdmin (the shared policy) from them,
// whatever c said; only the request ID is taken as given. A caller without a
// valid token is refused.
func (id *Identity) Caller(c contract.Caller, isAdmin func(email string, roles []string) bool) (contract.Caller, error) {
	cl, err := id.Claims(c.Token)
	if err != nil {
		return contract.Caller{}, err
	}
	roles := append([]string{}, cl.Roles...)
	return contract.Caller{
		Email: cl.Email, Roles: roles, IsAdmin: isAdmin(cl.Email, roles),
		RequestID: c.RequestID, Token: c.Token, Scoped: cl.PAT != "",
	}, nil
}

// HasAdminRole is the is_admin rule of services without a policy enforcer:
// the token's roles name admin.
func HasAdminRole(_ string, roles []string) bool {
	for _, r := range roles {
		if r == "admin" {
			return true
		}
	}
	return false
}
