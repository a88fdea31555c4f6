package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Postgres is a PostgreSQL server run as a child process for the embedded
// store's PostgreSQL engine. It listens on a unix socket in its data
// directory only (no TCP at all), trusts whoever can open that socket, and
// keeps the directory mode 0700: only its own user (and root) can connect,
// so no password exists to be leaked. It dies with the parent process.
type Postgres struct {
	dir  string // the data directory, which also holds the socket
	bin  string // the directory of initdb and postgres
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the wait error, once done is closed
	tail *lineTail
}

// PostgresUser is the database superuser initdb creates; connections
// authenticate by the socket's permissions, not by a password.
const PostgresUser = "gnome"

// pgSocketPort names the socket file (.s.PGSQL.<port>); nothing listens on
// a TCP port.
const pgSocketPort = 5432

// FindPostgres returns the directory that holds PostgreSQL's initdb and
// postgres: the one of initdb on PATH, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout).
func FindPostgres() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first: compare the version directory numerically.
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL found (initdb and postgres on PATH or in /usr/lib/postgresql/*/bin); install it, e.g. apt-get install postgresql")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartPostgres runs PostgreSQL on the data directory dir, creating it with
// initdb on first start. When this process runs as root, PostgreSQL (which
// refuses root) runs as the system user "postgres", which must be able to
// enter dir's parent directories.
func StartPostgres(dir string, log *slog.Logger) (*Postgres, error) {
	if log == nil {
		log = slog.Default()
	}
	bin, err := FindPostgres()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve postgres dir: %w", err)
	}
	if err := socketFits(dir); err != nil {
		return nil, err
	}
	cred, err := childCredential(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(bin, dir, cred); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("read postgres dir: %w", err)
	}
	// A postmaster.pid left by a killed server is removed by postgres itself
	// when its process is gone.
	p := &Postgres{dir: dir, bin: bin, done: make(chan struct{}), tail: &lineTail{max: 30}}
	p.cmd = exec.Command(filepath.Join(bin, "postgres"),
		"-D", dir,
		"-k", dir,
		"-p", strconv.Itoa(pgSocketPort),
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
		"-c", "max_connections=64",
		// FerretDB passes the field of a filter as a parameter
		// (_jsonb->$1 @> $2): only a plan made with the values matches
		// the companion indexes' expressions.
		"-c", "plan_cache_mode=force_custom_plan",
	)
	p.cmd.Env = pgEnv()
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C goes to the platform,
		// which stops PostgreSQL in order (Shutdown) after the services.
		Setpgid: true,
		// Dies with the platform even when the platform is killed: the
		// immediate shutdown, recovered from at the next start.
		Pdeathsig:  syscall.SIGQUIT,
		Credential: cred,
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("postgres stderr: %w", err)
	}
	// Linux sends the parent-death signal when the thread that forked the
	// child ends, not the process; Go ends a thread when a goroutine locked
	// to it exits. This goroutine holds the forking thread for the child's
	// whole life, so that only the platform's end stops PostgreSQL.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go p.tail.copy(stderr, log.With("component", "postgres"))
	if err := p.waitReady(60 * time.Second); err != nil {
		p.Shutdown()
		return nil, err
	}
	return p, nil
}

// socketFits says whether the socket PostgreSQL makes in its data
// directory dir has a path the kernel takes (108 bytes with the NUL).
func socketFits(dir string) error {
	if sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(pgSocketPort)); len(sock) > 107 {
		return fmt.Errorf("postgres socket path %s is longer than the 107 bytes a unix socket allows: choose a shorter DATA_DIR", sock)
	}
	return nil
}

// childCredential is who PostgreSQL runs as: this process's user, or, for
// root, the system user postgres, who then owns dir.
func childCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create postgres dir: %w", err)
		}
		return nil, nil
	}
	uid, gid, err := postgresUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create postgres dir: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("give the postgres dir to user postgres: %w", err)
	}
	// The user must be able to reach its directory; say which parent stops
	// it instead of letting initdb fail with a bare "permission denied".
	if err := enterable(uid, gid, filepath.Dir(dir)); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// enterable says whether user uid (group gid) can enter dir and every
// directory above it.
func enterable(uid, gid int, dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		m := fi.Mode().Perm()
		if ok && !(m&0o001 != 0 || int(st.Uid) == uid && m&0o100 != 0 || int(st.Gid) == gid && m&0o010 != 0) {
			return fmt.Errorf("postgres runs as user postgres (it refuses root), which cannot enter %s (mode %v): allow it (chmod o+x %s) or choose a DATA_DIR it can reach", p, m, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// postgresUser is the system user PostgreSQL runs as when this process is
// root.
func postgresUser() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("postgres refuses to run as root and there is no system user postgres to run it as: %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// initdb creates the cluster, with the index companions, in a sibling
// directory and renames it into place, so that an interrupted first start
// leaves no half-made cluster.
func initdb(bin, dir string, cred *syscall.Credential) error {
	tmp := dir + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove partial postgres init: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create postgres init dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(tmp, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("give the postgres init dir to user postgres: %w", err)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"),
		"-D", tmp,
		"-U", PostgresUser,
		"--auth-local=trust", "--auth-host=reject",
		"-E", "UTF8", "--locale=C",
	)
	cmd.Env = pgEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 10))
	}
	if err := single(bin, tmp, cred, companionSQL); err != nil {
		return fmt.Errorf("install index companions: %w", err)
	}
	// dir exists (empty, made by childCredential): replace it.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace postgres dir (it must be empty before the first start): %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move postgres init into place: %w", err)
	}
	return nil
}

// companionSQL makes PostgreSQL give every index FerretDB creates a GIN
// companion on the same field expressions. FerretDB 1.24 pushes an
// equality filter down as containment, _jsonb->'field' @> value, which its
// own B-tree index on (_jsonb->'field') cannot serve: PostgreSQL would read
// the whole table. A GIN index (jsonb_path_ops) serves containment, so a
// find by an indexed field, or by _id, reads only the matching rows. The
// companions follow FerretDB's indexes through event triggers, so no
// FerretDB code is changed: made with each index, dropped with it (or with
// its table). FerretDB lists indexes from its own metadata, where the
// companions never appear.
const companionSQL = `CREATE FUNCTION gnome_companion_create() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE
  c record;
  i record;
  k int;
  expr text;
BEGIN
  FOR c IN SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' AND object_type = 'index' LOOP
    SELECT ix.indexrelid, ix.indnatts, cl.relname, am.amname, ns.nspname, t.relname AS tbl INTO i
      FROM pg_index ix
      JOIN pg_class cl ON cl.oid = ix.indexrelid
      JOIN pg_am am ON am.oid = cl.relam
      JOIN pg_namespace ns ON ns.oid = cl.relnamespace
      JOIN pg_class t ON t.oid = ix.indrelid
      WHERE ix.indexrelid = c.objid;
    CONTINUE WHEN NOT FOUND OR i.amname <> 'btree' OR i.nspname IN ('pg_catalog', 'information_schema');
    FOR k IN 1..i.indnatts LOOP
      expr := pg_get_indexdef(i.indexrelid, k, false);
      CONTINUE WHEN expr !~ '^\(+_jsonb -> ';
      EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((%s) jsonb_path_ops)', left(i.relname, 56) || '_gin' || k, i.nspname, i.tbl, expr);
    END LOOP;
  END LOOP;
END
$f$;

CREATE FUNCTION gnome_companion_drop() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE
  d record;
  k int;
BEGIN
  PERFORM set_config('client_min_messages', 'warning', true);
  FOR d IN SELECT schema_name, object_name FROM pg_event_trigger_dropped_objects() WHERE object_type = 'index' AND object_name NOT LIKE '%\_gin%' LOOP
    FOR k IN 1..32 LOOP
      EXECUTE format('DROP INDEX IF EXISTS %I.%I', d.schema_name, left(d.object_name, 56) || '_gin' || k);
    END LOOP;
  END LOOP;
END
$f$;

CREATE EVENT TRIGGER gnome_companion_create ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION gnome_companion_create();

CREATE EVENT TRIGGER gnome_companion_drop ON sql_drop WHEN TAG IN ('DROP INDEX') EXECUTE FUNCTION gnome_companion_drop();

`

// single runs sql in PostgreSQL's single-user mode on dir, before the
// server starts: no client, no connection.
func single(bin, dir string, cred *syscall.Credential, sql string) error {
	cmd := exec.Command(filepath.Join(bin, "postgres"), "--single", "-j", "-D", dir, "postgres")
	cmd.Env = pgEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("postgres --single: %w: %s", err, lastLines(string(out), 10))
	}
	if strings.Contains(string(out), "ERROR:") {
		return fmt.Errorf("postgres --single: %s", lastLines(string(out), 10))
	}
	return nil
}

// pgEnv keeps PostgreSQL from picking up the caller's PG* settings and
// locale.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LANG=C", "LC_ALL=C")
}

// waitReady waits until postmaster.pid says the server accepts connections,
// as pg_ctl does.
func (p *Postgres) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(filepath.Join(p.dir, "postmaster.pid"))
		if err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 7 && strings.TrimSpace(lines[0]) == strconv.Itoa(p.cmd.Process.Pid) && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited at start: %v: %s", p.err, p.tail.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not become ready in %s: %s", limit, p.tail.String())
		}
	}
}

// URL is the connection string FerretDB uses: the socket directory as
// host, the default database.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://%s@/postgres?host=%s&port=%d&sslmode=disable", PostgresUser, p.dir, pgSocketPort)
}

// PID is the postmaster's process id (its children share its process
// group).
func (p *Postgres) PID() int { return p.cmd.Process.Pid }

// Dir is the data directory, which also holds the socket.
func (p *Postgres) Dir() string { return p.dir }

// Shutdown stops the server with a fast shutdown (open transactions are
// rolled back, everything committed is on disk) and waits for it; a server
// that does not stop in 30 seconds is killed.
func (p *Postgres) Shutdown() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// lineTail logs a child's output lines and keeps the last few for errors.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) copy(r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		log.Debug(line)
		t.mu.Lock()
		t.lines = append(t.lines, line)
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
		t.mu.Unlock()
	}
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
