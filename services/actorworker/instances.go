package actorworker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// Several instances (actor.instances in the manifest): an actor that keeps
// no state in memory between calls may ask for up to bundle.MaxInstances
// instances, so that its calls use more than one core.
//
// Each instance is an actor of its own as far as this package goes: its
// own lease, state, loop, module instance, restarts and idle clock. The
// first instance has the keys of an actor with one instance (the slug), so
// that everything reading an actor's lease or state by its slug (views,
// health, the edge's wake-up of idle actors) reads the first; instance i >
// 0 has the key {slug}.i{i} (slugs have no dots, so the two never meet).
// Every instance subscribes to the actor's call subject in the same queue
// group, so the bus spreads calls over them wherever they run, and a
// worker that dies loses only the instances it held: the others serve on,
// and each lost one fails over on its own, through its own lease.
//
// Only the first instance fires timers and schedules and takes live
// events: those need one place to run. The others start when the first
// does (launch queues their start jobs), when the experiment changes, and
// when their lease goes; an idle one wakes when the first serves calls
// again (reconcile, wakeExtra).

// instanceKey is the key of slug's instance i in actor_leases and
// actor_state.
func instanceKey(slug string, i int) string {
	if i == 0 {
		return slug
	}
	return slug + ".i" + strconv.Itoa(i)
}

// parseInstanceKey splits a key of actor_leases or actor_state into the
// slug and the instance; ok is false for a key no instance has.
func parseInstanceKey(key string) (slug string, i int, ok bool) {
	if !strings.Contains(key, ".") {
		return key, 0, key != ""
	}
	slug, rest, found := strings.Cut(key, ".i")
	if !found {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || n >= bundle.MaxInstances || strconv.Itoa(n) != rest || slug == "" || strings.Contains(slug, ".") {
		return "", 0, false
	}
	return slug, n, true
}

// primary reports whether a is its actor's first instance, the one that
// fires timers and takes live events.
func (a *actor) primary() bool { return a.index == 0 }

// instancesOf are the instances of slug's actor running here.
func (s *Service) instancesOf(slug string) []*actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*actor
	for _, a := range s.actors {
		if a.slug == slug {
			out = append(out, a)
		}
	}
	return out
}

// otherInstanceHere reports whether another instance of a's actor runs on
// this worker (the module cached on disk is then still in use).
func (s *Service) otherInstanceHere(a *actor) bool {
	for _, o := range s.instancesOf(a.slug) {
		if o != a {
			return true
		}
	}
	return false
}

// enqueueInstances queues start jobs for cfg's instances 1 to n-1; those
// already held somewhere find their lease taken and do nothing.
func (s *Service) enqueueInstances(ctx context.Context, cfg *experiments.Config, n int, reason, occasion string) {
	for i := 1; i < n; i++ {
		s.enqueueStart(ctx, cfg, i, reason, occasion)
	}
}

// startExtras queues the starts of the other instances once the first
// started here (leaseRev, the first's lease, names the occasion).
func (s *Service) startExtras(ctx context.Context, sp *spec, leaseRev uint64, reason string) {
	if sp.instances <= 1 {
		return
	}
	cfg := &experiments.Config{Slug: sp.slug, Version: sp.version, Checksum: sp.checksum}
	s.enqueueInstances(ctx, cfg, sp.instances, reason, fmt.Sprintf("with-%d", leaseRev))
}

// dropSurplus removes what is left of slug's instances from `from` on:
// those running here stop and remove their lease and state (stopRetire);
// the state of one that runs nowhere (unloaded idle, or left by a worker
// that died) is removed here. An instance running on another worker is
// that worker's to stop: it follows the same event.
func (s *Service) dropSurplus(ctx context.Context, slug string, from int) {
	for _, a := range s.instancesOf(slug) {
		if a.index >= from {
			a.requestStop(stopRetire)
		}
	}
	for i := max(from, 1); i < bundle.MaxInstances; i++ {
		key := instanceKey(slug, i)
		if st, err := s.readState(ctx, key); err != nil || st == nil {
			continue
		}
		if held, err := s.leaseHeld(ctx, key); err == nil && !held && s.local(key) == nil {
			s.dropState(ctx, key)
		}
	}
}

// wakeExtra reports whether an idle instance other than the first should
// start again: the first served calls since that one was unloaded (its
// state, whose call count is written while it serves, changed later).
func wakeExtra(first, extra *actorapi.State) bool {
	return first != nil && first.State == actorapi.StateRunning && extra != nil && first.UpdatedAt.After(extra.UpdatedAt.Add(time.Millisecond))
}
