// Package s3test gives tests a real S3-compatible server: versitygw
// (github.com/versity/versitygw), run in the test process through its
// embedgw package, on its POSIX backend in a temporary directory, listening
// on 127.0.0.1 with root credentials chosen here.
//
// Two limits of versitygw shape this package:
//   - one gateway per process, so Start shares it: the first caller starts
//     it, the last one's cleanup stops it and removes its files; tests that
//     share it keep apart by using a bucket each (NewBucket);
//   - its POSIX backend changes the process's working directory to its
//     root while it runs, so tests that use it must not rely on relative
//     paths (testdata/...) meanwhile; the directory is restored at stop.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/debuglogger"
	"github.com/versity/versitygw/embedgw"
	"github.com/versity/versitygw/s3api"

	"github.com/gnome-platform/gnome/libs/exportstore"
)

// The gateway's root credentials and region.
const (
	AccessKey = "gnome-test"
	SecretKey = "gnome-test-secret-123"
	Region    = "us-east-1"
)

// Server is the running gateway.
type Server struct {
	// Endpoint is its URL, http://127.0.0.1:<port>.
	Endpoint string
}

type gateway struct {
	Server
	refs   int
	dir    string
	wd     string
	cancel context.CancelFunc
	done   chan error
}

var (
	mu      sync.Mutex
	current *gateway
	buckets atomic.Int64
)

// Start returns the process's gateway, starting it if needed; it stops
// when the last test that asked for it ends.
func Start(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if current == nil {
		g, err := start()
		if err != nil {
			t.Fatalf("s3test: start versitygw: %v", err)
		}
		current = g
	}
	g := current
	g.refs++
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if g.refs--; g.refs == 0 {
			current = nil
			if err := g.stop(); err != nil {
				t.Errorf("s3test: stop versitygw: %v", err)
			}
		}
	})
	return &g.Server
}

func start() (*gateway, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gnome-s3test-")
	if err != nil {
		return nil, err
	}
	var last error
	// The port is found free, then bound by the gateway: another process
	// may take it in between, so a few tries.
	for range 3 {
		g, err := startOnce(dir, wd)
		if err == nil {
			return g, nil
		}
		last = err
		_ = os.Chdir(wd)
	}
	_ = os.RemoveAll(dir)
	return nil, last
}

func startOnce(dir, wd string) (*gateway, error) {
	root := filepath.Join(dir, "data")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	var ms meta.MetadataStorer = meta.XattrMeta{}
	opts := posix.PosixOpts{Concurrency: 64}
	if (meta.XattrMeta{}).Test(root) != nil {
		// No user xattrs here (some tmpfs): metadata in side files.
		side := filepath.Join(dir, "meta")
		if err := os.MkdirAll(side, 0o755); err != nil {
			return nil, err
		}
		sc, err := meta.NewSideCar(side)
		if err != nil {
			return nil, err
		}
		ms, opts.SideCarDir = sc, side
	}
	be, err := posix.New(root, ms, opts)
	if err != nil {
		return nil, fmt.Errorf("posix backend: %w", err)
	}

	addr, err := freeLoopbackAddr()
	if err != nil {
		be.Shutdown()
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	cfg := &embedgw.Config{
		RootUserAccess:    AccessKey,
		RootUserSecret:    SecretKey,
		Region:            Region,
		Ports:             []string{addr},
		MaxConnections:    256,
		MaxRequests:       256,
		MultipartMaxParts: 10000,
		LogLevel:          debuglogger.LevelSilent,
		Quiet:             true,
		S3Options:         []s3api.Option{s3api.WithOnListen(func() { once.Do(func() { close(ready) }) })},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- embedgw.RunVersityGW(ctx, be, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("gateway on %s: %w", addr, err)
	case <-time.After(15 * time.Second):
		cancel()
		return nil, fmt.Errorf("gateway on %s not listening after 15s", addr)
	}
	return &gateway{Server: Server{Endpoint: "http://" + addr}, dir: dir, wd: wd, cancel: cancel, done: done}, nil
}

func (g *gateway) stop() error {
	g.cancel()
	var err error
	select {
	case err = <-g.done:
		if err == context.Canceled {
			err = nil
		}
	case <-time.After(15 * time.Second):
		err = fmt.Errorf("gateway did not stop within 15s")
	}
	if cerr := os.Chdir(g.wd); cerr != nil && err == nil {
		err = cerr
	}
	if rerr := os.RemoveAll(g.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Client is a minio client of the gateway with the root credentials.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	host := strings.TrimPrefix(s.Endpoint, "http://")
	c, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: Region})
	if err != nil {
		t.Fatalf("s3test: client: %v", err)
	}
	return c
}

// NewBucket creates an empty bucket of its own for t and returns the
// exportstore configuration that uses it.
func (s *Server) NewBucket(t testing.TB) exportstore.S3Config {
	t.Helper()
	name := fmt.Sprintf("gnome-test-%d-%d", os.Getpid(), buckets.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return exportstore.S3Config{Endpoint: s.Endpoint, Region: Region, AccessKey: AccessKey, SecretKey: SecretKey, Bucket: name}
}
