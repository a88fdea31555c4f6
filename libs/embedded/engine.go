package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// The engines under the embedded store (the setting EMBEDDED_STORE).
const (
	// EngineSQLite keeps the data in SQLite files: nothing to install, but
	// FerretDB 1.x reads every document of a collection for any query
	// other than a lookup by _id alone (docs/architecture.md, "The embedded
	// store").
	EngineSQLite = "sqlite"
	// EnginePostgres runs PostgreSQL as a child process: FerretDB then has
	// equality filters evaluated by PostgreSQL, but still sorts in memory.
	EnginePostgres = "postgres"
	// EngineAuto is EnginePostgres when PostgreSQL is installed and the
	// data directory holds no SQLite data yet, else EngineSQLite.
	EngineAuto = "auto"
)

// Engines are the values EMBEDDED_STORE takes.
var Engines = []string{EngineSQLite, EnginePostgres, EngineAuto}

// pgSubdir is the PostgreSQL data directory inside the store's directory.
const pgSubdir = "postgres"

// ChooseEngine resolves engine (one of Engines; "" is EngineSQLite) for
// the store directory dir. EngineAuto never moves a store that already
// has SQLite data to PostgreSQL, where that data would not be: data does
// not follow a change of engine.
func ChooseEngine(dir, engine string, log *slog.Logger) (string, error) {
	switch engine {
	case "", EngineSQLite:
		return EngineSQLite, nil
	case EnginePostgres:
		return EnginePostgres, nil
	case EngineAuto:
	default:
		return "", fmt.Errorf("EMBEDDED_STORE: %q is none of sqlite, postgres, auto", engine)
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Stat(filepath.Join(dir, pgSubdir, "PG_VERSION")); err == nil {
		return EnginePostgres, nil
	}
	if has, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")); len(has) > 0 {
		log.Warn("embedded store stays on SQLite: this data directory already holds SQLite data; queries other than _id lookups read whole collections (see docs/architecture.md, The embedded store)", "dir", dir)
		return EngineSQLite, nil
	}
	if err := postgresUsable(dir); err != nil {
		log.Warn("embedded store on SQLite: queries other than _id lookups read whole collections; install PostgreSQL for filters evaluated in the database, or use MongoDB (MONGO_URI)", "reason", err)
		return EngineSQLite, nil
	}
	return EnginePostgres, nil
}

// StartStoreEngine starts FerretDB on engine (one of Engines) storing
// under dir and listening on addr (loopback; port 0 picks a free one).
func StartStoreEngine(dir, addr, engine string, log *slog.Logger) (*Store, error) {
	host, port, err := loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("EMBEDDED_STORE_ADDR: %w", err)
	}
	if port != 0 {
		if err := portFree(host, port); err != nil {
			return nil, fmt.Errorf("EMBEDDED_STORE_ADDR: cannot listen on %s (%v); set EMBEDDED_STORE_ADDR to a free address or MONGO_URI to an existing MongoDB", addr, err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve store dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	engine, err = ChooseEngine(abs, engine, log)
	if err != nil {
		return nil, err
	}
	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: net.JoinHostPort(host, strconv.Itoa(port))},
		// FerretDB logs every connection at info and unsupported commands (such as the driver's endSessions) as warnings; keep only its errors.
		Logger: slog.New(levelFloor{log.Handler(), slog.LevelError}).With("component", "store"),
	}
	var pg *Postgres
	switch engine {
	case EngineSQLite:
		cfg.Handler = "sqlite"
		cfg.SQLiteURL = "file:" + abs + "/"
	case EnginePostgres:
		if err := letPostgresIn(abs); err != nil {
			return nil, err
		}
		pg, err = StartPostgres(filepath.Join(abs, pgSubdir), log)
		if err != nil {
			return nil, fmt.Errorf("EMBEDDED_STORE=postgres: %w", err)
		}
		cfg.Handler = "postgresql"
		cfg.PostgreSQLURL = pg.URL()
		cfg.Logger = slog.New(quietDuplicates{cfg.Logger.Handler()})
	}
	return runFerret(cfg, engine, pg)
}

// StartStoreOnPostgres starts FerretDB listening on addr (loopback; port 0
// picks a free one) on a PostgreSQL database that someone else runs and
// stops, given by its connection URL: tests share one PostgreSQL child per
// process, one database per test (libs/testenv), instead of paying for an
// initdb per test. Shutdown leaves the PostgreSQL server running.
func StartStoreOnPostgres(pgURL, addr string, log *slog.Logger) (*Store, error) {
	host, port, err := loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("EMBEDDED_STORE_ADDR: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	cfg := &ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: net.JoinHostPort(host, strconv.Itoa(port))},
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
		Logger:        slog.New(quietDuplicates{levelFloor{log.Handler(), slog.LevelError}}).With("component", "store"),
	}
	return runFerret(cfg, EnginePostgres, nil)
}

// runFerret creates and runs FerretDB with cfg; pg, if any, is stopped
// with the store.
func runFerret(cfg *ferretdb.Config, engine string, pg *Postgres) (*Store, error) {
	ferretNew.Lock()
	db, err := ferretdb.New(cfg)
	ferretNew.Unlock()
	if err != nil {
		if pg != nil {
			pg.Shutdown()
		}
		return nil, fmt.Errorf("create embedded store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{db: db, cancel: cancel, done: make(chan struct{}), engine: engine, pg: pg}
	go func() { defer close(s.done); _ = db.Run(ctx) }()
	// MongoDBURI blocks until the listener is bound.
	s.uri = db.MongoDBURI()
	return s, nil
}

// postgresUsable says whether PostgreSQL can run for the store directory
// dir: installed, and, when this process is root, a system user postgres
// that can enter the directories above dir (dir itself is opened to it by
// letPostgresIn).
func postgresUsable(dir string) error {
	if _, err := FindPostgres(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return err
	}
	return enterable(uid, gid, filepath.Dir(dir))
}

// letPostgresIn lets the system user postgres, as which PostgreSQL runs
// when this process is root, enter the store directory (made 0700 for
// root): group postgres, search only (0710), nothing listed or read.
func letPostgresIn(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	_, gid, err := postgresUser()
	if err != nil {
		return fmt.Errorf("EMBEDDED_STORE=postgres: %w", err)
	}
	if err := os.Chown(dir, 0, gid); err != nil {
		return fmt.Errorf("give the store dir to group postgres: %w", err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return fmt.Errorf("let group postgres enter the store dir: %w", err)
	}
	return nil
}

// quietDuplicates drops FerretDB's error record of a PostgreSQL query that
// broke a unique index (SQLSTATE 23505): the client gets the duplicate key
// error it expects (E11000), which an experiment may well rely on, and the
// platform's log should not read as if the store failed.
type quietDuplicates struct{ slog.Handler }

func (h quietDuplicates) Handle(ctx context.Context, r slog.Record) error {
	dup := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" && strings.Contains(a.Value.String(), "(SQLSTATE 23505)") {
			dup = true
			return false
		}
		return true
	})
	if dup {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietDuplicates) WithAttrs(as []slog.Attr) slog.Handler {
	return quietDuplicates{h.Handler.WithAttrs(as)}
}

func (h quietDuplicates) WithGroup(n string) slog.Handler {
	return quietDuplicates{h.Handler.WithGroup(n)}
}
