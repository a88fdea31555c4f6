package actorhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/scoped"
)

var (
	engineOnce sync.Once
	engine     *Engine
)

// testEngine is one engine for the package, so that each guest is compiled
// once.
func testEngine(t testing.TB) *Engine {
	t.Helper()
	engineOnce.Do(func() {
		var err error
		if engine, err = NewEngine(""); err != nil {
			t.Fatal(err)
		}
	})
	return engine
}

func compile(t testing.TB, wasm []byte, l Limits) *Module {
	t.Helper()
	m, err := testEngine(t).Compile(context.Background(), wasm, l)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	// Only the runtime is closed: the compiled code stays in the engine's
	// cache, so that the next test compiling the same module finds it
	// (compiling a Go module is most of what these tests cost under the
	// race detector); Module.Close drops the code as well.
	t.Cleanup(func() { m.rt.Close(context.Background()) })
	return m
}

// output collects what guests print to stdout and stderr.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func instantiate(t testing.TB, m *Module, name string, h Host, init Init, out *output) *Instance {
	t.Helper()
	var log *slog.Logger
	if out != nil {
		log = slog.New(slog.NewTextHandler(out, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := m.Instantiate(ctx, name, h, init, log)
	if err != nil {
		t.Fatalf("instantiate %s: %v", name, err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

// caller is who sends a test request.
type caller struct {
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	Anonymous bool     `json:"anonymous"`
}

var (
	ada       = caller{Email: "ada@example.com", Roles: []string{"user"}}
	anonymous = caller{Roles: []string{}, Anonymous: true}
	requests  atomic.Int64
)

// response is a decoded response envelope.
type response struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body %q: %v", r.Body, err)
	}
}

// errorCode is the code of a response in the platform's error shape.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct {
			Code, Message, RequestID string
		} `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Message == "" {
		t.Errorf("error response without a message: %s", r.Body)
	}
	return e.Error.Code
}

// envelope is a request envelope for method and target ("/path?query"),
// checked against actor-request.json.
func envelope(t testing.TB, method, target, body string, c caller) []byte {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	headers := map[string][]string{"Accept": {"application/json"}, "User-Agent": {"actorhost-test"}}
	if body != "" {
		headers["Content-Type"] = []string{"application/json"}
	}
	env := mustJSON(t, map[string]any{
		"method": method, "path": path, "query": query, "headers": headers,
		"body": []byte(body), "caller": c, "request_id": fmt.Sprintf("test-%d", requests.Add(1)),
	})
	valid(t, "actor-request", env)
	return env
}

// do sends one request and decodes the response, checked against
// actor-response.json.
func do(t testing.TB, inst *Instance, method, target, body string, c caller) (response, error) {
	t.Helper()
	env := envelope(t, method, target, body, c)
	out, err := inst.Handle(context.Background(), env)
	if err != nil {
		return response{}, err
	}
	valid(t, "actor-response", out)
	var r response
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("response envelope %q: %v", out, err)
	}
	return r, nil
}

func mustDo(t testing.TB, inst *Instance, method, target, body string, c caller, status int) response {
	t.Helper()
	r, err := do(t, inst, method, target, body, c)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if r.Status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, target, r.Status, status, r.Body)
	}
	return r
}

func limitsOf(m *bundle.Manifest) Limits {
	return Limits{MemoryMB: m.Actor.MemoryMB, Timeout: time.Duration(m.Actor.TimeoutMS) * time.Millisecond}
}

// startExample runs an example's actor with a host on db for slug and
// dataScope.
func startExample(t *testing.T, db *mongo.Database, name, slug string, dataScope []string) (*Instance, *testHost) {
	t.Helper()
	m, wasm := example(t, name)
	h := newTestHost(t, db, slug, dataScope, m.Actor.Config)
	inst := instantiate(t, compile(t, wasm, limitsOf(m)), slug, h, Init{Slug: slug, Version: 1, Config: m.Actor.Config}, nil)
	return inst, h
}

// The example experiments, packed as make examples packs them, run through
// the ABI against the real scoped data library on the embedded store.
func TestExamplesRoundTrip(t *testing.T) {
	t.Parallel()
	db := database(t)
	m, _ := example(t, "clicks")
	clicks, h := startExample(t, db, "clicks", m.Slug, m.DataScope)

	for _, b := range []string{"red", "red", "red"} {
		r := mustDo(t, clicks, "POST", "/click", `{"button":"`+b+`"}`, ada, 201)
		if r.Headers["Content-Type"][0] != "application/json" {
			t.Errorf("content type %v", r.Headers["Content-Type"])
		}
	}
	mustDo(t, clicks, "POST", "/click", `{"button":"blue"}`, anonymous, 201)

	var counts struct {
		Counts    map[string]int64 `json:"counts"`
		Total     int64            `json:"total"`
		LastClick string           `json:"last_click"`
	}
	mustDo(t, clicks, "GET", "/counts", "", ada, 200).json(t, &counts)
	if counts.Total != 4 || counts.Counts["red"] != 3 || counts.Counts["blue"] != 1 || counts.Counts["green"] != 0 {
		t.Errorf("counts %+v", counts)
	}
	if _, err := time.Parse(time.RFC3339Nano, counts.LastClick); err != nil {
		t.Errorf("last click %q (from the key-value store): %v", counts.LastClick, err)
	}

	var recent struct {
		Clicks []struct {
			Button string          `json:"button"`
			By     string          `json:"by"`
			At     json.RawMessage `json:"at"`
		} `json:"clicks"`
	}
	mustDo(t, clicks, "GET", "/recent?n=2", "", ada, 200).json(t, &recent)
	if len(recent.Clicks) != 2 || recent.Clicks[0].Button != "blue" || recent.Clicks[0].By != "anonymous" || recent.Clicks[1].By != ada.Email {
		t.Errorf("recent %+v", recent)
	}
	// Stored as a date (the SDK decodes it from {"$date": ...}), answered
	// to the page as a plain RFC 3339 string.
	var at string
	if err := json.Unmarshal(recent.Clicks[0].At, &at); err != nil {
		t.Errorf("a click's time reaches the page as %s, not an RFC 3339 string", recent.Clicks[0].At)
	} else if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
		t.Errorf("a click's time %q: %v", at, err)
	}
	stored, err := db.Collection(scoped.CollectionName(m.Slug, "clicks")).CountDocuments(context.Background(), bson.M{"at": bson.M{"$type": "date"}})
	if err != nil || stored != 4 {
		t.Errorf("%d clicks stored with a date (%v), want 4", stored, err)
	}

	// The SDK's errors and routing.
	r := mustDo(t, clicks, "POST", "/click", `{"button":"purple"}`, ada, 422)
	if r.errorCode(t) != "validation_failed" {
		t.Errorf("unknown button: %s", r.Body)
	}
	if !bytes.Contains(r.Body, []byte(`"request_id":"test-`)) {
		t.Errorf("the error body lacks the request ID: %s", r.Body)
	}
	mustDo(t, clicks, "POST", "/click", `{"button":`, ada, 400)
	if c := mustDo(t, clicks, "GET", "/missing", "", ada, 404).errorCode(t); c != "not_found" {
		t.Errorf("no route: %s", c)
	}
	r = mustDo(t, clicks, "DELETE", "/counts", "", ada, 405)
	if r.errorCode(t) != "method_not_allowed" || r.Headers["Allow"][0] != "GET" {
		t.Errorf("wrong method: %v %s", r.Headers, r.Body)
	}
	if l, ok := h.logged("clicks started"); !ok || l.level != 1 {
		t.Errorf("the actor's start was not logged at info: %+v %v", l, ok)
	}

	// What the store holds: the clicks, in x.{slug}.{name}, with experiment_id.
	ctx := context.Background()
	if n, err := db.Collection(scoped.CollectionName("clicks", "clicks")).CountDocuments(ctx, bson.D{{Key: "experiment_id", Value: "clicks"}}); err != nil || n != 4 {
		t.Errorf("clicks_clicks holds %d clicks of clicks (%v), want 4", n, err)
	}

	// The report reads them through its data scope and writes only its own.
	mr, _ := example(t, "reader")
	report, _ := startExample(t, db, "reader", mr.Slug, mr.DataScope)
	var summary struct {
		Total    int64 `json:"total"`
		ByButton []struct {
			ID string `json:"_id"`
			N  int64  `json:"n"`
		} `json:"by_button"`
		Top []struct {
			ID string `json:"_id"`
			N  int64  `json:"n"`
		} `json:"top_clicker"`
		Latest struct {
			Button string `json:"button"`
			At     string `json:"at"`
		} `json:"latest"`
		Views int64 `json:"views"`
	}
	mustDo(t, report, "GET", "/summary", "", ada, 200).json(t, &summary)
	mustDo(t, report, "GET", "/summary", "", ada, 200).json(t, &summary)
	if summary.Total != 4 || len(summary.ByButton) != 2 || summary.ByButton[0].ID != "red" || summary.ByButton[0].N != 3 ||
		len(summary.Top) != 2 || summary.Top[0].ID != ada.Email || summary.Latest.Button != "blue" || summary.Views != 2 {
		t.Errorf("summary %+v", summary)
	}
	if _, err := time.Parse(time.RFC3339Nano, summary.Latest.At); err != nil {
		t.Errorf("the latest click's time is not RFC 3339 text: %q", summary.Latest.At)
	}
	if n, _ := db.Collection(scoped.CollectionName(mr.Slug, "views")).CountDocuments(ctx, bson.D{{Key: "experiment_id", Value: mr.Slug}}); n != 2 {
		t.Errorf("%s_views holds %d views, want 2", mr.Slug, n)
	}
	if n, _ := db.Collection(scoped.CollectionName("clicks", "clicks")).CountDocuments(ctx, bson.D{}); n != 4 {
		t.Errorf("the report changed the clicks: %d", n)
	}

	// Without clicks in its data scope, the same actor is refused.
	outside, _ := startExample(t, db, "reader", "click-report-2", []string{"self"})
	if c := mustDo(t, outside, "GET", "/summary", "", ada, 403).errorCode(t); c != "scope_forbidden" {
		t.Errorf("reading outside the data scope: %s", c)
	}
	if outside.Broken() != nil {
		t.Errorf("a refused host call broke the instance: %v", outside.Broken())
	}
}

const hostileSlug = "hostile"

// Host results larger than the guest's buffer come through take, whole.
func TestLargeHostResultsComeThroughTake(t *testing.T) {
	t.Parallel()
	db := database(t)
	wasm := testdataGuest(t, "hostile")
	h := newTestHost(t, db, hostileSlug, nil, nil)
	inst := instantiate(t, compile(t, wasm, Limits{Timeout: 20 * time.Second}), "large", h, Init{Slug: hostileSlug, Version: 1}, nil)

	const n, size = 40, 4000
	var got struct {
		Count  int    `json:"count"`
		SHA256 string `json:"sha256"`
	}
	mustDo(t, inst, "GET", fmt.Sprintf("/bulk?n=%d&size=%d", n, size), "", ada, 200).json(t, &got)
	sum := sha256.New()
	for i := range n {
		sum.Write(bytes.Repeat([]byte{byte('a' + i%26)}, size))
	}
	if got.Count != n || got.SHA256 != hex.EncodeToString(sum.Sum(nil)) {
		t.Errorf("bulk read back %+v", got)
	}
	if h.largest <= 64<<10 {
		t.Errorf("the largest result was %d bytes: not over the SDK's buffer", h.largest)
	}

	var kv struct {
		Equal     bool   `json:"equal"`
		Revision  uint64 `json:"revision"`
		OverLimit string `json:"over_limit"`
	}
	mustDo(t, inst, "GET", "/kv-big", "", ada, 200).json(t, &kv)
	if !kv.Equal || kv.Revision == 0 || kv.OverLimit != "payload_too_large" {
		t.Errorf("kv round trip of 64 KiB: %+v", kv)
	}

	// Over the host's result limit: a clear error for the guest, nothing
	// broken.
	small := instantiate(t, compile(t, wasm, Limits{Timeout: 20 * time.Second, MaxHostResult: 100 << 10}), "small", h, Init{Slug: hostileSlug, Version: 1}, nil)
	if c := mustDo(t, small, "GET", fmt.Sprintf("/bulk?n=%d&size=%d", n, size), "", ada, 413).errorCode(t); c != "scope_limit" {
		t.Errorf("a result over the limit: %s", c)
	}
	mustDo(t, small, "GET", "/ok", "", ada, 200)
}

// bystander keeps another experiment's actor busy answering while a
// hostile one misbehaves, and reports how it fared.
type bystander struct {
	inst     *Instance
	stop     chan struct{}
	done     chan struct{}
	answered atomic.Int64
	mu       sync.Mutex
	failures []string
	slowest  time.Duration
}

func startBystander(t *testing.T, inst *Instance) *bystander {
	b := &bystander{inst: inst, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			select {
			case <-b.stop:
				return
			default:
			}
			start := time.Now()
			out, err := inst.Handle(context.Background(), envelope(t, "GET", "/counts", "", ada))
			d := time.Since(start)
			b.mu.Lock()
			b.slowest = max(b.slowest, d)
			switch {
			case err != nil:
				b.failures = append(b.failures, err.Error())
			case !bytes.Contains(out, []byte(`"status":200`)):
				b.failures = append(b.failures, string(out))
			default:
				b.answered.Add(1)
			}
			b.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return b
}

// check waits for the bystander to answer at least once more since since,
// stops it, and fails t if it failed or stalled.
func (b *bystander) check(t *testing.T, since int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.answered.Load() <= since && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.answered.Load() <= since {
		t.Errorf("the other experiment's actor answered nothing meanwhile")
	}
	if len(b.failures) > 0 {
		t.Errorf("the other experiment's actor failed: %v", b.failures)
	}
	if b.slowest > 2*time.Second {
		t.Errorf("the other experiment's actor took %v to answer", b.slowest)
	}
}

// Each hostile actor ends with a clear error to the caller or a refusal in
// its own response, its instance replaced when it broke, and another
// experiment's actor answering throughout.
func TestHostileActors(t *testing.T) {
	t.Parallel()
	db := database(t)
	m, _ := example(t, "clicks")
	other, _ := startExample(t, db, "clicks", m.Slug, m.DataScope)
	wasm := testdataGuest(t, "hostile")

	// A real listener on the host, which the guest tries to reach.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := listener.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()

	// Only the cases that must reach the time limit run under a short one;
	// the rest run under a limit they never come near, so that what they get
	// does not depend on how fast the machine is.
	short := Limits{MemoryMB: 32, Timeout: 300 * time.Millisecond}
	flood := Limits{MemoryMB: 32, Timeout: 2 * time.Second}
	roomy := Limits{MemoryMB: 32, Timeout: 30 * time.Second}
	for _, tc := range []struct {
		name   string
		target string
		limits Limits
		// breaks is the error that breaks the instance; nil when the actor
		// answers.
		breaks error
		check  func(t *testing.T, r response, h *testHost, out *output, took time.Duration)
	}{
		{name: "infinite loop", target: "/loop", limits: short, breaks: ErrTimeout,
			check: func(t *testing.T, _ response, _ *testHost, _ *output, took time.Duration) {
				// Stopped by its limit: not before it, and not by the
				// platform's longest limit either.
				if took < short.Timeout || took > MaxTimeout {
					t.Errorf("stopped after %v, limit %v", took, short.Timeout)
				}
			}},
		{name: "memory hog", target: "/hog", limits: roomy, breaks: ErrTrap,
			check: func(t *testing.T, _ response, _ *testHost, out *output, _ time.Duration) {
				if !strings.Contains(out.String(), "out of memory") {
					t.Errorf("the guest's output does not say why: %.500s", out.String())
				}
			}},
		{name: "huge response", target: "/huge?mb=2", limits: roomy, breaks: ErrResponseTooLarge},
		{name: "panic", target: "/panic", limits: roomy, breaks: ErrTrap,
			check: func(t *testing.T, _ response, _ *testHost, out *output, _ time.Duration) {
				if !strings.Contains(out.String(), "hostile: boom") {
					t.Errorf("the panic is not in the log: %.500s", out.String())
				}
			}},
		{name: "exit", target: "/exit", limits: roomy, breaks: ErrExited},
		{name: "flood of host calls", target: "/flood", limits: flood, breaks: ErrTimeout,
			check: func(t *testing.T, _ response, h *testHost, _ *output, _ time.Duration) {
				if h.calls.Load() < 100 {
					t.Errorf("only %d host calls", h.calls.Load())
				}
			}},
		{name: "open files", target: "/file", limits: roomy,
			check: func(t *testing.T, r response, _ *testHost, _ *output, _ time.Duration) {
				var attempts map[string]string
				r.json(t, &attempts)
				for k, v := range attempts {
					switch k {
					case "environment":
						if v != "0" {
							t.Errorf("the guest sees %s environment variables", v)
						}
					case "arguments":
						if v != "0" {
							t.Errorf("the guest sees %s arguments", v)
						}
					default:
						if v == "" {
							t.Errorf("%s worked", k)
						}
					}
				}
				if len(attempts) < 7 {
					t.Errorf("attempts %v", attempts)
				}
			}},
		{name: "sockets", target: "/socket?addr=" + listener.Addr().String(), limits: roomy,
			check: func(t *testing.T, r response, _ *testHost, _ *output, _ time.Duration) {
				var attempts map[string]string
				r.json(t, &attempts)
				for k, v := range attempts {
					if v == "" {
						t.Errorf("%s worked", k)
					}
				}
				if len(attempts) < 12 {
					t.Errorf("attempts %v", attempts)
				}
				if n := accepted.Load(); n > 0 {
					t.Errorf("the host's listener accepted %d connections", n)
				}
			}},
		{name: "read another experiment", target: "/data?case=foreign-read", limits: roomy, check: wantError(403, "scope_forbidden")},
		{name: "write another experiment", target: "/data?case=foreign-write", limits: roomy, check: wantError(403, "scope_forbidden")},
		{name: "claim another experiment's id", target: "/data?case=claim-other", limits: roomy, check: wantError(403, "scope_forbidden")},
		{name: "$lookup stage", target: "/data?case=lookup", limits: roomy, check: wantError(400, "scope_forbidden_stage")},
		{name: "$unionWith inside $expr", target: "/data?case=nested-union", limits: roomy, check: wantError(400, "scope_forbidden_operator")},
		{name: "$where", target: "/data?case=where", limits: roomy, check: wantError(400, "scope_forbidden_operator")},
		{name: "collection path", target: "/data?case=collection-path", limits: roomy, check: wantError(422, "scope_invalid_collection")},
		{name: "full collection name", target: "/data?case=full-name", limits: roomy, check: wantError(422, "scope_invalid_collection")},
		{name: "unknown operation", target: "/data?case=unknown-op", limits: roomy, check: wantError(400, "bad_request")},
		{name: "sleep within the limit", target: "/sleep?ms=50", limits: roomy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t, db, hostileSlug, []string{"self"}, nil)
			mod := compile(t, wasm, tc.limits)
			name := "hostile-" + strings.ReplaceAll(tc.name, " ", "-")
			out := &output{}
			inst := instantiate(t, mod, name, h, Init{Slug: hostileSlug, Version: 1}, out)

			b := startBystander(t, other)
			since := b.answered.Load()
			start := time.Now()
			r, err := do(t, inst, "GET", tc.target, "", ada)
			took := time.Since(start)
			b.check(t, since)

			if tc.breaks == nil {
				if err != nil {
					t.Fatalf("%s: %v", tc.target, err)
				}
				if tc.check != nil {
					tc.check(t, r, h, out, took)
				}
				if inst.Broken() != nil {
					t.Errorf("the instance broke: %v", inst.Broken())
				}
				mustDo(t, inst, "GET", "/ok", "", ada, 200)
				return
			}
			if !errors.Is(err, tc.breaks) {
				t.Fatalf("%s: error %v, want %v", tc.target, err, tc.breaks)
			}
			if tc.check != nil {
				tc.check(t, r, h, out, took)
			}
			if !errors.Is(inst.Broken(), tc.breaks) {
				t.Errorf("Broken() = %v", inst.Broken())
			}
			if _, err := do(t, inst, "GET", "/ok", "", ada); !errors.Is(err, ErrBroken) {
				t.Errorf("a broken instance answered: %v", err)
			}
			// The worker replaces it: close it, start another under the
			// same name.
			if err := inst.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
			fresh := instantiate(t, mod, name, h, Init{Slug: hostileSlug, Version: 1}, nil)
			mustDo(t, fresh, "GET", "/ok", "", ada, 200)
		})
	}
}

func wantError(status int, code string) func(*testing.T, response, *testHost, *output, time.Duration) {
	return func(t *testing.T, r response, _ *testHost, _ *output, _ time.Duration) {
		t.Helper()
		if r.Status != status || r.errorCode(t) != code {
			t.Errorf("status %d, body %s; want %d %s", r.Status, r.Body, status, code)
		}
	}
}

// A flood of requests for one instance is served one at a time: the
// instance is never entered twice, and none is lost.
func TestOneCallAtATime(t *testing.T) {
	t.Parallel()
	wasm := testdataGuest(t, "hostile")
	inst := instantiate(t, compile(t, wasm, Limits{Timeout: 10 * time.Second}), "serial", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
	const workers, each = 16, 8
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				r, err := do(t, inst, "GET", "/state", "", ada)
				if err != nil || r.Status != 200 {
					t.Errorf("status %d, %v: %s", r.Status, err, r.Body)
				}
			}
		})
	}
	wg.Wait()
	var st struct {
		Served int `json:"served"`
	}
	mustDo(t, inst, "GET", "/state", "", ada, 200).json(t, &st)
	if st.Served != workers*each+1 {
		t.Errorf("served %d, want %d", st.Served, workers*each+1)
	}
}

// The ABI as docs/actors.md describes it, against a guest that speaks it
// without the SDK.
func TestRawABI(t *testing.T) {
	t.Parallel()
	wasm := testdataGuest(t, "rawabi")
	mod := compile(t, wasm, Limits{Timeout: 10 * time.Second})
	h := &testHost{t: t, config: map[string]any{"greeting": "hello"}}

	t.Run("init envelope", func(t *testing.T) {
		for _, tc := range []struct {
			config map[string]any
			want   string
		}{
			{nil, `{}`},
			{map[string]any{"greeting": "hello"}, `{"greeting":"hello"}`},
		} {
			inst := instantiate(t, mod, "raw-init", h, Init{Slug: "raw", Version: 2, Config: tc.config}, nil)
			r := mustDo(t, inst, "GET", "/init", "", ada, 200)
			valid(t, "actor-init", r.Body)
			var env struct {
				Slug    string          `json:"slug"`
				Version int             `json:"version"`
				Config  json.RawMessage `json:"config"`
			}
			r.json(t, &env)
			if env.Slug != "raw" || env.Version != 2 || string(env.Config) != tc.want {
				t.Errorf("init envelope %s, want config %s", r.Body, tc.want)
			}
			inst.Close(context.Background())
		}
	})

	t.Run("init refused", func(t *testing.T) {
		_, err := mod.Instantiate(context.Background(), "raw-refuse", h, Init{Slug: "raw", Version: 1, Config: map[string]any{"refuse": "the config lacks a key"}}, nil)
		if err == nil || !strings.Contains(err.Error(), "validation_failed: the config lacks a key") {
			t.Errorf("Instantiate: %v", err)
		}
	})

	inst := instantiate(t, mod, "raw", h, Init{Slug: "raw", Version: 1}, nil)

	t.Run("request envelope", func(t *testing.T) {
		env := envelope(t, "PUT", "/request?a=1&b=%20", `{"x":1}`, ada)
		out, err := inst.Handle(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		var r response
		if err := json.Unmarshal(out, &r); err != nil || !bytes.Equal(r.Body, env) {
			t.Errorf("the guest received %s, want %s (%v)", r.Body, env, err)
		}
	})

	t.Run("take", func(t *testing.T) {
		var got struct {
			CallSmall    int64  `json:"call_small"`
			TakeShort    int64  `json:"take_short"`
			TakeExact    int64  `json:"take_exact"`
			Taken        string `json:"taken"`
			TakeAgain    int64  `json:"take_again"`
			CallSmall2   int64  `json:"call_small_2"`
			CallFits     int64  `json:"call_fits"`
			Fitted       string `json:"fitted"`
			TakeAfterFit int64  `json:"take_after_fit"`
		}
		mustDo(t, inst, "GET", "/take", "", ada, 200).json(t, &got)
		want := `{"ok":{"greeting":"hello"}}`
		if got.CallSmall != -int64(len(want)) || got.TakeShort != -1 || got.TakeExact != int64(len(want)) || got.Taken != want || got.TakeAgain != -1 {
			t.Errorf("call and take: %+v", got)
		}
		if got.CallSmall2 >= 0 || got.CallFits != int64(len(want)) || got.Fitted != want || got.TakeAfterFit != -1 {
			t.Errorf("a result left waiting is not dropped by the next call: %+v", got)
		}
	})

	t.Run("refused calls", func(t *testing.T) {
		var got map[string]string
		mustDo(t, inst, "GET", "/calls", "", ada, 200).json(t, &got)
		for name, code := range map[string]string{
			"unknown op": "bad_request", "long op": "bad_request", "large request": "bad_request",
			"op outside memory": "bad_request", "malformed request": "invalid_json",
		} {
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(got[name]), &env); err != nil || env.Error.Code != code || env.Error.Message == "" {
				t.Errorf("%s: %q, want %s", name, got[name], code)
			}
			valid(t, "actor-host-call#/$defs/errorEnvelope", []byte(got[name]))
		}
	})

	t.Run("log", func(t *testing.T) {
		mustDo(t, inst, "GET", "/log", "", ada, 200)
		l, ok := h.logged("xxxx")
		if !ok || l.level != 2 || len(l.msg) != MaxLogLine {
			t.Errorf("log line of level %d and %d bytes (%v)", l.level, len(l.msg), ok)
		}
	})

	for _, target := range []string{"/outside", "/zero"} {
		t.Run(target, func(t *testing.T) {
			bad := instantiate(t, mod, "raw-bad", h, Init{Slug: "raw", Version: 1}, nil)
			if _, err := do(t, bad, "GET", target, "", ada); !errors.Is(err, ErrBadResponse) {
				t.Errorf("error %v, want %v", err, ErrBadResponse)
			}
			if bad.Broken() == nil {
				t.Error("not broken")
			}
			bad.Close(context.Background())
		})
	}
	if inst.Broken() != nil {
		t.Errorf("broken: %v", inst.Broken())
	}
}

// wasmModule assembles a module of functions of type (i32) -> i32 exported
// under names, with a memory exported as "memory" when memory is set.
func wasmModule(memory bool, names ...string) []byte {
	section := func(id byte, body ...byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = append(m, section(1, 1, 0x60, 1, 0x7f, 1, 0x7f)...)
	funcs := []byte{byte(len(names))}
	for range names {
		funcs = append(funcs, 0)
	}
	m = append(m, section(3, funcs...)...)
	if memory {
		m = append(m, section(5, 1, 0, 1)...)
	}
	exports := []byte{byte(len(names))}
	if memory {
		exports[0]++
		exports = append(append(append(exports, 6), "memory"...), 2, 0)
	}
	for i, n := range names {
		exports = append(append(append(exports, byte(len(n))), n...), 0, byte(i))
	}
	m = append(m, section(7, exports...)...)
	code := []byte{byte(len(names))}
	for range names {
		code = append(code, 4, 0, 0x41, 0, 0x0b)
	}
	return append(m, section(10, code...)...)
}

func TestCompileChecksTheExports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testEngine(t)
	for _, tc := range []struct {
		name    string
		wasm    []byte
		missing string
	}{
		{"a Go reactor without them", testdataGuest(t, "noexports"), "gnome_alloc"},
		{"no memory", wasmModule(false, "gnome_alloc", "gnome_handle"), "memory"},
		{"no gnome_handle", wasmModule(true, "gnome_alloc"), "gnome_handle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Compile(ctx, tc.wasm, Limits{})
			if !errors.Is(err, ErrMissingExport) || !strings.Contains(err.Error(), tc.missing) {
				t.Errorf("Compile: %v, want %v naming %s", err, ErrMissingExport, tc.missing)
			}
		})
	}

	// The assembler's module with every export compiles.
	m, err := e.Compile(ctx, wasmModule(true, "gnome_alloc", "gnome_handle"), Limits{})
	if err != nil {
		t.Fatalf("a module with the exports: %v", err)
	}
	m.Close(ctx)

	if _, err := e.Compile(ctx, []byte("not wasm"), Limits{}); err == nil || errors.Is(err, ErrMissingExport) {
		t.Errorf("Compile of garbage: %v", err)
	}

	// An import the platform does not provide fails at load, naming it
	// (TestUnknownImportsFailAtLoad has the other kinds).
	if _, err := e.Compile(ctx, testdataGuest(t, "badimport"), Limits{}); !errors.Is(err, ErrUnknownImport) || !strings.Contains(err.Error(), "open_socket") {
		t.Errorf("Compile: %v", err)
	}
}

func TestLimitsNormalize(t *testing.T) {
	got := Limits{MemoryMB: 4096, Timeout: time.Hour}.Normalize()
	if got.MemoryMB != MaxMemoryMB || got.Timeout != MaxTimeout || got.MaxResponse != DefaultResponse || got.MaxHostResult != DefaultHostReply {
		t.Errorf("capped: %+v", got)
	}
	if got.StartTimeout != MaxTimeout {
		t.Errorf("capped start limit: %v", got.StartTimeout)
	}
	got = Limits{}.Normalize()
	if got.MemoryMB != DefaultMemoryMB || got.Timeout != DefaultTimeout || got.StartTimeout != DefaultStartTimeout {
		t.Errorf("defaults: %+v", got)
	}
	// A short call limit does not shorten the start; a long one lengthens it.
	if got := (Limits{Timeout: time.Millisecond}).Normalize(); got.Timeout != time.Millisecond || got.StartTimeout != DefaultStartTimeout {
		t.Errorf("1 ms calls: %+v", got)
	}
	if got := (Limits{Timeout: 30 * time.Second}).Normalize(); got.StartTimeout != 30*time.Second {
		t.Errorf("30 s calls: start limit %v", got.StartTimeout)
	}
}

// An actor whose calls may take 1 ms still starts: its runtime's start-up
// (Go's takes far longer than that) runs under the start limit.
func TestShortCallLimitStillStarts(t *testing.T) {
	t.Parallel()
	wasm := testdataGuest(t, "hostile")
	inst := instantiate(t, compile(t, wasm, Limits{Timeout: time.Millisecond}), "brief", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
	if _, err := do(t, inst, "GET", "/loop", "", ada); !errors.Is(err, ErrTimeout) {
		t.Errorf("a call past 1 ms: %v, want a timeout", err)
	}
}

// Closing an instance while a call runs in it (a worker stopping an actor
// mid-call) stops the call and waits for it: the instance's memory is
// released only once neither guest code nor a host function can touch it,
// so the process survives (a released mapping touched by the guest would
// bring down the whole worker).
func TestCloseDuringACall(t *testing.T) {
	t.Parallel()
	db := database(t)
	h := newTestHost(t, db, hostileSlug, []string{"self"}, nil)
	wasm := testdataGuest(t, "hostile")
	inst := instantiate(t, compile(t, wasm, Limits{Timeout: 30 * time.Second}), "closed-mid-call", h, Init{Slug: hostileSlug, Version: 1}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := inst.Handle(context.Background(), envelope(t, "GET", "/flood", "", ada))
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for h.calls.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatal("the flood never called the host")
		}
		time.Sleep(time.Millisecond)
	}
	if err := inst.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
	// Once Close has returned, the guest runs no more: not one more host
	// call. (Handle itself returns just after; its result is read below.)
	calls := h.calls.Load()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the call cut short by Close answered")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call cut short by Close never returned")
	}
	if after := h.calls.Load(); after != calls {
		t.Fatalf("the guest made %d host calls after Close returned", after-calls)
	}
	if _, err := inst.Handle(context.Background(), envelope(t, "GET", "/ok", "", ada)); !errors.Is(err, ErrBroken) {
		t.Errorf("a closed instance answered: %v", err)
	}
}
