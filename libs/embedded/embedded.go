// Package embedded starts the infrastructure `gnome serve` brings along when no
// cluster is given: a NATS server with JetStream on disk, and FerretDB as the
// MongoDB-compatible store, on SQLite or on a PostgreSQL child process (see
// engine.go). They listen on loopback only (PostgreSQL on a unix socket).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/bus"
)

// NATS is an embedded NATS server.
type NATS struct {
	srv   *server.Server
	creds *Credentials
}

// StartNATS starts a JetStream-enabled server storing under dir and listening
// on addr (host:port; port 0 picks a free one). The host must be a loopback
// address. Every write to a stream is fsynced before it is acknowledged
// (SyncAlways): acknowledged jobs and events survive a power cut.
//
// Every connection authenticates, even on loopback (another local user or
// process is not the platform): the server knows one user per service with
// that service's permissions, and an admin, whose credentials are generated
// at first start under dir/credentials and reused after (see Credentials).
func StartNATS(dir, addr string) (*NATS, error) {
	host, port, err := loopback(addr)
	if err != nil {
		return nil, fmt.Errorf("EMBEDDED_NATS_ADDR: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create nats data dir: %w", err)
	}
	if port != 0 {
		if err := portFree(host, port); err != nil {
			return nil, fmt.Errorf("EMBEDDED_NATS_ADDR: cannot listen on %s (%v); set EMBEDDED_NATS_ADDR to a free address or NATS_URL to an existing server", addr, err)
		}
	} else {
		port = server.RANDOM_PORT
	}
	creds, err := LoadCredentials(filepath.Join(dir, CredentialsDir))
	if err != nil {
		return nil, err
	}
	users, err := creds.serverUsers()
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		Users:              users,
		ServerName:         "gnome-embedded",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           dir,
		SyncAlways:         true,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
		HTTPPort:           0,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats server did not become ready in 15s")
	}
	return &NATS{srv: srv, creds: creds}, nil
}

// URL is the client URL of the server, without credentials.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// InProcess is the client option that connects to this server inside the
// process, without a socket: what `gnome serve` gives the services it runs
// beside the server. A message between two of them then passes from one
// goroutine to the next instead of waking a thread through the kernel's
// loopback, which is most of a request-reply's time on an idle machine
// (docs/benchmarks.md, *The hop to an actor*). Authentication is the same as
// over a socket.
func (n *NATS) InProcess() nats.Option { return nats.InProcessServer(n.srv) }

// Credentials are the server's users' credentials.
func (n *NATS) Credentials() *Credentials { return n.creds }

// AdminURL is the client URL with the admin's credentials in it, for tests
// and tools in this process; never print or log it.
func (n *NATS) AdminURL() string {
	u, err := url.Parse(n.URL())
	if err != nil {
		return n.URL()
	}
	a := n.creds.Auth(bus.Admin)
	u.User = url.UserPassword(a.User, a.Password)
	return u.String()
}

// Shutdown stops the server and waits for it, flushing JetStream to disk.
func (n *NATS) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// ferretNew serialises ferretdb.New, which writes a package-level variable:
// stores started at once in one process (parallel tests) would race.
var ferretNew sync.Mutex

// Store is an embedded FerretDB: on SQLite files (EngineSQLite), or on a
// PostgreSQL server run as a child process (EnginePostgres, see
// engine.go).
type Store struct {
	db     *ferretdb.FerretDB
	cancel context.CancelFunc
	done   chan struct{}
	uri    string
	engine string
	pg     *Postgres
}

// StartStore starts FerretDB storing its SQLite files under dir and
// listening on addr (loopback; port 0 picks a free one).
func StartStore(dir, addr string, log *slog.Logger) (*Store, error) {
	return StartStoreEngine(dir, addr, EngineSQLite, log)
}

// URI is the MongoDB connection string of the store.
func (s *Store) URI() string { return s.uri }

// Engine is the engine under the store: EngineSQLite or EnginePostgres.
func (s *Store) Engine() string { return s.engine }

// Postgres is the PostgreSQL child process under the store, nil on SQLite.
func (s *Store) Postgres() *Postgres { return s.pg }

// Shutdown stops the listener, then closes the SQLite files or stops the
// PostgreSQL server.
func (s *Store) Shutdown() {
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
	if s.pg != nil {
		s.pg.Shutdown()
	}
}

func loopback(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("%q is not a loopback address: the embedded infrastructure never listens beyond this machine", host)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q is not a port", p)
	}
	return host, port, nil
}

func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(as), h.min}
}

func (h levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(n), h.min}
}
