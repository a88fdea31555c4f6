// Package upload is the upload service: it checks incoming experiment ZIPs,
// stores them as versioned bundles and announces new versions as events.
package upload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Name is the service's name on the bus.
const Name = uploadapi.Service

// experimentRecords is what uploads and changes need of the experiments'
// records; store.Experiments is the MongoDB one.
type experimentRecords interface {
	Get(ctx context.Context, slug string) (*experiments.Config, error)
	Change(ctx context.Context, slug string, fn func(cur *experiments.Config) (*experiments.Config, error)) (next, prev *experiments.Config, err error)
	SetIndexes(ctx context.Context, slug string, seq int64, states []experiments.IndexState) (*experiments.Config, error)
	Remove(ctx context.Context, slug string) error
}

var _ experimentRecords = store.Experiments{}

// Service is one instance of the upload service.
type Service struct {
	svc.Base
	d       *svc.Deps
	configs experimentRecords
	uploads jetstream.ObjectStore
	bundles jetstream.ObjectStore
	// embedded tells whether the store is the embedded one, which builds
	// fewer index types.
	embedded bool
	tmp      string
}

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{d: d, configs: d.Store.Experiments()}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "experiment uploads, bundles and versions",
		Provision:   s.provision,
		Endpoints: func(srv *bus.Server) error {
			return srv.Register(
				bus.Endpoint(uploadapi.EndpointProcess, s.process),
				bus.Endpoint(uploadapi.EndpointUpdate, s.update),
				bus.Endpoint(uploadapi.EndpointDelete, s.delete),
			)
		},
	}
	return s
}

func (s *Service) provision(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureStreams(ctx, bus.StreamEvents); err != nil {
		return err
	}
	if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectUploads, bus.ObjectBundles); err != nil {
		return err
	}
	if err := d.Store.EnsureIndexes(ctx, store.ExperimentsConfig); err != nil {
		return err
	}
	var err error
	if s.uploads, err = d.JS.ObjectStore(ctx, bus.ObjectUploads); err != nil {
		return fmt.Errorf("open uploads store: %w", err)
	}
	if s.bundles, err = d.JS.ObjectStore(ctx, bus.ObjectBundles); err != nil {
		return fmt.Errorf("open bundles store: %w", err)
	}
	kind, err := scoped.DetectStore(ctx, d.Store.DB)
	if err != nil {
		return err
	}
	s.embedded = kind == scoped.StoreFerretDB
	s.tmp = filepath.Join(d.Config.DataDir, "tmp", "upload")
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return fmt.Errorf("create upload work dir: %w", err)
	}
	return nil
}
