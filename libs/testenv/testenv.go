// Package testenv gives tests the real infrastructure: an embedded NATS
// server with JetStream and an embedded store, in a temporary directory, on
// free loopback ports, torn down when the test ends.
package testenv

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Env is a running NATS server and store.
type Env struct {
	Dir   string
	NATS  *embedded.NATS
	Store *embedded.Store
	// NATSURL carries the admin's credentials (the server refuses
	// connections without any), so tests connect as before; BusURL is the
	// same server without them, for connecting as a service user.
	NATSURL  string
	BusURL   string
	MongoURI string
}

// Start starts NATS and the store for t; both stop at t's cleanup. The
// store is on SQLite, or on PostgreSQL when GNOME_TEST_STORE=postgres
// (StoreVar).
func Start(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	n, err := embedded.StartNATS(filepath.Join(dir, "nats"), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(n.Shutdown)
	engine, err := storeEngine()
	if err != nil {
		t.Fatal(err)
	}
	var s *embedded.Store
	if engine == embedded.EnginePostgres {
		s = startPostgresStore(t)
	} else {
		s, err = embedded.StartStore(filepath.Join(dir, "db"), "127.0.0.1:0", nil)
		if err != nil {
			t.Fatalf("start store: %v", err)
		}
		t.Cleanup(s.Shutdown)
	}
	if err := trustTestKey(n.AdminURL()); err != nil {
		t.Fatalf("trust the test key: %v", err)
	}
	return &Env{Dir: dir, NATS: n, Store: s, NATSURL: n.AdminURL(), BusURL: n.URL(), MongoURI: s.URI()}
}

// Auth is how bus user (a service's name, or bus.Admin) authenticates to the env's server.
func (e *Env) Auth(user string) config.NATSAuth { return e.NATS.Credentials().Auth(user) }

// DepsAs is Deps connected to the bus as user (a service's name), with that
// service's permissions only, sharing d's database: what `gnome serve`
// gives each service. Closed at cleanup.
func (e *Env) DepsAs(t testing.TB, d *svc.Deps, user string) *svc.Deps {
	t.Helper()
	sd, err := d.WithBus(e.BusURL, user, e.Auth(user))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sd.Close(cctx)
	})
	return sd
}

// Config is a development config pointing at the env, with HTTP on a free
// loopback port. set overrides variables.
func (e *Env) Config(t testing.TB, set map[string]string) *config.Config {
	t.Helper()
	vars := map[string]string{
		"NATS_URL": e.NATSURL, "MONGO_URI": e.MongoURI, "DATA_DIR": e.Dir,
		"HTTP_ADDR": "127.0.0.1:0", "MONGO_DB": "gnome_test", "LOG_LEVEL": "WARNING",
		"SECRET_KEY": SecretKey,
	}
	for k, v := range set {
		vars[k] = v
	}
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Deps connects a service's dependencies to the env; closed at cleanup.
// Logs go to the test log when LOG_LEVEL allows.
func (e *Env) Deps(t testing.TB, cfg *config.Config) *svc.Deps {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome-test", Version: buildinfo.Version, LogLevel: cfg.LogLevel, LogWriter: newTestWriter(t)})
	if err != nil {
		t.Fatalf("telemetry: %v", err)
	}
	d, err := svc.Connect(ctx, cfg, tel, cfg.NATSURL, cfg.MongoURI, "test")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	// Connected as the admin (NATSURL's credentials): it provisions like
	// the owner of everything, as services sharing it expect.
	d.Topology.Service = bus.Admin
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Close(cctx)
	})
	return d
}

// Run starts services on d and stops them at cleanup.
func Run(t testing.TB, d *svc.Deps, services ...svc.Service) {
	t.Helper()
	g := &svc.Group{Log: d.Log, Services: services}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("start services: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := g.Stop(sctx); err != nil {
			t.Errorf("stop services: %v", err)
		}
	})
}

// testWriter sends log lines to the test log until the test's cleanups are
// over; goroutines that log later are ignored instead of panicking.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func newTestWriter(t testing.TB) io.Writer {
	w := testWriter{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
