package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
)

func TestEnvGivesLoopbackInfrastructure(t *testing.T) {
	env := testenv.Start(t)
	if !strings.HasPrefix(env.BusURL, "nats://127.0.0.1:") || !strings.HasPrefix(env.MongoURI, "mongodb://127.0.0.1:") {
		t.Errorf("URLs %s %s are not loopback", env.BusURL, env.MongoURI)
	}
	// Tests connect with the admin's credentials, carried in NATSURL.
	if !strings.HasPrefix(env.NATSURL, "nats://admin:") || !strings.HasSuffix(env.NATSURL, strings.TrimPrefix(env.BusURL, "nats://")) {
		t.Errorf("NATSURL %q does not carry the admin's credentials to %s", env.NATSURL, env.BusURL)
	}
	cfg := env.Config(t, map[string]string{"LOG_LEVEL": "ERROR", "ENABLE_REGISTRATION": "true"})
	if cfg.NATSURL != env.NATSURL || cfg.MongoURI != env.MongoURI || cfg.DataDir != env.Dir || cfg.MongoDB != "gnome_test" {
		t.Errorf("config does not point at the env: %+v", cfg)
	}
	if cfg.LogLevel != "ERROR" || !cfg.EnableRegistration || cfg.HTTPAddr != "127.0.0.1:0" || cfg.SecretKey == "" {
		t.Errorf("overrides or defaults not applied: %+v", cfg)
	}
	if cfg.EmbeddedNATS() || cfg.EmbeddedStore() {
		t.Error("a test config asks for embedded infrastructure")
	}

	d := env.Deps(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Store.Ping(ctx); err != nil {
		t.Errorf("store: %v", err)
	}
	if _, err := d.JS.AccountInfo(ctx); err != nil {
		t.Errorf("jetstream: %v", err)
	}
	if d.InstanceID == "" || d.Log == nil || d.Telemetry == nil {
		t.Errorf("deps incomplete: %+v", d)
	}

	// A service's Deps: its own bus user, the same database.
	edge := env.DepsAs(t, d, "edge")
	if edge.Store != d.Store || edge.NC == d.NC || edge.Topology.Service != "edge" {
		t.Errorf("service deps: %+v", edge)
	}
	if _, err := edge.JS.AccountInfo(ctx); err != nil {
		t.Errorf("jetstream as the edge: %v", err)
	}
	if err := edge.NC.Publish("events.experiment.updated", nil); err != nil {
		t.Fatal(err)
	}
	if err := edge.NC.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return edge.NC.LastError() != nil }, "the edge's publish of an event to be refused")
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTwoEnvsAreIndependent(t *testing.T) {
	a, b := testenv.Start(t), testenv.Start(t)
	if a.NATSURL == b.NATSURL || a.MongoURI == b.MongoURI || a.Dir == b.Dir {
		t.Errorf("two envs share something: %+v %+v", a, b)
	}
}
