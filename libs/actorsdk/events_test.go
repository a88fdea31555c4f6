package actorsdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func resetEvents(t *testing.T) {
	saved, savedEv := timerHooks, eventHooks
	timerHooks, eventHooks = nil, nil
	t.Cleanup(func() { timerHooks, eventHooks = saved, savedEv })
}

func eventError(t *testing.T, out []byte) (code, msg string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an error envelope: %s", out)
	}
	return e.Error.Code, e.Error.Message
}

func TestTimerEvent(t *testing.T) {
	resetEvents(t)
	var got Timer
	OnTimer(func(tm Timer) error { got = tm; return nil })
	var types []string
	OnEvent(func(e Event) error { types = append(types, e.Type); return nil })
	env := `{"type":"timer","timer":{"id":"t1","name":"ping","payload":{"n":3},"scheduled_at":"2026-01-02T03:04:05Z","fired_at":"2026-01-02T03:04:06.5Z"}}`
	if out := event([]byte(env)); out != nil {
		t.Fatalf("event refused: %s", out)
	}
	var p struct{ N int }
	if err := got.Decode(&p); err != nil || p.N != 3 || got.ID != "t1" || got.Name != "ping" || got.Schedule {
		t.Fatalf("timer: %+v payload %+v %v", got, p, err)
	}
	if !got.ScheduledAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || got.FiredAt.Sub(got.ScheduledAt) != 1500*time.Millisecond {
		t.Errorf("times: %v %v", got.ScheduledAt, got.FiredAt)
	}
	if len(types) != 1 || types[0] != "timer" {
		t.Errorf("OnEvent saw %v", types)
	}
}

func TestEventFailures(t *testing.T) {
	resetEvents(t)
	if code, msg := eventError(t, event([]byte(`{"type":"timer","timer":{"name":"x"}}`))); code != CodeNotFound || !strings.Contains(msg, "OnTimer") {
		t.Errorf("no handler: %s %s", code, msg)
	}
	if code, _ := eventError(t, event([]byte(`{"type":`))); code != CodeBadRequest {
		t.Errorf("malformed: %s", code)
	}
	OnTimer(func(tm Timer) error {
		if tm.Name == "boom" {
			panic("boom")
		}
		return &HostError{Code: CodeConflict, Message: "no"}
	})
	if code, msg := eventError(t, event([]byte(`{"type":"timer","timer":{"name":"boom"}}`))); code != CodeInternal || !strings.Contains(msg, "panic: boom") {
		t.Errorf("panic: %s %s", code, msg)
	}
	if code, _ := eventError(t, event([]byte(`{"type":"timer","timer":{"name":"x"}}`))); code != CodeConflict {
		t.Errorf("host error code: %s", code)
	}
	if code, _ := eventError(t, event([]byte(`{"type":"timer"}`))); code != CodeBadRequest {
		t.Errorf("timer missing: %s", code)
	}
	// A type this SDK does not know reaches OnEvent with its envelope.
	var raw string
	OnEvent(func(e Event) error { raw = string(e.Raw); return errors.New("later") })
	if code, _ := eventError(t, event([]byte(`{"type":"ws.open","ws":{}}`))); code != CodeInternal || !strings.Contains(raw, "ws.open") {
		t.Errorf("unknown type: %s %q", code, raw)
	}
}

func TestAfterAndCancel(t *testing.T) {
	f := useFakeHost(t, func(op, req string) string {
		if op == "timer.set" {
			return `{"ok":{"id":"tm_1"}}`
		}
		return `{"ok":{"cancelled":true}}`
	})
	id, err := After(1500*time.Millisecond, "ping", map[string]int{"n": 1})
	if err != nil || id != "tm_1" {
		t.Fatalf("After: %q %v", id, err)
	}
	if ok, err := CancelTimer(id); !ok || err != nil {
		t.Fatalf("CancelTimer: %v %v", ok, err)
	}
	if f.ops[0] != "timer.set" || f.reqs[0] != `{"delay_ms":1500,"name":"ping","payload":{"n":1}}` || f.reqs[1] != `{"id":"tm_1"}` {
		t.Errorf("requests: %v %v", f.ops, f.reqs)
	}
}
