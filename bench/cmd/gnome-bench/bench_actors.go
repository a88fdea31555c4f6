package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// benchSlug is the experiment of the actor benchmarks; its actor is
// bench/actors/echo.
const benchSlug = "bench-actor"

// benchSlug2 is the same actor with actor.instances 2 (actorcall).
const benchSlug2 = "bench-actor-2"

// echoWasm is bench/actors/echo built for the sandbox, once per run
// (benchActorWasm).
func (e *env) echoWasm() ([]byte, error) { return e.benchActorWasm("echo") }

// actorZip writes the benchmark experiment: a manifest declaring the echo
// actor with default limits, in status, a page and the module.
func actorZip(path, status string, wasm []byte) error {
	return actorZipAs(path, benchSlug, status, 1, wasm)
}

// actorZipAs writes an experiment slug like actorZip's, whose actor runs
// instances instances.
func actorZipAs(path, slug, status string, instances int, wasm []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	actor := map[string]any{"module": "actor.wasm"}
	if instances > 1 {
		actor["instances"] = instances
	}
	m, _ := json.Marshal(map[string]any{
		"schema_version": "2.0", "slug": slug, "name": "Bench actor", "status": status,
		"actor": actor,
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
	return e.uploadActorAs(ctx, base, token, benchSlug, status, 1)
}

// uploadActorAs uploads experiment slug, the echo actor with instances
// instances, in status through base.
func (e *env) uploadActorAs(ctx context.Context, base, token, slug, status string, instances int) error {
	wasm, err := e.echoWasm()
	if err != nil {
		return err
	}
	path := filepath.Join(e.tmp, slug+"-"+status+".zip")
	if err := actorZipAs(path, slug, status, instances, wasm); err != nil {
		return err
	}
	defer os.Remove(path)
	code, body, err := postZip(ctx, base, token, path)
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("upload %s: %d %v %s", slug, code, err, body)
	}
	return nil
}

// pingURL is the echo actor's route through an edge.
func pingURL(base string) string { return pingURLOf(base, benchSlug) }

// pingURLOf is the echo actor's route of experiment slug through an edge.
func pingURLOf(base, slug string) string {
	return expURL(base, slug, "/experiments/"+slug+"/api/ping")
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
	return timeCalls(ctx, warmup, du, func() error {
		out, err := inst.Handle(ctx, env)
		if err != nil {
			return err
		}
		var res actorapi.Response
		if err := json.Unmarshal(out, &res); err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("the actor answered %s", out)
		}
		return nil
	})
}

// pingResponse is the response envelope of the echo actor's /ping.
var pingResponse = []byte(`{"status":200,"headers":{"Content-Type":["application/json"]},"body":"eyJvayI6dHJ1ZX0="}`)

// natsRoundTrips times request-reply round trips through the NATS server
// of g, one at a time, between two connections of this process (as the
// edge's and the actor-worker's are): the ping envelope out, the ping's
// response envelope back. It is the NATS part of an actor call.
func natsRoundTrips(ctx context.Context, g *gnomeServer, warmup, du time.Duration) (directResult, error) {
	auth, err := adminAuth(g.dataDir)
	if err != nil {
		return directResult{}, err
	}
	var conns [2]*nats.Conn
	for i := range conns {
		if conns[i], err = nats.Connect("nats://"+g.natsAddr, nats.Name("gnome-bench"), nats.Timeout(5*time.Second), auth); err != nil {
			return directResult{}, err
		}
		defer conns[i].Close()
	}
	const subject = "gnome-bench.echo"
	if _, err := conns[1].QueueSubscribe(subject, "gnome-bench", func(m *nats.Msg) { _ = m.Respond(pingResponse) }); err != nil {
		return directResult{}, err
	}
	if err := conns[1].Flush(); err != nil {
		return directResult{}, err
	}
	env := pingEnvelope()
	return timeCalls(ctx, warmup, du, func() error {
		_, err := conns[0].Request(subject, env, 5*time.Second)
		return err
	})
}

// timeCalls runs call one at a time for warmup, then for du, at most du ×
// maxRequestsPerSecond times, and times each.
func timeCalls(ctx context.Context, warmup, du time.Duration, call func() error) (directResult, error) {
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
	// The same actor with two instances, beside it in the same server.
	if err := e.uploadActorAs(ctx, base, token, benchSlug2, experiments.StatusActive, 2); err != nil {
		return nil, err
	}
	ping2 := pingURLOf(base, benchSlug2)
	if _, _, err := pollOK(ctx, ping2, 10*time.Millisecond, 60*time.Second); err != nil {
		return nil, fmt.Errorf("the actor with two instances never served: %w\n%s", err, g.tail())
	}
	if err := e.bothInstancesServe(ctx, base); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, g.tail())
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
	var health, actor, health1, actor1, actor2 []loadResult
	var direct, roundTrips []directResult
	// inWorker is the mean time of the guest's handler in the worker
	// during the route's run at 1 connection, by round.
	var inWorker []time.Duration
	var page1 []loadResult
	page := expURL(base, benchSlug, "/experiments/"+benchSlug+"/")
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
		before, _ := callSeconds(ctx, base, benchSlug)
		a1, err := e.measureServerConns(ctx, ping, pid, 1)
		if err != nil {
			return nil, err
		}
		after, _ := callSeconds(ctx, base, benchSlug)
		if n := after.count - before.count; n > 0 {
			inWorker = append(inWorker, time.Duration((after.sum-before.sum)/n*float64(time.Second)))
		}
		a2, err := e.measureServer(ctx, ping2, pid)
		if err != nil {
			return nil, err
		}
		d, err := directCalls(ctx, inst, e.warmup, e.duration)
		if err != nil {
			return nil, fmt.Errorf("in-process actor: %w", err)
		}
		// The parts of the hop at one connection: the experiment's page
		// (HTTP and the edge's handling of an experiment's origin), and a
		// NATS request-reply of the same envelopes.
		p1, err := e.measureServerConns(ctx, page, pid, 1)
		if err != nil {
			return nil, err
		}
		n, err := natsRoundTrips(ctx, g, e.warmup, e.duration)
		if err != nil {
			return nil, fmt.Errorf("NATS round trips: %w", err)
		}
		page1, roundTrips = append(page1, p1), append(roundTrips, n)
		health, actor, health1, actor1, actor2, direct = append(health, h), append(actor, a), append(health1, h1), append(actor1, a1), append(actor2, a2), append(direct, d)
		e.logf("round %d GET /health  @%d conns %s", round, e.conns, h)
		e.logf("round %d actor ping   @%d conns %s", round, e.conns, a)
		e.logf("round %d GET /health  @1 conn   %s", round, h1)
		e.logf("round %d actor ping   @1 conn   %s", round, a1)
		e.logf("round %d actor ping, 2 instances @%d conns %s", round, e.conns, a2)
		e.logf("round %d in-process Handle      %s", round, d)
		e.logf("round %d page @1 conn %s; NATS round trips %s", round, p1, n)
		out.raw = append(out.raw,
			fmt.Sprintf("round %d, GET /health @%d conns: %s", round, e.conns, h),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @%d conns: %s", round, benchSlug, e.conns, a),
			fmt.Sprintf("round %d, GET /health @1 conn: %s", round, h1),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @1 conn: %s", round, benchSlug, a1),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping (instances 2) @%d conns: %s", round, benchSlug2, e.conns, a2),
			fmt.Sprintf("round %d, in-process Handle of the same module: %s", round, d),
			fmt.Sprintf("round %d, GET /experiments/%s/ (its page) @1 conn: %s", round, benchSlug, p1),
			fmt.Sprintf("round %d, NATS request-reply of the ping's envelopes through the same server: %s", round, n))
	}
	h, a, h1, a1, a2 := best(health), best(actor), best(health1), best(actor1), best(actor2)
	d := direct[0]
	for _, r := range direct[1:] {
		d.rate, d.p50, d.p99 = max(d.rate, r.rate), min(d.p50, r.p50), min(d.p99, r.p99)
	}
	p1 := best(page1)
	n := roundTrips[0]
	for _, r := range roundTrips[1:] {
		n.rate, n.p50, n.p99 = max(n.rate, r.rate), min(n.p50, r.p50), min(n.p99, r.p99)
	}
	out.raw = append(out.raw, fmt.Sprintf("at 1 connection, p50: the actor route %s = /health %s + the hop to the actor and back %s, of which the guest's handler takes %s in process",
		fmtDur(a1.p50), fmtDur(h1.p50), fmtDur(a1.p50-h1.p50), fmtDur(d.p50)),
		fmt.Sprintf("at 1 connection, p50: the actor route %s = the experiment's page %s (HTTP and the edge's experiment origin) + a NATS request-reply %s + the guest's handler %s + the rest %s (envelopes, the worker's loop, hand-offs between goroutines)",
			fmtDur(a1.p50), fmtDur(p1.p50), fmtDur(n.p50), fmtDur(d.p50), fmtDur(a1.p50-p1.p50-n.p50-d.p50)))
	if len(inWorker) > 0 {
		out.raw = append(out.raw, fmt.Sprintf("at 1 connection, the guest's handler in the worker (gnome_actor_call_seconds, mean of the run): %s by round, against %s in process (p50)",
			strings.Join(fmtDurs(inWorker), ", "), fmtDur(d.p50)))
	}
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
		// The targets for the hop and for several instances.
		{metric: "actor p50 @1 conn minus /health p50 (" + how + ")", unit: unitDur, got: float64(a1.p50 - h1.p50), ref: float64(h1.p50), refName: "GET /health p50 @1 conn, same server", target: atMostDur(200 * time.Microsecond)},
		{metric: fmt.Sprintf("actor req/s @%d conns, instances 2 (%s)", e.conns, how), unit: unitRate, got: a2.rps, ref: a.rps, refName: "same actor, instances 1, same server", target: atLeastRate(10000)},
		{metric: "actor success, instances 2 (worst run)", unit: unitPct, got: a2.success, ref: a.success, refName: "same actor, instances 1", target: bothFull()},
		// The target for the call itself; /health at one connection
		// gives its scale: a whole HTTP request to the same process.
		{metric: "in-process Handle p50, echo actor (" + how + ")", unit: unitDur, got: float64(d.p50), ref: float64(h1.p50), refName: "GET /health p50 @1 conn, same server", target: below(30 * time.Microsecond)},
	}
	return out, nil
}

// bothInstancesServe waits until calls to benchSlug2 are answered by two
// instances (bench/actors/echo's /instance tells them apart), so that the
// measurement does not start while the second one is still starting.
func (e *env) bothInstancesServe(ctx context.Context, base string) error {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	url := expURL(base, benchSlug2, "/experiments/"+benchSlug2+"/api/instance")
	seen := map[string]bool{}
	for deadline := time.Now().Add(60 * time.Second); len(seen) < 2; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: answers from %d instances in 60 s, want 2", benchSlug2, len(seen))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			seen[string(b)] = true
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// histogram is a histogram's sum and count as /metrics shows them.
type histogram struct{ sum, count float64 }

// callSeconds reads gnome_actor_call_seconds of slug's actor (the time its
// guest's handler takes in the worker) from base's /metrics.
func callSeconds(ctx context.Context, base, slug string) (histogram, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := pollClient(5 * time.Second).Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return histogram{}, err
	}
	var h histogram
	label := `{slug="` + slug + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		for name, to := range map[string]*float64{"gnome_actor_call_seconds_sum": &h.sum, "gnome_actor_call_seconds_count": &h.count} {
			if v, ok := strings.CutPrefix(line, name+label); ok {
				_, _ = fmt.Sscan(v, to)
			}
		}
	}
	if h.count == 0 {
		return h, fmt.Errorf("no gnome_actor_call_seconds for %s at %s/metrics", slug, base)
	}
	return h, nil
}

func fmtDurs(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmtDur(d)
	}
	return out
}
