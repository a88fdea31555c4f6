// Package svc is the life cycle every service shares: what a service gets to
// work with (Deps), how it starts and stops (Service), and the main function
// of a separately deployed service binary (Main). `gnome serve` runs the
// same Services in one process.
package svc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Service is one service of the platform.
type Service interface {
	// Name is the service's name on the bus (edge, auth, upload, export, actorworker).
	Name() string
	// Start provisions what the service owns and begins serving; it returns
	// once the service is ready.
	Start(ctx context.Context) error
	// Stop stops taking work, finishes or hands back what is in flight until
	// ctx ends, and releases the service's resources.
	Stop(ctx context.Context) error
}

// Deps is what a service works with. One Deps is shared by every service of
// a process.
type Deps struct {
	Config     *config.Config
	Log        *slog.Logger
	Telemetry  *telemetry.Telemetry
	NC         *nats.Conn
	JS         jetstream.JetStream
	Topology   bus.Topology
	Store      *store.Store
	InstanceID string
	Version    string
	// Started is when the process began, for health and benchmarks.
	Started time.Time

	// sharedStore: Store belongs to the Deps this one was made from.
	sharedStore bool
	identity    *identityState
}

// NewInstanceID names this process on the bus: host, pid and a random tail.
func NewInstanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Connect dials NATS as bus user name and the database, and fills Deps.
// The credentials are the settings' (NATS_USER/NATS_PASSWORD, NATS_CREDS,
// NATS_NKEY_SEED), else those an embedded server generated for name under
// DATA_DIR (a binary started next to `gnome serve --infra-only`), else
// those in natsURL, if any.
func Connect(ctx context.Context, cfg *config.Config, tel *telemetry.Telemetry, natsURL, mongoURI, name string) (*Deps, error) {
	auth, err := BusAuth(cfg, name)
	if err != nil {
		return nil, err
	}
	id := NewInstanceID()
	nc, js, err := connectBus(natsURL, name, id, auth, tel)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{
		URI: mongoURI, Database: cfg.MongoDB, MinPool: cfg.MongoMinPool, MaxPool: cfg.MongoMaxPool,
		AppName: "gnome-" + name, Log: tel.Logger, Registry: tel.Registry,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Deps{
		Config: cfg, Log: tel.Logger, Telemetry: tel, NC: nc, JS: js,
		Topology: bus.Topology{JS: js, Replicas: cfg.NATSReplicas, Service: name},
		Store:    st, InstanceID: id, Version: buildinfo.Version, Started: time.Now(),
		identity: &identityState{},
	}, nil
}

// BusAuth is how bus user name authenticates: the settings' credentials,
// else those an embedded server generated for it under DATA_DIR, else none.
func BusAuth(cfg *config.Config, name string) (config.NATSAuth, error) {
	if cfg.NATSAuth.Set() {
		return cfg.NATSAuth, nil
	}
	a, ok, err := bus.ReadCredentials(cfg.DataDir, name)
	if err != nil || !ok {
		return config.NATSAuth{}, err
	}
	return a, nil
}

// WithBus is d with a NATS connection of its own, as bus user name with
// auth, sharing d's database pool, telemetry and instance ID: `gnome serve`
// connects each service as itself. Its Close closes only that connection.
// opts add to the connection's options (an in-process connection to an
// embedded server).
func (d *Deps) WithBus(natsURL, name string, auth config.NATSAuth, opts ...nats.Option) (*Deps, error) {
	nc, js, err := connectBus(natsURL, name, d.InstanceID, auth, d.Telemetry, opts...)
	if err != nil {
		return nil, err
	}
	c := *d
	c.NC, c.JS, c.sharedStore, c.identity = nc, js, true, &identityState{}
	c.Topology = bus.Topology{JS: js, Replicas: d.Config.NATSReplicas, Service: name}
	return &c, nil
}

func connectBus(natsURL, name, id string, auth config.NATSAuth, tel *telemetry.Telemetry, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := bus.AuthOptions(auth, name)
	if err != nil {
		return nil, nil, err
	}
	nc, err := bus.Connect(natsURL, "gnome-"+name+"-"+id, tel.Logger, append(opts, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	// An object store's Put waits for each chunk's acknowledgement up to
	// the publish-async timeout (5 s by default), even when its context
	// allows longer: a busy disk or machine then fails an upload that
	// would have been stored. The caller's context bounds the wait anyway.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(bus.AckWait))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open jetstream: %w", err)
	}
	return nc, js, nil
}

// Close drains the NATS connection (delivering what is buffered) and
// disconnects from the database, unless the database is another Deps'.
func (d *Deps) Close(ctx context.Context) {
	d.stopIdentity()
	if d.NC != nil {
		drained := make(chan struct{})
		d.NC.SetClosedHandler(func(*nats.Conn) { close(drained) })
		if err := d.NC.Drain(); err == nil {
			select {
			case <-drained:
			case <-ctx.Done():
				d.NC.Close()
			}
		} else {
			d.NC.Close()
		}
	}
	if d.Store != nil && !d.sharedStore {
		_ = d.Store.Close(ctx)
	}
}

// Group starts services in order and stops them in reverse.
type Group struct {
	Log      *slog.Logger
	Services []Service
	started  []Service
}

// Start starts every service; on a failure the ones started are stopped.
func (g *Group) Start(ctx context.Context) error {
	for _, s := range g.Services {
		t := time.Now()
		if err := s.Start(ctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = g.Stop(stopCtx)
			return fmt.Errorf("start %s: %w", s.Name(), err)
		}
		g.Log.Info("service started", "service", s.Name(), "took_ms", time.Since(t).Milliseconds())
		g.started = append(g.started, s)
	}
	return nil
}

// Stop stops the started services in reverse order within ctx.
func (g *Group) Stop(ctx context.Context) error {
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		s := g.started[i]
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.Name(), err))
		} else {
			g.Log.Info("service stopped", "service", s.Name())
		}
	}
	g.started = nil
	return errors.Join(errs...)
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Main is the whole main function of a separately deployed service binary:
// it reads the config, refuses to embed anything, connects, runs the
// services built by build until SIGTERM, and stops them gracefully.
func Main(name string, build func(*Deps) []Service) {
	if err := run(name, build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name string, build func(*Deps) []Service) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if err := cfg.RequireExternal(name); err != nil {
		return err
	}
	if auth, err := BusAuth(cfg, name); err != nil {
		return err
	} else if !auth.Set() && cfg.IsProduction() {
		return &config.Error{Var: "NATS_USER", Msg: "production needs bus credentials: set NATS_USER and NATS_PASSWORD, NATS_CREDS or NATS_NKEY_SEED (docs/operations.md, \"Bus credentials\")"}
	}
	if err := cfg.EnsureSecretKey(); err != nil {
		return err
	}
	ctx, stop := SignalContext()
	defer stop()
	// After the first signal starts a graceful stop, a second one ends the
	// process at once.
	go func() { <-ctx.Done(); stop() }()
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome-" + name, Version: buildinfo.Version, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	deps, err := Connect(ctx, cfg, tel, cfg.NATSURL, cfg.MongoURI, name)
	if err != nil {
		return err
	}
	g := &Group{Log: tel.Logger, Services: build(deps)}
	if err := g.Start(ctx); err != nil {
		deps.Close(context.Background())
		return err
	}
	tel.Logger.Info("ready", "service", name, "instance", deps.InstanceID)
	<-ctx.Done()
	tel.Logger.Info("shutting down", "service", name, "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	err = g.Stop(sctx)
	deps.Close(sctx)
	return err
}
