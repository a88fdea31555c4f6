package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
)

// entry is an experiment as the edge serves it: its configuration and its
// parsed manifest, from which the access rules come.
type entry struct {
	cfg      experiments.Config
	manifest *bundle.Manifest
	rules    experiments.Rules
	// subAuth is the manifest's sub_auth with its defaults, read once
	// (also from a stored manifest today's checks would refuse).
	subAuth *bundle.SubAuth
}

// catalog keeps every experiment's configuration in memory, so that serving
// a request costs no database round trip. It loads everything at start and
// follows the events stream from then on; a slug it does not know is looked
// up once (it may be newer than the last event seen).
type catalog struct {
	repo store.Experiments
	js   jetstream.JetStream
	log  *slog.Logger

	mu sync.RWMutex
	m  map[string]*entry

	follower *bus.Follower
}

func newCatalog(repo store.Experiments, js jetstream.JetStream, log *slog.Logger) *catalog {
	return &catalog{repo: repo, js: js, log: log, m: map[string]*entry{}}
}

// start follows the events (from now on) and then loads the current state,
// so no change falls between the two.
func (c *catalog) start(ctx context.Context) error {
	f, err := bus.Follow(ctx, context.Background(), c.js, bus.FollowOptions{
		Stream: bus.StreamEvents, Subjects: []string{events.ExperimentAll}, Timeout: 5 * time.Second, Log: c.log,
	}, c.onEvent)
	if err != nil {
		return err
	}
	all, err := c.repo.List(ctx, "")
	if err != nil {
		f.Stop(ctx)
		return fmt.Errorf("load experiments: %w", err)
	}
	c.follower = f
	for i := range all {
		c.put(&all[i])
	}
	return nil
}

// onEvent applies an experiment's change: a deletion drops it, anything
// else is read again.
func (c *catalog) onEvent(ctx context.Context, e bus.Event[events.Experiment]) error {
	switch {
	case e.Data.Slug == "":
		return nil
	case e.Subject == events.ExperimentDeleted:
		c.drop(e.Data.Slug)
		return nil
	}
	_, err := c.refresh(ctx, e.Data.Slug)
	return err
}

func (c *catalog) stop() {
	if c.follower != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.follower.Stop(ctx)
	}
}

func (c *catalog) put(cfg *experiments.Config) *entry {
	m, _, err := bundle.ParseManifest([]byte(cfg.Manifest))
	if err != nil {
		c.log.Warn("stored manifest no longer parses; serving with its configuration only", "slug", cfg.Slug, "err", err)
		m = nil
	}
	e := &entry{cfg: *cfg, manifest: m, rules: experiments.RulesOf(cfg, m), subAuth: bundle.SubAuthOf([]byte(cfg.Manifest))}
	if m != nil && m.SubAuth != nil {
		e.subAuth = m.SubAuth
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[cfg.Slug]; ok && old.cfg.Seq > cfg.Seq {
		return old // a newer state arrived first
	}
	c.m[cfg.Slug] = e
	return e
}

func (c *catalog) drop(slug string) {
	c.mu.Lock()
	delete(c.m, slug)
	c.mu.Unlock()
}

// refresh reads one experiment from the database.
func (c *catalog) refresh(ctx context.Context, slug string) (*entry, error) {
	cfg, err := c.repo.Get(ctx, slug)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		c.drop(slug)
		return nil, nil
	}
	return c.put(cfg), nil
}

// get is the experiment, or nil when there is none.
func (c *catalog) get(ctx context.Context, slug string) (*entry, error) {
	c.mu.RLock()
	e, ok := c.m[slug]
	c.mu.RUnlock()
	if ok {
		return e, nil
	}
	return c.refresh(ctx, slug)
}

// list is every experiment, by slug.
func (c *catalog) list() []*entry {
	c.mu.RLock()
	out := make([]*entry, 0, len(c.m))
	for _, e := range c.m {
		out = append(out, e)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Slug < out[j].cfg.Slug })
	return out
}
