package actorworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

const tracerName = "github.com/gnome-platform/gnome/services/actorworker"

// stopReason is why an actor stops, which decides what happens to its lease
// and its state.
type stopReason int

const (
	// stopRetire: the experiment was deleted, archived or lost its actor:
	// release the lease and remove the state.
	stopRetire stopReason = iota
	// stopHandover: this instance is stopping: release the lease so that
	// another instance starts the actor at once.
	stopHandover
	// stopLost: the lease is someone else's now (or could not be renewed in
	// time): touch neither lease nor state.
	stopLost
	// stopFailed: the module cannot be loaded: release the lease and show
	// the failure.
	stopFailed
	// stopAborted: the first start failed for a passing reason: release the
	// lease; the start job is tried again.
	stopAborted
)

// actor is one experiment's actor on this instance. Its loop goroutine owns
// the module, the instance and the restart schedule; the NATS subscription
// only puts calls into the mailbox.
type actor struct {
	s    *Service
	slug string
	log  *slog.Logger

	// Owned by the loop.
	spec      *spec
	module    *actorhost.Module
	inst      *actorhost.Instance
	host      *host
	backoff   time.Duration
	restartAt time.Time
	restart   *time.Timer
	exit      stopReason
	exitErr   error
	// startErr is why the last instance failed to start, until one starts.
	startErr error

	sub      *nats.Subscription
	mailbox  chan *nats.Msg
	reloads  chan *spec
	quit     chan stopReason
	quitOnce sync.Once
	done     chan struct{}
	// ending is set when the loop has ended and finish is letting go of
	// the lease and state; a reload then reaches no one.
	ending atomic.Bool

	// The lease: its revision, and when it was last renewed.
	leaseRev  atomic.Uint64
	leaseOK   atomic.Int64
	stopRenew context.CancelFunc

	mu    sync.Mutex
	state actorapi.State
	dirty bool
	// gauge is the state the actors-by-state metric counts this actor in.
	gauge string
	// leaseSpec is the version the lease names.
	leaseSpec *spec
}

func newActor(s *Service, sp *spec, leaseRev uint64) *actor {
	a := &actor{
		s: s, slug: sp.slug, spec: sp,
		log:     s.d.Log.With("slug", sp.slug),
		mailbox: make(chan *nats.Msg, s.tune.Mailbox),
		reloads: make(chan *spec, 1),
		quit:    make(chan stopReason, 1),
		done:    make(chan struct{}),
		restart: time.NewTimer(time.Hour),
	}
	a.restart.Stop()
	a.leaseSpec = sp
	a.leaseRev.Store(leaseRev)
	a.leaseOK.Store(time.Now().UnixNano())
	return a
}

// requestStop asks the loop to stop; the first reason wins.
func (a *actor) requestStop(r stopReason) {
	a.quitOnce.Do(func() { a.quit <- r })
}

// stopAndWait stops the actor and waits for it within ctx.
func (a *actor) stopAndWait(ctx context.Context, r stopReason) {
	a.requestStop(r)
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}

// reload asks the loop to run sp instead, if it differs.
func (a *actor) reload(sp *spec) {
	select {
	case a.reloads <- sp:
	default:
		// A reload is pending; replace it with the newer spec.
		select {
		case <-a.reloads:
		default:
		}
		select {
		case a.reloads <- sp:
		default:
		}
	}
}

// run is the actor's loop. started receives the outcome of the first load:
// nil once the actor serves or waits to restart, an error when the start
// should be tried again.
func (a *actor) run(started chan<- error) {
	defer close(a.done)
	defer a.finish()
	ctx := context.Background()
	// Subscribe before the instance starts, and flush so that the server
	// has the interest, before the state says running: a caller who sees
	// running then always finds a responder. Calls that arrive while the
	// module loads wait in the mailbox; if it fails, finish refuses them.
	sub, err := a.s.d.NC.QueueSubscribe(actorapi.Subject(a.slug), actorapi.QueueGroup, a.enqueue)
	if err == nil {
		a.sub = sub
		err = a.s.d.NC.Flush()
	}
	if err != nil {
		a.exit, a.exitErr = stopAborted, fmt.Errorf("subscribe to %s: %w", actorapi.Subject(a.slug), err)
		started <- a.exitErr
		return
	}
	if err := a.load(ctx, a.spec); err != nil {
		a.log.Warn("actor start failed", "version", a.spec.version, "err", err)
		if isPermanent(err) {
			a.exit, a.exitErr = stopFailed, err
			started <- nil
		} else {
			a.exit, a.exitErr = stopAborted, err
			started <- err
		}
		return
	}
	started <- nil
	for {
		select {
		case r := <-a.quit:
			a.exit = r
			return
		case m := <-a.mailbox:
			a.serve(m)
		case sp := <-a.reloads:
			if !a.apply(ctx, sp) {
				return
			}
		case <-a.restart.C:
			a.startInstance(ctx)
		}
	}
}

// load compiles sp's module and starts an instance of it. Only a failure to
// get or compile the module is an error: an instance that fails to start is
// retried after the back-off.
func (a *actor) load(ctx context.Context, sp *spec) error {
	mod, err := a.s.compile(ctx, sp)
	if err != nil {
		return err
	}
	if a.module != nil {
		a.closeInstance()
		_ = a.module.Close(ctx)
	}
	a.module, a.spec = mod, sp
	a.mu.Lock()
	a.leaseSpec = sp
	if a.state.Checksum != sp.checksum {
		// Another version: its history starts now.
		a.state.Restarts, a.state.Calls, a.state.LastError, a.state.LastErrorAt = 0, 0, "", nil
	}
	a.state.Version, a.state.Checksum, a.state.Seq = sp.version, sp.checksum, sp.seq
	a.mu.Unlock()
	a.backoff = 0
	a.restart.Stop()
	a.startInstance(ctx)
	return nil
}

// apply replaces the running version by sp when they differ; false when the
// actor must stop.
func (a *actor) apply(ctx context.Context, sp *spec) bool {
	if sp.key == a.spec.key {
		if sp.seq > a.spec.seq {
			a.spec.seq = sp.seq
			a.mu.Lock()
			a.state.Seq = sp.seq
			a.mu.Unlock()
		}
		return true
	}
	a.log.Info("actor reloading", "from_version", a.spec.version, "to_version", sp.version)
	if err := a.load(ctx, sp); err != nil {
		if isPermanent(err) {
			a.exit, a.exitErr = stopFailed, err
			a.spec = sp
			return false
		}
		// The version running goes on; reconciling tries again.
		a.log.Warn("actor reload failed; the running version goes on", "version", sp.version, "err", err)
		return true
	}
	return true
}

// startInstance instantiates the module and calls its init; a failure is
// handled like a broken instance.
func (a *actor) startInstance(ctx context.Context) {
	if a.inst != nil || a.module == nil {
		return
	}
	sp := a.spec
	h, err := a.s.newHost(ctx, sp, a.log)
	if err != nil {
		a.broke(err, true)
		return
	}
	t := time.Now()
	cfg := sp.actor.Config
	if cfg == nil {
		cfg = map[string]any{} // the init envelope's config is {} when the manifest has none
	}
	inst, err := a.module.Instantiate(ctx, a.slug, h, actorhost.Init{Slug: sp.slug, Version: sp.version, Config: cfg}, a.log)
	a.s.metrics.instantiate.Observe(time.Since(t).Seconds())
	if err != nil {
		a.broke(err, true)
		return
	}
	a.inst, a.host, a.startErr = inst, h, nil
	now := time.Now().UTC()
	a.update(func(st *actorapi.State) {
		st.State, st.StartedAt, st.RetryAt = actorapi.StateRunning, &now, nil
	})
	a.log.Info("actor running", "version", sp.version, "took_ms", time.Since(t).Milliseconds())
}

// broke discards the instance after err and schedules the next one, after
// a back-off that doubles with each failure in a row. An instance that
// failed to start (instantiation, _initialize or gnome_init) leaves the
// actor failed until a start succeeds; one that broke during a call leaves
// it restarting.
func (a *actor) broke(err error, starting bool) {
	a.closeInstance()
	if a.backoff == 0 {
		a.backoff = a.s.tune.BackoffMin
	} else {
		a.backoff = min(2*a.backoff, a.s.tune.BackoffMax)
	}
	a.restartAt = time.Now().Add(a.backoff)
	a.restart.Reset(a.backoff)
	a.s.metrics.restarts.WithLabelValues(a.slug).Inc()
	state := actorapi.StateRestarting
	if starting {
		state, a.startErr = actorapi.StateFailed, err
	}
	now := time.Now().UTC()
	retry := a.restartAt.UTC()
	a.update(func(st *actorapi.State) {
		st.State, st.Restarts, st.LastError, st.LastErrorAt, st.StartedAt, st.RetryAt = state, st.Restarts+1, err.Error(), &now, nil, &retry
	})
	a.log.Warn("actor instance discarded", "err", err, "state", state, "retry_in", a.backoff)
}

func (a *actor) closeInstance() {
	if a.inst != nil {
		_ = a.inst.Close(context.Background())
		a.inst, a.host = nil, nil
	}
}

// enqueue puts a call into the mailbox, or refuses it when the mailbox is
// full. It runs on the subscription's goroutine.
func (a *actor) enqueue(m *nats.Msg) {
	select {
	case a.mailbox <- m:
	default:
		a.s.metrics.rejected.WithLabelValues(a.slug).Inc()
		ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is busy: too many calls are waiting", a.slug)
		ae.RetryAfter = 1
		replyError(m, ae)
	}
}

// serve runs one call.
func (a *actor) serve(m *nats.Msg) {
	deadline := callDeadline(m)
	if !deadline.IsZero() && time.Now().After(deadline) {
		return // the caller stopped waiting
	}
	ctx, rid := bus.Extract(context.Background(), m.Header)
	ctx = telemetry.WithRequestID(ctx, rid)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "actor call", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("gnome.slug", a.slug), attribute.Int("gnome.version", a.spec.version),
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", m.Subject)))
	defer span.End()
	if a.inst == nil {
		a.awaitRestart(ctx, deadline)
	}
	if a.inst == nil {
		ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is restarting", a.slug)
		if a.startErr != nil {
			ae = apierr.New(apierr.CodeUnavailable, "the actor of %q failed to start: %v", a.slug, a.startErr)
		}
		ae.RetryAfter = int(math.Ceil(max(time.Until(a.restartAt), time.Second).Seconds()))
		span.SetStatus(codes.Error, string(ae.Code))
		replyError(m, ae)
		return
	}
	a.host.beginCall()
	t := time.Now()
	out, err := a.inst.Handle(ctx, m.Data)
	a.s.metrics.calls.WithLabelValues(a.slug).Observe(time.Since(t).Seconds())
	if err == nil {
		err = checkResponse(out)
	}
	if err != nil {
		ae := callError(a.slug, a.spec.limits.Timeout, err)
		span.SetStatus(codes.Error, string(ae.Code))
		span.RecordError(err)
		a.log.WarnContext(ctx, "actor call failed", "err", err)
		// The state shows the failure by the time the caller hears of it.
		a.broke(err, false)
		replyError(m, ae)
		return
	}
	if int64(len(out)) > a.s.d.NC.MaxPayload() {
		// The instance is sound; only the bus cannot carry the answer.
		ae := apierr.New(apierr.CodeBadGateway, "the actor of %q answered with %d bytes, more than the bus carries (%d)", a.slug, len(out), a.s.d.NC.MaxPayload())
		span.SetStatus(codes.Error, string(ae.Code))
		replyError(m, ae)
		return
	}
	if err := m.Respond(out); err != nil {
		a.log.WarnContext(ctx, "actor reply failed", "err", err)
	}
	a.backoff = 0
	a.mu.Lock()
	a.state.Calls++
	a.dirty = true
	a.mu.Unlock()
}

// awaitRestart lets a call wait for a restart due soon, rather than refuse
// it: a first failure restarts within BackoffMin.
func (a *actor) awaitRestart(ctx context.Context, deadline time.Time) {
	wait := time.Until(a.restartAt)
	if wait > time.Second || (!deadline.IsZero() && time.Now().Add(wait).After(deadline)) {
		return
	}
	if wait > 0 {
		time.Sleep(wait)
	}
	a.restart.Stop()
	a.startInstance(ctx)
}

// callError is what the caller of a call that broke the instance gets
// (docs/actors.md, section 6): running past the time limit is timeout (504);
// a trap, an exit, a response over the limit or a malformed one is
// bad_gateway (502).
func callError(slug string, timeout time.Duration, err error) *apierr.Error {
	if errors.Is(err, actorhost.ErrTimeout) {
		return apierr.Wrap(apierr.CodeTimeout, err, fmt.Sprintf("the actor of %q did not answer within %v", slug, timeout))
	}
	what := "failed"
	switch {
	case errors.Is(err, actorhost.ErrTrap):
		what = "trapped (a panic, running out of memory or a fault)"
	case errors.Is(err, actorhost.ErrExited):
		what = "exited (a panic or running out of memory ends a Go actor this way)"
	case errors.Is(err, actorhost.ErrResponseTooLarge):
		what = "answered with a response over the limit"
	case errors.Is(err, actorhost.ErrBadResponse):
		what = "answered with a malformed response"
	}
	return apierr.Wrap(apierr.CodeBadGateway, err, fmt.Sprintf("the actor of %q %s; it is being replaced", slug, what))
}

// callDeadline is when the caller stops waiting, if it said.
func callDeadline(m *nats.Msg) time.Time {
	ms, err := strconv.ParseInt(m.Header.Get(actorapi.HeaderDeadline), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// replyError answers m with ae as bus services do (error headers and the
// error body), plus Retry-After when ae has one.
func replyError(m *nats.Msg, ae *apierr.Error) {
	if m.Reply == "" {
		return
	}
	rid := m.Header.Get(bus.HeaderRequestID)
	r := nats.NewMsg(m.Reply)
	r.Header.Set(bus.HeaderErrorCode, string(ae.Code))
	r.Header.Set(bus.HeaderError, ae.Message)
	if ae.RetryAfter > 0 {
		r.Header.Set(actorapi.HeaderRetryAfter, strconv.Itoa(ae.RetryAfter))
	}
	r.Data, _ = json.Marshal(ae.ToBody(rid).Error)
	_ = m.RespondMsg(r)
}

// finish runs when the loop ends: the actor stops answering, calls still
// queued are refused, and the lease and state are left as the reason says.
func (a *actor) finish() {
	a.ending.Store(true)
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
	}
	if a.stopRenew != nil {
		a.stopRenew()
	}
	for {
		select {
		case m := <-a.mailbox:
			ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is moving to another worker", a.slug)
			ae.RetryAfter = 1
			replyError(m, ae)
			continue
		default:
		}
		break
	}
	a.closeInstance()
	if a.module != nil {
		_ = a.module.Close(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch a.exit {
	case stopRetire:
		a.s.releaseLease(ctx, a)
		a.s.dropState(ctx, a.slug)
		a.setGauge("")
		a.log.Info("actor stopped: the experiment no longer runs one")
	case stopHandover:
		a.update(func(st *actorapi.State) {
			st.State, st.Worker, st.StartedAt = actorapi.StateStarting, "", nil
		})
		a.setGauge("")
		a.s.releaseLease(ctx, a)
		a.log.Info("actor handed over")
	case stopLost:
		a.setGauge("")
		a.log.Warn("actor stopped: its lease is lost")
	case stopFailed:
		now := time.Now().UTC()
		a.update(func(st *actorapi.State) {
			st.State, st.LastError, st.LastErrorAt, st.StartedAt, st.RetryAt = actorapi.StateFailed, a.exitErr.Error(), &now, nil, nil
			st.Version, st.Checksum, st.Seq = a.spec.version, a.spec.checksum, a.spec.seq
		})
		a.setGauge("")
		a.s.releaseLease(ctx, a)
		a.log.Error("actor failed", "version", a.spec.version, "err", a.exitErr)
	case stopAborted:
		// The lease is left to expire: its expiry queues the next attempt,
		// which spaces attempts while the cause lasts.
		now := time.Now().UTC()
		retry := now.Add(a.s.leaseTTL)
		a.update(func(st *actorapi.State) {
			st.State, st.LastError, st.LastErrorAt, st.StartedAt, st.RetryAt = actorapi.StateStarting, a.exitErr.Error(), &now, nil, &retry
		})
		a.setGauge("")
	}
	a.s.forget(a)
}
