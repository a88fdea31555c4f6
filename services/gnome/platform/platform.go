// Package platform runs the whole of g.nome in one process: the embedded NATS
// server and store when no cluster is given, then every service, on the same
// code path a distributed deployment runs service by service.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/services/actorworker"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/edge"
	"github.com/gnome-platform/gnome/services/export"
	"github.com/gnome-platform/gnome/services/upload"
)

// Infra is the NATS server and store the platform runs on, embedded or not.
type Infra struct {
	NATSURL  string
	MongoURI string
	nats     *embedded.NATS
	store    *embedded.Store
}

// Auth is how bus user (a service's name, or bus.Admin) authenticates:
// with the embedded server, its generated credentials; with a cluster, the
// settings' (svc.BusAuth).
func (in *Infra) Auth(cfg *config.Config, user string) (config.NATSAuth, error) {
	if in.nats != nil {
		return in.nats.Credentials().Auth(user), nil
	}
	return svc.BusAuth(cfg, user)
}

// StartInfra starts what cfg leaves to embed: NATS (with JetStream under
// DATA_DIR/nats) when NATS_URL is empty, the store (DATA_DIR/db) when
// MONGO_URI is empty.
func StartInfra(cfg *config.Config, tel *telemetry.Telemetry) (*Infra, error) {
	in := &Infra{NATSURL: cfg.NATSURL, MongoURI: cfg.MongoURI}
	if cfg.EmbeddedNATS() {
		n, err := embedded.StartNATS(filepath.Join(cfg.DataDir, "nats"), cfg.EmbeddedNATSAddr)
		if err != nil {
			return nil, err
		}
		in.nats, in.NATSURL = n, n.URL()
	}
	if cfg.EmbeddedStore() {
		s, err := embedded.StartStoreEngine(filepath.Join(cfg.DataDir, "db"), cfg.EmbeddedStoreAddr, cfg.EmbeddedEngine, tel.Logger)
		if err != nil {
			in.Shutdown()
			return nil, err
		}
		in.store, in.MongoURI = s, s.URI()
		// auto resolved: the services (the edge's /health/detailed) show
		// the engine that runs.
		cfg.EmbeddedEngine = s.Engine()
	}
	return in, nil
}

// busOptions are the connection options of the services beside the
// infrastructure: in-process connections to an embedded NATS server.
func (in *Infra) busOptions() []nats.Option {
	if in.nats == nil {
		return nil
	}
	return []nats.Option{in.nats.InProcess()}
}

// Shutdown stops what StartInfra embedded, the store first.
func (in *Infra) Shutdown() {
	if in.store != nil {
		in.store.Shutdown()
	}
	if in.nats != nil {
		in.nats.Shutdown()
	}
}

// Services builds every service of the platform on d, the edge last so
// that it takes requests only when the rest is up (and, stopping in
// reverse, stops taking them first).
func Services(d *svc.Deps) []svc.Service {
	return ServicesOn(func(string) *svc.Deps { return d })
}

// ServiceNames are the services Services builds, in its order.
var ServiceNames = []string{auth.Name, "upload", "export", "actorworker", "edge"}

// ServicesOn builds every service, each on deps(its name): `gnome serve`
// connects each to the bus as its own user.
func ServicesOn(deps func(name string) *svc.Deps) []svc.Service {
	return []svc.Service{
		auth.New(deps(auth.Name)), upload.New(deps("upload")), export.New(deps("export")),
		actorworker.New(deps("actorworker")), edge.New(deps("edge")),
	}
}

// connectServices gives each service its own bus connection as its own
// user, sharing base's database pool.
func connectServices(cfg *config.Config, infra *Infra, base *svc.Deps) (map[string]*svc.Deps, error) {
	out := map[string]*svc.Deps{}
	for _, name := range ServiceNames {
		auth, err := infra.Auth(cfg, name)
		if err == nil {
			out[name], err = base.WithBus(infra.NATSURL, name, auth, infra.busOptions()...)
		}
		if err != nil {
			for _, d := range out {
				d.Close(context.Background())
			}
			return nil, fmt.Errorf("connect %s to the bus: %w", name, err)
		}
	}
	return out, nil
}

// Options tune Serve.
type Options struct {
	// InfraOnly starts only the embedded NATS and store and prints their URLs.
	InfraOnly bool
	// Standalone, when set, runs only this package's experiment (gnome
	// standalone): its data imported and its bundle installed before the
	// edge takes requests, and the edge serving nothing else. See
	// standalone.go.
	Standalone *Package
	// Out receives the lines meant for the person at the terminal.
	Out io.Writer
}

// Serve runs the platform until ctx ends, then stops it gracefully.
func Serve(ctx context.Context, cfg *config.Config, o Options) error {
	start := time.Now()
	// In production, what the all-in-one server requires (ADMIN_PASSWORD:
	// it runs auth, which creates the first admin).
	if err := cfg.RequireFor("gnome"); err != nil {
		return err
	}
	if err := cfg.EnsureSecretKey(); err != nil {
		return err
	}
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome", Version: buildinfo.Version, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	log := tel.Logger

	infra, err := StartInfra(cfg, tel)
	if err != nil {
		return err
	}
	defer infra.Shutdown()

	if o.InfraOnly {
		if !cfg.EmbeddedNATS() && !cfg.EmbeddedStore() {
			return fmt.Errorf("NATS_URL and MONGO_URI are both set: --infra-only has nothing to start")
		}
		fmt.Fprintf(o.Out, "NATS_URL=%s\nMONGO_URI=%s\n", infra.NATSURL, infra.MongoURI)
		infra.printCredentials(o.Out, cfg)
		log.Info("infrastructure ready", "nats", infra.NATSURL, "store", infra.MongoURI)
		<-ctx.Done()
		return nil
	}

	var staged *stagedBundle
	if o.Standalone != nil {
		if staged, err = stageBundle(cfg, o.Standalone); err != nil {
			return err
		}
		defer staged.remove()
	}

	// The process's own connection is the admin's: a standalone run
	// stages and installs its package through it. Each service gets a
	// connection of its own, as its own bus user.
	adminAuth, err := infra.Auth(cfg, bus.Admin)
	if err != nil {
		return err
	}
	if infra.nats != nil || adminAuth.Set() {
		cfg = withNATSAuth(cfg, adminAuth)
	}
	deps, err := svc.Connect(ctx, cfg, tel, infra.NATSURL, infra.MongoURI, bus.Admin)
	if err != nil {
		return err
	}
	deps.Started = start
	perService, err := connectServices(cfg, infra, deps)
	if err != nil {
		deps.Close(context.Background())
		return err
	}
	defer func() {
		for _, d := range perService {
			d.Close(context.Background())
		}
	}()
	services := ServicesOn(func(name string) *svc.Deps { return perService[name] })
	// The edge starts on its own, last: a standalone run installs its
	// experiment in between, so the first request finds it in place.
	web := services[len(services)-1].(*edge.Service)
	back := &svc.Group{Log: log, Services: services[:len(services)-1]}
	front := &svc.Group{Log: log, Services: []svc.Service{web}}
	if err := back.Start(ctx); err != nil {
		deps.Close(context.Background())
		return err
	}
	var run *standaloneRun
	if o.Standalone != nil {
		web.Only = o.Standalone.Meta.Slug
		run, err = installStandalone(ctx, deps, o.Standalone, staged)
	}
	if err == nil {
		err = front.Start(ctx)
	}
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		_ = back.Stop(sctx)
		deps.Close(sctx)
		return err
	}
	addr := web.Addr
	log.Info("g.nome is ready", "url", "http://"+addr, "took_ms", time.Since(start).Milliseconds(),
		"nats", infra.NATSURL, "store", infra.MongoURI, "data_dir", cfg.DataDir)
	if run != nil {
		run.banner(o.Out, cfg, web.ExperimentURL(o.Standalone.Meta.Slug), infra.MongoURI)
		if cfg.EmbeddedStore() {
			go watchStandaloneSizes(ctx, &sizeWatch{st: deps.Store, slug: o.Standalone.Meta.Slug, limit: standaloneSlowDocuments(), log: log, out: o.Out, engine: cfg.EmbeddedEngine})
		}
	} else {
		fmt.Fprintf(o.Out, "g.nome is serving on %s\n", web.PlatformURL())
	}

	<-ctx.Done()
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	err = errors.Join(front.Stop(sctx), back.Stop(sctx))
	deps.Close(sctx)
	log.Info("stopped")
	return err
}

// withNATSAuth is cfg with the process's own bus credentials.
func withNATSAuth(cfg *config.Config, a config.NATSAuth) *config.Config {
	c := *cfg
	c.NATSAuth = a
	return &c
}

// printCredentials tells the person starting services by hand where each
// finds its bus credentials: a binary with the same DATA_DIR reads its own
// file; on another machine, NATS_USER and NATS_PASSWORD from that file.
func (in *Infra) printCredentials(out io.Writer, cfg *config.Config) {
	if in.nats == nil {
		return
	}
	dir, err := filepath.Abs(in.nats.Credentials().Dir)
	if err != nil {
		dir = in.nats.Credentials().Dir
	}
	fmt.Fprintf(out, "# Bus credentials, one user per service: %s/<service>.env (NATS_USER, NATS_PASSWORD; mode 0600).\n", dir)
	fmt.Fprintf(out, "# Service binaries started with DATA_DIR=%s read their own; elsewhere, export the variables of its file:\n", cfg.DataDir)
	for _, name := range ServiceNames {
		fmt.Fprintf(out, "#   %-11s  set -a; . %s; set +a\n", name, filepath.Join(dir, name+".env"))
	}
}
