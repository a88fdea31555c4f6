package embedded

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

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

// ChooseEngine resolves engine (one of Engines; "" is EngineAuto, the
// default) for the store directory dir. EngineAuto never moves a store
// that already has data to the other engine, where that data would not
// be: data does not follow a change of engine. When auto settles on
// SQLite it logs a warning saying why and how to get PostgreSQL.
func ChooseEngine(dir, engine string, log *slog.Logger) (string, error) {
	switch engine {
	case EngineSQLite:
		return EngineSQLite, nil
	case EnginePostgres:
		return EnginePostgres, nil
	case "", EngineAuto:
	default:
		return "", fmt.Errorf("EMBEDDED_STORE: %q is none of sqlite, postgres, auto", engine)
	}
	if log == nil {
		log = slog.Default()
	}
	hasSQLite, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if _, err := os.Stat(filepath.Join(dir, pgSubdir, "PG_VERSION")); err == nil {
		if len(hasSQLite) > 0 {
			log.Warn("embedded store on PostgreSQL, which this data directory already uses; it also holds SQLite data, which is not read (set EMBEDDED_STORE=sqlite to use that instead)", "dir", dir)
		}
		return EnginePostgres, nil
	}
	if len(hasSQLite) > 0 {
		warnSQLite(log, "this data directory already holds SQLite data, which does not move to PostgreSQL",
			"for PostgreSQL start on a new DATA_DIR (data does not move between engines), or set EMBEDDED_STORE=sqlite to keep SQLite without this warning", dir)
		return EngineSQLite, nil
	}
	if err := postgresUsable(dir); err != nil {
		warnSQLite(log, err.Error(), howToGetPostgres, dir)
		return EngineSQLite, nil
	}
	return EnginePostgres, nil
}

// howToGetPostgres is the advice of auto's warning when PostgreSQL cannot
// run.
const howToGetPostgres = "for PostgreSQL install its server (Debian, Ubuntu: apt-get install postgresql) where it can reach DATA_DIR, and start on a DATA_DIR without SQLite data; or use MongoDB (MONGO_URI); EMBEDDED_STORE=sqlite keeps SQLite without this warning"

// warnSQLite is auto's warning when it settles on SQLite: why, what it
// costs, and how to get PostgreSQL.
func warnSQLite(log *slog.Logger, why, how, dir string) {
	log.Warn("embedded store on SQLite, not PostgreSQL: "+why+". On SQLite every query but a find, update or delete by _id reads the whole collection, which slows requests as the data grows (docs/architecture.md, The embedded store); "+how,
		"engine", EngineSQLite, "dir", dir)
}

// StartStoreEngine starts FerretDB on engine (one of Engines) storing
// under dir and listening on addr (loopback; port 0 picks a free one).
// With EngineAuto on a directory without data, a PostgreSQL that does not
// start (a broken installation, no shared memory) leaves the store on
// SQLite, with a warning, instead of failing.
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
	requested := engine
	pgDir := filepath.Join(abs, pgSubdir)
	_, statErr := os.Stat(filepath.Join(pgDir, "PG_VERSION"))
	hadCluster := statErr == nil
	_, statErr = os.Lstat(pgDir)
	hadPGDir := statErr == nil
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
	if engine == EnginePostgres {
		pg, err = startPostgresFor(abs, pgDir, log)
		if err != nil && (requested == EngineAuto || requested == "") && !hadCluster {
			// Nothing was stored yet: SQLite loses nothing, and the next
			// start (with SQLite data then) stays on it. What this start
			// made goes, so that no half-made cluster is taken for one.
			if _, made := os.Stat(filepath.Join(pgDir, "PG_VERSION")); !hadPGDir || made == nil {
				_ = os.RemoveAll(pgDir)
			}
			_ = os.RemoveAll(pgDir + ".init")
			warnSQLite(log, "PostgreSQL is installed but did not start: "+err.Error(), howToGetPostgres, abs)
			engine, err = EngineSQLite, nil
		}
		if err != nil {
			return nil, fmt.Errorf("EMBEDDED_STORE=postgres: %w", err)
		}
	}
	switch engine {
	case EngineSQLite:
		cfg.Handler = "sqlite"
		cfg.SQLiteURL = "file:" + abs + "/"
	case EnginePostgres:
		cfg.Handler = "postgresql"
		cfg.PostgreSQLURL = pg.URL()
		cfg.Logger = slog.New(quietDuplicates{cfg.Logger.Handler()})
	}
	st, err := runFerret(cfg, engine, pg)
	if err != nil {
		return nil, err
	}
	log.Info("embedded store started", "engine", engine, "requested", cmp.Or(requested, EngineAuto), "dir", abs)
	return st, nil
}

// startPostgresFor runs the PostgreSQL of the store directory dir on its
// data directory pgDir.
func startPostgresFor(dir, pgDir string, log *slog.Logger) (*Postgres, error) {
	if err := letPostgresIn(dir); err != nil {
		return nil, err
	}
	return StartPostgres(pgDir, log)
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
// dir: installed, its socket's path short enough, and, when this process
// is root, a system user postgres that can enter the directories above
// dir (dir itself is opened to it by letPostgresIn).
func postgresUsable(dir string) error {
	if _, err := FindPostgres(); err != nil {
		return err
	}
	if err := socketFits(filepath.Join(dir, pgSubdir)); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return err
	}
	err = enterable(uid, gid, filepath.Dir(dir))
	if err != nil && openableDataDir(uid, gid, filepath.Dir(dir)) {
		return nil // letPostgresIn opens it
	}
	return err
}

// openableDataDir says whether DATA_DIR (above the store directory) is
// all that keeps the postgres user out, and is root's own 0700 directory,
// as gnome makes it: letPostgresIn may then open it as it opens the store
// directory. A DATA_DIR with other owners or modes is the operator's, and
// is left as it is.
func openableDataDir(uid, gid int, dataDir string) bool {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0 && fi.Mode().Perm() == 0o700 && enterable(uid, gid, filepath.Dir(dataDir)) == nil
}

// letPostgresIn lets the system user postgres, as which PostgreSQL runs
// when this process is root, enter the store directory (made 0700 for
// root), and DATA_DIR above it when gnome made that 0700 too
// (openableDataDir): group postgres, search only (0710), nothing listed or
// read. The files in them (the secret key, the bus credentials) stay
// root's alone.
func letPostgresIn(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return err
	}
	if dataDir := filepath.Dir(dir); enterable(uid, gid, dataDir) != nil && openableDataDir(uid, gid, dataDir) {
		if err := searchOnly(dataDir, gid); err != nil {
			return err
		}
	}
	return searchOnly(dir, gid)
}

// searchOnly gives dir to group gid with search permission alone (0710).
func searchOnly(dir string, gid int) error {
	if err := os.Chown(dir, 0, gid); err != nil {
		return fmt.Errorf("give %s to group postgres: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return fmt.Errorf("let group postgres enter %s: %w", dir, err)
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
