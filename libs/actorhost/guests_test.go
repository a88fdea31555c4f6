package actorhost

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bundle"
)

// Guests are real Go programs, built for wasip1 the way an experiment
// author builds an actor, once per test run into a temporary directory.

var guestDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "actorhost-guests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type build struct {
	once sync.Once
	out  []byte
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// cached runs produce once per key and test run.
func cached(t testing.TB, key string, produce func() ([]byte, error)) []byte {
	t.Helper()
	buildsMu.Lock()
	b := builds[key]
	if b == nil {
		b = &build{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.out, b.err = produce() })
	if b.err != nil {
		t.Fatalf("%s: %v", key, b.err)
	}
	return b.out
}

// repoRoot is the directory of go.work above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the package")
		}
		dir = parent
	}
}

// goCmd runs the go command in dir, within the repository's workspace.
func goCmd(ctx context.Context, t testing.TB, dir string, env []string, args ...string) error {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(repoRoot(t), "go.work"), "CGO_ENABLED=0")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return nil
}

// guest builds the actor package in dir (relative to the repository root)
// to a wasip1 reactor, as docs/actors.md tells authors to.
func guest(t testing.TB, dir string) []byte {
	t.Helper()
	return cached(t, "guest "+dir, func() ([]byte, error) {
		out := filepath.Join(guestDir, strings.ReplaceAll(dir, "/", "_")+".wasm")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err := goCmd(ctx, t, filepath.Join(repoRoot(t), dir), []string{"GOOS=wasip1", "GOARCH=wasm"},
			"build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
		if err != nil {
			return nil, err
		}
		return os.ReadFile(out)
	})
}

// testdataGuest builds libs/actorhost/testdata/name.
func testdataGuest(t testing.TB, name string) []byte {
	t.Helper()
	return guest(t, "libs/actorhost/testdata/"+name)
}

// example is an example experiment packed as `make examples` packs it:
// its actor built to actor.wasm, then examples/cmd/mkzip. The archive is
// opened with the upload's own checks, and its manifest and actor returned.
func example(t testing.TB, name string) (*bundle.Manifest, []byte) {
	t.Helper()
	wasm := guest(t, "examples/"+name+"/actor")
	archive := cached(t, "zip "+name, func() ([]byte, error) {
		wasmPath := filepath.Join(guestDir, name+"-actor.wasm")
		if err := os.WriteFile(wasmPath, wasm, 0o644); err != nil {
			return nil, err
		}
		out := filepath.Join(guestDir, name+".zip")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		root := repoRoot(t)
		err := goCmd(ctx, t, root, nil, "run", "./examples/cmd/mkzip", "-o", out, "-add", "actor.wasm="+wasmPath, filepath.Join(root, "examples", name))
		if err != nil {
			return nil, err
		}
		return os.ReadFile(out)
	})
	b, err := bundle.Open(bytes.NewReader(archive), int64(len(archive)), bundle.Limits{})
	if err != nil {
		t.Fatalf("example %s is not an uploadable bundle: %v", name, err)
	}
	if len(b.Warnings) > 0 {
		t.Errorf("example %s: manifest warnings %v", name, b.Warnings)
	}
	if b.Manifest.Actor == nil {
		t.Fatalf("example %s declares no actor", name)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zr.Open(b.Manifest.Actor.Module)
	if err != nil {
		t.Fatalf("example %s: %v", name, err)
	}
	defer f.Close()
	module, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(module, wasm) {
		t.Fatalf("example %s: the archive's %s is not the actor built", name, b.Manifest.Actor.Module)
	}
	hasIndex := false
	for _, f := range b.Files {
		hasIndex = hasIndex || f.Path == "index.html" || f.Path == "static/index.html"
		if strings.HasSuffix(f.Path, ".go") {
			t.Errorf("example %s: the archive holds the source %s", name, f.Path)
		}
	}
	if !hasIndex {
		t.Errorf("example %s has no index.html", name)
	}
	return b.Manifest, module
}
