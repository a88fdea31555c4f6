package actorhost

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// quietHost is a host with no operations.
type quietHost struct{}

func (quietHost) Log(context.Context, int, string) {}
func (quietHost) Call(_ context.Context, op string, _ []byte) ([]byte, error) {
	return nil, errors.New("no operation " + op)
}

func timerEnvelope(name string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "timer", "timer": map[string]any{
		"name": name, "scheduled_at": time.Now().UTC(), "fired_at": time.Now().UTC(),
	}})
	return b
}

func eventCount(t *testing.T, inst *Instance) int {
	t.Helper()
	out, err := inst.Handle(context.Background(), []byte(`{"method":"GET","path":"/count","query":"","headers":{},"body":"","caller":{"email":"","roles":[],"anonymous":true},"request_id":"r"}`))
	if err != nil {
		t.Fatalf("GET /count: %v", err)
	}
	var res struct{ Body []byte }
	var body struct{ Count int }
	if json.Unmarshal(out, &res) != nil || json.Unmarshal(res.Body, &body) != nil {
		t.Fatalf("GET /count answered %s", out)
	}
	return body.Count
}

// Events reach gnome_event between calls; the actor's refusal leaves the
// instance sound, a trap or a timeout breaks it as in a call.
func TestEvents(t *testing.T) {
	m := compile(t, testdataGuest(t, "events"), Limits{Timeout: 500 * time.Millisecond})
	if !m.HasEvents() {
		t.Fatal("the SDK guest does not export gnome_event")
	}
	inst := instantiate(t, m, "events", quietHost{}, Init{Slug: "events", Version: 1}, nil)
	ctx := context.Background()
	for range 3 {
		if err := inst.Event(ctx, timerEnvelope("tick")); err != nil {
			t.Fatalf("event: %v", err)
		}
	}
	var refused *EventError
	if err := inst.Event(ctx, timerEnvelope("refuse")); !errors.As(err, &refused) || refused.Message != "not now" {
		t.Fatalf("refusal: %v", err)
	}
	if err := inst.Event(ctx, timerEnvelope("panic")); !errors.As(err, &refused) || refused.Code != "internal" {
		t.Fatalf("panic in the handler: %v", err)
	}
	if err := inst.Event(ctx, []byte(`{"type":"ws.open"}`)); !errors.As(err, &refused) {
		t.Fatalf("a type without a handler: %v", err)
	}
	if n := eventCount(t, inst); n != 3 || inst.Broken() != nil {
		t.Fatalf("count %d, broken %v: want 3 events and a sound instance", n, inst.Broken())
	}

	start := time.Now()
	if err := inst.Event(ctx, timerEnvelope("sleep")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("an endless event: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the endless event took %v under a 500 ms limit", took)
	}
	if err := inst.Event(ctx, timerEnvelope("tick")); !errors.Is(err, ErrBroken) {
		t.Fatalf("after a timeout: %v", err)
	}

	other := instantiate(t, m, "events-exit", quietHost{}, Init{Slug: "events", Version: 1}, nil)
	if err := other.Event(ctx, timerEnvelope("exit")); !errors.Is(err, ErrExited) || other.Broken() == nil {
		t.Fatalf("exit in an event: %v", err)
	}
}

// A module without the export says so, and an event sent to it anyway
// fails without entering it.
func TestEventsWithoutTheExport(t *testing.T) {
	m := compile(t, testdataGuest(t, "rawabi"), Limits{})
	if m.HasEvents() {
		t.Fatal("the raw ABI guest reports gnome_event")
	}
	inst := instantiate(t, m, "raw", quietHost{}, Init{Slug: "raw", Version: 1}, nil)
	if err := inst.Event(context.Background(), timerEnvelope("tick")); !errors.Is(err, ErrMissingExport) {
		t.Fatalf("event without the export: %v", err)
	}
}
