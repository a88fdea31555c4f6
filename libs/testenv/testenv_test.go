package testenv_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/embedded"
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

// GNOME_TEST_STORE=postgres gives each env its own database on the one
// PostgreSQL server of the test process: one test's documents are not
// another's, and a dropped env leaves the next one working.
func TestPostgresEnvsShareServerNotData(t *testing.T) {
	if _, err := embedded.FindPostgres(); err != nil {
		t.Skip(err)
	}
	t.Setenv(testenv.StoreVar, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := func(env *testenv.Env, insert bool) int64 {
		t.Helper()
		if env.Store.Engine() != embedded.EnginePostgres {
			t.Fatalf("engine %q, want postgres", env.Store.Engine())
		}
		c, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Disconnect(ctx) }()
		coll := c.Database("gnome_test").Collection("things")
		if insert {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "n", Value: 1}}); err != nil {
				t.Fatalf("insert: %v", err)
			}
		}
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatalf("count: %v", err)
		}
		return n
	}
	a := testenv.Start(t)
	if n := count(a, true); n != 1 {
		t.Errorf("first env counts %d documents, want 1", n)
	}
	b := testenv.Start(t)
	if n := count(b, false); n != 0 {
		t.Errorf("second env sees %d documents of the first", n)
	}
	if a.MongoURI == b.MongoURI {
		t.Errorf("two envs share the store address %s", a.MongoURI)
	}
}

func TestUnknownTestStoreIsRefused(t *testing.T) {
	t.Setenv(testenv.StoreVar, "mongo")
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); testenv.Start(ft) }()
	<-done
	if !strings.Contains(ft.msg, "GNOME_TEST_STORE") {
		t.Errorf("an unknown engine gives %q, want an error naming GNOME_TEST_STORE", ft.msg)
	}
}

// fatalRecorder keeps a Fatal's message and ends the goroutine that called
// it, as testing does, without failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
