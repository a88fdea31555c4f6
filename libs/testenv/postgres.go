package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gnome-platform/gnome/libs/embedded"
)

// StoreVar chooses the engine under every test's embedded store:
// "sqlite" (or unset) as `make run` does by default, or "postgres" to run
// a suite on FerretDB's PostgreSQL backend before that engine becomes a
// default (GNOME_TEST_STORE=postgres go test ./store/).
const StoreVar = "GNOME_TEST_STORE"

// storeEngine is the engine StoreVar names.
func storeEngine() (string, error) {
	switch v := os.Getenv(StoreVar); v {
	case "", embedded.EngineSQLite:
		return embedded.EngineSQLite, nil
	case embedded.EnginePostgres:
		return embedded.EnginePostgres, nil
	default:
		return "", fmt.Errorf("%s=%q is neither sqlite nor postgres", StoreVar, v)
	}
}

// sharedPG is the PostgreSQL child of this test process: initdb costs one
// to a few seconds, far more than a test, so every test gets its own
// database (a fresh, empty store, as on SQLite) on one server started at
// the first test that asks. It stops when the test binary exits (the
// child's parent-death signal); its directory is removed by the next run.
var sharedPG struct {
	sync.Mutex
	started bool
	err     error
	pg      *embedded.Postgres
	admin   *pgx.Conn // on template1, for CREATE and DROP DATABASE
}

var pgDatabases atomic.Int64

// pgDirPrefix names the shared server's directory under os.TempDir(),
// followed by the test process's id.
const pgDirPrefix = "gnome-testpg-"

// templateDB is a copy of the database initdb gave the index companions
// (see libs/embedded/postgres.go), made before any FerretDB connects to
// it: a database copies only a template nobody is connected to.
const templateDB = "gnome_template"

// startPostgresStore starts FerretDB for t on a new database of the shared
// PostgreSQL server; the database is dropped at t's cleanup.
func startPostgresStore(t testing.TB) *embedded.Store {
	t.Helper()
	pg, admin, err := sharedPostgres()
	if err != nil {
		t.Fatalf("%s=postgres: %v", StoreVar, err)
	}
	name := "test_" + strconv.FormatInt(pgDatabases.Add(1), 10)
	if err := pgExec(admin, "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	u, err := url.Parse(pg.URL())
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	u.Path = "/" + name
	s, err := embedded.StartStoreOnPostgres(u.String(), "127.0.0.1:0", nil)
	if err != nil {
		_ = pgExec(admin, "DROP DATABASE "+name+" WITH (FORCE)")
		t.Fatalf("start store: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		// FORCE ends connections FerretDB's pool may still hold; the data of a finished test is never read again.
		if err := pgExec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return s
}

// pgExec runs one statement on the shared admin connection, which pgx
// does not let two goroutines use at once.
func pgExec(admin *pgx.Conn, sql string) error {
	sharedPG.Lock()
	defer sharedPG.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0]+" "+strings.Fields(sql)[1], err)
	}
	return nil
}

// sharedPostgres starts the shared server once; a failure is every later
// test's failure too, without another try.
func sharedPostgres() (*embedded.Postgres, *pgx.Conn, error) {
	sharedPG.Lock()
	defer sharedPG.Unlock()
	if sharedPG.started {
		return sharedPG.pg, sharedPG.admin, sharedPG.err
	}
	sharedPG.started = true
	sharedPG.pg, sharedPG.admin, sharedPG.err = startSharedPostgres()
	return sharedPG.pg, sharedPG.admin, sharedPG.err
}

func startSharedPostgres() (*embedded.Postgres, *pgx.Conn, error) {
	sweepStalePGDirs()
	base, err := os.MkdirTemp("", pgDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, nil, fmt.Errorf("create postgres test dir: %w", err)
	}
	// As root, PostgreSQL runs as the user postgres, which must enter
	// this directory (its data directory inside stays 0700, its own).
	if err := os.Chmod(base, 0o711); err != nil {
		return nil, nil, fmt.Errorf("open postgres test dir: %w", err)
	}
	pg, err := embedded.StartPostgres(filepath.Join(base, "pg"), nil)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(pg.URL())
	if err != nil {
		return nil, nil, fmt.Errorf("postgres url: %w", err)
	}
	u.Path = "/template1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the test postgres: %w", err)
	}
	// A test's data is dropped with its database and never outlives a
	// power cut worth surviving: no waits for the disk, which on a shared
	// machine cost more than the tests themselves. What the platform sees
	// of the store (results, errors, ordering) does not change.
	for _, set := range []string{"ALTER SYSTEM SET fsync = off", "ALTER SYSTEM SET synchronous_commit = off", "ALTER SYSTEM SET full_page_writes = off", "SELECT pg_reload_conf()"} {
		if _, err := admin.Exec(ctx, set); err != nil {
			return nil, nil, fmt.Errorf("configure the test postgres (%s): %w", set, err)
		}
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+templateDB+" TEMPLATE postgres"); err != nil {
		return nil, nil, fmt.Errorf("create the test template database: %w", err)
	}
	return pg, admin, nil
}

// sweepStalePGDirs removes the directories of earlier test processes'
// servers, which died with those processes (the directory name ends in
// the process id); a live process's directory is left alone.
func sweepStalePGDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pgDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), pgDirPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}
