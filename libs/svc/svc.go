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
	st, err := openStore(ctx, cfg, store.Options{
		URI: mongoURI, Database: cfg.MongoDB, MinPool: cfg.MongoMinPool, MaxPool: cfg.MongoMaxPool,
		AppName: "gnome-" + name, Log: tel.Logger, Registry: tel.Registry,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Deps{
		Config: cfg, Log: tel.Logger, Telemetry: tel, NC: nc, JS: js,
		Topology: newTopology(js, cfg, name, tel.Logger),
		Store:    st, InstanceID: id, Version: buildinfo.Version, Started: time.Now(),
		identity: &identityState{},
	}, nil
}

// openStore opens the database, waiting for it while it does not answer
// (a replica set started with the services, not yet initiated), within
// PROVISION_TIMEOUT_SECONDS as provisioning does.
func openStore(ctx context.Context, cfg *config.Config, o store.Options) (*store.Store, error) {
	deadline := time.Now().Add(cfg.ProvisionTimeout)
	backoff := 250 * time.Millisecond
	for {
		st, err := store.Open(ctx, o)
		if err == nil || !store.IsUnavailable(err) || time.Now().After(deadline) {
			return st, err
		}
		o.Log.Warn("database not reachable yet; waiting for it", "err", err, "bound", cfg.ProvisionTimeout)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// newTopology provisions as service name with the settings' replicas and
// bound, logging each attempt that will be repeated.
func newTopology(js jetstream.JetStream, cfg *config.Config, name string, log *slog.Logger) bus.Topology {
	return bus.Topology{
		JS: js, Replicas: cfg.NATSReplicas, Service: name, Bound: cfg.ProvisionTimeout,
		Retrying: func(kind, res string, attempt int, err error) {
			log.Warn("provisioning not done yet; retrying", "kind", kind, "name", res, "attempt", attempt, "err", err, "bound", cfg.ProvisionTimeout)
		},
	}
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
	c.Topology = newTopology(js, d.Config, name, d.Log)
	return &c, nil
}

func connectBus(natsURL, name, id string, auth config.NATSAuth, tel *telemetry.Telemetry, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := bus.AuthOptions(auth, name)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, extra...)
	nc, err := bus.Connect(natsURL, "gnome-"+name+"-"+id, tel.Logger, opts...)
	if errors.Is(err, nats.ErrNoServers) {
		// No server answers yet (a cluster starting with its services):
		// connect in the background and let provisioning wait for it
		// within its bound. Refused credentials still fail at once.
		tel.Logger.Warn("nats not reachable yet; waiting for it", "err", err)
		nc, err = bus.Connect(natsURL, "gnome-"+name+"-"+id, tel.Logger, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, nil, err
	}
	// An asynchronous publish waits up to bus.AckWait for its
	// acknowledgement. Calls without a deadline of their own, and each
	// chunk of an object put (bus.PutObject), wait at most bus.OpTimeout
	// (jetstream's 5 s default fails uploads on a busy disk): a lost node
	// fails them within seconds, not at the request's deadline.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(bus.AckWait), jetstream.WithDefaultTimeout(bus.OpTimeout))
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
// it runs the service until SIGTERM (Run), or with the argument probe asks
// the running instance's health (a container health check without a
// shell), and exits with Run's code.
func Main(name string, build func(*Deps) []Service) {
	ctx, stop := SignalContext()
	// After the first signal starts a graceful stop, a second one ends the
	// process at once.
	go func() { <-ctx.Done(); stop() }()
	code := Run(ctx, name, os.Args[1:], config.Load, build)
	stop()
	os.Exit(code)
}

// Run is Main's body, with the signals' context, the arguments and the
// settings given: without arguments it reads the config, refuses to embed
// anything, serves METRICS_ADDR when set, connects, runs the services built
// by build until ctx ends and stops them gracefully; `probe` asks the
// /health at METRICS_ADDR. It returns the process's exit code: 0, 1 on a
// failure (printed to stderr), 2 on a wrong argument.
func Run(ctx context.Context, name string, args []string, load func() (*config.Config, error), build func(*Deps) []Service) int {
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "probe":
		cfg, err := load()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s probe: %v\n", name, err)
			return 1
		}
		return probe(cfg, os.Stderr)
	default:
		fmt.Fprintf(os.Stderr, "usage: %s [probe]\n  without arguments: run the %s service\n  probe: exit 0 when the instance at METRICS_ADDR is healthy, 1 otherwise\n", name, name)
		return 2
	}
	if err := run(ctx, name, load, build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func run(ctx context.Context, name string, load func() (*config.Config, error), build func(*Deps) []Service) error {
	cfg, err := load()
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
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome-" + name, Version: buildinfo.Version, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	// The health listener comes first: while NATS is awaited and
	// provisioning retries (up to PROVISION_TIMEOUT_SECONDS), the instance
	// is up but not ready, rather than restarted by its orchestrator.
	var obs *Observer
	if cfg.MetricsAddr != "" {
		if obs, err = Observe(cfg.MetricsAddr, cfg, tel); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = obs.Close(cctx)
		}()
	}
	deps, err := Connect(ctx, cfg, tel, cfg.NATSURL, cfg.MongoURI, name)
	if err != nil {
		return err
	}
	g := &Group{Log: tel.Logger, Services: build(deps)}
	if err := g.Start(ctx); err != nil {
		deps.Close(context.Background())
		return err
	}
	if obs != nil {
		obs.Ready(deps.Check)
	}
	tel.Logger.Info("ready", "service", name, "instance", deps.InstanceID, "metrics_addr", cfg.MetricsAddr)
	<-ctx.Done()
	if obs != nil {
		obs.NotReady()
	}
	tel.Logger.Info("shutting down", "service", name, "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	err = g.Stop(sctx)
	deps.Close(sctx)
	return err
}
