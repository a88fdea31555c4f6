package actorworker

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// Idle actors: an actor that served no call for IdleUnload
// (ACTOR_IDLE_UNLOAD_SECONDS) is unloaded, so that a worker holds many
// experiments while only the busy ones take memory. Unloading, in the
// actor's loop (so never during a call):
//
//  1. the state becomes idle in actor_state, before anything else, so that
//     a call arriving from now on finds it so: the edge queues an on-demand
//     start job even though the lease is still held, and holds the call
//     until the actor answers again (services/edge/actorwake.go); the job
//     waits for the lease to go (acquireAfterIdle);
//  2. the subscription is drained: calls the bus delivered before the
//     interest went are still served by the instance;
//  3. the instance and the compiled module are closed (their memory goes
//     back: the linear memory is unmapped; the compiled code stays in the
//     compilation cache on disk, so the next start does not compile);
//  4. the lease is released. Watchers of the leases see an idle actor and
//     queue no start (onLeaseGone, reconcile): only a call, or a change of
//     the experiment, starts it again.
//
// An actor starting, restarting or failing is never unloaded: only one
// whose instance serves and that has nothing waiting.

// idleRecheck is how soon an actor that could not be unloaded when its
// idle time came (it was restarting, or calls were waiting) is looked at
// again, at most.
const idleRecheck = 30 * time.Second

// leaseHandover bounds how long a start job waits for the lease of an
// actor being unloaded to be released.
const leaseHandover = 5 * time.Second

// armIdle starts the idle clock of a loaded actor.
func (a *actor) armIdle() {
	if a.s.tune.IdleUnload <= 0 {
		return
	}
	a.lastActive = time.Now()
	a.idle = time.NewTimer(a.s.tune.IdleUnload)
}

// idleC fires when the actor may have gone idle; nil (never) when idle
// actors stay loaded.
func (a *actor) idleC() <-chan time.Time {
	if a.idle == nil {
		return nil
	}
	return a.idle.C
}

// markActive records a call: the idle clock starts again when it ends.
func (a *actor) markActive() { a.lastActive = time.Now() }

// keepsAwake reports whether something besides calls keeps the actor
// loaded: pending timers or a schedule (timers.go) do, since only a loaded
// actor fires them, and so do open live connections (live.go), whose events
// only a loaded actor receives.
func (a *actor) keepsAwake() bool { return a.timers.busy() || a.live.count() > 0 }

// unloadIfIdle unloads the actor if it went IdleUnload without calls and
// is serving with nothing waiting; true when the loop must end (a.exit is
// stopIdle). Otherwise it sets the clock for the next look.
func (a *actor) unloadIfIdle() bool {
	idleFor := a.s.tune.IdleUnload
	if since := time.Since(a.lastActive); since < idleFor {
		a.idle.Reset(idleFor - since)
		return false
	}
	a.s.mu.Lock()
	stopping := a.s.stopping
	a.s.mu.Unlock()
	// A stop already asked for (the experiment changed, the lease is lost)
	// goes first; so does a lease whose renewals are failing, which may be
	// someone else's by now: its state is not this instance's to write.
	leaseStale := time.Since(time.Unix(0, a.leaseOK.Load())) > 2*a.s.tune.RenewEvery
	if a.inst == nil || a.stopStart != nil || len(a.held) > 0 || len(a.mailbox) > 0 || len(a.quit) > 0 || leaseStale || stopping || a.keepsAwake() {
		// Starting, restarting, failing, busy, stopping or handing over:
		// none of them is idle. A call served meanwhile moves the clock on.
		a.idle.Reset(min(idleFor, idleRecheck))
		return false
	}
	// From here a start job for this slug waits for this loop to end
	// (startJob), and a reload reaches no one: the next start reads the
	// experiment as it is then.
	a.ending.Store(true)
	a.update(func(st *actorapi.State) {
		st.State, st.Worker, st.StartedAt, st.RetryAt = actorapi.StateIdle, "", nil, nil
	})
	a.drain()
	for len(a.mailbox) > 0 {
		a.serve(<-a.mailbox)
	}
	a.exit = stopIdle
	a.log.Info("actor unloading: no calls", "idle_for", time.Since(a.lastActive).Round(time.Millisecond))
	return true
}

// drain removes the actor's interest in its subject and waits until the
// calls the bus delivered before that are in the mailbox.
func (a *actor) drain() {
	a.drainLive()
	if a.sub == nil {
		return
	}
	closed := a.sub.StatusChanged(nats.SubscriptionClosed)
	if err := a.sub.Drain(); err != nil {
		a.log.Warn("draining the actor's subscription failed", "err", err)
		return
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		a.log.Warn("draining the actor's subscription took too long")
	}
}

// finishIdle ends an unloaded actor once its instance and module are
// closed: its last call count is written, then the lease released.
func (a *actor) finishIdle(ctx context.Context) {
	a.mu.Lock()
	dirty := a.dirty
	a.mu.Unlock()
	if dirty {
		a.update(func(*actorapi.State) {})
	}
	a.setGauge("")
	a.s.releaseLease(ctx, a)
	a.s.freed.soon()
	select {
	case r := <-a.quit:
		if r == stopRetire {
			// The experiment stopped running an actor while this one was
			// unloading: nothing of it should remain.
			a.s.dropState(ctx, a.key)
		}
	default:
	}
	a.log.Info("actor unloaded: idle until its next call")
}

// isIdle reports whether st shows an actor unloaded for want of calls.
func isIdle(st *actorapi.State) bool { return st != nil && st.State == actorapi.StateIdle }

// acquireAfterIdle takes the lease key of sp's actor, which another worker
// holds while it unloads the actor (its state says idle): it waits, within
// leaseHandover, for that lease to be released. held is false when the
// lease stays taken, by the unloading instance or by one quicker.
func (s *Service) acquireAfterIdle(ctx context.Context, key string, sp *spec) (rev uint64, held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, leaseHandover)
	defer cancel()
	w, err := s.leases.Watch(ctx, key)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = w.Stop() }()
	for {
		// Try after each change, and once the current value is known, so
		// that a release before the watch began is not waited for.
		select {
		case <-ctx.Done():
			return 0, false, nil
		case e, ok := <-w.Updates():
			if !ok {
				return 0, false, nil
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				continue
			}
		}
		rev, held, err = s.acquireLease(ctx, key, sp)
		if held || err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, false, nil
			}
			return rev, held, err
		}
	}
}

// returnEvery is the least time between two returns of memory to the
// system after unloading.
const returnEvery = 10 * time.Second

// memoryReturn gives the memory of unloaded actors back to the system. The
// Go runtime would hand freed heap back only slowly, so a worker that
// unloaded hundreds of actors would keep their memory for minutes; a full
// collection that returns it costs a few milliseconds of CPU, and is done
// once for a wave of unloads, at most every returnEvery.
type memoryReturn struct {
	mu    sync.Mutex
	due   *time.Timer
	last  time.Time
	count int // returns done, for tests
}

// soon schedules a return of memory, unless one is due already.
func (r *memoryReturn) soon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.due != nil {
		return
	}
	// A second at least, so that actors unloading together are returned
	// together.
	wait := max(time.Second, returnEvery-time.Since(r.last))
	r.due = time.AfterFunc(wait, func() {
		debug.FreeOSMemory()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.due, r.last = nil, time.Now()
		r.count++
	})
}
