package actorsdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Timer is a timer event: a schedule of the manifest's actor.schedule
// firing, or a timer the actor set with After.
type Timer struct {
	// ID is the timer's ID as After returned it; "" for a schedule.
	ID string `json:"id,omitempty"`
	// Name is the schedule's name, or the name given to After.
	Name string `json:"name"`
	// Schedule is true for a schedule of the manifest.
	Schedule bool `json:"schedule,omitempty"`
	// Payload is the JSON given with it (null when none); Decode reads it.
	Payload json.RawMessage `json:"payload,omitempty"`
	// ScheduledAt is when it was due; FiredAt when the platform fired it
	// (later when the actor was restarting or moving to another worker).
	ScheduledAt time.Time `json:"scheduled_at"`
	FiredAt     time.Time `json:"fired_at"`
}

// Decode reads the timer's payload into v.
func (t Timer) Decode(v any) error {
	if len(t.Payload) == 0 {
		return json.Unmarshal([]byte("null"), v)
	}
	return json.Unmarshal(t.Payload, v)
}

// Event is the event envelope the platform hands the actor's gnome_event
// export: Type says which member is present ("timer" today).
type Event struct {
	Type  string `json:"type"`
	Timer *Timer `json:"timer,omitempty"`
	// Raw is the whole envelope, for event types this SDK does not know.
	Raw json.RawMessage `json:"-"`
}

var (
	timerHooks []func(Timer) error
	eventHooks []func(Event) error
)

// OnTimer registers f to run for each timer event. An error is logged by
// the platform and counted as a failed firing; the timer is not fired
// again (timers fire at most once per due time).
//
//	actorsdk.OnTimer(func(t actorsdk.Timer) error {
//		if t.Name == "cleanup" { return cleanup() }
//		return nil
//	})
func OnTimer(f func(Timer) error) { timerHooks = append(timerHooks, f) }

// OnEvent registers f to run for every event, whatever its type, after the
// handlers of its type. Live events (open, message, close) reach it only
// when the actor has a live handler (OnOpen, OnMessage, OnClose) and they
// accepted the event.
func OnEvent(f func(Event) error) { eventHooks = append(eventHooks, f) }

// After asks the platform to hand the actor a timer event named name with
// payload (any value encoding/json renders; nil for none) after delay, and
// returns its ID for CancelTimer. The timer outlives the instance: it fires
// on whichever worker holds the actor then. Bounds (docs/actors.md,
// section 5): a delay of 1 s to 30 days, 1,000 pending timers per actor, a
// payload of 16 KiB of JSON; beyond them it is a *HostError.
func After(delay time.Duration, name string, payload any) (string, error) {
	req := struct {
		DelayMS int64  `json:"delay_ms"`
		Name    string `json:"name,omitempty"`
		Payload any    `json:"payload,omitempty"`
	}{delay.Milliseconds(), name, payload}
	var res struct {
		ID string `json:"id"`
	}
	if err := Call("timer.set", req, &res); err != nil {
		return "", err
	}
	return res.ID, nil
}

// CancelTimer cancels the pending timer id; cancelled is false when it had
// fired already, was cancelled before, or never existed.
func CancelTimer(id string) (cancelled bool, err error) {
	var res struct {
		Cancelled bool `json:"cancelled"`
	}
	err = Call("timer.cancel", struct {
		ID string `json:"id"`
	}{id}, &res)
	return res.Cancelled, err
}

// event handles one event envelope and returns nil, or the error envelope
// that reports its failure.
func event(env []byte) []byte {
	live, liveErr := decodeLive(env)
	if liveErr == nil && isLiveType(live.typ) {
		handled, err := liveEvent(live)
		if !handled {
			return errorEnvelope(CodeNotFound, "the actor has no live handlers (actorsdk.OnOpen, OnMessage, OnClose)")
		}
		for _, f := range eventHooks {
			if err != nil {
				break
			}
			err = run(func() error { return f(Event{Type: liveType(live.typ), Raw: env}) })
		}
		return eventFailure(err)
	}
	var ev Event
	if err := json.Unmarshal(env, &ev); err != nil {
		return errorEnvelope(CodeBadRequest, "the event envelope is malformed: "+err.Error())
	}
	if liveErr != nil && isLiveType(ev.Type) {
		return errorEnvelope(CodeBadRequest, "the live event envelope is malformed: "+liveErr.Error())
	}
	ev.Raw = env
	handled := false
	var err error
	switch ev.Type {
	case "timer":
		if ev.Timer == nil {
			return errorEnvelope(CodeBadRequest, "the timer event has no timer")
		}
		for _, f := range timerHooks {
			handled = true
			if err = run(func() error { return f(*ev.Timer) }); err != nil {
				break
			}
		}
	}
	for _, f := range eventHooks {
		if err != nil {
			break
		}
		handled = true
		err = run(func() error { return f(ev) })
	}
	if err != nil {
		return eventFailure(err)
	}
	if !handled {
		return errorEnvelope(CodeNotFound, fmt.Sprintf("the actor has no handler of %q events (actorsdk.OnTimer, actorsdk.OnEvent)", ev.Type))
	}
	return nil
}

// eventFailure is the error envelope of a handler's error, nil for none: a
// *HostError keeps its code and message (Refuse), any other error is
// internal.
func eventFailure(err error) []byte {
	if err == nil {
		return nil
	}
	var he *HostError
	if errors.As(err, &he) {
		if he.Op == "" {
			return errorEnvelope(he.Code, he.Message)
		}
		return errorEnvelope(he.Code, err.Error())
	}
	return errorEnvelope(CodeInternal, err.Error())
}

// run calls f, turning a panic into an error: a handler's panic should
// fail its event, not end the instance.
func run(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}
