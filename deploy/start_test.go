package deploy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// buildBinaries builds every service binary once into a directory of the
// test (as services/gnome/e2e does).
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range config.Binaries {
		args = append(args, "github.com/gnome-platform/gnome/services/"+b+"/cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// onLoopback is env with only what points at the deployment's network
// moved to this machine: NATS (the embedded server, one node, so one
// replica) and the store of e, the listeners on free loopback ports, and
// DATA_DIR (deploy/Dockerfile sets it in the image) in the test's
// directory. The OTLP endpoint, a host only the deployment's network
// knows, is dropped. Everything else is exactly what the file gives.
func onLoopback(t *testing.T, env map[string]string, e *testenv.Env, natsUser string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	out["NATS_URL"] = e.BusURL
	out["NATS_PASSWORD"] = e.Auth(natsUser).Password
	out["MONGO_URI"] = e.MongoURI
	out["NATS_REPLICAS"] = "1"
	out["METRICS_ADDR"] = freeAddr(t)
	if _, ok := out["HTTP_ADDR"]; ok {
		out["HTTP_ADDR"] = freeAddr(t)
	}
	out["DATA_DIR"] = t.TempDir()
	delete(out, "OTEL_EXPORTER_OTLP_ENDPOINT")
	return out
}

// proc is a running binary whose output is kept.
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

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func startBinary(t *testing.T, path string, env map[string]string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(path), done: make(chan struct{})}
	p.cmd = exec.Command(path)
	p.cmd.Env = environ(env)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
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
			t.Logf("--- output of %s:\n%s", p.name, p.output())
		}
	})
	return p
}

// probe runs `<binary> probe` with env, as the container's health check
// does: its exit code and output.
func probe(path string, env map[string]string) (int, string) {
	cmd := exec.Command(path, "probe")
	cmd.Env = environ(env)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, string(out)
}

// startAll starts every binary with its environment at the same moment
// and waits until each one's probe passes, then checks /metrics and
// /health on its METRICS_ADDR, and stops them with SIGTERM.
func startAll(t *testing.T, bins string, envs map[string]map[string]string) {
	t.Helper()
	procs := map[string]*proc{}
	for _, b := range config.Binaries {
		procs[b] = startBinary(t, filepath.Join(bins, b), envs[b])
	}
	for _, b := range config.Binaries {
		path, env, p := filepath.Join(bins, b), envs[b], procs[b]
		deadline := time.Now().Add(90 * time.Second)
		for {
			code, out := probe(path, env)
			if code == 0 {
				break
			}
			if code == 2 && strings.Contains(out, "usage") {
				t.Skipf("%s has no probe subcommand yet (svc.Main): %s", b, out)
			}
			select {
			case <-p.done:
				t.Fatalf("%s exited before it was healthy: %v\n%s", b, p.err, p.output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy within 90 s; last probe: %s", b, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, path := range []string{"/health", "/metrics"} {
			resp, err := http.Get("http://" + env["METRICS_ADDR"] + path)
			if err != nil {
				t.Fatalf("%s %s: %v", b, path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %d %s", b, path, resp.StatusCode, body)
			}
			if path == "/metrics" && !bytes.Contains(body, []byte("# TYPE")) {
				t.Errorf("%s /metrics holds no metrics: %.200s", b, body)
			}
		}
		if addr := env["HTTP_ADDR"]; addr != "" {
			resp, err := http.Get("http://" + addr + "/health")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s /health on HTTP_ADDR: %v %v", b, resp, err)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	}
	for _, b := range config.Binaries {
		_ = procs[b].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, b := range config.Binaries {
		select {
		case <-procs[b].done:
			if procs[b].err != nil {
				t.Errorf("%s exited with %v after SIGTERM", b, procs[b].err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("%s did not exit within 40 s of SIGTERM", b)
		}
	}
}

// Each binary, started with the environment docker-compose.yml gives it
// (production mode; only the network's addresses moved to loopback),
// becomes healthy through its probe; then the same with the Nomad job's.
func TestBinariesStartWithTheDeploymentsEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts every binary")
	}
	bins := buildBinaries(t)
	e := testenv.Start(t)

	t.Run("compose", func(t *testing.T) {
		p := mustCompose(t)
		envs := map[string]map[string]string{}
		for _, b := range config.Binaries {
			env := composeEnv(t, p, b)
			if env["G_NOME_ENV"] != config.Production {
				t.Fatalf("%s runs in %q, not production", b, env["G_NOME_ENV"])
			}
			envs[b] = onLoopback(t, env, e, b)
		}
		startAll(t, bins, envs)

		// The same file without the admin password: auth, which creates
		// the first admin, refuses to start and names it.
		env := envs["auth"]
		delete(env, "ADMIN_PASSWORD")
		env["METRICS_ADDR"] = freeAddr(t)
		a := startBinary(t, filepath.Join(bins, "auth"), env)
		select {
		case <-a.done:
			if a.err == nil || !strings.Contains(a.output(), "ADMIN_PASSWORD") {
				t.Errorf("auth without ADMIN_PASSWORD: %v\n%s", a.err, a.output())
			}
		case <-time.After(30 * time.Second):
			t.Error("auth started in production without ADMIN_PASSWORD")
		}
	})

	t.Run("nomad", func(t *testing.T) {
		n := loadNomad(t, "gnome.nomad.hcl")
		u, err := url.Parse(e.BusURL)
		if err != nil {
			t.Fatal(err)
		}
		vars := nomadVars(e.MongoURI, func(user string) string { return e.Auth(user).Password })
		envs := map[string]map[string]string{}
		for _, b := range config.Binaries {
			env := taskEnv(t, n, b, u.Host, vars)
			if env["NATS_URL"] != e.BusURL {
				t.Fatalf("%s: NATS_URL %q rendered from the service \"nats\" at %s", b, env["NATS_URL"], u.Host)
			}
			envs[b] = onLoopback(t, env, e, b)
		}
		startAll(t, bins, envs)
	})
}
