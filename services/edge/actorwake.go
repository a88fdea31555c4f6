package edge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// Calls that find no responder. A worker unloads an actor that went
// without calls for ACTOR_IDLE_UNLOAD_SECONDS and shows it idle
// (services/actorworker, idle.go); a worker that held an actor may be gone
// (killed, its node lost) while the actor still shows running, until its
// lease lapses and another worker takes the actor over (a few seconds). In
// either case, instead of answering 503 at once, as for an actor that is
// not running for another reason, the edge holds the call: for an idle
// actor it queues an on-demand start; for one that shows running or
// starting it waits for the worker taking it (or taking it over) to
// subscribe. It sends the call again as soon as the actor answers (the
// worker then keeps it in the mailbox until the instance serves), so that
// the caller sees only a slower answer. The hold is bounded by maxWakeHold;
// each attempt then has the actor's whole time limit.

// maxWakeHold bounds how long a call waits for its actor to come up: an
// idle actor's start, or another worker's takeover after the lease of a
// lost one lapses (actor_leases' TTL, 3 s, plus the start, which on a
// busy machine can take several seconds more).
const maxWakeHold = 15 * time.Second

// wakeAndCall handles a call that found no responder: when the actor is
// idle it starts it; when it shows running or starting it waits for the
// worker that serves it next; and it sends msg again, each time with a
// time limit of perCall from the send, until the actor answers or the hold
// ends. The error is nats.ErrNoResponders when the actor is none of these,
// or did not come up in time, for the caller's usual answer. ctx bounds the
// whole; a deadline on it bounds the hold as well.
func (a *actorsAPI) wakeAndCall(ctx context.Context, e *entry, msg *nats.Msg, perCall time.Duration) (*nats.Msg, error) {
	slug := e.cfg.Slug
	ab, err := a.actorBus(ctx)
	if err != nil {
		return nil, nats.ErrNoResponders
	}
	// Through the bucket's leader: the call found no responder perhaps
	// because the actor was unloaded an instant ago, and its "idle" state,
	// written just before, must be seen for the call to wake it.
	st, err := getJSON[actorapi.State](ctx, bus.LeaderKV{KeyValue: ab.states, JS: a.js}, slug)
	switch {
	case err != nil || st == nil:
		return nil, nats.ErrNoResponders
	case st.State == actorapi.StateIdle:
		// One job per unloading: every edge woken by the same idle state
		// queues the same job ID, and the next unloading writes a new
		// state.
		id := fmt.Sprintf("%s@%d:%s:idle-%d", slug, e.cfg.Version, actorapi.StartOnDemand, st.UpdatedAt.UnixNano())
		job := actorapi.StartJob{Slug: slug, Version: e.cfg.Version, Checksum: e.cfg.Checksum, Reason: actorapi.StartOnDemand}
		if _, err := ab.queue.Enqueue(ctx, actorapi.JobKind, id, job); err != nil {
			a.log.WarnContext(ctx, "queue the start of an idle actor failed", "slug", slug, "err", err)
			return nil, nats.ErrNoResponders
		}
	case st.State == actorapi.StateStarting, st.State == actorapi.StateRunning, st.State == actorapi.StateRestarting:
		// A worker has just taken the actor (woken by another call, say)
		// and subscribes in a moment; or the worker that runs it is gone
		// and another takes it over once its lease lapses: the call waits
		// for that, rather than failing in the gap.
	default:
		return nil, nats.ErrNoResponders
	}
	until := time.Now().Add(maxWakeHold)
	if d, ok := ctx.Deadline(); ok && d.Before(until) {
		until = d
	}
	// Asking again costs one round trip to the NATS server: the first
	// tries come close together, since a warm start takes tens of
	// milliseconds.
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		reply, err := a.request(ctx, msg, perCall)
		if !errors.Is(err, nats.ErrNoResponders) && !notServed(reply, err) {
			return reply, err
		}
		if time.Now().Add(wait).After(until) {
			if notServed(reply, err) {
				return reply, nil // the worker's own 503: still starting
			}
			return nil, nats.ErrNoResponders
		}
		wait = min(2*wait, 20*time.Millisecond)
		t.Reset(wait)
	}
}

// request sends msg with a time limit of perCall from now, which the
// worker reads from its deadline header.
func (a *actorsAPI) request(ctx context.Context, msg *nats.Msg, perCall time.Duration) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, perCall)
	defer cancel()
	deadline, _ := ctx.Deadline()
	msg.Header.Set(actorapi.HeaderDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	return a.nc.RequestMsgWithContext(ctx, msg)
}

// notServed reports whether a worker refused the call without running it
// (held while the instance started, past the call's deadline): sending it
// again is safe.
func notServed(reply *nats.Msg, err error) bool {
	return err == nil && reply != nil && reply.Header.Get(actorapi.HeaderNotServed) != ""
}
