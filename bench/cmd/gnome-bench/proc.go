package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server started as a subprocess, its output going to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	err     error
}

// startProc starts bin with args and env (the whole environment), logging
// stdout and stderr to logPath. started is the instant just before exec.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to grace for the exit, then kills. It
// returns how long the process took to exit after SIGTERM.
func (p *proc) stop(grace time.Duration) (time.Duration, error) {
	select {
	case <-p.done:
		return 0, fmt.Errorf("%s had already exited: %v\n%s", p.name, p.err, p.tail())
	default:
	}
	t := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(t), nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return time.Since(t), fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, grace)
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}

// waitReady polls url every `every` until it answers 200 and returns the time
// from exec to that answer. It gives up after limit, when the process exits,
// or when ctx ends. The poll count is bounded by limit/every.
func (p *proc) waitReady(ctx context.Context, url string, every, limit time.Duration) (time.Duration, error) {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: dialLocal},
	}
	defer client.CloseIdleConnections()
	maxPolls := int(limit/every) + 1
	deadline := p.started.Add(limit)
	for i := 0; i < maxPolls && time.Now().Before(deadline); i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.done:
			return 0, fmt.Errorf("%s exited before %s answered 200: %v\n%s", p.name, url, p.err, p.tail())
		case <-time.After(every):
		}
	}
	return 0, fmt.Errorf("%s: %s did not answer 200 within %s\n%s", p.name, url, limit, p.tail())
}

// freePorts returns n distinct loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// gnomeVars are the settings gnome reads that the benchmark fixes or clears,
// so that the caller's environment cannot point it at a cluster or change
// its logging.
var gnomeVars = []string{
	"G_NOME_ENV", "HTTP_ADDR", "DATA_DIR", "NATS_URL", "EMBEDDED_NATS_ADDR", "NATS_REPLICAS",
	"MONGO_URI", "MONGO_DB", "EMBEDDED_STORE_ADDR", "LOG_LEVEL", "LOG_FORMAT",
	"SECRET_KEY", "FLASK_SECRET_KEY", "TRUSTED_PROXIES", "METRICS_ALLOWED_CIDRS",
	"NATS_USER", "NATS_PASSWORD", "NATS_CREDS", "NATS_NKEY_SEED",
}

// gnomeServer is a `gnome serve` on dataDir with fresh loopback ports.
type gnomeServer struct {
	*proc
	httpAddr string
	natsAddr string // the embedded NATS server's client address
	dataDir  string // its DATA_DIR, where the bus credentials are
}

// startGnome starts `gnome serve` with embedded NATS and store on fresh
// loopback ports and dataDir, at LOG_LEVEL=WARNING.
// extra are more NAME=value settings.
func (e *env) startGnome(dataDir, logName string, extra ...string) (*gnomeServer, error) {
	addrs, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	envv := cleanEnv(os.Environ())
	envv = append(envv,
		"G_NOME_ENV=development",
		"DATA_DIR="+dataDir,
		"HTTP_ADDR="+addrs[0],
		"EMBEDDED_NATS_ADDR="+addrs[1],
		"EMBEDDED_STORE_ADDR="+addrs[2],
		"LOG_LEVEL=WARNING",
	)
	envv = append(envv, extra...)
	p, err := startProc("gnome serve", e.gnomeBin, []string{"serve"}, envv, filepath.Join(e.tmp, logName))
	if err != nil {
		return nil, err
	}
	return &gnomeServer{proc: p, httpAddr: addrs[0], natsAddr: addrs[1], dataDir: dataDir}, nil
}

// cleanEnv is in without the settings the benchmark fixes or clears, and
// with the embedded store on SQLite unless the caller's environment names
// EMBEDDED_STORE: the figures stay comparable with earlier runs and on
// machines with or without PostgreSQL, and no start pays an initdb (the
// data benchmark measures both engines side by side).
func cleanEnv(in []string) []string {
	drop := map[string]bool{}
	for _, k := range gnomeVars {
		drop[k] = true
	}
	var out []string
	engine := false
	for _, kv := range in {
		k, v, _ := strings.Cut(kv, "=")
		if drop[k] || strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "B2_") {
			continue
		}
		if k == "EMBEDDED_STORE" && strings.TrimSpace(v) != "" {
			engine = true
		}
		out = append(out, kv)
	}
	if !engine {
		out = append(out, "EMBEDDED_STORE=sqlite")
	}
	return out
}

// startBare starts the bare Fiber reference server on a fresh loopback port.
func (e *env) startBare(logName string) (*proc, string, error) {
	bin, err := e.bareBinary()
	if err != nil {
		return nil, "", err
	}
	addrs, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("bare-fiber", bin, []string{"-addr", addrs[0]}, os.Environ(), filepath.Join(e.tmp, logName))
	if err != nil {
		return nil, "", err
	}
	return p, addrs[0], nil
}

var bareOnce struct {
	sync.Once
	path string
	err  error
}

// bareBinary is -bare, or bench/cmd/bare-fiber built once into the scratch
// directory with the go command, as `make build` builds gnome.
func (e *env) bareBinary() (string, error) {
	if e.bareBin != "" {
		return e.bareBin, nil
	}
	bareOnce.Do(func() {
		out := filepath.Join(e.tmp, "bare-fiber")
		e.logf("building bare-fiber")
		cmd := exec.Command(e.goCmd, "build", "-o", out, "github.com/gnome-platform/gnome/bench/cmd/bare-fiber")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			bareOnce.err = fmt.Errorf("build bare-fiber: %v\n%s", err, buf.String())
			return
		}
		bareOnce.path = out
	})
	return bareOnce.path, bareOnce.err
}

// timeRun runs bin with args to completion and returns exec to exit.
func timeRun(ctx context.Context, bin string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("%s %s: did not exit within 30s", bin, strings.Join(args, " "))
		}
		return 0, fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, buf.String())
	}
	return d, nil
}
