package store_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

func open(t *testing.T, env *testenv.Env, reg prometheus.Registerer, db string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{
		URI: env.MongoURI, Database: db, MinPool: 0, MaxPool: 4, AppName: "store-test",
		Log: telemetry.NewLogger(&bytes.Buffer{}, "ERROR", "text"), Registry: reg,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestOpenAndPing(t *testing.T) {
	env := testenv.Start(t)
	s := open(t, env, prometheus.NewRegistry(), "gnome_test")
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if s.DB.Name() != "gnome_test" || s.Collection(store.Users).Database().Name() != "gnome_test" {
		t.Errorf("database %q, want gnome_test", s.DB.Name())
	}
	if _, err := s.Collection("things").InsertOne(ctx(t), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if n, err := s.Collection("things").CountDocuments(ctx(t), bson.D{}); err != nil || n != 1 {
		t.Errorf("count = %d, %v", n, err)
	}
}

func TestOpenFailsOnABadURI(t *testing.T) {
	_, err := store.Open(ctx(t), store.Options{URI: "notmongo://127.0.0.1:1", Database: "x", MaxPool: 1})
	if err == nil {
		t.Fatal("Open accepted a URI of another scheme")
	}
	if !strings.Contains(err.Error(), "connect to database") {
		t.Errorf("err %q does not say what failed", err)
	}
}

func TestCloseStopsTheClient(t *testing.T) {
	env := testenv.Start(t)
	s := open(t, env, prometheus.NewRegistry(), "gnome_test")
	if err := s.Close(ctx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx(t)); err == nil {
		t.Error("Ping succeeded after Close")
	}
}

func indexNames(t *testing.T, c *mongo.Collection) []string {
	t.Helper()
	cur, err := c.Indexes().List(ctx(t))
	if err != nil {
		t.Fatalf("list indexes of %s: %v", c.Name(), err)
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx(t), &specs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func TestEnsureIndexesIsIdempotentAndEnforcesUniqueEmail(t *testing.T) {
	env := testenv.Start(t)
	s := open(t, env, prometheus.NewRegistry(), "gnome_test")
	for i := range 2 {
		if err := s.EnsureIndexes(ctx(t)); err != nil {
			t.Fatalf("EnsureIndexes call %d: %v", i+1, err)
		}
	}
	for coll, wants := range map[string][]string{
		store.Users:             {"email_unique"},
		store.ExperimentsConfig: {"slug_unique"},
		store.ExportLogs: {"export_id_unique", "slug_id", "created_at", "slug_id_created_at", "source_key_status",
			"status_heartbeat_at", "expires_at", "checksum_invalidated"},
	} {
		names := indexNames(t, s.Collection(coll))
		for _, want := range wants {
			if !slices.Contains(names, want) {
				t.Errorf("%s lacks index %s (has %v)", coll, want, names)
			}
		}
	}

	users := s.Collection(store.Users)
	if _, err := users.InsertOne(ctx(t), bson.D{{Key: "email", Value: "a@example.com"}}); err != nil {
		t.Fatalf("first user: %v", err)
	}
	_, err := users.InsertOne(ctx(t), bson.D{{Key: "email", Value: "a@example.com"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second user with the same email: err = %v, want a duplicate key error", err)
	}
	if _, err := users.InsertOne(ctx(t), bson.D{{Key: "email", Value: "b@example.com"}}); err != nil {
		t.Errorf("another email refused: %v", err)
	}

	logs := s.Collection(store.ExportLogs)
	if _, err := logs.InsertOne(ctx(t), bson.D{{Key: "_id", Value: "ex-1"}, {Key: "export_id", Value: "ex-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := logs.InsertOne(ctx(t), bson.D{{Key: "_id", Value: "ex-2"}, {Key: "export_id", Value: "ex-1"}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("second export log with the same export_id: err = %v, want a duplicate key error", err)
	}

	exps := s.Collection(store.ExperimentsConfig)
	if _, err := exps.InsertOne(ctx(t), bson.D{{Key: "slug", Value: "demo"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := exps.InsertOne(ctx(t), bson.D{{Key: "slug", Value: "demo"}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("second experiment with the same slug: err = %v, want a duplicate key error", err)
	}
}

func TestEnsureIndexesOfNamedCollections(t *testing.T) {
	env := testenv.Start(t)
	s := open(t, env, prometheus.NewRegistry(), "gnome_test")
	if err := s.EnsureIndexes(ctx(t), store.Users); err != nil {
		t.Fatal(err)
	}
	if names := indexNames(t, s.Collection(store.Users)); !slices.Contains(names, "email_unique") {
		t.Errorf("users indexes %v lack email_unique", names)
	}
	err := s.EnsureIndexes(ctx(t), "no_such_collection")
	if err == nil || !strings.Contains(err.Error(), "no_such_collection") {
		t.Errorf("unknown collection: err = %v", err)
	}
}

// Services of one process provision at once, each ensuring indexes on its
// own store; under the race detector this caught index models shared
// between them, which the driver writes into.
func TestEnsureIndexesConcurrently(t *testing.T) {
	env := testenv.Start(t)
	a := open(t, env, prometheus.NewRegistry(), "gnome_test_a")
	b := open(t, env, prometheus.NewRegistry(), "gnome_test_b")
	errs := make(chan error, 2)
	for _, s := range []*store.Store{a, b} {
		go func() { errs <- s.EnsureIndexes(ctx(t)) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if names := indexNames(t, b.Collection(store.ExportLogs)); !slices.Contains(names, "export_id_unique") {
		t.Errorf("export_logs indexes %v lack export_id_unique", names)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestPoolMetrics(t *testing.T) {
	env := testenv.Start(t)
	reg := prometheus.NewRegistry()
	s := open(t, env, reg, "gnome_test")
	for i := range 5 {
		if _, err := s.Collection("things").InsertOne(ctx(t), bson.D{{Key: "i", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"gnome_db_pool_checked_out", "gnome_db_pool_open", "gnome_db_pool_checkout_waits_total", "gnome_db_pool_checkout_seconds", "gnome_db_slow_commands_total"} {
		if _, ok := gauge(t, reg, name); !ok {
			t.Errorf("registry lacks %s", name)
		}
	}
	if v, _ := gauge(t, reg, "gnome_db_pool_checkout_waits_total"); v < 6 {
		t.Errorf("check-outs counted %v, want at least 6 (ping and 5 inserts)", v)
	}
	if v, _ := gauge(t, reg, "gnome_db_pool_checkout_seconds"); v < 6 {
		t.Errorf("check-out times observed %v, want at least 6", v)
	}
	if v, _ := gauge(t, reg, "gnome_db_pool_open"); v < 1 {
		t.Errorf("open connections %v, want at least 1", v)
	}
	// Every connection taken for those commands has been given back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := gauge(t, reg, "gnome_db_pool_checked_out")
		if v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checked out connections %v after all commands finished, want 0", v)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Disconnecting closes the connections it opened.
	if err := s.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		v, _ := gauge(t, reg, "gnome_db_pool_open")
		if v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("open connections %v after Close, want 0", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTwoClientsShareOneRegistry(t *testing.T) {
	env := testenv.Start(t)
	reg := prometheus.NewRegistry()
	a := open(t, env, reg, "gnome_test")
	b := open(t, env, reg, "gnome_test")
	if err := a.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "gnome_db_pool_open"); n != 1 {
		t.Errorf("gnome_db_pool_open has %d series, want 1 shared", n)
	}
	if v, _ := gauge(t, reg, "gnome_db_pool_open"); v < 2 {
		t.Errorf("open connections %v, want both clients' (at least 2)", v)
	}
}
