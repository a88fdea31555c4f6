package export

import (
	"context"
	"sync"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// An experiment's data statistics (exportapi.EndpointDataStats): its
// collections' sizes from the store's own statistics (collStats, which
// reads no document), kept for sizesTTL so that a page reloaded in a loop
// costs the store nothing more, and its recent slow operations
// (store.DataSlowOps, written by the actor-workers), read fresh.

// sizesTTL is how long collection sizes are kept per experiment.
const sizesTTL = 10 * time.Second

type cachedSizes struct {
	at    time.Time
	sizes []scoped.CollectionSize
}

// sizeCache holds the sizes read last, per slug. Its zero value is ready.
type sizeCache struct {
	mu    sync.Mutex
	slugs map[string]cachedSizes
	kind  scoped.StoreKind
}

// storeKind asks the store once what it is.
func (c *sizeCache) storeKind(ctx context.Context, s *Service) (scoped.StoreKind, error) {
	c.mu.Lock()
	k := c.kind
	c.mu.Unlock()
	if k != scoped.StoreAuto {
		return k, nil
	}
	k, err := scoped.DetectStore(ctx, s.d.Store.DB)
	if err != nil {
		return k, err
	}
	c.mu.Lock()
	c.kind = k
	c.mu.Unlock()
	return k, nil
}

func (c *sizeCache) get(ctx context.Context, s *Service, slug string, now time.Time) (cachedSizes, error) {
	c.mu.Lock()
	got, ok := c.slugs[slug]
	c.mu.Unlock()
	if ok && now.Sub(got.at) < sizesTTL {
		return got, nil
	}
	sizes, err := scoped.CollectionSizes(ctx, s.d.Store.DB, slug)
	if err != nil {
		return cachedSizes{}, err
	}
	got = cachedSizes{at: now, sizes: sizes}
	c.mu.Lock()
	if c.slugs == nil || len(c.slugs) > 10_000 {
		// A bound on experiments remembered; a full map starts over.
		c.slugs = map[string]cachedSizes{}
	}
	c.slugs[slug] = got
	c.mu.Unlock()
	return got, nil
}

// dataStats answers EndpointDataStats, for the experiment's owner and
// admins.
func (s *Service) dataStats(ctx context.Context, req exportapi.DataStatsRequest) (exportapi.DataStats, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if normEmail(req.Caller.Email) == "" {
		return exportapi.DataStats{}, apierr.New(apierr.CodeUnauthenticated, "sign in to see an experiment's data")
	}
	cfg, err := s.configs.Get(ctx, req.Slug)
	if err != nil {
		return exportapi.DataStats{}, err
	}
	if cfg == nil {
		return exportapi.DataStats{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
	}
	if err := mayExport(cfg.OwnerEmail, exportapi.ResearchData, req.Caller); err != nil {
		return exportapi.DataStats{}, apierr.New(apierr.CodeForbidden, "only the experiment's owner and admins see its data")
	}
	kind, err := s.sizes.storeKind(ctx, s)
	if err != nil {
		return exportapi.DataStats{}, apierr.Wrap(apierr.CodeUnavailable, err, "the store cannot be asked right now")
	}
	sizes, err := s.sizes.get(ctx, s, cfg.Slug, now())
	if err != nil {
		return exportapi.DataStats{}, apierr.Wrap(apierr.CodeUnavailable, err, "the experiment's data cannot be measured right now")
	}
	ops, err := s.d.Store.SlowOps(ctx, cfg.Slug)
	if err != nil {
		return exportapi.DataStats{}, apierr.Wrap(apierr.CodeUnavailable, err, "the experiment's slow operations cannot be read right now")
	}
	out := exportapi.DataStats{
		Slug: cfg.Slug, Store: exportapi.StoreMongoDB, SlowMS: store.SlowCommand.Milliseconds(),
		Collections: make([]exportapi.DataStatsCollection, 0, len(sizes.sizes)),
		SlowOps:     make([]exportapi.DataSlowOp, 0, len(ops)),
		SizesAt:     sizes.at,
	}
	if kind == scoped.StoreFerretDB {
		out.Store, out.SlowDocuments = exportapi.StoreEmbedded, scoped.EmbeddedSlowDocuments
	}
	for _, c := range sizes.sizes {
		out.Collections = append(out.Collections, exportapi.DataStatsCollection{
			Name: c.Name, Documents: c.Documents, Bytes: c.Bytes,
			Slow: out.SlowDocuments > 0 && c.Documents > out.SlowDocuments,
		})
	}
	for _, o := range ops {
		out.SlowOps = append(out.SlowOps, exportapi.DataSlowOp{
			Collection: o.Collection, From: o.From, Op: o.Op, DurationMS: o.DurationMS, Documents: o.Documents, Error: o.Error, At: o.At,
		})
	}
	return out, nil
}
