package svc_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// probeEvent is what the background followers of these tests read.
type probeEvent struct {
	ID string `json:"id"`
}

// seenEvents keeps the events a handler saw and the contexts it saw them in.
type seenEvents struct {
	mu   sync.Mutex
	ids  []string
	ctxs []context.Context
}

func (s *seenEvents) handle(ctx context.Context, ev bus.Event[probeEvent]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, ev.Data.ID)
	s.ctxs = append(s.ctxs, ctx)
	return nil
}

func (s *seenEvents) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

func (s *seenEvents) has(id string) bool { return slices.Contains(s.list(), id) }

// waitFor polls cond every 10 ms for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loop is a background loop that says when it runs and when it returned,
// and with which context error.
type loop struct {
	running  chan struct{}
	returned chan struct{}
	err      error // written before returned is closed
}

func newLoop() *loop { return &loop{running: make(chan struct{}), returned: make(chan struct{})} }

func (l *loop) run(ctx context.Context) {
	close(l.running)
	<-ctx.Done()
	l.err = ctx.Err()
	close(l.returned)
}

// hasReturned reports, without waiting, whether the loop has returned.
func (l *loop) hasReturned() bool {
	select {
	case <-l.returned:
		return true
	default:
		return false
	}
}

// witness follows subject independently of the service under test: once it
// has a message, the service's own follower would have had it too.
func witness(t *testing.T, d *svc.Deps, subject string) *seenEvents {
	t.Helper()
	var w seenEvents
	f, err := bus.Follow(timeout(t, 10*time.Second), context.Background(), d.JS,
		bus.FollowOptions{Stream: bus.StreamEvents, Subjects: []string{subject}, Log: d.Log}, w.handle)
	if err != nil {
		t.Fatalf("witness follower: %v", err)
	}
	t.Cleanup(func() { f.Stop(timeout(t, 10*time.Second)) })
	return &w
}

// backgroundService is a Base whose Background hook starts l and a follower
// of subject into seen, then returns hookErr.
func backgroundService(d *svc.Deps, name, subject string, l *loop, seen *seenEvents, hookErr error) *svc.Base {
	return &svc.Base{
		Deps: d, ServiceName: name,
		Provision: func(ctx context.Context) error { return d.Topology.EnsureStreams(ctx, bus.StreamEvents) },
		Background: func(ctx context.Context, bg *svc.Background) error {
			bg.Go(l.run)
			f, err := bus.Follow(ctx, bg.Context(), d.JS,
				bus.FollowOptions{Stream: bus.StreamEvents, Subjects: []string{subject}, Log: d.Log}, seen.handle)
			if err != nil {
				return err
			}
			bg.Follow(f)
			return hookErr
		},
	}
}

func TestBackgroundRunsUntilStop(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	l := newLoop()
	var seen seenEvents
	b := backgroundService(d, "bgprobe", "events.bgprobe", l, &seen, nil)
	if err := b.Start(timeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = b.Stop(context.Background())
		}
	})

	select {
	case <-l.running:
	case <-time.After(15 * time.Second):
		t.Fatal("the background loop did not start")
	}
	if err := bus.Publish(timeout(t, 5*time.Second), d.JS, "events.bgprobe", "bg-1", probeEvent{ID: "while-running"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background follower to receive", func() bool { return seen.has("while-running") })
	if l.hasReturned() {
		t.Fatal("the loop returned while the service runs")
	}
	if _, err := bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject("bgprobe", "status"), struct{}{}); err != nil {
		t.Fatalf("status while running: %v", err)
	}

	if err := b.Stop(timeout(t, 15*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	// Stop waits for the loop: it must have returned already, on a
	// cancelled context.
	if !l.hasReturned() {
		t.Fatal("Stop returned before the background loop did")
	}
	if !errors.Is(l.err, context.Canceled) {
		t.Errorf("the loop's context ended with %v, want cancelled", l.err)
	}
	// The follower was made on bg.Context(): its handlers' contexts end
	// with the service.
	seen.mu.Lock()
	hctx := seen.ctxs[0]
	seen.mu.Unlock()
	if hctx.Err() == nil {
		t.Error("a handler's context outlives the service")
	}
	if _, err := bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject("bgprobe", "status"), struct{}{}); !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("status after Stop: %v, want no responders", err)
	}

	w := witness(t, d, "events.bgprobe")
	if err := bus.Publish(timeout(t, 5*time.Second), d.JS, "events.bgprobe", "bg-2", probeEvent{ID: "after-stop"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the witness to receive the later event", func() bool { return w.has("after-stop") })
	if got := seen.list(); !slices.Equal(got, []string{"while-running"}) {
		t.Errorf("the stopped service's follower handled %v, want only the event before Stop", got)
	}

	if err := b.Stop(timeout(t, 5*time.Second)); err != nil {
		t.Errorf("a second Stop: %v, want nil", err)
	}
}

func TestBackgroundHookFailureFailsStart(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	boom := errors.New("boom")
	l := newLoop()
	var seen seenEvents
	b := backgroundService(d, "bgfail", "events.bgfail", l, &seen, boom)
	t.Cleanup(func() { _ = b.Stop(context.Background()) })

	if err := b.Start(timeout(t, 30*time.Second)); !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want the Background hook's error", err)
	}
	// What the hook had started is ended before Start returns.
	if !l.hasReturned() {
		t.Error("the loop started by the failed hook still runs after Start returned")
	} else if !errors.Is(l.err, context.Canceled) {
		t.Errorf("the loop's context ended with %v, want cancelled", l.err)
	}
	_, err := bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject("bgfail", "status"), struct{}{})
	if ae := apierr.From(err); ae.Code != apierr.CodeUnavailable {
		t.Errorf("a service whose Background hook failed still answers: %v", err)
	}

	w := witness(t, d, "events.bgfail")
	if err := bus.Publish(timeout(t, 5*time.Second), d.JS, "events.bgfail", "bf-1", probeEvent{ID: "after-failure"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the witness to receive the event", func() bool { return w.has("after-failure") })
	if got := seen.list(); len(got) != 0 {
		t.Errorf("the follower of a service that failed to start handled %v", got)
	}
	if err := b.Stop(timeout(t, 5*time.Second)); err != nil {
		t.Errorf("Stop after a failed Start: %v, want nil", err)
	}
}

func TestBackgroundInAGroup(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	l := newLoop()
	var seen seenEvents
	b := backgroundService(d, "bggroup", "events.bggroup", l, &seen, nil)
	// testenv.Run stops the group at cleanup and fails the test if Stop
	// returns an error; the check below runs after it.
	t.Cleanup(func() {
		if !l.hasReturned() {
			t.Error("the loop still runs after the group stopped")
		}
	})
	testenv.Run(t, d, b)
	if err := bus.Publish(timeout(t, 5*time.Second), d.JS, "events.bggroup", "bgg-1", probeEvent{ID: "in-group"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower of a service started by a group", func() bool { return seen.has("in-group") })
}
