package actorhost

import (
	"context"
	"encoding/json"
	"fmt"
)

// Events: besides requests, the platform hands an actor events (a timer
// firing today; later the open, message and close of live connections)
// through an optional export, added to ABI version 1 without changing it:
//
//	gnome_event(ptr i32, len i32) -> i64
//	                                    handles the event envelope at ptr,len
//	                                    ({"type": "timer", "timer": {...}};
//	                                    type says which member is present) and
//	                                    returns 0, or ptr<<32 | len of an error
//	                                    envelope {"error":{"code","message"}}
//
// Modules built before it keep working: only a module that asks for events
// (a schedule in its manifest) must export it, and the worker refuses such a
// module without it when it loads.

// EventExport is the name of the optional event export.
const EventExport = "gnome_event"

// EventError is an actor's refusal of an event, from its error envelope.
// Unlike a trap it leaves the instance sound.
type EventError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *EventError) Error() string {
	return "the actor refused the event: " + e.Code + ": " + e.Message
}

// HasEvents reports whether the module exports gnome_event.
func (m *Module) HasEvents() bool {
	_, ok := m.compiled.ExportedFunctions()[EventExport]
	return ok
}

// Event delivers one event envelope, serialised with calls (an instance is
// never entered twice at once) and bounded by the call time limit. An
// *EventError is the actor's own refusal; any other error (ErrTimeout,
// ErrTrap, a malformed result, a module without the export) breaks the
// instance, as it does for Handle.
func (i *Instance) Event(ctx context.Context, env []byte) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.broken != nil {
		return fmt.Errorf("%w: %v", ErrBroken, i.broken)
	}
	fn := i.mod.ExportedFunction(EventExport)
	if fn == nil {
		return fmt.Errorf("%w: %s", ErrMissingExport, EventExport)
	}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, stateKey{}, i.state), i.m.limits.Timeout)
	defer cancel()
	i.runningMu.Lock()
	i.running = cancel
	i.runningMu.Unlock()
	defer func() {
		i.runningMu.Lock()
		i.running = nil
		i.runningMu.Unlock()
	}()
	i.state.begin(cctx)
	res, err := i.invoke(cctx, fn, env)
	i.state.end()
	if err != nil {
		i.broken = err
		return err
	}
	if res == nil {
		return nil
	}
	var e struct {
		Error *EventError `json:"error"`
	}
	if json.Unmarshal(res, &e) != nil || e.Error == nil || e.Error.Code == "" {
		err := fmt.Errorf("%w: the event's result is neither 0 nor an error envelope", ErrBadResponse)
		i.broken = err
		return err
	}
	return e.Error
}
