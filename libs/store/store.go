// Package store is the platform's MongoDB access: one pooled client with its
// pool and slow commands observed, and the core indexes.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Core collections.
const (
	Users             = "users"
	ExperimentsConfig = "experiments_config"
	ExportLogs        = "export_logs"
	AuditLog          = "audit_log"
	// DataVersions holds one counter per experiment ({_id: slug, seq,
	// updated_at}) that libs/scoped increases after every write that
	// changed the experiment's data; exports compare it to tell whether a
	// package of the data is still current. Its _id is its only key.
	DataVersions = "data_versions"
	// DataGrants holds the grants of one experiment's data to another's
	// reads (see Grants).
	DataGrants = "data_grants"
	// DataMigrations records the migrations of experiments' data the
	// platform ran at start ({_id: name, state, ...}).
	DataMigrations = "data_migrations"
)

// SlowCommand is the duration past which a command is logged.
const SlowCommand = 100 * time.Millisecond

// Options configure Open.
type Options struct {
	URI      string
	Database string
	MinPool  uint64
	MaxPool  uint64
	AppName  string
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Store is a connected client and the platform database.
type Store struct {
	Client *mongo.Client
	DB     *mongo.Database
}

type poolMetrics struct {
	checkedOut prometheus.Gauge
	open       prometheus.Gauge
	waits      prometheus.Counter
	waitTime   prometheus.Histogram
	slow       prometheus.Counter
}

func newPoolMetrics(reg prometheus.Registerer) *poolMetrics {
	return &poolMetrics{
		checkedOut: telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "gnome_db_pool_checked_out", Help: "Connections in use."})),
		open:       telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "gnome_db_pool_open", Help: "Connections open (in use and idle)."})),
		waits:      telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "gnome_db_pool_checkout_waits_total", Help: "Connection check-outs started."})),
		waitTime: telemetry.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gnome_db_pool_checkout_seconds", Help: "Time to check a connection out of the pool.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5}})),
		slow: telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "gnome_db_slow_commands_total", Help: "Commands slower than 100 ms."})),
	}
}

// Open connects and pings. Pool use is exported as gnome_db_pool_* metrics
// and commands slower than SlowCommand are logged. Against FerretDB (the
// embedded store) updates of one collection run one at a time (see
// serialWrites).
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	m := newPoolMetrics(o.Registry)
	pool := &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		switch e.Type {
		case event.ConnectionCreated:
			m.open.Inc()
		case event.ConnectionClosed:
			m.open.Dec()
		case event.ConnectionCheckOutStarted:
			m.waits.Inc()
		case event.ConnectionCheckedOut:
			m.checkedOut.Inc()
			m.waitTime.Observe(e.Duration.Seconds())
		case event.ConnectionCheckedIn:
			m.checkedOut.Dec()
		}
	}}
	// ferret: the server is FerretDB, known once connected (before any
	// command of the caller's runs).
	var ferret atomic.Bool
	cmd := &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			if ferret.Load() {
				processWrites.started(ctx, e, o.Log)
			}
		},
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) {
			processWrites.finished(e.RequestID)
			if e.Duration >= SlowCommand {
				m.slow.Inc()
				o.Log.WarnContext(ctx, "slow database command", "command", e.CommandName, "database", e.DatabaseName, "duration_ms", e.Duration.Milliseconds())
			}
		},
		Failed: func(ctx context.Context, e *event.CommandFailedEvent) {
			processWrites.finished(e.RequestID)
			if e.Duration >= SlowCommand {
				m.slow.Inc()
				o.Log.WarnContext(ctx, "slow database command failed", "command", e.CommandName, "duration_ms", e.Duration.Milliseconds(), "err", e.Failure)
			}
		},
	}
	opts := options.Client().ApplyURI(o.URI).
		SetMinPoolSize(o.MinPool).SetMaxPoolSize(o.MaxPool).
		SetPoolMonitor(pool).SetMonitor(cmd).
		SetAppName(o.AppName).
		SetServerSelectionTimeout(10 * time.Second)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("ping database: %w", err)
	}
	isFerret, err := isFerretDB(pctx, client)
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("ask the database what it is: %w", err)
	}
	ferret.Store(isFerret)
	return &Store{Client: client, DB: client.Database(o.Database)}, nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Client.Ping(ctx, readpref.Primary()) }

// Close disconnects, waiting for operations in flight up to ctx's deadline.
func (s *Store) Close(ctx context.Context) error { return s.Client.Disconnect(ctx) }

// Collection is a collection of the platform database.
func (s *Store) Collection(name string) *mongo.Collection { return s.DB.Collection(name) }

// index is one core index: its name, keys and whether it is unique.
type index struct {
	name   string
	keys   bson.D
	unique bool
}

// coreIndexes are the indexes every deployment has, created at start. They
// are kept as plain values and made into driver models per call: the driver
// writes into a model's options while it creates the index, so shared
// models would race between services provisioning at once.
var coreIndexes = map[string][]index{
	Users: {
		{name: "email_unique", keys: bson.D{{Key: "email", Value: 1}}, unique: true},
	},
	ExperimentsConfig: {
		{name: "slug_unique", keys: bson.D{{Key: "slug", Value: 1}}, unique: true},
	},
	// The export service's queries: by export ID (unique, so a job can
	// never make a second log of one export), an experiment's logs newest
	// first, the ready or live export of a source, the live jobs by
	// heartbeat (stale ones) and the ready ones by expiry (clean-up).
	ExportLogs: {
		{name: "export_id_unique", keys: bson.D{{Key: "export_id", Value: 1}}, unique: true},
		{name: "slug_id", keys: bson.D{{Key: "slug_id", Value: 1}}},
		{name: "created_at", keys: bson.D{{Key: "created_at", Value: 1}}},
		{name: "slug_id_created_at", keys: bson.D{{Key: "slug_id", Value: 1}, {Key: "created_at", Value: -1}}},
		{name: "source_key_status", keys: bson.D{{Key: "source_key", Value: 1}, {Key: "status", Value: 1}}},
		{name: "status_heartbeat_at", keys: bson.D{{Key: "status", Value: 1}, {Key: "heartbeat_at", Value: 1}}},
		{name: "expires_at", keys: bson.D{{Key: "expires_at", Value: 1}}},
		{name: "checksum_invalidated", keys: bson.D{{Key: "checksum", Value: 1}, {Key: "invalidated", Value: 1}}},
	},
	// A grant is found by the experiment whose data it shares and by the
	// one that reads it; its _id is the pair.
	DataGrants: {
		{name: "data", keys: bson.D{{Key: "data", Value: 1}}},
		{name: "reader", keys: bson.D{{Key: "reader", Value: 1}}},
	},
}

// EnsureIndexes creates the core indexes of the named collections (all when
// none are named); existing ones are kept.
func (s *Store) EnsureIndexes(ctx context.Context, collections ...string) error {
	if len(collections) == 0 {
		for c := range coreIndexes {
			collections = append(collections, c)
		}
	}
	for _, coll := range collections {
		indexes, ok := coreIndexes[coll]
		if !ok {
			return fmt.Errorf("no core indexes are defined for %s", coll)
		}
		// One index per command: FerretDB 1.24 fails a createIndexes that
		// names several indexes when some already exist.
		for _, ix := range indexes {
			opts := options.Index().SetName(ix.name)
			if ix.unique {
				opts.SetUnique(true)
			}
			m := mongo.IndexModel{Keys: ix.keys, Options: opts}
			if _, err := s.DB.Collection(coll).Indexes().CreateOne(ctx, m); err != nil {
				return fmt.Errorf("create indexes on %s: %w", coll, err)
			}
		}
	}
	return nil
}

// FindByID decodes the document of c whose _id is id into a T, or returns
// nil when there is none: the lookup every repository's Get makes.
func FindByID[T any](ctx context.Context, c *mongo.Collection, id string) (*T, error) {
	var v T
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %q: %w", c.Name(), id, err)
	}
	return &v, nil
}
