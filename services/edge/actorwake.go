package edge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// Waking idle actors: a worker unloads an actor that went without calls
// for ACTOR_IDLE_UNLOAD_SECONDS and shows it idle (services/actorworker,
// idle.go). A call to it finds no responder; instead of answering 503 at
// once, as for an actor that is not running for another reason, the edge
// queues an on-demand start and holds the call (as it holds one that
// comes while a worker that took the actor has yet to subscribe), sending it again as soon
// as the actor subscribes (the worker then keeps it in the mailbox until
// the instance serves), so that the caller sees only a slower answer. The
// hold ends in time for a 503 with Retry-After before the caller's own
// deadline when the start is slow.

// maxWakeHold bounds how long a call waits for an idle actor to start.
const maxWakeHold = 10 * time.Second

// wakeMargin is how long before the call's deadline the hold gives up, so
// that the caller hears 503 rather than its own timeout.
const wakeMargin = 250 * time.Millisecond

// wakeAndCall handles a call that found no responder: when the actor is
// idle it starts it (when a worker is taking it already, it waits for that
// worker) and sends msg again until the actor answers or the hold ends.
// The error is nats.ErrNoResponders when the actor is neither, or did not
// come up in time, for the caller's usual answer.
func (a *actorsAPI) wakeAndCall(ctx context.Context, e *entry, msg *nats.Msg) (*nats.Msg, error) {
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
	case st.State == actorapi.StateStarting && st.Worker != "":
		// A worker has just taken the actor (woken by another call, say)
		// and subscribes in a moment: the call waits for it too, rather
		// than failing in that gap.
	default:
		return nil, nats.ErrNoResponders
	}
	until := time.Now().Add(maxWakeHold)
	if d, ok := ctx.Deadline(); ok && d.Add(-wakeMargin).Before(until) {
		until = d.Add(-wakeMargin)
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
		reply, err := a.nc.RequestMsgWithContext(ctx, msg)
		if !errors.Is(err, nats.ErrNoResponders) {
			return reply, err
		}
		if time.Now().Add(wait).After(until) {
			return nil, nats.ErrNoResponders
		}
		wait = min(2*wait, 20*time.Millisecond)
		t.Reset(wait)
	}
}
