package actorworker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Timers: the schedules of the manifest (actor.schedule) and the timers an
// actor sets (timer.set) reach it as timer events through its gnome_event
// export, on the worker holding its lease, from the actor's loop (so never
// during a call).
//
// Both live in the actor_timers bucket, so that they outlive the instance,
// the worker and a failover:
//
//   - {slug}.once.{id}: a pending timer (id, name, payload, due time). It
//     is claimed by deleting it at the revision read, then delivered: of two
//     workers that both believe they hold the actor (one cut off from the
//     bus, say), only one claims it. A timer fires at most once; a worker
//     killed between the claim and the delivery loses it.
//   - {slug}.sched.{name}: when the schedule last fired (created when the
//     schedule is first seen, so its rhythm starts then). A firing is
//     claimed by updating it at the revision read. The next due time is the
//     schedule's next after the last firing; when one or more were missed
//     (the actor was moving, the worker down), the schedule fires once, at
//     once, and goes on from then: an interval one interval after that
//     firing, a cron expression at its next time.
//
// Every worker reads the actor's keys when it loads the actor, so a timer
// due while no worker held the actor fires as soon as the next holder has
// an instance. An actor with pending timers or a schedule is never unloaded
// for idleness (keepsAwake in idle.go). Removing the actor (the experiment
// deleted, archived, deactivated or without actor) drops its timers.

// timerTuning bounds timers; tests shorten some.
type timerTuning struct {
	// MinDelay and MaxDelay bound the delay of timer.set.
	MinDelay, MaxDelay time.Duration
	// MaxPending bounds an actor's pending timers (schedules not counted).
	MaxPending int
	// EveryDivisor divides the intervals of schedules: 1 but in tests,
	// whose schedules cannot be shorter than the manifest allows.
	EveryDivisor int
	// Retry is how soon firing is tried again after the bucket failed.
	Retry time.Duration
	// PerPass bounds the timers fired in one turn of the loop, so that
	// calls are served between bursts of due timers.
	PerPass int
}

var timerDefaults = timerTuning{
	MinDelay: time.Second, MaxDelay: 30 * 24 * time.Hour, MaxPending: 1000,
	EveryDivisor: 1, Retry: time.Second, PerPass: 16,
}

// timerMarkerTTL is how long the marker of a fired or cancelled timer
// stays in the bucket: long enough for a worker that read the timer to
// find it gone, short enough that markers do not pile up.
const timerMarkerTTL = time.Minute

// revisionMoved reports whether a write at a revision failed because the
// key changed (or went) since.
func revisionMoved(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound)
}

// maxTimerName bounds a timer's name, in bytes.
const maxTimerName = 128

var timerIDSyntax = regexp.MustCompile(`^[0-9a-f]{24}$`)

// timerRecord is a pending timer in the bucket.
type timerRecord struct {
	ID      string          `json:"id"`
	Name    string          `json:"name,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Due     time.Time       `json:"due"`
	SetAt   time.Time       `json:"set_at"`
}

// scheduleRecord is a schedule's last firing in the bucket.
type scheduleRecord struct {
	Name string    `json:"name"`
	Last time.Time `json:"last"`
}

// timerEvent is the event envelope of a timer firing (schemas/messages/
// actor-event.json).
type timerEvent struct {
	Type  string     `json:"type"`
	Timer eventTimer `json:"timer"`
}

type eventTimer struct {
	ID          string          `json:"id,omitempty"`
	Name        string          `json:"name"`
	Schedule    bool            `json:"schedule,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	FiredAt     time.Time       `json:"fired_at"`
}

type onceTimer struct {
	rec timerRecord
	rev uint64
}

type schedTimer struct {
	s    bundle.Schedule
	last time.Time
	due  time.Time
	rev  uint64
}

// timerSet is one actor's timers on the worker holding it. The loop fires
// them; timer.set and timer.cancel may also run from a start's goroutine
// (gnome_init), hence the lock.
type timerSet struct {
	mu     sync.Mutex
	events bool // the module exports gnome_event
	once   map[string]*onceTimer
	sched  map[string]*schedTimer
	// wake fires at the earliest due time.
	wake *time.Timer
	// retryAt, when set, is the earliest the next pass may run: the
	// bucket failed.
	retryAt time.Time
}

// timerService is the worker's side of timers: the bucket and the metrics.
type timerService struct {
	kv       jetstream.KeyValue
	fired    *prometheus.CounterVec
	pending  *prometheus.GaugeVec
	provided bool
}

func (s *Service) provisionTimers(ctx context.Context) error {
	if err := s.d.Topology.EnsureBuckets(ctx, bus.BucketActorTimers); err != nil {
		return err
	}
	kv, err := s.d.Topology.Bucket(ctx, bus.BucketActorTimers)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", bus.BucketActorTimers, err)
	}
	reg := s.d.Telemetry.Registry
	s.timers = timerService{
		// A schedule's record is read after a lost compare-and-set, to take
		// the view of the worker that won it: through the leader, or a
		// replica's older revision would lose the next one too.
		kv: bus.LeaderKV{KeyValue: kv, JS: s.d.JS}, provided: true,
		fired: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_timer_events_total", Help: "Timer events delivered to actors, by experiment and outcome (ok, failed: refused by the actor, trapped or timed out; dropped: the module cannot receive events).",
		}, []string{"slug", "outcome"})),
		pending: telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gnome_actor_timers_pending", Help: "Timers set by actors and waiting to fire, on the worker holding them, by experiment.",
		}, []string{"slug"})),
	}
	return nil
}

func onceKey(slug, id string) string      { return slug + ".once." + id }
func schedKey(slug, name string) string   { return slug + ".sched." + name }
func (s *Service) timerTune() timerTuning { return s.tune.Timers }

// next is when sch fires after t.
func (s *Service) nextFiring(sch bundle.Schedule, t time.Time) time.Time {
	if d := sch.Interval(); d > 0 {
		return t.Add(d / time.Duration(max(s.tune.Timers.EveryDivisor, 1)))
	}
	return sch.Next(t)
}

// loadTimers reads sp's timers and schedules from the bucket before mod
// runs: a module given schedules must be able to receive them.
func (a *actor) loadTimers(ctx context.Context, sp *spec, mod *actorhost.Module) error {
	events := mod.HasEvents()
	if len(sp.actor.Schedule) > 0 && !events {
		return permanent("the manifest gives actor.schedule, but the module does not export %s, which receives timer events (docs/actors.md, section 2)", actorhost.EventExport)
	}
	if !a.primary() {
		// Timers fire on the first instance only (instances.go).
		return nil
	}
	if a.timers == nil {
		t := time.NewTimer(time.Hour)
		t.Stop()
		a.timers = &timerSet{wake: t}
	}
	if !a.s.timers.provided {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.tune.HostCall)
	defer cancel()
	kv := a.s.timers.kv
	w, err := kv.Watch(ctx, a.slug+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read the timers of %s: %w", a.slug, err)
	}
	defer func() { _ = w.Stop() }()
	once := map[string]*onceTimer{}
	stored := map[string]jetstream.KeyValueEntry{}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		rest := strings.TrimPrefix(e.Key(), a.slug+".")
		switch {
		case strings.HasPrefix(rest, "once."):
			var r timerRecord
			if json.Unmarshal(e.Value(), &r) != nil {
				continue
			}
			once[r.ID] = &onceTimer{rec: r, rev: e.Revision()}
		case strings.HasPrefix(rest, "sched."):
			stored[strings.TrimPrefix(rest, "sched.")] = e
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("read the timers of %s: %w", a.slug, ctx.Err())
	}
	sched := map[string]*schedTimer{}
	now := time.Now().UTC()
	for _, sc := range sp.actor.Schedule {
		st := &schedTimer{s: sc}
		if e, ok := stored[sc.Name]; ok {
			var r scheduleRecord
			if json.Unmarshal(e.Value(), &r) == nil && !r.Last.IsZero() {
				st.last, st.rev = r.Last, e.Revision()
			}
			delete(stored, sc.Name)
		}
		if st.rev == 0 {
			// A schedule seen for the first time: its rhythm starts now.
			val, _ := json.Marshal(scheduleRecord{Name: sc.Name, Last: now})
			rev, err := kv.Put(ctx, schedKey(a.slug, sc.Name), val)
			if err != nil {
				return fmt.Errorf("record the schedule %s of %s: %w", sc.Name, a.slug, err)
			}
			st.last, st.rev = now, rev
		}
		st.due = a.s.nextFiring(sc, st.last)
		sched[sc.Name] = st
	}
	for name := range stored {
		// A schedule the manifest no longer gives.
		_ = kv.Purge(ctx, schedKey(a.slug, name), jetstream.PurgeTTL(timerMarkerTTL))
	}
	ts := a.timers
	ts.mu.Lock()
	ts.events, ts.once, ts.sched, ts.retryAt = events, once, sched, time.Time{}
	ts.mu.Unlock()
	a.s.timers.pending.WithLabelValues(a.slug).Set(float64(len(once)))
	return nil
}

// timerC fires when a timer may be due; nil when the actor has none.
func (a *actor) timerC() <-chan time.Time {
	if a.timers == nil {
		return nil
	}
	return a.timers.wake.C
}

// armTimers sets the wake-up for the earliest due time.
func (a *actor) armTimers() {
	if a.timers != nil {
		a.timers.arm()
	}
}

func (t *timerSet) arm() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armLocked()
}

func (t *timerSet) armLocked() {
	var first time.Time
	for _, o := range t.once {
		if first.IsZero() || o.rec.Due.Before(first) {
			first = o.rec.Due
		}
	}
	for _, s := range t.sched {
		if !s.due.IsZero() && (first.IsZero() || s.due.Before(first)) {
			first = s.due
		}
	}
	t.wake.Stop()
	if first.IsZero() {
		return
	}
	if first.Before(t.retryAt) {
		first = t.retryAt
	}
	t.wake.Reset(max(time.Until(first), 0))
}

// busy reports whether the actor has timers to fire: it must stay loaded.
func (t *timerSet) busy() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.once) > 0 || len(t.sched) > 0
}

// dueTimer is one firing to claim.
type dueTimer struct {
	once  *onceTimer
	sched *schedTimer
	at    time.Time
}

// fireTimers claims and delivers the timers due, a few at a time.
func (a *actor) fireTimers(ctx context.Context) {
	t := a.timers
	if a.inst == nil {
		// Starting or restarting: started arms the timers again.
		return
	}
	if time.Since(time.Unix(0, a.leaseOK.Load())) > 2*a.s.tune.RenewEvery {
		// The lease may be someone else's by now: the holder fires.
		t.mu.Lock()
		t.retryAt = time.Now().Add(a.s.tune.RenewEvery)
		t.armLocked()
		t.mu.Unlock()
		return
	}
	now := time.Now()
	var due []dueTimer
	t.mu.Lock()
	for _, o := range t.once {
		if !o.rec.Due.After(now) {
			due = append(due, dueTimer{once: o, at: o.rec.Due})
		}
	}
	for _, s := range t.sched {
		if !s.due.IsZero() && !s.due.After(now) {
			due = append(due, dueTimer{sched: s, at: s.due})
		}
	}
	t.retryAt = time.Time{}
	t.mu.Unlock()
	slices.SortFunc(due, func(x, y dueTimer) int { return x.at.Compare(y.at) })
	if n := max(a.s.tune.Timers.PerPass, 1); len(due) > n {
		due = due[:n]
	}
	for _, d := range due {
		if a.inst == nil {
			break // a delivery broke the instance; the next one goes on
		}
		ev, ok := a.claim(ctx, d)
		if ok {
			a.deliver(ctx, ev)
		}
	}
	a.armTimers()
}

// claim takes d for this worker in the bucket and returns its event; false
// when someone else took it, it was cancelled, or the bucket failed (then
// the pass is tried again after Retry).
func (a *actor) claim(ctx context.Context, d dueTimer) (timerEvent, bool) {
	t, kv := a.timers, a.s.timers.kv
	ctx, cancel := context.WithTimeout(ctx, a.s.tune.HostCall)
	defer cancel()
	now := time.Now().UTC()
	failed := func(err error) (timerEvent, bool) {
		a.log.Warn("actor timer could not be claimed; trying again", "err", err)
		t.mu.Lock()
		t.retryAt = time.Now().Add(a.s.tune.Timers.Retry)
		t.mu.Unlock()
		return timerEvent{}, false
	}
	if o := d.once; o != nil {
		err := kv.Purge(ctx, onceKey(a.slug, o.rec.ID), jetstream.LastRevision(o.rev), jetstream.PurgeTTL(timerMarkerTTL))
		if err != nil && !revisionMoved(err) {
			return failed(err)
		}
		t.mu.Lock()
		delete(t.once, o.rec.ID)
		n := len(t.once)
		t.mu.Unlock()
		a.s.timers.pending.WithLabelValues(a.slug).Set(float64(n))
		if err != nil {
			return timerEvent{}, false // claimed or cancelled elsewhere
		}
		return timerEvent{Type: "timer", Timer: eventTimer{ID: o.rec.ID, Name: o.rec.Name, Payload: o.rec.Payload, ScheduledAt: o.rec.Due.UTC(), FiredAt: now}}, true
	}
	s := d.sched
	last := s.due
	if !a.s.nextFiring(s.s, last).After(now) {
		// One or more firings were missed: this one stands for them all,
		// and the rhythm goes on from now.
		last = now
	}
	val, _ := json.Marshal(scheduleRecord{Name: s.s.Name, Last: last})
	rev, err := kv.Update(ctx, schedKey(a.slug, s.s.Name), val, s.rev)
	if revisionMoved(err) {
		// Another worker fired it (or the key went): take its view.
		if e, gerr := kv.Get(ctx, schedKey(a.slug, s.s.Name)); gerr == nil {
			var r scheduleRecord
			if json.Unmarshal(e.Value(), &r) == nil {
				t.mu.Lock()
				s.last, s.rev, s.due = r.Last, e.Revision(), a.s.nextFiring(s.s, r.Last)
				t.mu.Unlock()
				return timerEvent{}, false
			}
		}
		return failed(err)
	}
	if err != nil {
		return failed(err)
	}
	scheduled := s.due.UTC()
	t.mu.Lock()
	s.last, s.rev, s.due = last, rev, a.s.nextFiring(s.s, last)
	t.mu.Unlock()
	return timerEvent{Type: "timer", Timer: eventTimer{Name: s.s.Name, Schedule: true, Payload: s.s.Payload, ScheduledAt: scheduled, FiredAt: now}}, true
}

// deliver hands ev to the instance in a span of its own. The actor's
// refusal is logged and counted; a trap or a timeout breaks the instance
// as a call's would. Neither fires the timer again.
func (a *actor) deliver(ctx context.Context, ev timerEvent) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "actor event timer", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("gnome.slug", a.slug), attribute.Int("gnome.version", a.spec.version),
			attribute.String("gnome.timer.name", ev.Timer.Name), attribute.Bool("gnome.timer.schedule", ev.Timer.Schedule)))
	defer span.End()
	a.timers.mu.Lock()
	events := a.timers.events
	a.timers.mu.Unlock()
	if !events {
		// The version running cannot receive events: a timer set by an
		// earlier one is dropped rather than breaking the instance.
		a.s.timers.fired.WithLabelValues(a.slug, "dropped").Inc()
		span.SetStatus(codes.Error, "no gnome_event export")
		a.log.WarnContext(ctx, "actor timer dropped: the module does not export gnome_event", "timer", ev.Timer.Name, "id", ev.Timer.ID)
		return
	}
	env, _ := json.Marshal(ev)
	a.host.beginCall()
	t := time.Now()
	err := a.inst.Event(ctx, env)
	a.s.metrics.calls.WithLabelValues(a.slug).Observe(time.Since(t).Seconds())
	var refused *actorhost.EventError
	switch {
	case err == nil:
		a.s.timers.fired.WithLabelValues(a.slug, "ok").Inc()
		a.backoff = 0
	case errors.As(err, &refused):
		a.s.timers.fired.WithLabelValues(a.slug, "failed").Inc()
		span.SetStatus(codes.Error, refused.Code)
		a.log.WarnContext(ctx, "actor refused a timer event", "timer", ev.Timer.Name, "id", ev.Timer.ID, "code", refused.Code, "message", refused.Message)
	default:
		a.s.timers.fired.WithLabelValues(a.slug, "failed").Inc()
		span.SetStatus(codes.Error, "broken")
		span.RecordError(err)
		a.log.WarnContext(ctx, "actor timer event failed", "timer", ev.Timer.Name, "err", err)
		a.broke(err, false)
	}
}

// dropTimers removes every timer and schedule record of the actor: the
// experiment no longer runs it.
func (a *actor) dropTimers(ctx context.Context) { a.s.purgeTimers(ctx, a.slug, a.log) }

// purgeTimers removes slug's timers and schedule records. The actor's own
// worker does it when it retires the actor; whichever worker takes an
// experiment's deletion does it too, so that the timers of an actor that
// was running nowhere (failed, idle) do not wait for a new experiment of
// the same slug.
func (s *Service) purgeTimers(ctx context.Context, slug string, log *slog.Logger) {
	if !s.timers.provided {
		return
	}
	kv := s.timers.kv
	keys, err := kv.ListKeysFiltered(ctx, slug+".>")
	if err != nil {
		log.Warn("listing the actor's timers to remove failed", "slug", slug, "err", err)
		return
	}
	for k := range keys.Keys() {
		if err := kv.Purge(ctx, k, jetstream.PurgeTTL(timerMarkerTTL)); err != nil {
			log.Warn("removing an actor timer failed", "key", k, "err", err)
		}
	}
	s.timers.pending.DeleteLabelValues(slug)
}

// The host operations timer.set and timer.cancel (docs/actors.md,
// section 5).

type timerSetReq struct {
	DelayMS *int64          `json:"delay_ms"`
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload"`
}

// timersOf is the timer set of h's actor on this worker.
func (h *host) timersOf() (*timerSet, error) {
	a := h.s.local(h.slug)
	if a == nil || a.timers == nil || !h.s.timers.provided {
		return nil, apierr.New(apierr.CodeUnavailable, "the actor's timers are not loaded on this worker; try again")
	}
	return a.timers, nil
}

func (h *host) timerSet(ctx context.Context, req []byte) (any, error) {
	var r timerSetReq
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	tt := h.s.timerTune()
	switch {
	case r.DelayMS == nil:
		return nil, apierr.New(apierr.CodeBadRequest, "delay_ms is required").OnField("/delay_ms")
	case time.Duration(*r.DelayMS)*time.Millisecond < tt.MinDelay:
		return nil, apierr.New(apierr.CodeBadRequest, "delay_ms %d is shorter than the shortest delay, %d ms", *r.DelayMS, tt.MinDelay.Milliseconds()).OnField("/delay_ms")
	case *r.DelayMS > tt.MaxDelay.Milliseconds():
		return nil, apierr.New(apierr.CodeBadRequest, "delay_ms %d is longer than the longest delay, %d ms (%v)", *r.DelayMS, tt.MaxDelay.Milliseconds(), tt.MaxDelay).OnField("/delay_ms")
	case len(r.Name) > maxTimerName || !utf8.ValidString(r.Name) || strings.ContainsFunc(r.Name, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		return nil, apierr.New(apierr.CodeBadRequest, "name must be at most %d bytes of text without control characters", maxTimerName).OnField("/name")
	case len(r.Payload) > bundle.MaxTimerPayload:
		return nil, apierr.New(apierr.CodePayloadTooLarge, "payload is %d bytes of JSON, more than %d", len(r.Payload), bundle.MaxTimerPayload).OnField("/payload")
	}
	t, err := h.timersOf()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	events, n := t.events, len(t.once)
	t.mu.Unlock()
	if !events {
		return nil, apierr.New(apierr.CodeBadRequest, "the module does not export %s: a timer could never reach it", actorhost.EventExport)
	}
	if n >= tt.MaxPending {
		return nil, apierr.New(apierr.CodeConflict, "the actor has %d pending timers, the most it may have: cancel one or wait for one to fire", n)
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	now := time.Now().UTC()
	rec := timerRecord{ID: hex.EncodeToString(id[:]), Name: r.Name, Due: now.Add(time.Duration(*r.DelayMS) * time.Millisecond), SetAt: now}
	if len(r.Payload) > 0 && string(r.Payload) != "null" {
		rec.Payload = r.Payload
	}
	val, _ := json.Marshal(rec)
	rev, err := h.s.timers.kv.Create(ctx, onceKey(h.slug, rec.ID), val)
	if err != nil {
		return nil, fmt.Errorf("record the timer: %w", err)
	}
	t.mu.Lock()
	t.once[rec.ID] = &onceTimer{rec: rec, rev: rev}
	n = len(t.once)
	t.armLocked()
	t.mu.Unlock()
	h.s.timers.pending.WithLabelValues(h.slug).Set(float64(n))
	return map[string]any{"id": rec.ID, "due": rec.Due}, nil
}

func (h *host) timerCancel(ctx context.Context, req []byte) (any, error) {
	var r struct {
		ID string `json:"id"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	if !timerIDSyntax.MatchString(r.ID) {
		return nil, apierr.New(apierr.CodeBadRequest, "id %q is not a timer ID as timer.set returns them", r.ID).OnField("/id")
	}
	t, err := h.timersOf()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	_, pending := t.once[r.ID]
	t.mu.Unlock()
	if !pending {
		return map[string]any{"cancelled": false}, nil
	}
	// Deleted in the bucket first: a timer still there after a failed
	// cancel fires, as the actor was told it might.
	if err := h.s.timers.kv.Purge(ctx, onceKey(h.slug, r.ID), jetstream.PurgeTTL(timerMarkerTTL)); err != nil {
		return nil, fmt.Errorf("cancel the timer: %w", err)
	}
	t.mu.Lock()
	delete(t.once, r.ID)
	n := len(t.once)
	t.armLocked()
	t.mu.Unlock()
	h.s.timers.pending.WithLabelValues(h.slug).Set(float64(n))
	return map[string]any{"cancelled": true}, nil
}
