package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// pgBase is a directory the system user postgres can enter, as PostgreSQL
// runs as that user when the tests run as root (t.TempDir's parents are
// 0700).
func pgBase(t *testing.T) string {
	t.Helper()
	if _, err := embedded.FindPostgres(); err != nil {
		t.Skipf("PostgreSQL-backed store not tested: %v", err)
	}
	base, err := os.MkdirTemp("", "gnome-pg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	return base
}

// The PostgreSQL-backed store does what the platform asks of a store,
// through the scoped layer as actors reach it, keeps its data across a
// restart, and leaves no process behind.
func TestPostgresStoreBasicsAndCleanStop(t *testing.T) {
	dir := filepath.Join(pgBase(t), "db")
	st, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", embedded.EnginePostgres, nil)
	if err != nil {
		t.Fatal(err)
	}
	pg := st.Postgres()
	if st.Engine() != embedded.EnginePostgres || pg == nil {
		t.Fatalf("engine %q, postgres %v; want postgres", st.Engine(), pg)
	}
	pid := pg.PID()
	t.Cleanup(func() {
		// Whatever failed, stop it: a test leaves no server behind.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	})

	// Unix socket only: postmaster.pid's listen address line is empty when
	// no TCP address is listened on, and the socket's directory is the
	// owner's alone.
	b, err := os.ReadFile(filepath.Join(pg.Dir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 6 || strings.TrimSpace(lines[5]) != "" {
		t.Errorf("postgres listens on %q; want no TCP address", lines[5])
	}
	if fi, err := os.Stat(pg.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir %s mode %v (%v); want 0700", pg.Dir(), fi.Mode().Perm(), err)
	}
	if !strings.HasPrefix(st.URI(), "mongodb://127.0.0.1:") {
		t.Errorf("store URI %q is not loopback", st.URI())
	}

	basics(t, st.URI(), true)
	companions(t, st)
	st.Shutdown()
	noProcessLeft(t, pid)

	// Restarted on the same directory: no initdb, the data is there.
	st2, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", embedded.EnginePostgres, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid2 := st2.Postgres().PID()
	t.Cleanup(func() { _ = syscall.Kill(-pid2, syscall.SIGKILL) })
	basics(t, st2.URI(), false)
	st2.Shutdown()
	noProcessLeft(t, pid2)
}

// basics runs what the platform needs of a store; fresh says the store is
// empty (else the documents of the first run must be there).
func basics(t *testing.T, uri string, fresh bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	db := client.Database("gnome")
	kind, err := scoped.DetectStore(ctx, db)
	if err != nil || kind != scoped.StoreFerretDB {
		t.Fatalf("DetectStore = %v, %v; want ferretdb", kind, err)
	}
	s, err := scoped.New(db, "demo", nil, scoped.WithStore(kind))
	if err != nil {
		t.Fatal(err)
	}
	clicks, counts := scoped.Own("clicks"), scoped.Own("counts")
	if !fresh {
		n, err := s.Count(ctx, clicks, nil)
		if err != nil || n != 3 {
			t.Fatalf("after restart: %d clicks (%v); want the 3 stored before", n, err)
		}
		c, err := s.FindOne(ctx, counts, bson.D{{Key: "_id", Value: "red"}}, scoped.FindOptions{})
		if err != nil || c == nil || c.Lookup("n").AsInt64() != 2 {
			t.Fatalf("after restart: counter %v (%v); want n 2", c, err)
		}
		return
	}

	// Index creation as an upload makes it, then a unique index enforced.
	unique := bundle.IndexSpec{Name: "key_1", Keys: bundle.IndexKeys{{Field: "key", Direction: 1}}, Options: map[string]any{"unique": true}}
	if err := scoped.CreateIndex(ctx, db, "demo", "clicks", unique); err != nil {
		t.Fatalf("create unique index: %v", err)
	}
	if err := scoped.CreateIndex(ctx, db, "demo", "clicks", bundle.IndexSpec{Name: "at_-1", Keys: bundle.IndexKeys{{Field: "at", Direction: -1}}}); err != nil {
		t.Fatalf("create index: %v", err)
	}
	specs, err := db.Collection(scoped.CollectionName("demo", "clicks")).Indexes().ListSpecifications(ctx)
	if err != nil || len(specs) != 3 {
		t.Fatalf("indexes: %d (%v); want _id_, key_1, at_-1", len(specs), err)
	}

	// Insert, then find by an indexed field and sort with a limit.
	for i, b := range []string{"red", "blue", "red"} {
		if _, err := s.InsertOne(ctx, clicks, bson.D{{Key: "key", Value: "k" + strconv.Itoa(i)}, {Key: "button", Value: b}, {Key: "at", Value: int64(i)}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if _, err := s.InsertOne(ctx, clicks, bson.D{{Key: "key", Value: "k0"}}); err == nil {
		t.Error("a duplicate of a unique key was stored")
	}
	found, err := s.Find(ctx, clicks, bson.D{{Key: "key", Value: "k1"}}, scoped.FindOptions{})
	if err != nil || len(found) != 1 || found[0].Lookup("button").StringValue() != "blue" {
		t.Fatalf("find by key: %v (%v); want the blue click", found, err)
	}
	if found[0].Lookup(scoped.Field).StringValue() != "demo" {
		t.Errorf("stored click %v lacks experiment_id demo", found[0])
	}
	latest, err := s.Find(ctx, clicks, nil, scoped.FindOptions{Sort: bson.D{{Key: "at", Value: -1}}, Limit: 2})
	if err != nil || len(latest) != 2 || latest[0].Lookup("key").StringValue() != "k2" || latest[1].Lookup("key").StringValue() != "k1" {
		t.Fatalf("sort by at, limit 2: %v (%v); want k2, k1", latest, err)
	}

	// Counters with $inc and an upsert, as the clicks example keeps them.
	for range 2 {
		if _, err := s.UpdateOne(ctx, counts, bson.D{{Key: "_id", Value: "red"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, scoped.UpdateOptions{Upsert: true}); err != nil {
			t.Fatalf("$inc upsert: %v", err)
		}
	}
	c, err := s.FindOne(ctx, counts, bson.D{{Key: "_id", Value: "red"}}, scoped.FindOptions{})
	if err != nil || c == nil || c.Lookup("n").AsInt64() != 2 {
		t.Fatalf("counter after two $inc: %v (%v); want n 2", c, err)
	}
	// An update of a field, and a count with a filter.
	res, err := s.UpdateOne(ctx, clicks, bson.D{{Key: "key", Value: "k1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "button", Value: "red"}}}}, scoped.UpdateOptions{})
	if err != nil || res.Modified != 1 {
		t.Fatalf("$set: %+v (%v); want 1 modified", res, err)
	}
	if n, err := s.Count(ctx, clicks, bson.D{{Key: "button", Value: "red"}}); err != nil || n != 3 {
		t.Fatalf("count of red: %d (%v); want 3", n, err)
	}
	if _, err := s.UpdateOne(ctx, clicks, bson.D{{Key: "key", Value: "k1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "button", Value: "blue"}}}}, scoped.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// An aggregation with $match, $group and $sort.
	groups, err := s.Aggregate(ctx, clicks, bson.A{
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$button"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
	})
	if err != nil || len(groups) != 2 || groups[0].Lookup("_id").StringValue() != "blue" || groups[0].Lookup("n").AsInt64() != 1 || groups[1].Lookup("n").AsInt64() != 2 {
		t.Fatalf("$group: %v (%v); want blue 1, red 2", groups, err)
	}
}

// companions checks that FerretDB's indexes got their GIN companions,
// which serve its equality filters, and that a dropped index takes its
// companion along. It reads the catalogue with psql, when installed.
func companions(t *testing.T, st *embedded.Store) {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Log("index companions not checked: no psql")
		return
	}
	gins := func() string {
		out, err := exec.Command(psql, "-h", st.Postgres().Dir(), "-U", embedded.PostgresUser, "-At", "-c",
			`SELECT string_agg(indexdef, E'\n' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'gnome' AND tablename LIKE 'x_demo_clicks%' AND indexdef LIKE '%USING gin%'`, "postgres").CombinedOutput()
		if err != nil {
			t.Fatalf("psql: %v: %s", err, out)
		}
		return string(out)
	}
	before := gins()
	for _, field := range []string{"'_id'", "'key'", "'at'"} {
		if !strings.Contains(before, "_jsonb -> "+field) || !strings.Contains(before, "jsonb_path_ops") {
			t.Errorf("no GIN companion on %s among:\n%s", field, before)
		}
	}
	client, err := mongo.Connect(options.Client().ApplyURI(st.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	if err := client.Database("gnome").Collection(scoped.CollectionName("demo", "clicks")).Indexes().DropOne(context.Background(), "key_1"); err != nil {
		t.Fatal(err)
	}
	if after := gins(); strings.Contains(after, "_jsonb -> 'key'") || !strings.Contains(after, "_jsonb -> 'at'") {
		t.Errorf("after dropping key_1, companions:\n%s\nwant the one on at and none on key", after)
	}
}

// noProcessLeft checks that the postmaster and every process of its group
// are gone.
func noProcessLeft(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postgres %d still there after Shutdown (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("processes of postgres's group %d still there after Shutdown (kill 0: %v)", pid, err)
	}
}

func TestEngineSetting(t *testing.T) {
	dir := t.TempDir()
	if _, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", "mysql", nil); err == nil || !strings.Contains(err.Error(), "EMBEDDED_STORE") {
		t.Errorf("engine mysql: %v; want an error naming EMBEDDED_STORE", err)
	}
	if got, err := embedded.ChooseEngine(dir, embedded.EngineSQLite, nil); err != nil || got != embedded.EngineSQLite {
		t.Errorf("ChooseEngine(sqlite) = %q, %v; want sqlite", got, err)
	}
	// auto never moves a directory with SQLite data to PostgreSQL, where
	// that data is not, and says so ("" is auto, the default).
	if err := os.WriteFile(filepath.Join(dir, "gnome.sqlite"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"", embedded.EngineAuto} {
		log, logged := captureLog()
		if got, err := embedded.ChooseEngine(dir, e, log); err != nil || got != embedded.EngineSQLite {
			t.Errorf("ChooseEngine(%q) with SQLite data = %q, %v; want sqlite", e, got, err)
		}
		wantWarning(t, logged(), "already holds SQLite data", "new DATA_DIR", "EMBEDDED_STORE=sqlite")
	}
	// sqlite chosen outright warns of nothing.
	log, logged := captureLog()
	if _, err := embedded.ChooseEngine(t.TempDir(), embedded.EngineSQLite, log); err != nil || logged() != "" {
		t.Errorf("sqlite chosen outright: %v, logged %q; want no warning", err, logged())
	}
	// A directory that already has a PostgreSQL cluster stays on it.
	pgDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(pgDir, "postgres"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgDir, "postgres", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := embedded.ChooseEngine(pgDir, embedded.EngineAuto, nil); err != nil || got != embedded.EnginePostgres {
		t.Errorf("auto with a cluster = %q, %v; want postgres", got, err)
	}
	// An empty directory PostgreSQL can reach: PostgreSQL when installed.
	base, err := os.MkdirTemp("", "gnome-engine-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	want := embedded.EngineSQLite
	if _, err := embedded.FindPostgres(); err == nil {
		want = embedded.EnginePostgres
	}
	if got, err := embedded.ChooseEngine(filepath.Join(base, "db"), embedded.EngineAuto, nil); err != nil || got != want {
		t.Errorf("auto on an empty directory = %q, %v; want %s", got, err, want)
	}
	// As root, PostgreSQL runs as user postgres: behind a directory that
	// user cannot enter, auto stays on SQLite, and postgres says why.
	if want == embedded.EngineSQLite {
		log, logged := captureLog()
		_, _ = embedded.ChooseEngine(filepath.Join(base, "db2"), embedded.EngineAuto, log)
		wantWarning(t, logged(), "no PostgreSQL found", "apt-get install postgresql")
	}
	// A DATA_DIR so long that PostgreSQL's socket path would not fit: SQLite.
	if want == embedded.EnginePostgres {
		long := filepath.Join(base, strings.Repeat("d", 90), "db")
		log, logged := captureLog()
		if got, err := embedded.ChooseEngine(long, embedded.EngineAuto, log); err != nil || got != embedded.EngineSQLite {
			t.Errorf("auto on a DATA_DIR too long for a socket = %q, %v; want sqlite", got, err)
		}
		wantWarning(t, logged(), "longer than the 107 bytes", "shorter DATA_DIR")
	}
	if os.Geteuid() == 0 && want == embedded.EnginePostgres {
		closed := filepath.Join(t.TempDir(), "db") // t.TempDir's parents are 0700
		log, logged := captureLog()
		if got, err := embedded.ChooseEngine(closed, embedded.EngineAuto, log); err != nil || got != embedded.EngineSQLite {
			t.Errorf("auto behind a closed directory = %q, %v; want sqlite", got, err)
		}
		wantWarning(t, logged(), "cannot enter", "chmod o+x", "apt-get install postgresql")
		if _, err := embedded.StartStoreEngine(closed, "127.0.0.1:0", embedded.EnginePostgres, nil); err == nil || !strings.Contains(err.Error(), "cannot enter") {
			t.Errorf("postgres behind a closed directory: %v; want an error saying which directory it cannot enter", err)
		}
	}
}

// A platform killed outright (SIGKILL, no Shutdown) takes its PostgreSQL
// along: the test runs itself as the platform, kills it, and waits for the
// postmaster and its processes to be gone.
func TestPostgresDiesWithThePlatform(t *testing.T) {
	if dir := os.Getenv("GNOME_TEST_PG_CHILD"); dir != "" {
		st, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", embedded.EnginePostgres, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("pid %d\n", st.Postgres().PID())
		select {} // until killed
	}
	dir := filepath.Join(pgBase(t), "db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresDiesWithThePlatform$")
	cmd.Env = append(os.Environ(), "GNOME_TEST_PG_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	pid := 0
	for sc.Scan() {
		if n, err := fmt.Sscanf(sc.Text(), "pid %d", &pid); n == 1 && err == nil {
			break
		}
		if strings.HasPrefix(sc.Text(), "error:") {
			t.Fatal(sc.Text())
		}
	}
	if pid == 0 {
		t.Fatal("the platform process printed no postgres pid")
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("postgres %d is not running before the kill: %v", pid, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("postgres's processes (group %d) still run 30 s after the platform was killed", pid)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// captureLog is a logger and what it has written so far.
func captureLog() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var b bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return b.Write(p) })
	return slog.New(slog.NewTextHandler(w, nil)), func() string { mu.Lock(); defer mu.Unlock(); return b.String() }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// wantWarning fails unless logged has a warning holding every part.
func wantWarning(t *testing.T, logged string, parts ...string) {
	t.Helper()
	if !strings.Contains(logged, "level=WARN") {
		t.Errorf("no warning logged: %q", logged)
	}
	for _, p := range parts {
		if !strings.Contains(logged, p) {
			t.Errorf("the warning does not say %q: %s", p, logged)
		}
	}
}

// auto on a directory without data, with PostgreSQL installed, starts on
// PostgreSQL and stays there at the next start; where PostgreSQL cannot
// start there, it starts on SQLite instead, with a warning saying why,
// and leaves no half-made cluster behind, while postgres chosen outright
// fails.
func TestAutoStartsPostgresOrFallsBack(t *testing.T) {
	base := pgBase(t)
	dir := filepath.Join(base, "db")
	for range 2 {
		log, logged := captureLog()
		st, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", embedded.EngineAuto, log)
		if err != nil {
			t.Fatal(err)
		}
		pid := st.Postgres().PID()
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
		if st.Engine() != embedded.EnginePostgres || !strings.Contains(logged(), "engine=postgres requested=auto") {
			t.Fatalf("auto = %s, logged %q; want postgres, said at start", st.Engine(), logged())
		}
		if strings.Contains(logged(), "level=WARN") {
			t.Errorf("auto on PostgreSQL warned: %s", logged())
		}
		st.Shutdown()
	}

	// PostgreSQL cannot make its directory: a file is in the way.
	broken := filepath.Join(base, "broken")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "postgres"), []byte("not a cluster"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.StartStoreEngine(broken, "127.0.0.1:0", embedded.EnginePostgres, nil); err == nil || !strings.Contains(err.Error(), "EMBEDDED_STORE=postgres") {
		t.Errorf("postgres chosen outright where it cannot start: %v; want an error naming EMBEDDED_STORE=postgres", err)
	}
	log, logged := captureLog()
	st, err := embedded.StartStoreEngine(broken, "127.0.0.1:0", embedded.EngineAuto, log)
	if err != nil {
		t.Fatalf("auto where PostgreSQL cannot start: %v; want SQLite", err)
	}
	defer st.Shutdown()
	if st.Engine() != embedded.EngineSQLite || st.Postgres() != nil {
		t.Fatalf("auto where PostgreSQL cannot start = %s; want sqlite", st.Engine())
	}
	wantWarning(t, logged(), "did not start", "create postgres dir", "apt-get install postgresql")
	if b, err := os.ReadFile(filepath.Join(broken, "postgres")); err != nil || string(b) != "not a cluster" {
		t.Errorf("what was at the cluster's place was touched: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(broken, "postgres.init")); !os.IsNotExist(err) {
		t.Errorf("a partial cluster was left: %v", err)
	}
	basics(t, st.URI(), true)
}

// As root, a DATA_DIR that gnome made for itself (root's, 0700) is opened
// to group postgres for search alone, so that auto runs PostgreSQL on
// `make run`'s ./data; the files in it stay root's alone. A DATA_DIR of
// another mode is the operator's: left as it is, with the warning.
func TestAutoOpensItsOwnDataDirToPostgres(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as the postgres user")
	}
	base := pgBase(t)
	dataDir := filepath.Join(base, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dataDir, "secret_key")
	if err := os.WriteFile(secret, []byte("root's alone"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logged := captureLog()
	st, err := embedded.StartStoreEngine(filepath.Join(dataDir, "db"), "127.0.0.1:0", embedded.EngineAuto, log)
	if err != nil {
		t.Fatal(err)
	}
	pid := st.Postgres().PID()
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	defer st.Shutdown()
	if st.Engine() != embedded.EnginePostgres || strings.Contains(logged(), "level=WARN") {
		t.Fatalf("auto on gnome's own 0700 DATA_DIR = %s, logged %q; want postgres without a warning", st.Engine(), logged())
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o710 {
		t.Errorf("DATA_DIR mode %v; want 0710 (group postgres may only search it)", fi.Mode().Perm())
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the secret key's file changed: %v %v", fi.Mode(), err)
	}
	basics(t, st.URI(), true)

	// The operator's own choice of mode is not changed.
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(theirs, 0o750); err != nil {
		t.Fatal(err)
	}
	log, logged = captureLog()
	st2, err := embedded.StartStoreEngine(filepath.Join(theirs, "db"), "127.0.0.1:0", embedded.EngineAuto, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Shutdown()
	if st2.Engine() != embedded.EngineSQLite {
		t.Errorf("auto on an operator's 0750 DATA_DIR = %s; want sqlite and the warning", st2.Engine())
	}
	wantWarning(t, logged(), "cannot enter", "chmod o+x")
	if fi, err := os.Stat(theirs); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("the operator's DATA_DIR mode changed: %v %v", fi.Mode(), err)
	}
}
