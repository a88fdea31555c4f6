// Package upload is the upload service: it checks incoming experiment ZIPs,
// stores them as versioned bundles and announces new versions as events.
package upload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bundle"
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

var (
	_ experimentRecords = store.Experiments{}
	_ experimentLister  = store.Experiments{}
	_ grantRecords      = store.Grants{}
)

// Service is one instance of the upload service.
type Service struct {
	svc.Base
	d       *svc.Deps
	configs experimentRecords
	lister  experimentLister
	grants  grantRecords
	// access is the data_grants bucket: the active grants (grants.go).
	access jetstream.KeyValue
	// secrets are the experiments' secrets (secrets.go).
	secrets secretRecords
	uploads jetstream.ObjectStore
	bundles jetstream.ObjectStore
	// embedded tells whether the store is the embedded one, which builds
	// fewer index types.
	embedded bool
	tmp      string
	// runs are the processings of uploads (runs.go).
	runs runs
	// afterAccessList, when set (tests), runs after the data_grants keys
	// were listed and read, before anything is decided on them.
	afterAccessList func()
}

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{d: d, configs: d.Store.Experiments(), lister: d.Store.Experiments(), grants: d.Store.Grants()}
	s.runs.m = map[string]*run{}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "experiment uploads, bundles and versions",
		Provision:   s.provision,
		// Processings of uploads run in the background: Stop hands them
		// over (runs.go).
		Background: func(_ context.Context, bg *svc.Background) error {
			s.runs.bg.Store(bg)
			return nil
		},
		Endpoints: func(srv *bus.Server) error {
			return srv.Register(
				bus.Endpoint(uploadapi.EndpointProcess, s.process),
				bus.Endpoint(uploadapi.EndpointUpdate, s.update),
				bus.Endpoint(uploadapi.EndpointDelete, s.delete),
				bus.Endpoint(uploadapi.EndpointVersions, s.listVersions),
				bus.Endpoint(uploadapi.EndpointRollback, s.rollback),
				bus.Endpoint(uploadapi.EndpointGrants, s.listGrants),
				bus.Endpoint(uploadapi.EndpointGrant, s.grant),
				bus.Endpoint(uploadapi.EndpointRevoke, s.revoke),
				bus.Endpoint(uploadapi.EndpointSecrets, s.listSecrets),
				bus.Endpoint(uploadapi.EndpointSecretSet, s.setSecret),
				bus.Endpoint(uploadapi.EndpointSecretDelete, s.deleteSecret),
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
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketUploadRuns); err != nil {
		return err
	}
	kv, err := d.Topology.Bucket(ctx, bus.BucketUploadRuns)
	if err != nil {
		return fmt.Errorf("open upload runs bucket: %w", err)
	}
	s.runs.raw, s.runs.kv = kv, bus.LeaderKV{KeyValue: kv, JS: d.JS}
	if err := d.Store.EnsureIndexes(ctx, store.ExperimentsConfig, store.DataGrants); err != nil {
		return err
	}
	if s.uploads, err = d.Topology.Objects(ctx, bus.ObjectUploads); err != nil {
		return fmt.Errorf("open uploads store: %w", err)
	}
	if s.bundles, err = d.Topology.Objects(ctx, bus.ObjectBundles); err != nil {
		return fmt.Errorf("open bundles store: %w", err)
	}
	kind, err := scoped.DetectStore(ctx, d.Store.DB)
	if err != nil {
		return err
	}
	s.embedded = kind == scoped.StoreFerretDB
	if err := s.migrateNames(ctx); err != nil {
		return err
	}
	if err := s.provisionGrants(ctx); err != nil {
		return err
	}
	if err := s.provisionSecrets(ctx); err != nil {
		return err
	}
	s.tmp = filepath.Join(d.Config.DataDir, "tmp", "upload")
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return fmt.Errorf("create upload work dir: %w", err)
	}
	return nil
}

// migrateNames moves experiments' data from the old collection naming to
// the injective one (scoped.MigrateNames), once per database, and builds
// the managed indexes of the experiments whose data moved: indexes are not
// carried over from the old collections, which may have held several
// experiments' documents.
func (s *Service) migrateNames(ctx context.Context) error {
	rec, ran, err := scoped.MigrateNames(ctx, s.d.Store.DB, s.d.Log)
	if err != nil {
		return fmt.Errorf("migrate collection names: %w", err)
	}
	if !ran {
		return nil
	}
	s.d.Log.InfoContext(ctx, "collection names migrated", "collections_moved", len(rec.Moved), "collections_left", len(rec.Left))
	var slugs []string
	for _, m := range rec.Moved {
		if !slices.Contains(slugs, m.Slug) {
			slugs = append(slugs, m.Slug)
		}
	}
	for _, slug := range slugs {
		cfg, err := s.configs.Get(ctx, slug)
		if err != nil || cfg == nil {
			continue
		}
		m, _, err := bundle.ParseManifest([]byte(cfg.Manifest))
		if err != nil {
			continue
		}
		states := s.applyIndexes(ctx, slug, m, plannedIndexes(m, s.embedded))
		if _, err := s.configs.SetIndexes(ctx, slug, cfg.Seq, states); err != nil {
			s.d.Log.WarnContext(ctx, "record indexes after migration failed", "slug", slug, "err", err)
		}
	}
	return nil
}
