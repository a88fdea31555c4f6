// Package jobstest is the conformance suite of the job queue: what any
// implementation of enqueue-and-work must do, stated as tests. jobs_test.go
// runs it against the JetStream implementation; another implementation
// (in memory, another broker) passes the same suite before it is used.
//
// The contract, in short:
//   - a job is delivered until a handler returns nil, and then never again;
//   - a job ID is enqueued once: enqueueing it again is a reported no-op;
//   - a failing job is retried after the worker's back-off, MaxAttempts
//     deliveries in all, then OnFailed is called once and the job is gone;
//     a Permanent error or an unknown kind gives up at once; a panic is a
//     failure like any other;
//   - a running job is not given to another worker while its worker lives,
//     however long it runs past AckWait;
//   - Stop lets running jobs finish within its context; past it, their
//     contexts are cancelled and they are handed back for another worker
//     to take at once, without waiting for AckWait, or, on their last
//     attempt, given up through OnFailed: never lost unreported;
//   - workers sharing a durable name share the jobs, each job going to one;
//   - the handler's context continues the trace and request ID that were
//     current at Enqueue.
package jobstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Queue is the implementation under test. Each call of the suite's
// newQueue gives an empty queue of its own.
type Queue interface {
	// Enqueue publishes a job of kind with id as its de-duplication key.
	Enqueue(ctx context.Context, kind, id string, payload any) (duplicate bool, err error)
	// NewWorker creates (not starts) a worker of the durable o.Durable.
	NewWorker(ctx context.Context, o jobs.WorkerOptions, h jobs.Handler) (Worker, error)
}

// Worker takes jobs once started; Stop may be called more than once.
type Worker interface {
	Start()
	Stop(ctx context.Context) error
}

// Run runs the conformance suite. Its cases spend most of their time
// waiting for deliveries, so all of them run at once, whatever -parallel
// says; each gets a queue of its own.
func Run(t *testing.T, newQueue func(t *testing.T) Queue) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Queue)
	}{
		{"SucceededJobIsHandledOnceAndAcked", succeededJobIsHandledOnce},
		{"DuplicateIDIsHandledOnce", duplicateIDIsHandledOnce},
		{"FailingJobIsRetriedWithBackoffThenFailed", failingJobIsRetriedThenFailed},
		{"PermanentErrorFailsAtOnce", permanentErrorFailsAtOnce},
		{"PanicCountsAsFailure", panicCountsAsFailure},
		{"ProgressKeepsALongJobWithItsWorker", progressKeepsALongJob},
		{"StopWithGraceFinishesAndAcks", stopWithGraceFinishes},
		{"StopPastGraceHandsTheJobBack", stopPastGraceHandsBack},
		{"StopOnTheLastAttemptReportsTheJob", stopOnLastAttemptReports},
		{"WorkersOfOneDurableShareJobs", workersShareJobs},
		{"MuxRoutesByKind", muxRoutesByKind},
		{"KindsLimitAWorker", kindsLimitAWorker},
		{"HandlerContextCarriesTheEnqueueTrace", handlerContextCarriesTrace},
		{"EnqueueRefusesIncompleteJobs", enqueueRefusesIncompleteJobs},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newQueue(t)) })
		}()
	}
}

// Bounds of the suite's waits: asynchronous effects are polled for up to
// waitFor; absences are checked for settle after everything else happened.
const (
	waitFor = 10 * time.Second
	settle  = 1500 * time.Millisecond
	ackWait = time.Second
)

type delivery struct {
	worker      string
	id, kind    string
	attempt     int
	maxAttempts int
	data        []byte
	at          time.Time
}

type failure struct {
	id      string
	attempt int
	err     error
}

// recorder notes every delivery and every given-up job.
type recorder struct {
	mu         sync.Mutex
	deliveries []delivery
	failures   []failure
}

func (r *recorder) handler(worker string, fn jobs.Handler) jobs.Handler {
	return func(ctx context.Context, j *jobs.Job) error {
		r.mu.Lock()
		r.deliveries = append(r.deliveries, delivery{worker, j.ID, j.Kind, j.Attempt, j.MaxAttempts, append([]byte(nil), j.Data...), time.Now()})
		r.mu.Unlock()
		if fn == nil {
			return nil
		}
		return fn(ctx, j)
	}
}

func (r *recorder) onFailed(_ context.Context, j *jobs.Job, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, failure{j.ID, j.Attempt, err})
}

func (r *recorder) of(id string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.deliveries {
		if d.id == id {
			out = append(out, d)
		}
	}
	return out
}

// only is the single delivery of id.
func (r *recorder) only(t *testing.T, id string) delivery {
	t.Helper()
	ds := r.of(id)
	if len(ds) != 1 {
		t.Fatalf("job %s delivered %d times, want once (all deliveries: %+v)", id, len(ds), r.all())
	}
	return ds[0]
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries)
}

func (r *recorder) failed() []failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failures)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holds checks that cond stays true for d.
func holds(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s no longer holds", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !cond() {
		t.Fatalf("%s no longer holds", what)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logger writes to the test log until the test ends.
func logger(t *testing.T) *slog.Logger {
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	return telemetry.NewLogger(writerFunc(func(p []byte) (int, error) {
		if !done.Load() {
			t.Log(strings.TrimRight(string(p), "\n"))
		}
		return len(p), nil
	}), "WARNING", "text")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// start creates and starts a worker, stopped at cleanup unless stopped before.
func start(t *testing.T, q Queue, o jobs.WorkerOptions, h jobs.Handler) *stoppable {
	t.Helper()
	if o.Log == nil {
		o.Log = logger(t)
	}
	if o.AckWait == 0 {
		o.AckWait = ackWait
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{50 * time.Millisecond}
	}
	w, err := q.NewWorker(ctxFor(t, 10*time.Second), o, h)
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	w.Start()
	s := &stoppable{w: w}
	t.Cleanup(func() { _ = s.Stop(ctxFor(t, 10*time.Second)) })
	return s
}

type stoppable struct {
	w    Worker
	once sync.Once
	err  error
}

func (s *stoppable) Stop(ctx context.Context) error {
	s.once.Do(func() { s.err = s.w.Stop(ctx) })
	return s.err
}

func enqueue(t *testing.T, q Queue, kind, id string, payload any) bool {
	t.Helper()
	dup, err := q.Enqueue(ctxFor(t, 10*time.Second), kind, id, payload)
	if err != nil {
		t.Fatalf("Enqueue(%s, %s): %v", kind, id, err)
	}
	return dup
}

type payload struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

func succeededJobIsHandledOnce(t *testing.T, q Queue) {
	var r recorder
	var decoded atomic.Value
	start(t, q, jobs.WorkerOptions{Durable: "once", MaxAttempts: 4, OnFailed: r.onFailed}, r.handler("w", func(_ context.Context, j *jobs.Job) error {
		var p payload
		if err := j.Decode(&p); err != nil {
			return jobs.Permanent(err)
		}
		decoded.Store(p)
		return nil
	}))
	if enqueue(t, q, "build", "job-1", payload{N: 7, Name: "seven"}) {
		t.Fatal("a new job was reported duplicate")
	}
	eventually(t, "the job to be handled", func() bool { return r.count() == 1 })
	d := r.only(t, "job-1")
	if d.kind != "build" || d.attempt != 1 || d.maxAttempts != 4 {
		t.Errorf("delivery %+v, want kind build, attempt 1 of 4", d)
	}
	if p, _ := decoded.Load().(payload); p != (payload{N: 7, Name: "seven"}) {
		t.Errorf("decoded payload %+v", p)
	}
	holds(t, 2*ackWait+500*time.Millisecond, "a single delivery past AckWait", func() bool { return r.count() == 1 })
	if f := r.failed(); len(f) != 0 {
		t.Errorf("OnFailed called for a job that succeeded: %+v", f)
	}
}

func duplicateIDIsHandledOnce(t *testing.T, q Queue) {
	var r recorder
	if enqueue(t, q, "build", "same-id", payload{N: 1}) {
		t.Fatal("first enqueue reported duplicate")
	}
	if !enqueue(t, q, "build", "same-id", payload{N: 2}) {
		t.Fatal("second enqueue of the same ID was not reported duplicate")
	}
	start(t, q, jobs.WorkerOptions{Durable: "dedup"}, r.handler("w", nil))
	eventually(t, "the job to be handled", func() bool { return r.count() == 1 })
	if d := r.only(t, "same-id"); string(d.data) != `{"n":1,"name":""}` {
		t.Errorf("handled payload %s, want the first one's", d.data)
	}
	// The ID stays taken after the job is done.
	if !enqueue(t, q, "build", "same-id", payload{N: 3}) {
		t.Error("enqueueing a handled job's ID again was not reported duplicate")
	}
	holds(t, settle, "a single delivery", func() bool { return r.count() == 1 })
}

func failingJobIsRetriedThenFailed(t *testing.T, q Queue) {
	var r recorder
	backoff := []time.Duration{150 * time.Millisecond, 300 * time.Millisecond}
	start(t, q, jobs.WorkerOptions{Durable: "retry", MaxAttempts: 3, Backoff: backoff, OnFailed: r.onFailed},
		r.handler("w", func(_ context.Context, j *jobs.Job) error { return fmt.Errorf("boom on attempt %d", j.Attempt) }))
	enqueue(t, q, "build", "fails", nil)
	eventually(t, "the job to be given up", func() bool { return len(r.failed()) == 1 })
	holds(t, settle, "three deliveries and one failure", func() bool { return r.count() == 3 && len(r.failed()) == 1 })

	ds := r.of("fails")
	for i, d := range ds {
		if d.attempt != i+1 {
			t.Errorf("delivery %d has attempt %d", i+1, d.attempt)
		}
	}
	for i := 1; i < len(ds); i++ {
		if gap := ds[i].at.Sub(ds[i-1].at); gap < backoff[i-1] {
			t.Errorf("attempt %d came %v after attempt %d, before its back-off of %v", i+1, gap, i, backoff[i-1])
		}
	}
	f := r.failed()[0]
	if f.id != "fails" || f.attempt != 3 || f.err == nil || !strings.Contains(f.err.Error(), "boom on attempt 3") {
		t.Errorf("OnFailed got %+v, want the last attempt's error", f)
	}
}

func permanentErrorFailsAtOnce(t *testing.T, q Queue) {
	var r recorder
	cause := errors.New("the manifest is unreadable")
	start(t, q, jobs.WorkerOptions{Durable: "perm", MaxAttempts: 5, OnFailed: r.onFailed},
		r.handler("w", func(context.Context, *jobs.Job) error { return fmt.Errorf("load: %w", jobs.Permanent(cause)) }))
	enqueue(t, q, "build", "hopeless", nil)
	eventually(t, "the job to be given up", func() bool { return len(r.failed()) == 1 })
	holds(t, settle, "one delivery and one failure", func() bool { return r.count() == 1 && len(r.failed()) == 1 })
	f := r.failed()[0]
	if !jobs.IsPermanent(f.err) || !errors.Is(f.err, cause) || f.attempt != 1 {
		t.Errorf("OnFailed got %+v, want the permanent error on attempt 1", f)
	}
}

func panicCountsAsFailure(t *testing.T, q Queue) {
	var r recorder
	start(t, q, jobs.WorkerOptions{Durable: "panic", MaxAttempts: 2, OnFailed: r.onFailed},
		r.handler("w", func(_ context.Context, j *jobs.Job) error {
			if j.ID == "broken" || j.Attempt == 1 {
				panic("handler bug on " + j.ID)
			}
			return nil
		}))
	enqueue(t, q, "build", "flaky", nil)
	enqueue(t, q, "build", "broken", nil)
	eventually(t, "the broken job to be given up", func() bool { return len(r.failed()) == 1 })
	eventually(t, "the flaky job to be retried", func() bool { return len(r.of("flaky")) == 2 })
	holds(t, settle, "two deliveries each and one failure", func() bool {
		return len(r.of("flaky")) == 2 && len(r.of("broken")) == 2 && len(r.failed()) == 1
	})
	f := r.failed()[0]
	if f.id != "broken" || f.err == nil || !strings.Contains(f.err.Error(), "panic") || !strings.Contains(f.err.Error(), "handler bug on broken") {
		t.Errorf("OnFailed got %+v, want the broken job's panic", f)
	}
}

func progressKeepsALongJob(t *testing.T, q Queue) {
	var r recorder
	var progressErr atomic.Value
	long := func(ctx context.Context, j *jobs.Job) error {
		for i := range 6 {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			if i == 2 {
				if err := j.Progress(); err != nil {
					progressErr.Store(err)
				}
			}
		}
		return nil
	}
	o := jobs.WorkerOptions{Durable: "long", AckWait: ackWait, OnFailed: r.onFailed}
	start(t, q, o, r.handler("a", long))
	start(t, q, o, r.handler("b", long))
	enqueue(t, q, "build", "three-seconds", nil)
	eventually(t, "the job to start", func() bool { return r.count() == 1 })
	holds(t, 3*time.Second+500*time.Millisecond, "a single delivery of a job running three AckWaits", func() bool { return r.count() == 1 })
	if err, _ := progressErr.Load().(error); err != nil {
		t.Errorf("Progress: %v", err)
	}
	if f := r.failed(); len(f) != 0 {
		t.Errorf("the long job failed: %+v", f)
	}
}

func stopWithGraceFinishes(t *testing.T, q Queue) {
	var r recorder
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErrAtEnd atomic.Value
	w := start(t, q, jobs.WorkerOptions{Durable: "grace", AckWait: ackWait, OnFailed: r.onFailed},
		r.handler("a", func(ctx context.Context, _ *jobs.Job) error {
			close(started)
			<-release
			ctxErrAtEnd.Store(fmt.Sprint(ctx.Err()))
			return nil
		}))
	enqueue(t, q, "build", "graceful", nil)
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(ctxFor(t, 10*time.Second)) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a job was running inside its grace", err)
	default:
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Stop did not return after the job finished")
	}
	if got := ctxErrAtEnd.Load(); got != "<nil>" {
		t.Errorf("the job's context was cancelled inside the grace: %v", got)
	}
	// Acked: a fresh worker never sees it, even past AckWait.
	start(t, q, jobs.WorkerOptions{Durable: "grace", AckWait: ackWait}, r.handler("b", nil))
	holds(t, 2*ackWait+500*time.Millisecond, "a single delivery", func() bool { return r.count() == 1 })
}

func stopPastGraceHandsBack(t *testing.T, q Queue) {
	var r recorder
	started := make(chan struct{})
	var cancelled atomic.Bool
	// AckWait and back-off far beyond the test's waits: neither a lost
	// delivery nor an ordinary retry, only a hand-back explains a prompt
	// second delivery.
	const long = 5 * time.Minute
	o := jobs.WorkerOptions{Durable: "handback", AckWait: long, Backoff: []time.Duration{long}, Concurrency: 2, OnFailed: r.onFailed}
	a := start(t, q, o,
		r.handler("a", func(ctx context.Context, _ *jobs.Job) error {
			close(started)
			<-ctx.Done()
			cancelled.Store(true)
			return ctx.Err()
		}))
	enqueue(t, q, "build", "interrupted", nil)
	<-started
	start(t, q, o, r.handler("b", nil))

	if err := a.Stop(ctxFor(t, 200*time.Millisecond)); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !cancelled.Load() {
		t.Error("Stop returned before the running job's context was cancelled and it returned")
	}
	eventually(t, "the second worker to take the handed-back job", func() bool { return len(r.of("interrupted")) == 2 })
	ds := r.of("interrupted")
	if ds[0].worker != "a" || ds[1].worker != "b" || ds[1].attempt != 2 {
		t.Errorf("deliveries %+v, want a then b on attempt 2", ds)
	}
	holds(t, settle, "two deliveries and no failure", func() bool { return r.count() == 2 && len(r.failed()) == 0 })
}

// A job interrupted on its last attempt cannot be handed back: it is
// reported to OnFailed rather than silently lost.
func stopOnLastAttemptReports(t *testing.T, q Queue) {
	var r recorder
	started := make(chan struct{})
	o := jobs.WorkerOptions{Durable: "last", MaxAttempts: 1, AckWait: 5 * time.Minute, OnFailed: r.onFailed}
	a := start(t, q, o, r.handler("a", func(ctx context.Context, _ *jobs.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}))
	enqueue(t, q, "build", "final", nil)
	<-started
	if err := a.Stop(ctxFor(t, 200*time.Millisecond)); err != nil {
		t.Errorf("Stop: %v", err)
	}
	start(t, q, o, r.handler("b", nil))
	eventually(t, "the job to be reported", func() bool { return len(r.failed()) == 1 })
	holds(t, settle, "one delivery and one failure", func() bool { return r.count() == 1 && len(r.failed()) == 1 })
	if f := r.failed()[0]; f.id != "final" || f.err == nil {
		t.Errorf("OnFailed got %+v", f)
	}
}

func workersShareJobs(t *testing.T, q Queue) {
	var r recorder
	// The first two jobs wait for each other: with one job per worker at a
	// time, both workers must hold one.
	var running atomic.Int32
	met := make(chan struct{})
	meet := func(ctx context.Context, j *jobs.Job) error {
		if !strings.HasPrefix(j.ID, "pair-") {
			return nil
		}
		if running.Add(1) == 2 {
			close(met)
		}
		select {
		case <-met:
			return nil
		case <-time.After(waitFor):
			return jobs.Permanent(errors.New("the other worker never took a job"))
		}
	}
	o := jobs.WorkerOptions{Durable: "shared", Concurrency: 1, OnFailed: r.onFailed}
	start(t, q, o, r.handler("a", meet))
	start(t, q, o, r.handler("b", meet))
	enqueue(t, q, "build", "pair-1", nil)
	enqueue(t, q, "build", "pair-2", nil)
	eventually(t, "both paired jobs", func() bool { return len(r.of("pair-1")) == 1 && len(r.of("pair-2")) == 1 })
	if w1, w2 := r.only(t, "pair-1").worker, r.only(t, "pair-2").worker; w1 == w2 {
		t.Errorf("both paired jobs ran on worker %s", w1)
	}

	const n = 30
	for i := range n {
		enqueue(t, q, "build", fmt.Sprintf("job-%02d", i), i)
	}
	eventually(t, "every job", func() bool { return r.count() == n+2 })
	holds(t, settle, "each job once", func() bool { return r.count() == n+2 })
	for i := range n {
		if got := len(r.of(fmt.Sprintf("job-%02d", i))); got != 1 {
			t.Errorf("job-%02d handled %d times", i, got)
		}
	}
	if f := r.failed(); len(f) != 0 {
		t.Errorf("failures: %+v", f)
	}
}

func muxRoutesByKind(t *testing.T, q Queue) {
	var r recorder
	var mu sync.Mutex
	routed := map[string]string{}
	route := func(name string) jobs.Handler {
		return func(_ context.Context, j *jobs.Job) error {
			mu.Lock()
			defer mu.Unlock()
			routed[j.ID] = name
			return nil
		}
	}
	mux := jobs.Mux{"standalone": route("standalone"), "docker": route("docker")}
	if k := mux.Kinds(); len(k) != 2 || !slices.Contains(k, "standalone") || !slices.Contains(k, "docker") {
		t.Errorf("Kinds = %v", k)
	}
	start(t, q, jobs.WorkerOptions{Durable: "mux", MaxAttempts: 5, OnFailed: r.onFailed}, r.handler("w", mux.Handle))
	enqueue(t, q, "standalone", "s1", nil)
	enqueue(t, q, "docker", "d1", nil)
	enqueue(t, q, "teleport", "t1", nil)
	eventually(t, "the unknown kind to be given up", func() bool { return len(r.failed()) == 1 })
	eventually(t, "the known kinds to be routed", func() bool { mu.Lock(); defer mu.Unlock(); return len(routed) == 2 })
	mu.Lock()
	if routed["s1"] != "standalone" || routed["d1"] != "docker" {
		t.Errorf("routed %v", routed)
	}
	mu.Unlock()
	f := r.failed()[0]
	if f.id != "t1" || !jobs.IsPermanent(f.err) || !strings.Contains(f.err.Error(), "teleport") {
		t.Errorf("OnFailed got %+v, want t1 failed permanently naming its kind", f)
	}
	holds(t, settle, "one delivery each", func() bool { return r.count() == 3 })
}

func kindsLimitAWorker(t *testing.T, q Queue) {
	var r recorder
	start(t, q, jobs.WorkerOptions{Durable: "only-a", Kinds: []string{"a"}}, r.handler("a", nil))
	enqueue(t, q, "b", "b1", nil)
	enqueue(t, q, "a", "a1", nil)
	eventually(t, "the kind-a job", func() bool { return len(r.of("a1")) == 1 })
	holds(t, settle, "the kind-b job to wait", func() bool { return len(r.of("b1")) == 0 })
	start(t, q, jobs.WorkerOptions{Durable: "only-b", Kinds: []string{"b"}}, r.handler("b", nil))
	eventually(t, "the kind-b job on its worker", func() bool { return len(r.of("b1")) == 1 })
	if d := r.only(t, "b1"); d.worker != "b" {
		t.Errorf("b1 ran on %s", d.worker)
	}
	if d := r.only(t, "a1"); d.worker != "a" {
		t.Errorf("a1 ran on %s", d.worker)
	}
}

func handlerContextCarriesTrace(t *testing.T, q Queue) {
	tel, err := telemetry.New(context.Background(), telemetry.Options{Service: "jobstest", LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	type seen struct {
		traceID trace.TraceID
		rid     string
	}
	got := make(chan seen, 4)
	start(t, q, jobs.WorkerOptions{Durable: "trace"}, func(ctx context.Context, j *jobs.Job) error {
		got <- seen{trace.SpanContextFromContext(ctx).TraceID(), telemetry.RequestID(ctx)}
		return nil
	})
	ctx, span := tel.Tracer("libs/jobstest").Start(ctxFor(t, 10*time.Second), "request")
	ctx = telemetry.WithRequestID(ctx, "req-5a5a5a5a")
	if _, err := q.Enqueue(ctx, "build", "traced", nil); err != nil {
		t.Fatal(err)
	}
	span.End()
	select {
	case s := <-got:
		if s.traceID != span.SpanContext().TraceID() {
			t.Errorf("handler trace %s, want the enqueuer's %s", s.traceID, span.SpanContext().TraceID())
		}
		if s.rid != "req-5a5a5a5a" {
			t.Errorf("handler request ID %q, want req-5a5a5a5a", s.rid)
		}
	case <-time.After(waitFor):
		t.Fatal("the job was not handled")
	}
}

func enqueueRefusesIncompleteJobs(t *testing.T, q Queue) {
	ctx := ctxFor(t, 10*time.Second)
	if _, err := q.Enqueue(ctx, "", "id", nil); err == nil {
		t.Error("a job without kind was enqueued")
	}
	if _, err := q.Enqueue(ctx, "build", "", nil); err == nil {
		t.Error("a job without ID was enqueued")
	}
	if _, err := q.Enqueue(ctx, "build", "chan", make(chan int)); err == nil {
		t.Error("a payload that cannot be encoded was enqueued")
	}
}
