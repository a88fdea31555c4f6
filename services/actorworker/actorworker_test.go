package actorworker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// A version with an actor that becomes active starts on a worker through a
// start job: it holds the lease, shows running, and answers calls one at a
// time with its memory kept between them.
func TestActorStartsAndServes(t *testing.T) {
	w := newWorld(t)
	wasm := probe(t)
	s := w.worker()
	w.deploy("alpha", map[string]any{"actor": map[string]any{"module": "actor.wasm", "config": map[string]any{"greeting": "hi"}}}, wasm)
	w.serving("alpha", 20*time.Second)

	if l := w.lease("alpha"); l == nil || l.Worker != s.d.InstanceID || l.Version != 1 {
		t.Errorf("lease = %+v, want held by %s for version 1", l, s.d.InstanceID)
	}
	st := w.state("alpha")
	if st == nil || st.State != actorapi.StateRunning || st.Worker != s.d.InstanceID || st.StartedAt == nil {
		t.Errorf("state = %+v, want running on %s", st, s.d.InstanceID)
	}
	init := w.call("alpha", "GET", "/init", "", nil).json(t)
	if init["slug"] != "alpha" || init["version"] != float64(1) || init["config"].(map[string]any)["greeting"] != "hi" {
		t.Errorf("init envelope = %v", init)
	}
	w.deploy("plain", nil, wasm)
	w.serving("plain", 20*time.Second)
	if cfg, ok := w.call("plain", "GET", "/init", "", nil).json(t)["config"].(map[string]any); !ok || len(cfg) != 0 {
		t.Errorf("init envelope without a config: config = %v, want {}", cfg)
	}
	for i := 1; i <= 3; i++ {
		if got := w.call("alpha", "POST", "/count", "", nil).json(t)["n"]; got != float64(i) {
			t.Fatalf("count %d = %v", i, got)
		}
	}
	echo := w.call("alpha", "GET", "/echo", "a=1&b=x%20y", []byte("hello")).json(t)
	if echo["path"] != "/echo" || echo["query"] != "a=1&b=x%20y" || echo["body"] != "hello" || echo["request_id"] != "req-/echo" {
		t.Errorf("echo = %v", echo)
	}

	// The metrics count actors by state, calls per experiment, compile and
	// instantiate times.
	families, err := s.d.Telemetry.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "gnome_actors":
				seen["running"] = seen["running"] || (m.GetLabel()[0].GetValue() == "running" && m.GetGauge().GetValue() >= 2)
			case "gnome_actor_call_seconds":
				seen["calls"] = seen["calls"] || (m.GetLabel()[0].GetValue() == "alpha" && m.GetHistogram().GetSampleCount() >= 5)
			case "gnome_actor_compile_seconds":
				seen["compile"] = m.GetHistogram().GetSampleCount() >= 2
			case "gnome_actor_instantiate_seconds":
				seen["instantiate"] = m.GetHistogram().GetSampleCount() >= 2
			}
		}
	}
	for _, what := range []string{"running", "calls", "compile", "instantiate"} {
		if !seen[what] {
			t.Errorf("metrics lack %s", what)
		}
	}
}

// A panic (a trap or exit of the instance), a timeout, a malformed answer
// or running out of memory fails the call (bad_gateway, timeout), discards
// the instance (its memory with it) and starts a new one after a back-off:
// the state goes restarting, then running.
//
// Only the endless loop runs against a short time limit; the other failures
// run under a limit they never come near, so that the code they get does
// not depend on how fast the machine is.
func TestBrokenInstanceIsReplaced(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("alpha", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 60000}}, probe(t))
	w.deploy("beta", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 1000}}, probe(t))
	w.serving("alpha", 20*time.Second)
	w.serving("beta", 20*time.Second)
	w.call("alpha", "POST", "/count", "", nil)
	seen := w.states("alpha")

	cases := []struct {
		slug, path string
		code       string
	}{
		{"alpha", "/panic", "bad_gateway"},
		{"beta", "/loop", "timeout"},
		{"alpha", "/malformed", "bad_gateway"},
		{"alpha", "/oom", "bad_gateway"},
	}
	restarts := map[string]int{}
	for _, c := range cases {
		r := w.call(c.slug, "GET", c.path, "", nil)
		if r.err == nil || string(r.err.Code) != c.code {
			t.Fatalf("%s: %v, want %s", c.path, r, c.code)
		}
		restarts[c.slug]++
		// The next call is served by a new instance: the counter starts again.
		if got := w.call(c.slug, "POST", "/count", "", nil).json(t)["n"]; got != float64(1) {
			t.Errorf("after %s: count = %v, want 1 from a new instance", c.path, got)
		}
		st := w.state(c.slug)
		if st.Restarts != restarts[c.slug] || st.LastError == "" || st.LastErrorAt == nil {
			t.Errorf("after %s: state %+v, want %d restarts and the last error", c.path, st, restarts[c.slug])
		}
	}
	eventually(t, 5*time.Second, "the state to settle on running", func() bool { return w.state("alpha").State == actorapi.StateRunning })
	got := seen()
	for i, want := range []string{"restarting", "running"} {
		if len(got) <= i || got[i] != want {
			t.Fatalf("states %v, want restarting then running", got)
		}
	}
}

// Failures in a row space the restarts out: the back-off doubles up to its
// bound, and calls meanwhile are refused with unavailable and Retry-After.
func TestRestartBackoffGrows(t *testing.T) {
	w := newWorld(t)
	w.tune.BackoffMin, w.tune.BackoffMax = 200*time.Millisecond, 1600*time.Millisecond
	w.worker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	var waits []time.Duration
	for range 5 {
		eventually(t, 5*time.Second, "a running instance", func() bool { return w.state("alpha").State == actorapi.StateRunning })
		if r := w.call("alpha", "GET", "/panic", "", nil); r.err == nil {
			t.Fatalf("panic answered %v", r)
		}
		st := w.state("alpha")
		waits = append(waits, st.RetryAt.Sub(*st.LastErrorAt).Round(100*time.Millisecond))
		// Without a successful call in between, the next failure doubles it.
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 1600 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("back-offs %v, want %v", waits, want)
		}
	}
	// A call while the instance waits to restart is refused, with when to retry.
	r := w.call("alpha", "GET", "/panic", "", nil)
	if r.err == nil {
		t.Fatalf("panic answered %v", r)
	}
	r = w.call("alpha", "GET", "/init", "", nil)
	if r.err == nil || r.err.Code != "unavailable" || r.retryAfter == "" {
		t.Errorf("call during the back-off: %v (Retry-After %q), want unavailable with Retry-After", r, r.retryAfter)
	}
	// A success resets the back-off.
	w.serving("alpha", 5*time.Second)
	w.call("alpha", "GET", "/panic", "", nil)
	if st := w.state("alpha"); st.RetryAt.Sub(*st.LastErrorAt).Round(100*time.Millisecond) != 200*time.Millisecond {
		t.Errorf("back-off after a success = %v, want the minimum again", st.RetryAt.Sub(*st.LastErrorAt))
	}
}

// More calls than the mailbox holds are refused at once with unavailable
// and Retry-After, while the actor keeps serving the others.
func TestFullMailboxRefusesWithRetryAfter(t *testing.T) {
	w := newWorld(t)
	w.tune.Mailbox = 4
	w.worker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	results := make(chan reply, 40)
	for range 40 {
		go func() { results <- w.call("alpha", "GET", "/sleep", "ms=50", nil) }()
	}
	served, refused := 0, 0
	for range 40 {
		r := <-results
		switch {
		case r.err == nil && r.status == 200:
			served++
		case r.err != nil && r.err.Code == "unavailable" && r.retryAfter == "1":
			refused++
		default:
			t.Errorf("unexpected reply %v (Retry-After %q)", r, r.retryAfter)
		}
	}
	if served == 0 || refused == 0 {
		t.Errorf("%d served, %d refused: want some of each", served, refused)
	}
	if got := w.call("alpha", "POST", "/count", "", nil).json(t)["n"]; got != float64(1) {
		t.Errorf("after the flood: count = %v, want 1 (the same instance serving on)", got)
	}
}

// The data host operations reach the experiment's own collections, reads
// reach what data_scope lists, and a write elsewhere is refused with a
// clear error the actor passes on.
func TestDataHostOperations(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("alpha", nil, probe(t))
	w.deploy("beta", map[string]any{"data_scope": []string{"self", "alpha"}}, probe(t))
	w.grant("beta", "alpha")
	w.serving("alpha", 20*time.Second)
	w.serving("beta", 20*time.Second)

	for i := 1; i <= 2; i++ {
		r := w.call("alpha", "POST", "/db/insert", "", []byte(`{"n": `+string(rune('0'+i))+`, "at": {"$date": "2025-01-02T03:04:05Z"}}`))
		if r.err != nil || r.status != 200 {
			t.Fatalf("insert: %v", r)
		}
		if ids := r.json(t)["inserted_ids"].([]any); len(ids) != 1 || ids[0].(map[string]any)["$oid"] == nil {
			t.Errorf("inserted ids = %v", ids)
		}
	}
	docs := w.call("alpha", "GET", "/db/find", "", nil).json(t)["documents"].([]any)
	if len(docs) != 2 || docs[0].(map[string]any)["n"] != float64(1) || docs[0].(map[string]any)["experiment_id"] != "alpha" {
		t.Fatalf("find = %v", docs)
	}
	if at := docs[0].(map[string]any)["at"].(map[string]any)["$date"]; at != "2025-01-02T03:04:05Z" {
		t.Errorf("date came back as %v", at)
	}
	// beta reads alpha's notes (data_scope) but has none of its own.
	if got := w.call("beta", "GET", "/db/from", "slug=alpha", nil).json(t)["documents"].([]any); len(got) != 2 {
		t.Errorf("beta reading alpha: %v", got)
	}
	if got := w.call("beta", "GET", "/db/find", "", nil).json(t)["documents"].([]any); len(got) != 0 {
		t.Errorf("beta's own notes: %v", got)
	}
	// Writes elsewhere, and reads outside data_scope, are refused.
	for _, c := range []struct{ slug, path, query string }{
		{"beta", "/db/other", "slug=alpha"},
		{"alpha", "/db/from", "slug=beta"},
	} {
		r := w.call(c.slug, "GET", c.path, c.query, []byte(`{"x": 1}`))
		body := r.json(t)
		e, _ := body["error"].(map[string]any)
		if r.status != 403 || e["code"] != "scope_forbidden" || e["message"] == "" {
			t.Errorf("%s %s?%s = %d %v, want 403 scope_forbidden", c.slug, c.path, c.query, r.status, body)
		}
	}
	if n := len(w.call("alpha", "GET", "/db/find", "", nil).json(t)["documents"].([]any)); n != 2 {
		t.Errorf("a refused write changed alpha's notes: %d", n)
	}
}

// The key-value store belongs to one experiment and outlives its
// instances; config is the manifest's.
func TestKVAndConfig(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("alpha", map[string]any{"actor": map[string]any{"module": "actor.wasm", "config": map[string]any{"colour": "red", "n": 2}}}, probe(t))
	w.deploy("beta", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	w.serving("beta", 20*time.Second)

	r := w.call("alpha", "POST", "/kv/put", "key=greeting.v1", []byte(`"aGVsbG8="`))
	if r.err != nil || r.status != 200 || r.json(t)["revision"].(float64) < 1 {
		t.Fatalf("put: %v", r)
	}
	w.call("alpha", "GET", "/panic", "", nil)
	got := w.call("alpha", "GET", "/kv/get", "key=greeting.v1", nil).json(t)
	if got["value"] != "aGVsbG8=" || got["revision"].(float64) < 1 {
		t.Errorf("after a restart: %v", got)
	}
	if got := w.call("beta", "GET", "/kv/get", "key=greeting.v1", nil).json(t); got["value"] != nil || got["revision"] != float64(0) {
		t.Errorf("beta sees alpha's key: %v", got)
	}
	for _, c := range []struct{ query, body, code string }{
		{"key=bad%20key", `"aGk="`, "validation_failed"},
		{"key=k", `"not base64!"`, "bad_request"},
		{"key=k", `"` + strings.Repeat("QUFB", 22000) + `"`, "payload_too_large"},
	} {
		r := w.call("alpha", "POST", "/kv/put", c.query, []byte(c.body))
		if e, _ := r.json(t)["error"].(map[string]any); e["code"] != c.code {
			t.Errorf("put %s: %v, want %s", c.query, r, c.code)
		}
	}
	cfg := w.call("alpha", "GET", "/config", "", nil).json(t)
	if cfg["colour"] != "red" || cfg["n"] != float64(2) {
		t.Errorf("config = %v", cfg)
	}
	if cfg := w.call("beta", "GET", "/config", "", nil).json(t); len(cfg) != 0 {
		t.Errorf("config without one = %v, want {}", cfg)
	}
	if r := w.call("alpha", "GET", "/log", "", nil); r.err != nil || r.status != 200 {
		t.Errorf("log: %v", r)
	}
}

// Archiving stops the actor and removes its state; activating starts it
// again; a new version replaces it in place; deleting stops it and removes
// its key-value store.
func TestActorFollowsTheExperiment(t *testing.T) {
	w := newWorld(t)
	s := w.worker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	w.call("alpha", "POST", "/kv/put", "key=k", []byte(`"aGk="`))

	w.setStatus("alpha", experiments.StatusArchived)
	eventually(t, 10*time.Second, "the archived experiment's actor to stop", func() bool {
		return w.call("alpha", "GET", "/init", "", nil).err != nil && w.state("alpha") == nil && w.lease("alpha") == nil
	})
	w.setStatus("alpha", experiments.StatusActive)
	w.serving("alpha", 20*time.Second)

	w.call("alpha", "POST", "/count", "", nil)
	w.deploy("alpha", map[string]any{"actor": map[string]any{"module": "actor.wasm", "config": map[string]any{"v": 2}}}, probe(t))
	eventually(t, 20*time.Second, "version 2 to run", func() bool {
		st := w.state("alpha")
		return st != nil && st.Version == 2 && st.State == actorapi.StateRunning
	})
	if got := w.call("alpha", "POST", "/count", "", nil).json(t)["n"]; got != float64(1) {
		t.Errorf("count after a new version = %v, want 1", got)
	}
	eventually(t, 5*time.Second, "the lease to name version 2", func() bool {
		l := w.lease("alpha")
		return l != nil && l.Worker == s.d.InstanceID && l.Version == 2
	})

	w.remove("alpha")
	eventually(t, 10*time.Second, "the deleted experiment's actor to stop", func() bool {
		return w.call("alpha", "GET", "/init", "", nil).err != nil && w.state("alpha") == nil && w.lease("alpha") == nil
	})
	kv, _ := w.d.JS.KeyValue(ctxT(t), "actor_kv")
	eventually(t, 10*time.Second, "its key-value store to go", func() bool {
		keys, err := kv.ListKeysFiltered(ctxT(t), "alpha.>")
		if err != nil {
			return true
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 0
	})
}

// A module that cannot load fails for good (no lease, no retries) until
// the experiment changes; one whose init refuses shows failed with its
// reason, keeps its lease and is retried.
func TestActorsThatCannotStart(t *testing.T) {
	w := newWorld(t)
	w.tune.Reconcile = 200 * time.Millisecond
	w.worker()
	w.deploy("broken", nil, []byte("\x00asm\x01\x00\x00\x00"))
	eventually(t, 20*time.Second, "the broken module to fail", func() bool {
		st := w.state("broken")
		return st != nil && st.State == actorapi.StateFailed
	})
	st := w.state("broken")
	if !strings.Contains(st.LastError, "gnome_alloc") || st.RetryAt != nil || w.lease("broken") != nil {
		t.Errorf("failed state %+v (lease %+v): want the missing export named, no retry, no lease", st, w.lease("broken"))
	}
	time.Sleep(time.Second) // several reconciliations
	if again := w.state("broken"); again.UpdatedAt != st.UpdatedAt {
		t.Errorf("a module that cannot load was tried again: %+v", again)
	}

	w.deploy("refuses", map[string]any{"actor": map[string]any{"module": "actor.wasm", "config": map[string]any{"refuse_init": "no database URL configured"}}}, probe(t))
	eventually(t, 20*time.Second, "the refusing actor to show failed", func() bool {
		st := w.state("refuses")
		return st != nil && st.State == actorapi.StateFailed && st.Restarts >= 2
	})
	if st := w.state("refuses"); !strings.Contains(st.LastError, "no database URL configured") || st.RetryAt == nil || w.lease("refuses") == nil {
		t.Errorf("refused state %+v: want the reason, a retry time and a lease", st)
	}
	r := w.call("refuses", "GET", "/init", "", nil)
	if r.err == nil || r.err.Code != "unavailable" || !strings.Contains(r.err.Message, "no database URL configured") {
		t.Errorf("call to an actor that cannot start: %v", r)
	}
	// A version that starts mends both.
	w.deploy("refuses", nil, probe(t))
	w.serving("refuses", 20*time.Second)
	w.deploy("broken", nil, probe(t))
	w.serving("broken", 20*time.Second)
}

// holder is the worker among ws holding slug's lease.
func (w *world) holder(slug string, ws ...*Service) (*Service, *Service) {
	w.t.Helper()
	l := w.lease(slug)
	if l == nil {
		w.t.Fatalf("no lease for %s", slug)
	}
	for i, s := range ws {
		if s.d.InstanceID == l.Worker {
			return s, ws[1-i]
		}
	}
	w.t.Fatalf("lease held by %s, none of the workers", l.Worker)
	return nil, nil
}

// A worker that stops hands its actors over: it releases their leases and
// another instance starts them at once; the key-value store goes with them.
func TestStoppingWorkerHandsOver(t *testing.T) {
	w := newWorld(t)
	a, b := w.worker(), w.worker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	w.call("alpha", "POST", "/kv/put", "key=k", []byte(`"aGk="`))
	from, to := w.holder("alpha", a, b)

	start := time.Now()
	ctx := ctxT(t)
	if err := from.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	w.serving("alpha", 10*time.Second)
	t.Logf("handed over in %v", time.Since(start).Round(time.Millisecond))
	if l := w.lease("alpha"); l == nil || l.Worker != to.d.InstanceID {
		t.Errorf("lease after hand-over: %+v, want %s", l, to.d.InstanceID)
	}
	if got := w.call("alpha", "GET", "/kv/get", "key=k", nil).json(t); got["value"] != "aGk=" {
		t.Errorf("kv after hand-over: %v", got)
	}
	eventually(t, 5*time.Second, "the state to show the new worker", func() bool {
		st := w.state("alpha")
		return st.State == actorapi.StateRunning && st.Worker == to.d.InstanceID
	})
}

// crashableWorker is a worker whose connection can be cut without a
// graceful stop, as when its process is killed.
func (w *world) crashableWorker() (*Service, func()) {
	w.t.Helper()
	d := w.env.Deps(w.t, w.env.Config(w.t, nil))
	s := New(d)
	s.tune = w.tune
	if err := s.Start(ctxT(w.t)); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s, d.NC.Close
}

// When the worker holding an actor dies, its lease expires and another
// worker starts the actor.
func TestCrashedWorkersActorsMove(t *testing.T) {
	w := newWorld(t)
	a, crashA := w.crashableWorker()
	b, crashB := w.crashableWorker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)
	from, to := w.holder("alpha", a, b)
	crash := crashA
	if from == b {
		crash = crashB
	}
	start := time.Now()
	crash()
	w.serving("alpha", 10*time.Second)
	t.Logf("serving again %v after the crash", time.Since(start).Round(time.Millisecond))
	if l := w.lease("alpha"); l == nil || l.Worker != to.d.InstanceID {
		t.Errorf("lease after the crash: %+v, want %s", l, to.d.InstanceID)
	}
}

// A call is one span on the worker, the child of the caller's, with a span
// of its own for each host operation.
func TestCallsAreTraced(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("alpha", nil, probe(t))
	w.serving("alpha", 20*time.Second)

	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	ctx, caller := otel.Tracer("test").Start(context.Background(), "caller")
	env, _ := json.Marshal(actorapi.Request{Method: "POST", Path: "/kv/put", Query: "key=k", Headers: map[string][]string{}, Body: []byte(`"aGk="`),
		Caller: actorapi.Caller{Roles: []string{}, Anonymous: true}, RequestID: "traced"})
	msg := nats.NewMsg(actorapi.Subject("alpha"))
	msg.Data = env
	bus.Inject(ctx, msg.Header, "traced")
	if _, err := w.d.NC.RequestMsg(msg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	caller.End()

	var call, host sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "actor call":
			call = s
		case "actor host kv.put":
			host = s
		}
	}
	if call == nil || host == nil {
		t.Fatalf("spans: %v", rec.Ended())
	}
	if call.Parent().SpanID() != caller.SpanContext().SpanID() || call.SpanKind() != trace.SpanKindServer {
		t.Errorf("call span's parent %v, want the caller's %v", call.Parent().SpanID(), caller.SpanContext().SpanID())
	}
	if host.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Errorf("host span's parent %v, want the call's %v", host.Parent().SpanID(), call.SpanContext().SpanID())
	}
}
