// Package auth is the auth service: it owns users, tokens and roles, and
// answers sign-in, sign-up, sign-out and administration over NATS.
package auth

import (
	"context"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Name is the service's name on the bus.
const Name = "auth"

// Service is one instance of the auth service.
type Service struct{ svc.Base }

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "accounts, tokens and roles",
		Provision: func(ctx context.Context) error {
			if err := d.Topology.EnsureBuckets(ctx, bus.BucketRevokedTokens); err != nil {
				return err
			}
			return d.Store.EnsureIndexes(ctx, store.Users)
		},
	}
	return s
}
