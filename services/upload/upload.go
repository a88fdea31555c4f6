// Package upload is the upload service: it checks incoming experiment ZIPs,
// stores them as versioned bundles and announces new versions as events.
package upload

import (
	"context"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Name is the service's name on the bus.
const Name = "upload"

// Service is one instance of the upload service.
type Service struct{ svc.Base }

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "experiment uploads, bundles and versions",
		Provision: func(ctx context.Context) error {
			if err := d.Topology.EnsureStreams(ctx, bus.StreamEvents); err != nil {
				return err
			}
			if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectUploads, bus.ObjectBundles); err != nil {
				return err
			}
			return d.Store.EnsureIndexes(ctx, store.ExperimentsConfig)
		},
	}
	return s
}
