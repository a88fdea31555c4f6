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

	"github.com/gnome-platform/gnome/libs/buildinfo"
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
		s, err := embedded.StartStore(filepath.Join(cfg.DataDir, "db"), cfg.EmbeddedStoreAddr, tel.Logger)
		if err != nil {
			in.Shutdown()
			return nil, err
		}
		in.store, in.MongoURI = s, s.URI()
	}
	return in, nil
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

// Services builds every service of the platform, the edge last so that it
// takes requests only when the rest is up (and, stopping in reverse, stops
// taking them first).
func Services(d *svc.Deps) []svc.Service {
	return []svc.Service{auth.New(d), upload.New(d), export.New(d), actorworker.New(d), edge.New(d)}
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

	deps, err := svc.Connect(ctx, cfg, tel, infra.NATSURL, infra.MongoURI, "gnome")
	if err != nil {
		return err
	}
	deps.Started = start
	services := Services(deps)
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
		run.banner(o.Out, cfg, addr, infra.MongoURI)
	} else {
		fmt.Fprintf(o.Out, "g.nome is serving on http://%s\n", addr)
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
