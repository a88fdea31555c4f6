package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// entry is an experiment as the edge serves it: its configuration and its
// parsed manifest, from which the access rules come.
type entry struct {
	cfg      experiments.Config
	manifest *bundle.Manifest
	rules    experiments.Rules
}

// catalog keeps every experiment's configuration in memory, so that serving
// a request costs no database round trip. It loads everything at start and
// follows the events stream from then on; a slug it does not know is looked
// up once (it may be newer than the last event seen).
type catalog struct {
	coll *mongo.Collection
	js   jetstream.JetStream
	log  *slog.Logger

	mu sync.RWMutex
	m  map[string]*entry

	cc jetstream.ConsumeContext
}

func newCatalog(coll *mongo.Collection, js jetstream.JetStream, log *slog.Logger) *catalog {
	return &catalog{coll: coll, js: js, log: log, m: map[string]*entry{}}
}

// start follows the events (from now on) and then loads the current state,
// so no change falls between the two.
func (c *catalog) start(ctx context.Context) error {
	cons, err := c.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"events.experiment.>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("follow experiment events: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var ev events.Experiment
		if json.Unmarshal(msg.Data(), &ev) != nil || ev.Slug == "" {
			return
		}
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if msg.Subject() == events.ExperimentDeleted {
			c.drop(ev.Slug)
			return
		}
		if _, err := c.refresh(rctx, ev.Slug); err != nil {
			c.log.Warn("refresh experiment failed", "slug", ev.Slug, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("follow experiment events: %w", err)
	}
	c.cc = cc
	cur, err := c.coll.Find(ctx, bson.D{})
	if err != nil {
		cc.Stop()
		return fmt.Errorf("load experiments: %w", err)
	}
	var all []experiments.Config
	if err := cur.All(ctx, &all); err != nil {
		cc.Stop()
		return fmt.Errorf("load experiments: %w", err)
	}
	for i := range all {
		c.put(&all[i])
	}
	return nil
}

func (c *catalog) stop() {
	if c.cc != nil {
		c.cc.Stop()
	}
}

func (c *catalog) put(cfg *experiments.Config) *entry {
	m, _, err := bundle.ParseManifest([]byte(cfg.Manifest))
	if err != nil {
		c.log.Warn("stored manifest no longer parses; serving with its configuration only", "slug", cfg.Slug, "err", err)
		m = nil
	}
	e := &entry{cfg: *cfg, manifest: m, rules: experiments.RulesOf(cfg, m)}
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
	var cfg experiments.Config
	err := c.coll.FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&cfg)
	if errors.Is(err, mongo.ErrNoDocuments) {
		c.drop(slug)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.put(&cfg), nil
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
