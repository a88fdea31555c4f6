package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// followStream is the stream every follower test reads. It is a plain
// limits stream of its own, so that the tests do not depend on the
// platform's topology, with a duplicate window long enough for the
// de-duplication test on a slow machine.
const followStream = "FOLLOW"

// note is the event type the followers decode.
type note struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

// streamJS opens a JetStream context on its own connection and makes sure
// the test stream exists.
func streamJS(t *testing.T, env *testenv.Env, name string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, env, name))
	if err != nil {
		t.Fatal(err)
	}
	_, err = js.CreateOrUpdateStream(timeout(t, 10*time.Second), jetstream.StreamConfig{
		Name: followStream, Subjects: []string{"follow.>"}, Storage: jetstream.FileStorage, Duplicates: 5 * time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return js
}

// follow starts a follower and stops it at cleanup (before the connection
// closes, since cleanups run in reverse).
func follow(t *testing.T, js jetstream.JetStream, base context.Context, o bus.FollowOptions, fn func(context.Context, bus.Event[note]) error) *bus.Follower {
	t.Helper()
	if o.Stream == "" {
		o.Stream = followStream
	}
	if o.Log == nil {
		o.Log = quiet
	}
	f, err := bus.Follow(timeout(t, 10*time.Second), base, js, o, fn)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	t.Cleanup(func() { f.Stop(timeout(t, 10*time.Second)) })
	return f
}

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, subject, msgID string, v any) {
	t.Helper()
	if err := bus.Publish(ctx, js, subject, msgID, v); err != nil {
		t.Fatalf("Publish %s: %v", msgID, err)
	}
}

// waitUntil polls cond every 10 ms up to d: followers on a busy machine may
// need longer than the 5 s of eventually, redeliveries especially.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder keeps the IDs of the notes a handler saw, in order.
type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func (r *recorder) has(id string) bool { return slices.Contains(r.seen(), id) }

func (r *recorder) handler(_ context.Context, ev bus.Event[note]) error {
	r.add(ev.Data.ID)
	return nil
}

func consumerInfo(t *testing.T, js jetstream.JetStream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(timeout(t, 5*time.Second), followStream, durable)
	if err != nil {
		t.Fatalf("consumer %s: %v", durable, err)
	}
	info, err := c.Info(timeout(t, 5*time.Second))
	if err != nil {
		t.Fatalf("consumer %s info: %v", durable, err)
	}
	return info
}

// settled is true once the durable has delivered everything and holds no
// unacknowledged message.
func settled(t *testing.T, js jetstream.JetStream, durable string) func() bool {
	return func() bool {
		info := consumerInfo(t, js, durable)
		return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	}
}

// useW3CTracing installs a real SDK tracer provider and the W3C trace
// context propagator for the test, as a service does at start, and puts
// back what was there after.
func useW3CTracing(t *testing.T) *sdktrace.TracerProvider {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})
	return tp
}

func TestOrderedFollowerGetsTheEventInThePublishersContext(t *testing.T) {
	tp := useW3CTracing(t)
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-ordered")

	type baseKey struct{}
	base := context.WithValue(context.Background(), baseKey{}, "from base")
	type seen struct {
		ev          bus.Event[note]
		sc          trace.SpanContext
		rid         string
		base        any
		deadline    time.Time
		hasDeadline bool
	}
	got := make(chan seen, 4)
	follow(t, js, base, bus.FollowOptions{Subjects: []string{"follow.ordered"}, Timeout: 30 * time.Second},
		func(ctx context.Context, ev bus.Event[note]) error {
			dl, ok := ctx.Deadline()
			got <- seen{ev, trace.SpanContextFromContext(ctx), telemetry.RequestID(ctx), ctx.Value(baseKey{}), dl, ok}
			return nil
		})

	ctx, span := tp.Tracer("libs/bus/follow_test").Start(context.Background(), "publisher")
	ctx = telemetry.WithRequestID(ctx, "req-follow-0001")
	published := time.Now()
	publish(t, ctx, js, "follow.ordered", "msg-1", note{ID: "one", N: 7})
	span.End()

	var s seen
	select {
	case s = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not receive the message")
	}
	if s.ev.Data != (note{ID: "one", N: 7}) {
		t.Errorf("data %+v, want the published note", s.ev.Data)
	}
	if s.ev.Subject != "follow.ordered" {
		t.Errorf("subject %q", s.ev.Subject)
	}
	if s.ev.Time.IsZero() {
		t.Error("the event has no stream time")
	} else if d := s.ev.Time.Sub(published); d < -time.Minute || d > time.Minute {
		t.Errorf("stream time %v is far from the publication at %v", s.ev.Time, published)
	}
	if s.rid != "req-follow-0001" {
		t.Errorf("handler request ID %q, want the publisher's", s.rid)
	}
	if !s.sc.IsValid() || s.sc.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("handler trace %s, want the publisher's %s", s.sc.TraceID(), span.SpanContext().TraceID())
	}
	if !s.sc.IsRemote() {
		t.Error("the handler's span context is not marked remote")
	}
	if s.base != "from base" {
		t.Errorf("the handler's context does not derive from base: %v", s.base)
	}
	if !s.hasDeadline || time.Until(s.deadline) > 30*time.Second {
		t.Errorf("handler deadline %v (set %v), want one within the 30 s Timeout", s.deadline, s.hasDeadline)
	}

	// A message published without a trace or request ID must not inherit
	// the previous message's.
	publish(t, context.Background(), js, "follow.ordered", "msg-2", note{ID: "two"})
	select {
	case s = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not receive the second message")
	}
	if s.ev.Data.ID != "two" || s.rid != "" || s.sc.IsValid() {
		t.Errorf("second message: data %+v, request ID %q, trace valid %v; want no request ID and no trace", s.ev.Data, s.rid, s.sc.IsValid())
	}
}

func TestPublishWithTheSameMsgIDIsStoredOnce(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-dedup")
	var rec recorder
	follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.dedup"}}, rec.handler)

	ctx := timeout(t, 10*time.Second)
	publish(t, ctx, js, "follow.dedup", "same-id", note{ID: "first"})
	// A retried publication, even with another body, is the same message.
	publish(t, ctx, js, "follow.dedup", "same-id", note{ID: "retry"})
	s, err := js.Stream(ctx, followStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("the stream holds %d messages, want 1", info.State.Msgs)
	}

	// An ordered follower gets messages in stream order: once a later
	// message arrived, a duplicate would have arrived before it.
	publish(t, ctx, js, "follow.dedup", "other-id", note{ID: "later"})
	waitUntil(t, 15*time.Second, "the later message", func() bool { return rec.has("later") })
	if got := rec.seen(); !slices.Equal(got, []string{"first", "later"}) {
		t.Errorf("follower saw %v, want [first later]", got)
	}
}

func TestOrderedFollowerStartsAtNewMessages(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-new")
	ctx := timeout(t, 10*time.Second)
	publish(t, ctx, js, "follow.new", "old-1", note{ID: "old"})

	var rec recorder
	follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.new"}}, rec.handler)
	publish(t, ctx, js, "follow.new", "new-1", note{ID: "new"})
	waitUntil(t, 15*time.Second, "the new message", func() bool { return rec.has("new") })
	// In stream order the old message would have come first.
	if got := rec.seen(); !slices.Equal(got, []string{"new"}) {
		t.Errorf("follower saw %v, want only the message published after Follow", got)
	}
}

func TestOrderedFollowerFiltersSubjectsAndDoesNotRetry(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-noretry")
	var calls recorder
	follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.mine"}},
		func(_ context.Context, ev bus.Event[note]) error {
			calls.add(ev.Data.ID)
			if ev.Data.ID == "fails" {
				return errors.New("handler failed")
			}
			return nil
		})
	ctx := timeout(t, 10*time.Second)
	publish(t, ctx, js, "follow.mine", "f-1", note{ID: "fails"})
	publish(t, ctx, js, "follow.other", "o-1", note{ID: "elsewhere"})
	publish(t, ctx, js, "follow.mine", "g-1", note{ID: "good"})
	publish(t, ctx, js, "follow.mine", "g-2", note{ID: "good2"})
	waitUntil(t, 15*time.Second, "the messages after the failure", func() bool { return calls.has("good2") })
	if got := calls.seen(); !slices.Equal(got, []string{"fails", "good", "good2"}) {
		t.Errorf("handler calls %v, want [fails good good2]: one call each, none for another subject", got)
	}
}

func TestDurableFollowerRetriesAFailedMessage(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-retry")
	const retry = 300 * time.Millisecond
	var mu sync.Mutex
	var attempts []time.Time
	var succeeded atomic.Int32
	follow(t, js, context.Background(), bus.FollowOptions{
		Subjects: []string{"follow.retry"},
		Durable:  &jetstream.ConsumerConfig{Durable: "retrier", AckPolicy: jetstream.AckExplicitPolicy},
		Retry:    retry,
	}, func(_ context.Context, ev bus.Event[note]) error {
		mu.Lock()
		attempts = append(attempts, time.Now())
		n := len(attempts)
		mu.Unlock()
		if n == 1 {
			return errors.New("not this time")
		}
		succeeded.Add(1)
		return nil
	})
	publish(t, timeout(t, 10*time.Second), js, "follow.retry", "r-1", note{ID: "flaky"})
	waitUntil(t, 20*time.Second, "the retried message to succeed", func() bool { return succeeded.Load() == 1 })
	// Acknowledged: nothing pending, and the message does not come a third time.
	waitUntil(t, 20*time.Second, "the consumer to settle", func() bool {
		info := consumerInfo(t, js, "retrier")
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("handler called %d times, want 2 (a failure, then the retry)", len(attempts))
	}
	if gap := attempts[1].Sub(attempts[0]); gap < retry-50*time.Millisecond {
		t.Errorf("the retry came after %v, before the %v Retry delay", gap, retry)
	}
}

func TestDurableFollowerDropsUndecodableMessages(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-drop")
	var rec recorder
	follow(t, js, context.Background(), bus.FollowOptions{
		Subjects: []string{"follow.drop"},
		Durable:  &jetstream.ConsumerConfig{Durable: "dropper", AckPolicy: jetstream.AckExplicitPolicy},
		Retry:    50 * time.Millisecond,
	}, rec.handler)
	ctx := timeout(t, 10*time.Second)
	// Not JSON at all, and JSON of the wrong shape for a note.
	for _, raw := range []string{"not json", `"a string"`, `{"id": 12}`} {
		if _, err := js.Publish(ctx, "follow.drop", []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, ctx, js, "follow.drop", "good-1", note{ID: "good1"})
	publish(t, ctx, js, "follow.drop", "good-2", note{ID: "good2"})
	waitUntil(t, 15*time.Second, "the good messages", func() bool { return len(rec.seen()) == 2 })
	// Dropped messages are terminated: none waits for an acknowledgement or
	// comes again (the default ack wait of 30 s would keep them pending).
	waitUntil(t, 15*time.Second, "the consumer to settle", settled(t, js, "dropper"))
	info := consumerInfo(t, js, "dropper")
	if info.AckFloor.Stream != 5 || info.Delivered.Stream != 5 {
		t.Errorf("ack floor %d, delivered %d; want all 5 messages done", info.AckFloor.Stream, info.Delivered.Stream)
	}
	if got := rec.seen(); !slices.Equal(got, []string{"good1", "good2"}) {
		t.Errorf("handler saw %v, want only the decodable messages", got)
	}
}

func TestDurableFollowersShareEachMessageOnce(t *testing.T) {
	env := testenv.Start(t)
	jsA := streamJS(t, env, "follow-shared-a")
	jsB := streamJS(t, env, "follow-shared-b")
	durable := jetstream.ConsumerConfig{Durable: "shared", AckPolicy: jetstream.AckExplicitPolicy}
	var mu sync.Mutex
	handled := map[string]int{}
	by := map[string]int{}
	handler := func(who string) func(context.Context, bus.Event[note]) error {
		return func(_ context.Context, ev bus.Event[note]) error {
			mu.Lock()
			defer mu.Unlock()
			handled[ev.Data.ID]++
			by[who]++
			return nil
		}
	}
	for who, js := range map[string]jetstream.JetStream{"a": jsA, "b": jsB} {
		d := durable
		follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.shared"}, Durable: &d, Retry: 50 * time.Millisecond}, handler(who))
	}
	const n = 40
	ctx := timeout(t, 20*time.Second)
	for i := range n {
		publish(t, ctx, jsA, "follow.shared", fmt.Sprintf("s-%d", i), note{ID: fmt.Sprintf("m%02d", i), N: i})
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		sum := 0
		for _, c := range handled {
			sum += c
		}
		return sum
	}
	waitUntil(t, 20*time.Second, "every message to be handled", func() bool { return total() >= n })
	waitUntil(t, 20*time.Second, "the consumer to settle", settled(t, jsA, "shared"))
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != n {
		t.Errorf("%d distinct messages handled, want %d", len(handled), n)
	}
	for id, c := range handled {
		if c != 1 {
			t.Errorf("message %s handled %d times", id, c)
		}
	}
	t.Logf("handled by instance: %v", by)
}

func TestStoppedOrderedFollowerHandlesNothingMore(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-stop")
	entered := make(chan struct{})
	release := make(chan struct{})
	var stoppedCalls, inHandler atomic.Int32
	stopped := follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.stop"}},
		func(_ context.Context, ev bus.Event[note]) error {
			inHandler.Add(1)
			defer inHandler.Add(-1)
			if stoppedCalls.Add(1) == 1 {
				close(entered)
				<-release
			}
			return nil
		})
	var witness recorder
	follow(t, streamJS(t, env, "follow-stop-witness"), context.Background(), bus.FollowOptions{Subjects: []string{"follow.stop"}}, witness.handler)

	ctx := timeout(t, 10*time.Second)
	publish(t, ctx, js, "follow.stop", "m-1", note{ID: "before-stop"})
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not receive the first message")
	}
	done := make(chan int32, 1)
	stopCtx := timeout(t, 10*time.Second)
	go func() {
		stopped.Stop(stopCtx)
		done <- inHandler.Load()
	}()
	// Stop waits for the message being handled.
	select {
	case <-done:
		t.Fatal("Stop returned while a handler was running")
	default:
	}
	close(release)
	select {
	case running := <-done:
		if running != 0 {
			t.Errorf("%d handlers still running when Stop returned", running)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop did not return after the handler finished")
	}

	publish(t, ctx, js, "follow.stop", "m-2", note{ID: "after-stop"})
	waitUntil(t, 15*time.Second, "the witness to receive the later message", func() bool { return witness.has("after-stop") })
	if n := stoppedCalls.Load(); n != 1 {
		t.Errorf("the stopped follower handled %d messages, want only the one before Stop", n)
	}
}

func TestStoppedDurableFollowerHandlesNothingMore(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-stop-durable")
	// A short ack wait: a message the server already sent towards the
	// stopped follower comes again to the next one instead of after 30 s.
	durable := jetstream.ConsumerConfig{Durable: "stopper", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second}
	var first recorder
	d1 := durable
	f := follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.dstop"}, Durable: &d1, Retry: 50 * time.Millisecond}, first.handler)
	ctx := timeout(t, 10*time.Second)
	publish(t, ctx, js, "follow.dstop", "d-1", note{ID: "before-stop"})
	waitUntil(t, 15*time.Second, "the first message", func() bool { return first.has("before-stop") })
	f.Stop(timeout(t, 10*time.Second))

	publish(t, ctx, js, "follow.dstop", "d-2", note{ID: "after-stop"})
	var second recorder
	d2 := durable
	follow(t, streamJS(t, env, "follow-stop-durable-2"), context.Background(), bus.FollowOptions{Subjects: []string{"follow.dstop"}, Durable: &d2, Retry: 50 * time.Millisecond}, second.handler)
	waitUntil(t, 20*time.Second, "the next instance to receive the later message", func() bool { return second.has("after-stop") })
	if got := first.seen(); !slices.Equal(got, []string{"before-stop"}) {
		t.Errorf("the stopped follower handled %v, want only the message before Stop", got)
	}
	if got := second.seen(); !slices.Equal(got, []string{"after-stop"}) {
		t.Errorf("the next instance handled %v, want only the message after Stop (the first was acknowledged)", got)
	}
}

func TestStopGivesUpWaitingAtItsDeadline(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-stuck")
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	f := follow(t, js, context.Background(), bus.FollowOptions{Subjects: []string{"follow.stuck"}},
		func(context.Context, bus.Event[note]) error {
			once.Do(func() { close(entered) })
			<-release
			return nil
		})
	// Registered after follow's cleanup, so it runs first and lets the
	// handler end before that cleanup stops the follower again.
	t.Cleanup(func() { close(release) })
	publish(t, timeout(t, 10*time.Second), js, "follow.stuck", "x-1", note{ID: "stuck"})
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the follower did not receive the message")
	}
	returned := make(chan struct{})
	stopCtx := timeout(t, 100*time.Millisecond)
	go func() {
		f.Stop(stopCtx)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop kept waiting for a stuck handler past its context's deadline")
	}
}

func TestFollowOnAMissingStreamFails(t *testing.T) {
	env := testenv.Start(t)
	js, err := jetstream.New(connect(t, env, "follow-missing"))
	if err != nil {
		t.Fatal(err)
	}
	for name, durable := range map[string]*jetstream.ConsumerConfig{
		"ordered": nil,
		"durable": {Durable: "nobody", AckPolicy: jetstream.AckExplicitPolicy},
	} {
		_, err := bus.Follow(timeout(t, 10*time.Second), context.Background(), js, bus.FollowOptions{
			Stream: "ABSENT", Subjects: []string{"absent.x"}, Durable: durable, Log: quiet,
		}, func(context.Context, bus.Event[note]) error { return nil })
		if err == nil {
			t.Errorf("%s follower of a missing stream: no error", name)
		}
	}
}

func TestPublishRefusesAnUnencodableValue(t *testing.T) {
	env := testenv.Start(t)
	js := streamJS(t, env, "follow-encode")
	if err := bus.Publish(timeout(t, 5*time.Second), js, "follow.encode", "e-1", func() {}); err == nil {
		t.Error("Publish of a func value: no error")
	}
}
