package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// benchSlug is the experiment of the actor benchmarks; its actor is
// bench/actors/echo.
const benchSlug = "bench-actor"

var echoOnce struct {
	sync.Once
	wasm []byte
	err  error
}

// echoWasm is bench/actors/echo built for the sandbox, once, into the
// scratch directory, with the go command as `make examples` builds actors.
func (e *env) echoWasm() ([]byte, error) {
	echoOnce.Do(func() {
		out := filepath.Join(e.tmp, "echo.wasm")
		e.logf("building bench/actors/echo for wasip1")
		cmd := exec.Command(e.goCmd, "build", "-buildmode=c-shared", "-trimpath", "-o", out, "github.com/gnome-platform/gnome/bench/actors/echo")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			echoOnce.err = fmt.Errorf("build bench/actors/echo: %v\n%s", err, buf.String())
			return
		}
		echoOnce.wasm, echoOnce.err = os.ReadFile(out)
	})
	return echoOnce.wasm, echoOnce.err
}

// actorZip writes the benchmark experiment: a manifest declaring the echo
// actor with default limits, in status, a page and the module.
func actorZip(path, status string, wasm []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	m, _ := json.Marshal(map[string]any{
		"schema_version": "2.0", "slug": benchSlug, "name": "Bench actor", "status": status,
		"actor": map[string]any{"module": "actor.wasm"},
	})
	for _, file := range []struct {
		name string
		body []byte
	}{{"manifest.json", m}, {"index.html", []byte("<!doctype html><h1>bench actor</h1>")}, {"actor.wasm", wasm}} {
		w, err := zw.Create(file.name)
		if err != nil {
			return err
		}
		if _, err := w.Write(file.body); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// uploadActor uploads the benchmark experiment in status through base.
func (e *env) uploadActor(ctx context.Context, base, token, status string) error {
	wasm, err := e.echoWasm()
	if err != nil {
		return err
	}
	path := filepath.Join(e.tmp, "bench-actor-"+status+".zip")
	if err := actorZip(path, status, wasm); err != nil {
		return err
	}
	defer os.Remove(path)
	code, body, err := postZip(ctx, base, token, path)
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("upload %s: %d %v %s", benchSlug, code, err, body)
	}
	return nil
}

// pingURL is the echo actor's route through an edge.
func pingURL(base string) string {
	return expURL(base, benchSlug, "/experiments/"+benchSlug+"/api/ping")
}

// pollClient is a client for polls: no proxy, no keep-alive (each poll is
// a request of its own, as a browser retrying would send), a short timeout.
func pollClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: dialLocal}}
}

// pollOK sends GET url every `every`, one request after the other, until one
// answers 200, and returns when that answer arrived and how many polls it
// took. It gives up after limit (at most limit/every polls) or when ctx
// ends.
func pollOK(ctx context.Context, url string, every, limit time.Duration) (time.Time, int, error) {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	last := ""
	maxPolls := int(limit/every) + 1
	for i := 1; i <= maxPolls && time.Now().Before(deadline); i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			at := time.Now()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return at, i, nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return time.Time{}, i, ctx.Err()
		case <-time.After(every):
		}
	}
	return time.Time{}, maxPolls, fmt.Errorf("%s did not answer 200 within %s (last: %s)", url, limit, last)
}

// benchHost is the host of the in-process reference: the echo actor calls
// no host operation.
type benchHost struct{}

func (benchHost) Log(context.Context, int, string) {}

func (benchHost) Call(_ context.Context, op string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("the benchmark's host has no operation %s", op)
}

// startInProcess compiles wasm through engine and instantiates it as the
// actor-worker does (default limits, the same init envelope), and returns
// how long each step took.
func startInProcess(ctx context.Context, engine *actorhost.Engine, wasm []byte) (*actorhost.Module, *actorhost.Instance, time.Duration, time.Duration, error) {
	t := time.Now()
	mod, err := engine.Compile(ctx, wasm, actorhost.Limits{})
	compiled := time.Since(t)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	t = time.Now()
	inst, err := mod.Instantiate(ctx, benchSlug, benchHost{}, actorhost.Init{Slug: benchSlug, Version: 1, Config: map[string]any{}}, nil)
	instantiated := time.Since(t)
	if err != nil {
		mod.Close(ctx)
		return nil, nil, 0, 0, err
	}
	return mod, inst, compiled, instantiated, nil
}

// pingEnvelope is the request envelope the edge sends the actor for GET
// /experiments/bench-actor/api/ping from the load generator.
func pingEnvelope() []byte {
	b, _ := json.Marshal(actorapi.Request{
		Method: http.MethodGet, Path: "/ping",
		Headers: map[string][]string{
			"Host": {"127.0.0.1"}, "User-Agent": {"Go-http-client/1.1"}, "Accept-Encoding": {"gzip"},
		},
		Body:      []byte{},
		Caller:    actorapi.Caller{Roles: []string{}, Anonymous: true},
		RequestID: "0123456789abcdef0123456789abcdef",
	})
	return b
}

// directResult is a run of direct calls into an instance.
type directResult struct {
	calls    int
	rate     float64
	p50, p99 time.Duration
}

func (r directResult) String() string {
	return fmt.Sprintf("%s calls/s, p50 %s, p99 %s (%d calls, one goroutine)", fmtRate(r.rate), fmtDur(r.p50), fmtDur(r.p99), r.calls)
}

// directCalls calls inst.Handle with the ping envelope from one goroutine
// (an actor serves one call at a time) for warmup, then for du, at most
// du × maxRequestsPerSecond times.
func directCalls(ctx context.Context, inst *actorhost.Instance, warmup, du time.Duration) (directResult, error) {
	env := pingEnvelope()
	call := func() error {
		out, err := inst.Handle(ctx, env)
		if err != nil {
			return err
		}
		var res actorapi.Response
		if err := json.Unmarshal(out, &res); err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("the actor answered %s", out)
		}
		return nil
	}
	limit := int(du.Seconds()*maxRequestsPerSecond) + 1
	for end := time.Now().Add(warmup); time.Now().Before(end); {
		if err := call(); err != nil {
			return directResult{}, err
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	start := time.Now()
	for len(lat) < limit && ctx.Err() == nil {
		t := time.Now()
		if t.Sub(start) >= du {
			break
		}
		if err := call(); err != nil {
			return directResult{}, err
		}
		lat = append(lat, time.Since(t))
	}
	took := time.Since(start)
	if err := ctx.Err(); err != nil {
		return directResult{}, err
	}
	slices.Sort(lat)
	return directResult{calls: len(lat), rate: float64(len(lat)) / took.Seconds(), p50: quantile(lat, 0.5), p99: quantile(lat, 0.99)}, nil
}

// benchActorCall loads GET /experiments/bench-actor/api/ping (edge → NATS →
// actor-worker mailbox → WebAssembly → back) beside GET /health of the same
// gnome serve, alternating, and beside calls of the same module's handler
// made directly in this process through libs/actorhost: the ratio to those
// is the cost of the hop.
func benchActorCall(ctx context.Context, e *env) (*outcome, error) {
	wasm, err := e.echoWasm()
	if err != nil {
		return nil, err
	}
	g, err := e.startAccounts(ctx, "actorcall")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.20")
	if err != nil {
		return nil, err
	}
	if err := e.uploadActor(ctx, base, token, experiments.StatusActive); err != nil {
		return nil, err
	}
	ping := pingURL(base)
	if _, _, err := pollOK(ctx, ping, 10*time.Millisecond, 60*time.Second); err != nil {
		return nil, fmt.Errorf("the actor never served: %w\n%s", err, g.tail())
	}

	engine, err := actorhost.NewEngine("")
	if err != nil {
		return nil, err
	}
	defer engine.Close(context.WithoutCancel(ctx))
	mod, inst, _, _, err := startInProcess(ctx, engine, wasm)
	if err != nil {
		return nil, fmt.Errorf("in-process actor: %w", err)
	}
	defer mod.Close(context.WithoutCancel(ctx))

	pid := g.cmd.Process.Pid
	var health, actor, health1, actor1 []loadResult
	var direct []directResult
	out := &outcome{}
	for round := 1; round <= e.rounds; round++ {
		h, err := e.measureServer(ctx, base+"/health", pid)
		if err != nil {
			return nil, err
		}
		a, err := e.measureServer(ctx, ping, pid)
		if err != nil {
			return nil, err
		}
		h1, err := e.measureServerConns(ctx, base+"/health", pid, 1)
		if err != nil {
			return nil, err
		}
		a1, err := e.measureServerConns(ctx, ping, pid, 1)
		if err != nil {
			return nil, err
		}
		d, err := directCalls(ctx, inst, e.warmup, e.duration)
		if err != nil {
			return nil, fmt.Errorf("in-process actor: %w", err)
		}
		health, actor, health1, actor1, direct = append(health, h), append(actor, a), append(health1, h1), append(actor1, a1), append(direct, d)
		e.logf("round %d GET /health  @%d conns %s", round, e.conns, h)
		e.logf("round %d actor ping   @%d conns %s", round, e.conns, a)
		e.logf("round %d GET /health  @1 conn   %s", round, h1)
		e.logf("round %d actor ping   @1 conn   %s", round, a1)
		e.logf("round %d in-process Handle      %s", round, d)
		out.raw = append(out.raw,
			fmt.Sprintf("round %d, GET /health @%d conns: %s", round, e.conns, h),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @%d conns: %s", round, benchSlug, e.conns, a),
			fmt.Sprintf("round %d, GET /health @1 conn: %s", round, h1),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @1 conn: %s", round, benchSlug, a1),
			fmt.Sprintf("round %d, in-process Handle of the same module: %s", round, d))
	}
	h, a, h1, a1 := best(health), best(actor), best(health1), best(actor1)
	d := direct[0]
	for _, r := range direct[1:] {
		d.rate, d.p50, d.p99 = max(d.rate, r.rate), min(d.p50, r.p50), min(d.p99, r.p99)
	}
	out.raw = append(out.raw, fmt.Sprintf("at 1 connection, p50: the actor route %s = /health %s + the hop to the actor and back %s, of which the guest's handler takes %s in process",
		fmtDur(a1.p50), fmtDur(h1.p50), fmtDur(a1.p50-h1.p50), fmtDur(d.p50)))
	how := fmt.Sprintf("best of %d", e.rounds)
	const refHealth = "GET /health, same server"
	const refDirect = "in-process Handle, same module, 1 goroutine"
	out.rows = []row{
		{metric: fmt.Sprintf("actor req/s @%d conns (%s)", e.conns, how), unit: unitRate, got: a.rps, ref: h.rps, refName: refHealth, target: noTarget()},
		{metric: fmt.Sprintf("actor p50 @%d conns (%s)", e.conns, how), unit: unitDur, got: float64(a.p50), ref: float64(h.p50), refName: refHealth, target: noTarget()},
		{metric: fmt.Sprintf("actor p99 @%d conns (%s)", e.conns, how), unit: unitDur, got: float64(a.p99), ref: float64(h.p99), refName: refHealth, target: noTarget()},
		{metric: "actor server CPU per request", unit: unitDur, got: cpuPerReq(actor), ref: cpuPerReq(health), refName: refHealth, target: noTarget()},
		{metric: "actor success (worst run)", unit: unitPct, got: a.success, ref: h.success, refName: refHealth, target: bothFull()},
		{metric: fmt.Sprintf("actor req/s @%d conns vs calls/s (%s)", e.conns, how), unit: unitRate, got: a.rps, ref: d.rate, refName: refDirect, target: noTarget()},
		{metric: "actor p50 @1 conn (" + how + ")", unit: unitDur, got: float64(a1.p50), ref: float64(d.p50), refName: refDirect, target: noTarget()},
		{metric: "actor p99 @1 conn (" + how + ")", unit: unitDur, got: float64(a1.p99), ref: float64(d.p99), refName: refDirect, target: noTarget()},
		// The target for the call itself; /health at one connection
		// gives its scale: a whole HTTP request to the same process.
		{metric: "in-process Handle p50, echo actor (" + how + ")", unit: unitDur, got: float64(d.p50), ref: float64(h1.p50), refName: "GET /health p50 @1 conn, same server", target: below(30 * time.Microsecond)},
	}
	return out, nil
}
