package actorworker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// timersGuest is testdata/timers (actorsdk.OnTimer, After, CancelTimer)
// built for the sandbox.
func timersGuest(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/timers") }

// firedTimer is a timer event as the guest received it.
type firedTimer struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Schedule    bool            `json:"schedule"`
	Payload     json.RawMessage `json:"payload"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	FiredAt     time.Time       `json:"fired_at"`
}

// fired is the timer events slug's instance received, named name ("" for
// all).
func (w *world) fired(slug, name string) []firedTimer {
	w.t.Helper()
	r := w.call(slug, "GET", "/events", "", nil)
	if r.err != nil || r.status != 200 {
		w.t.Fatalf("GET /events: %v", r)
	}
	var body struct{ Events []firedTimer }
	if err := json.Unmarshal(r.body, &body); err != nil {
		w.t.Fatalf("events: %v: %s", err, r.body)
	}
	var out []firedTimer
	for _, e := range body.Events {
		if name == "" || e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// after sets a timer through the guest.
func (w *world) after(slug string, ms int64, name, payload string) reply {
	w.t.Helper()
	var body []byte
	if payload != "" {
		body = []byte(payload)
	}
	return w.call(slug, "POST", "/after", fmt.Sprintf("ms=%d&name=%s", ms, name), body)
}

func (w *world) timerKeys(slug string) []string {
	w.t.Helper()
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketActorTimers)
	if err != nil {
		w.t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(ctxT(w.t), slug+".>")
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for k := range keys.Keys() {
		out = append(out, k)
	}
	return out
}

func (w *world) scheduleLast(slug, name string) time.Time {
	w.t.Helper()
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketActorTimers)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := kv.Get(ctxT(w.t), schedKey(slug, name))
	if err != nil {
		return time.Time{}
	}
	var r scheduleRecord
	_ = json.Unmarshal(e.Value(), &r)
	return r.Last
}

func schedule(every string) map[string]any {
	return map[string]any{"actor": map[string]any{"module": "actor.wasm", "schedule": []any{
		map[string]any{"name": "tick", "every": every, "payload": map[string]any{"n": 1}},
	}}}
}

// A schedule fires again and again with its payload, in its rhythm, and
// keeps the actor loaded while nothing calls it.
func TestScheduleFiresRepeatedly(t *testing.T) {
	w := newWorld(t)
	w.tune.Timers.EveryDivisor = 200 // every 10s: every 50 ms
	w.tune.IdleUnload = 150 * time.Millisecond
	w.worker()
	w.deploy("ticks", schedule("10s"), timersGuest(t))
	w.serving("ticks", 20*time.Second)

	// Without a call, the schedule's last firing moves on, well past the
	// idle time: the actor was not unloaded.
	first := w.scheduleLast("ticks", "tick")
	eventually(t, 10*time.Second, "ten firings without calls", func() bool {
		return w.scheduleLast("ticks", "tick").Sub(first) >= 10*50*time.Millisecond
	})
	if st := w.state("ticks"); st.State != actorapi.StateRunning {
		t.Errorf("state %s: an actor with a schedule was unloaded", st.State)
	}
	got := w.fired("ticks", "tick")
	if len(got) < 5 {
		t.Fatalf("%d firings", len(got))
	}
	for i, e := range got {
		if !e.Schedule || e.ID != "" || string(e.Payload) != `{"n":1}` || e.FiredAt.Before(e.ScheduledAt) {
			t.Errorf("firing %d: %+v", i, e)
		}
		if i > 0 && e.ScheduledAt.Sub(got[i-1].ScheduledAt) < 50*time.Millisecond {
			t.Errorf("firing %d due %v after the one before, want 50 ms or more", i, e.ScheduledAt.Sub(got[i-1].ScheduledAt))
		}
	}
}

// timer.set fires once, with its name and payload; timer.cancel stops one.
func TestTimerSetFiresOnceAndCancel(t *testing.T) {
	w := newWorld(t)
	w.tune.Timers.MinDelay = 10 * time.Millisecond
	w.worker()
	w.deploy("once", nil, timersGuest(t))
	w.serving("once", 20*time.Second)

	set := w.after("once", 100, "ping", `{"x":"y"}`).json(t)
	id, _ := set["id"].(string)
	if !timerIDSyntax.MatchString(id) {
		t.Fatalf("timer.set gave %v", set)
	}
	cancelled := w.after("once", 300, "never", "").json(t)["id"].(string)
	if keys := w.timerKeys("once"); len(keys) != 2 {
		t.Errorf("keys while pending: %v", keys)
	}
	if got := w.call("once", "POST", "/cancel", "id="+cancelled, nil).json(t); got["cancelled"] != true {
		t.Errorf("cancel: %v", got)
	}
	if got := w.call("once", "POST", "/cancel", "id="+cancelled, nil).json(t); got["cancelled"] != false {
		t.Errorf("cancel again: %v", got)
	}
	if r := w.call("once", "POST", "/cancel", "id=../x", nil); r.status != 400 || r.errorCode(t) != "bad_request" {
		t.Errorf("cancel of a bad ID: %v", r)
	}
	eventually(t, 10*time.Second, "the timer to fire", func() bool { return len(w.fired("once", "ping")) > 0 })
	// A later timer firing shows the time went by in which the first
	// could have fired again, and the cancelled one fired.
	w.after("once", 400, "later", "")
	eventually(t, 10*time.Second, "the later timer to fire", func() bool { return len(w.fired("once", "later")) > 0 })
	ping := w.fired("once", "ping")
	if len(ping) != 1 || ping[0].ID != id || string(ping[0].Payload) != `{"x":"y"}` || ping[0].Schedule || ping[0].FiredAt.Before(ping[0].ScheduledAt) {
		t.Errorf("ping fired as %+v, want once with its ID and payload", ping)
	}
	if n := len(w.fired("once", "never")); n != 0 {
		t.Errorf("the cancelled timer fired %d times", n)
	}
	if keys := w.timerKeys("once"); len(keys) != 0 {
		t.Errorf("keys after firing: %v", keys)
	}
}

// The bounds of timer.set are refused with the operation's error codes.
func TestTimerBounds(t *testing.T) {
	w := newWorld(t)
	w.tune.Timers.MaxPending = 3
	w.worker()
	w.deploy("bounds", nil, timersGuest(t))
	w.serving("bounds", 20*time.Second)
	for _, c := range []struct {
		what     string
		ms       int64
		name     string
		payload  string
		status   int
		code     string
		contains string
	}{
		{"too short", 10, "a", "", 400, "bad_request", "shortest delay"},
		{"negative", -5000, "a", "", 400, "bad_request", "shortest delay"},
		{"too long", 31 * 24 * 3600 * 1000, "a", "", 400, "bad_request", "longest delay"},
		{"long name", 5000, strings.Repeat("n", 129), "", 400, "bad_request", "name"},
		{"big payload", 5000, "a", `"` + strings.Repeat("p", 16<<10) + `"`, 413, "payload_too_large", "16384"},
	} {
		r := w.after("bounds", c.ms, c.name, c.payload)
		if r.status != c.status || r.errorCode(t) != c.code || !strings.Contains(string(r.body), c.contains) {
			t.Errorf("%s: %v, want %d %s mentioning %q", c.what, r, c.status, c.code, c.contains)
		}
	}
	var ids []string
	for range 3 {
		ids = append(ids, w.after("bounds", 3600_000, "hour", "").json(t)["id"].(string))
	}
	if r := w.after("bounds", 3600_000, "hour", ""); r.status != 409 || r.errorCode(t) != "conflict" || !strings.Contains(string(r.body), "3 pending timers") {
		t.Errorf("over the pending bound: %v", r)
	}
	w.call("bounds", "POST", "/cancel", "id="+ids[0], nil)
	if r := w.after("bounds", 3600_000, "hour", ""); r.status != 200 {
		t.Errorf("after a cancel: %v", r)
	}
}

// A module given a schedule that cannot receive events fails to load, with
// the reason, until a version that can comes.
func TestScheduleNeedsTheEventExport(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("deaf", schedule("1m"), probe(t))
	eventually(t, 20*time.Second, "the module to fail", func() bool {
		st := w.state("deaf")
		return st != nil && st.State == actorapi.StateFailed
	})
	if st := w.state("deaf"); !strings.Contains(st.LastError, "gnome_event") || !strings.Contains(st.LastError, "actor.schedule") {
		t.Errorf("failed with %q, want the missing export named", st.LastError)
	}
	// A version whose module receives events mends it.
	w.deploy("deaf", schedule("1m"), timersGuest(t))
	w.serving("deaf", 20*time.Second)
}

// A timer due while no worker holds the actor (its worker was killed: the
// lease expires rather than being released) fires once, late, on the
// worker that takes the actor over; a schedule that missed firings fires
// once for them all and goes on in its rhythm from then.
func TestTimersAcrossAKilledWorker(t *testing.T) {
	w := newWorld(t)
	w.tune.Timers.MinDelay = 10 * time.Millisecond
	w.tune.Timers.EveryDivisor = 20 // every 10s: every 500 ms
	w.tune.Timers.Retry = 50 * time.Millisecond
	a, crashA := w.crashableWorker()
	b, crashB := w.crashableWorker()
	w.deploy("moving", schedule("10s"), timersGuest(t))
	w.serving("moving", 20*time.Second)
	from, to := w.holder("moving", a, b)
	crash := crashA
	if from == b {
		crash = crashB
	}
	eventually(t, 10*time.Second, "a first firing", func() bool { return len(w.fired("moving", "tick")) > 0 })
	id := w.after("moving", 300, "failover", `{"k":1}`).json(t)["id"].(string)
	crash()
	crashedAt := time.Now()

	w.serving("moving", 20*time.Second)
	if l := w.lease("moving"); l == nil || l.Worker != to.d.InstanceID {
		t.Fatalf("lease after the crash: %+v, want %s", l, to.d.InstanceID)
	}
	eventually(t, 10*time.Second, "the timer to fire on the new worker", func() bool { return len(w.fired("moving", "failover")) > 0 })
	eventually(t, 10*time.Second, "two firings of the schedule on the new worker", func() bool { return len(w.fired("moving", "tick")) >= 2 })
	got := w.fired("moving", "failover")
	if len(got) != 1 || got[0].ID != id || string(got[0].Payload) != `{"k":1}` {
		t.Fatalf("the timer fired as %+v, want once", got)
	}
	if late := got[0].FiredAt.Sub(got[0].ScheduledAt); late <= 0 || got[0].ScheduledAt.After(crashedAt.Add(time.Second)) {
		t.Errorf("fired %v after it was due (due %v, crash %v): want it due during the failover", late, got[0].ScheduledAt, crashedAt)
	}
	ticks := w.fired("moving", "tick")
	// The first firing on the new worker stands for those missed (the
	// lease took seconds to expire, several intervals); the next is one
	// interval after it.
	if miss := ticks[0].FiredAt.Sub(ticks[0].ScheduledAt); miss < 500*time.Millisecond {
		t.Errorf("the first firing after the failover was %v late, want more than an interval", miss)
	}
	if gap := ticks[1].ScheduledAt.Sub(ticks[0].FiredAt); gap != 500*time.Millisecond {
		t.Errorf("the next firing was due %v after the catch-up, want one interval", gap)
	}
	if keys := w.timerKeys("moving"); len(keys) != 1 || keys[0] != schedKey("moving", "tick") {
		t.Errorf("keys after the failover: %v", keys)
	}
}

// Removing the actor removes its timers and schedules from the bucket.
func TestRetiredActorDropsItsTimers(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("gone", schedule("1m"), timersGuest(t))
	w.serving("gone", 20*time.Second)
	w.after("gone", 3600_000, "hour", "").json(t)
	if keys := w.timerKeys("gone"); len(keys) != 2 {
		t.Fatalf("keys: %v", keys)
	}
	w.remove("gone")
	eventually(t, 10*time.Second, "the timers to go", func() bool { return len(w.timerKeys("gone")) == 0 })
	kv, _ := w.d.JS.KeyValue(ctxT(t), bus.BucketActorTimers)
	if _, err := kv.Get(ctxT(t), schedKey("gone", "tick")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("schedule record after removal: %v", err)
	}
}

// Deleting an experiment removes its timers even when its actor runs
// nowhere (here: failed for good, without a lease), so a new experiment of
// the same slug inherits none.
func TestDeletedExperimentDropsTimersOfAnActorRunningNowhere(t *testing.T) {
	w := newWorld(t)
	w.worker()
	kv, err := w.d.JS.KeyValue(ctxT(t), bus.BucketActorTimers)
	if err != nil {
		t.Fatal(err)
	}
	w.deploy("orphan", nil, []byte("\x00asm\x01\x00\x00\x00"))
	eventually(t, 20*time.Second, "the broken module to fail", func() bool {
		st := w.state("orphan")
		return st != nil && st.State == actorapi.StateFailed
	})
	// A timer record as an earlier version's worker left it.
	if _, err := kv.Put(ctxT(t), "orphan.once.left-behind", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	w.remove("orphan")
	eventually(t, 10*time.Second, "the orphan's timers to go", func() bool { return len(w.timerKeys("orphan")) == 0 })
}
