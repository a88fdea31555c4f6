// Package e2e tests the built binaries as real processes: gnome serve, its
// infrastructure-only mode, and each service started on its own.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// bins holds the binaries built once for all tests.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gnome-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = dir
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	pkgs := map[string]string{
		"gnome":       "github.com/gnome-platform/gnome/services/gnome/cmd/gnome",
		"edge":        "github.com/gnome-platform/gnome/services/edge/cmd/edge",
		"auth":        "github.com/gnome-platform/gnome/services/auth/cmd/auth",
		"upload":      "github.com/gnome-platform/gnome/services/upload/cmd/upload",
		"export":      "github.com/gnome-platform/gnome/services/export/cmd/export",
		"actorworker": "github.com/gnome-platform/gnome/services/actorworker/cmd/actorworker",
	}
	for name, pkg := range pkgs {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// freeAddr returns a loopback address with a port free right now, for a
// process the test starts. The port is drawn at random below the kernel's
// ephemeral range (32768 and up here): a port the kernel hands out (to
// port 0, or to any process's outgoing connection) can be taken by another
// test run on the same machine between this check and the process's own
// listen, which failed runs with "address already in use" when two ran at
// once; one of these is taken only by another draw of the same kind.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+mrand.IntN(12000)))
		if l, err := net.Listen("tcp", addr); err == nil {
			_ = l.Close()
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running binary whose output is kept for assertions.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs a binary with env (on top of a minimal environment); it is
// killed at the end of the test if still running. gnome runs its embedded
// store on SQLite unless env names EMBEDDED_STORE ("" for the default,
// auto): PostgreSQL's initdb costs 1–2.5 s per fresh DATA_DIR, the store
// suites run on PostgreSQL already, and TestDefaultStoreEndToEnd runs the
// default.
func start(t *testing.T, name string, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bins, name), args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if _, set := env["EMBEDDED_STORE"]; name == "gnome" && !set {
		p.cmd.Env = append(p.cmd.Env, "EMBEDDED_STORE=sqlite")
	}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.Output())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM", p.name, p.err)
	}
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s still running after %v", p.name, within)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

// waitFor polls cond every 50 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", within, what)
}

// client follows redirects to experiments' origins (*.localhost) and
// keeps the cookies of the hand-off, as a browser does.
var client = func() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport(), Jar: jar}
}()

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitHealthy(t *testing.T, base string, p *proc) {
	t.Helper()
	waitFor(t, 60*time.Second, base+"/health to answer 200", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited before becoming healthy: %v", p.name, p.err)
		default:
		}
		code, _ := get(t, base+"/health")
		return code == http.StatusOK
	})
}

// detailed is the part of /health/detailed the tests read.
type detailed struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status string `json:"status"`
	} `json:"components"`
	Services map[string]struct {
		Status    string `json:"status"`
		Instances []struct {
			ID string `json:"id"`
		} `json:"instances"`
	} `json:"services"`
}

func getDetailed(t *testing.T, base string) (int, detailed) {
	t.Helper()
	code, body := get(t, base+"/health/detailed")
	var d detailed
	if code != 0 {
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("/health/detailed is not JSON: %v: %s", err, body)
		}
	}
	return code, d
}

var allServices = []string{"edge", "auth", "upload", "export", "actorworker"}

// readLines scans the process output for KEY=value lines.
func kv(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.Contains(k, " ") {
			m[k] = v
		}
	}
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
