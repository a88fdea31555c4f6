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
	// stopIdle: the actor went without calls for IdleUnload: show it idle
	// and release the lease; the next call starts it again (idle.go).
	stopIdle
)

// actor is one experiment's actor on this instance. Its loop goroutine owns
// the module, the instance and the restart schedule; the NATS subscription
// only puts calls into the mailbox.
type actor struct {
	s    *Service
	slug string
	// index is which of the actor's instances this is (instances.go), and
	// key its key in actor_leases and actor_state: the slug for the first.
	index int
	key   string
	log   *slog.Logger

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

	// A start runs on a goroutine of its own, so that the loop keeps
	// answering calls while it runs (a start may take the whole start
	// limit): startDone receives its outcome, stopStart cancels it (nil
	// when none runs) and startDeadline is when its limit ends.
	startDone     chan startResult
	stopStart     context.CancelFunc
	startDeadline time.Time
	// held are the calls waiting for an instance that is starting or
	// about to, oldest first; holdTimer answers those whose caller is
	// about to stop waiting.
	held      []*nats.Msg
	holdTimer *time.Timer
	// idle fires when the actor may have gone IdleUnload without calls;
	// lastActive is when its last call ended (idle.go).
	idle       *time.Timer
	lastActive time.Time
	// timers are the actor's timers and schedules (timers.go).
	timers *timerSet
	// live counts the actor's live connections (live.go).
	live *liveState

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

func newActor(s *Service, sp *spec, index int, leaseRev uint64) *actor {
	log := s.d.Log
	if s.logs != nil {
		log = slog.New(&logTee{next: log.Handler(), pub: s.logs})
	}
	log = log.With("slug", sp.slug)
	if index > 0 {
		log = log.With("instance", index)
	}
	a := &actor{
		s: s, slug: sp.slug, spec: sp, index: index, key: instanceKey(sp.slug, index),
		log:       log,
		mailbox:   make(chan *nats.Msg, s.tune.Mailbox),
		reloads:   make(chan *spec, 1),
		quit:      make(chan stopReason, 1),
		done:      make(chan struct{}),
		restart:   time.NewTimer(time.Hour),
		holdTimer: time.NewTimer(time.Hour),
		startDone: make(chan startResult, 1),
	}
	a.restart.Stop()
	a.holdTimer.Stop()
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
// nil once the module is compiled and its first instance starting (or when
// the module can never load: the actor then ends failed), an error when
// the start should be tried again.
func (a *actor) run(started chan<- error) {
	defer close(a.done)
	defer a.finish()
	ctx := context.Background()
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
	// Subscribe once the module is compiled (compiling can take seconds
	// on a busy machine, and calls waiting in the mailbox meanwhile would
	// get no answer: the loop is not running yet), and flush so that the
	// server has the interest, before the state says running: a caller who
	// sees running then always finds a responder. Until then a call finds
	// no responder and the edge holds it (services/edge, actorwake.go).
	sub, err := a.s.d.NC.QueueSubscribe(actorapi.Subject(a.slug), actorapi.QueueGroup, a.enqueue)
	if err == nil {
		a.sub = sub
		// Live events share the mailbox, so that they are serialised
		// with calls (live.go); only the first instance takes them
		// (instances.go).
		if a.primary() {
			err = a.subscribeLive()
		}
	}
	if err == nil {
		err = a.s.d.NC.Flush()
	}
	if err != nil {
		a.exit, a.exitErr = stopAborted, fmt.Errorf("subscribe to %s: %w", actorapi.Subject(a.slug), err)
		started <- a.exitErr
		return
	}
	started <- nil
	a.armIdle()
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
		case res := <-a.startDone:
			if !a.started(res) {
				return
			}
		case <-a.holdTimer.C:
			a.expireHeld()
		case <-a.idleC():
			if a.unloadIfIdle() {
				return
			}
		case <-a.timerC():
			a.fireTimers(ctx)
		}
	}
}

// load compiles sp's module and starts an instance of it. Only a failure to
// get or compile the module is an error: an instance that fails to start is
// retried after the back-off.
func (a *actor) load(ctx context.Context, sp *spec) error {
	mod, sp, err := a.s.compile(ctx, sp)
	if err != nil {
		return err
	}
	if err := a.loadTimers(ctx, sp, mod); err != nil {
		_ = mod.Close(ctx)
		return err
	}
	a.abortStart()
	if a.module != nil {
		a.closeInstance()
		_ = a.module.Close(ctx)
		if a.spec.checksum != sp.checksum {
			a.s.dropModule(a.spec)
		}
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

// startResult is the outcome of a start.
type startResult struct {
	inst *actorhost.Instance
	host *host
	err  error
	took time.Duration
}

// startInstance starts an instance of the module on a goroutine of its
// own; started takes the outcome.
func (a *actor) startInstance(ctx context.Context) {
	if a.inst != nil || a.module == nil || a.stopStart != nil {
		return
	}
	sp, mod := a.spec, a.module
	sctx, cancel := context.WithCancel(ctx)
	a.stopStart = cancel
	a.startDeadline = time.Now().Add(mod.Limits().StartTimeout)
	go func() {
		var res startResult
		// The instance's lines carry the version it runs (logs.go).
		vlog := withLogVersion(a.log, sp.version)
		res.host, res.err = a.s.newHost(sctx, sp, vlog)
		t := time.Now()
		if res.err == nil {
			cfg := sp.actor.Config
			if cfg == nil {
				cfg = map[string]any{} // the init envelope's config is {} when the manifest has none
			}
			res.inst, res.err = mod.Instantiate(sctx, a.slug, res.host, actorhost.Init{Slug: sp.slug, Version: sp.version, Config: cfg, Script: sp.script}, vlog)
			if res.err != nil && isScriptError(sp, res.err) {
				// The runtime refused the scripts (a syntax error, an
				// exception at the top level): they fail the same way on
				// every try, until another version.
				res.err = loadError{res.err}
			}
			if res.err != nil && errors.Is(res.err, actorhost.ErrTimeout) && sctx.Err() == nil {
				// The start limit, not a stop of ours: say so, in place
				// of the engine's stack trace (meaningless to the
				// experiment's author, and it reaches the state and
				// every caller).
				res.err = fmt.Errorf("%w: its start did not finish within the start limit of %v", actorhost.ErrTimeout, mod.Limits().StartTimeout)
			}
		}
		res.took = time.Since(t)
		a.startDone <- res
	}()
}

// started takes the outcome of the start in progress: the instance serves
// the calls that waited for it, or the failure is handled like a broken
// instance and they are refused. False when the actor must stop: the start
// failed for a reason no retry mends.
func (a *actor) started(res startResult) bool {
	a.stopStart()
	a.stopStart = nil
	a.s.metrics.instantiate.Observe(res.took.Seconds())
	if res.err != nil {
		if isPermanent(res.err) {
			a.exit, a.exitErr = stopFailed, res.err
			return false
		}
		a.broke(res.err, true)
		a.refuseHeld()
		return true
	}
	a.inst, a.host, a.startErr = res.inst, res.host, nil
	now := time.Now().UTC()
	a.update(func(st *actorapi.State) {
		st.State, st.StartedAt, st.RetryAt = actorapi.StateRunning, &now, nil
	})
	a.log.Info("actor running", "version", a.spec.version, "took_ms", res.took.Milliseconds())
	held := a.held
	a.held = nil
	a.holdTimer.Stop()
	a.armTimers()
	for _, m := range held {
		a.serve(m)
	}
	return true
}

// abortStart stops the start in progress, if any, and waits for it: the
// module it instantiates is about to be closed or replaced.
func (a *actor) abortStart() {
	if a.stopStart == nil {
		return
	}
	a.stopStart()
	res := <-a.startDone
	a.stopStart = nil
	if res.inst != nil {
		_ = res.inst.Close(context.Background())
	}
}

// holdMargin is how long before its caller's deadline a waiting call is
// answered, so that the answer (503 and Retry-After) reaches the caller
// while it still listens, instead of the caller's own timeout.
const holdMargin = 750 * time.Millisecond

// hold lets m wait for the instance that is starting or about to.
func (a *actor) hold(m *nats.Msg) {
	if len(a.held) >= a.s.tune.Mailbox {
		a.s.metrics.rejected.WithLabelValues(a.slug).Inc()
		ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is busy: too many calls are waiting", a.slug)
		ae.RetryAfter = 1
		replyError(m, ae)
		return
	}
	a.held = append(a.held, m)
	a.armHoldTimer()
}

// armHoldTimer sets holdTimer to the first moment a held call must be
// answered.
func (a *actor) armHoldTimer() {
	a.holdTimer.Stop()
	var first time.Time
	for _, m := range a.held {
		if d := callDeadline(m); !d.IsZero() && (first.IsZero() || d.Before(first)) {
			first = d
		}
	}
	if !first.IsZero() {
		a.holdTimer.Reset(max(time.Until(first.Add(-holdMargin)), 0))
	}
}

// expireHeld answers the held calls whose callers are about to stop
// waiting: the actor is still starting.
func (a *actor) expireHeld() {
	keep := a.held[:0]
	for _, m := range a.held {
		if d := callDeadline(m); !d.IsZero() && time.Now().After(d.Add(-holdMargin)) {
			replyNotServed(m, a.notServing(), a.startErr == nil)
			continue
		}
		keep = append(keep, m)
	}
	clear(a.held[len(keep):])
	a.held = keep
	a.armHoldTimer()
}

// refuseHeld answers every held call: no instance is coming soon.
func (a *actor) refuseHeld() {
	for _, m := range a.held {
		replyError(m, a.notServing())
	}
	a.held = nil
	a.holdTimer.Stop()
}

// notServing is what a call gets while the actor has no instance to serve
// it (docs/actors.md, section 6): unavailable, with Retry-After the time
// until the next instance may be ready.
func (a *actor) notServing() *apierr.Error {
	ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is restarting", a.slug)
	next := a.restartAt
	switch {
	case a.startErr != nil:
		ae = apierr.New(apierr.CodeUnavailable, "the actor of %q failed to start: %v", a.slug, a.startErr)
	case a.stopStart != nil:
		ae = apierr.New(apierr.CodeUnavailable, "the actor of %q is still starting", a.slug)
	}
	if a.stopStart != nil {
		next = a.startDeadline
	}
	ae.RetryAfter = int(math.Ceil(max(time.Until(next), time.Second).Seconds()))
	return ae
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

// serve runs one call. Without an instance, the call waits for one that
// is starting or due within a second, unless the actor is failing to start:
// then, and when the next start is further off, it is refused at once.
func (a *actor) serve(m *nats.Msg) {
	defer a.markActive()
	if a.isLive(m) {
		a.serveLive(m)
		return
	}
	deadline := callDeadline(m)
	if !deadline.IsZero() && time.Now().After(deadline) {
		return // the caller stopped waiting
	}
	if a.inst == nil && a.startErr == nil && (a.stopStart != nil || time.Until(a.restartAt) <= time.Second) {
		a.hold(m)
		return
	}
	ctx, rid := bus.Extract(context.Background(), m.Header)
	ctx = telemetry.WithRequestID(ctx, rid)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "actor call", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("gnome.slug", a.slug), attribute.Int("gnome.version", a.spec.version),
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", m.Subject)))
	defer span.End()
	if a.inst == nil {
		ae := a.notServing()
		span.SetStatus(codes.Error, string(ae.Code))
		replyError(m, ae)
		return
	}
	a.host.beginCall()
	a.runCalled(m)
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
func replyError(m *nats.Msg, ae *apierr.Error) { replyNotServed(m, ae, false) }

// replyNotServed answers m with ae; retry marks a call that never ran and
// that the caller may send again (actorapi.HeaderNotServed).
func replyNotServed(m *nats.Msg, ae *apierr.Error, retry bool) {
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
	if retry {
		r.Header.Set(actorapi.HeaderNotServed, "1")
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
	a.stopLive()
	if a.stopRenew != nil {
		a.stopRenew()
	}
	a.abortStart()
	a.holdTimer.Stop()
	for _, m := range a.held {
		ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is moving to another worker", a.slug)
		if a.exit == stopFailed || a.exit == stopRetire {
			ae = apierr.New(apierr.CodeUnavailable, "the actor of %q is not running", a.slug)
		}
		ae.RetryAfter = 1
		replyError(m, ae)
	}
	a.held = nil
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
		a.s.dropState(ctx, a.key)
		if a.primary() {
			// Another instance retires because there are fewer now; the
			// timers belong to the first, which retires only with the actor.
			a.dropTimers(ctx)
		}
		if !a.s.otherInstanceHere(a) {
			a.s.dropModule(a.spec)
		}
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
		a.s.dropModule(a.spec)
		a.log.Error("actor failed", "version", a.spec.version, "err", a.exitErr)
	case stopIdle:
		a.finishIdle(ctx)
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
