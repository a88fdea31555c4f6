package actorworker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// update changes the actor's state and writes it to actor_state. Writes
// are serialised by the actor's lock, so the last one written is the
// latest.
func (a *actor) update(fn func(*actorapi.State)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(&a.state)
	a.state.UpdatedAt = time.Now().UTC()
	a.moveGauge(a.state.State)
	a.dirty = false
	a.s.putState(a.key, a.state)
}

// setGauge moves the actor to another state in the actors-by-state metric
// ("" takes it out).
func (a *actor) setGauge(state string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.moveGauge(state)
}

func (a *actor) moveGauge(state string) {
	if state == a.gauge {
		return
	}
	if a.gauge != "" {
		a.s.metrics.actors.WithLabelValues(a.gauge).Dec()
	}
	if state != "" {
		a.s.metrics.actors.WithLabelValues(state).Inc()
	}
	a.gauge = state
}

// flush writes the state if calls were counted since the last write.
func (a *actor) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	// An ending actor writes its last state itself: a count flushed after
	// it let go of the lease could overwrite the state of the instance
	// that took it over.
	if !a.dirty || a.ending.Load() {
		return
	}
	a.dirty = false
	a.state.UpdatedAt = time.Now().UTC()
	a.s.putState(a.key, a.state)
}

// putState writes st under key (instanceKey: the slug for an actor's first
// instance).
func (s *Service) putState(key string, st actorapi.State) {
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.states.Put(ctx, key, b); err != nil {
		s.d.Log.Warn("write actor state failed", "key", key, "state", st.State, "err", err)
	}
}

// readState is the stored state under key (instanceKey), or nil.
func (s *Service) readState(ctx context.Context, key string) (*actorapi.State, error) {
	e, err := s.states.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st actorapi.State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, nil
	}
	return &st, nil
}

// dropState removes the state under key (instanceKey).
func (s *Service) dropState(ctx context.Context, key string) {
	if err := s.states.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.d.Log.Warn("remove actor state failed", "key", key, "err", err)
	}
}

// flushLoop writes call counts at most every FlushState.
func (s *Service) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.tune.FlushState)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, a := range s.all() {
				a.flush()
			}
		}
	}
}
