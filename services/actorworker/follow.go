package actorworker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// startJob runs a start job: the current version of the experiment starts
// here if no instance holds its lease. The job names the occasion; what
// starts is always what the experiment's configuration says now.
func (s *Service) startJob(ctx context.Context, job *jobs.Job) error {
	var p actorapi.StartJob
	if err := job.Decode(&p); err != nil || p.Slug == "" {
		return jobs.Permanent(fmt.Errorf("malformed actor start job: %v", err))
	}
	cfg, err := s.configs.Get(ctx, p.Slug)
	if err != nil {
		return err
	}
	sp := specOf(cfg)
	if sp == nil || p.Instance < 0 || p.Instance >= sp.instances {
		return nil // deleted, not active, without an actor or with fewer instances since
	}
	key := instanceKey(sp.slug, p.Instance)
	if a := s.local(key); a != nil {
		if !a.ending.Load() {
			a.reload(sp)
			return nil
		}
		// It is stopping: once it has let go of its lease, start anew.
		select {
		case <-a.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var st *actorapi.State
	if p.Reason != actorapi.StartRestart {
		if st, err = s.readState(ctx, key); err != nil {
			return err
		}
		if failedForNow(st, sp.seq) {
			return nil // only a change of the experiment, or its retry time, starts it again
		}
	}
	rev, held, err := s.acquireLease(ctx, key, sp)
	if err == nil && !held && p.Reason == actorapi.StartOnDemand && isIdle(st) {
		// A call came while the holder unloads the actor (idle.go).
		rev, held, err = s.acquireAfterIdle(ctx, key, sp)
	}
	if err != nil {
		return fmt.Errorf("take the lease of %s: %w", key, err)
	}
	if !held {
		// Another instance runs it and follows the experiment itself; if that
		// instance is gone, its lease expires and a new job follows.
		return nil
	}
	return s.launch(ctx, sp, p.Instance, rev, p.Reason)
}

// launch starts instance index of sp's actor under the lease just taken
// and waits until its module is loaded (its first instance then starts in
// the background) or failed to load. The first instance queues the starts
// of the others (instances.go).
func (s *Service) launch(ctx context.Context, sp *spec, index int, leaseRev uint64, reason string) error {
	a := newActor(s, sp, index, leaseRev)
	if !s.register(a) {
		s.releaseLease(ctx, a)
		return nil
	}
	st := actorapi.State{Slug: sp.slug}
	if prev, _ := s.readState(ctx, a.key); prev != nil && prev.Checksum == sp.checksum {
		// The same version moves here: keep its history.
		st.Restarts, st.Calls, st.LastError, st.LastErrorAt = prev.Restarts, prev.Calls, prev.LastError, prev.LastErrorAt
	}
	st.State, st.Worker, st.Version, st.Checksum, st.Seq = actorapi.StateStarting, s.d.InstanceID, sp.version, sp.checksum, sp.seq
	a.update(func(cur *actorapi.State) { *cur = st })
	renewCtx, stopRenew := context.WithCancel(context.Background())
	a.stopRenew = stopRenew
	go s.renewLease(renewCtx, a)
	a.log.Info("actor starting", "version", sp.version, "reason", reason)
	started := make(chan error, 1)
	go a.run(started)
	select {
	case err := <-started:
		if err == nil && a.primary() {
			s.startExtras(ctx, sp, leaseRev, reason)
		}
		return err
	case <-ctx.Done():
		a.requestStop(stopHandover)
		return ctx.Err()
	}
}

// failedForNow reports whether st is a failure of the experiment state seq
// that is not to be retried yet (or ever, without a change).
func failedForNow(st *actorapi.State, seq int64) bool {
	return st != nil && st.State == actorapi.StateFailed && st.Seq == seq && (st.RetryAt == nil || time.Now().Before(*st.RetryAt))
}

// startGivenUp records a start job that failed every attempt; reconciling
// tries again after RetryFailedStart.
func (s *Service) startGivenUp(ctx context.Context, job *jobs.Job, err error) {
	var p actorapi.StartJob
	if job.Decode(&p) != nil || p.Slug == "" || p.Instance < 0 || p.Instance >= bundle.MaxInstances {
		return
	}
	key := instanceKey(p.Slug, p.Instance)
	if s.local(key) != nil {
		return
	}
	now := time.Now().UTC()
	retry := now.Add(s.tune.RetryFailedStart)
	s.putState(key, actorapi.State{
		Slug: p.Slug, State: actorapi.StateFailed, Version: p.Version, Checksum: p.Checksum,
		LastError: err.Error(), LastErrorAt: &now, RetryAt: &retry, UpdatedAt: now,
	})
}

// enqueueStart queues a start job for instance i of cfg's actor; occasion
// makes the job ID, so that every worker reacting to the same occasion
// queues one job.
func (s *Service) enqueueStart(ctx context.Context, cfg *experiments.Config, i int, reason, occasion string) {
	id := fmt.Sprintf("%s@%d:%s:%s", instanceKey(cfg.Slug, i), cfg.Version, reason, occasion)
	_, err := s.queue.Enqueue(ctx, actorapi.JobKind, id,
		actorapi.StartJob{Slug: cfg.Slug, Version: cfg.Version, Checksum: cfg.Checksum, Reason: reason, Instance: i})
	if err != nil {
		s.d.Log.WarnContext(ctx, "queue actor start failed", "slug", cfg.Slug, "instance", i, "reason", reason, "err", err)
	}
}

// follow starts following the experiment events and the leases until the
// service stops. Every instance follows every event (an ordered consumer of
// its own, from now on), since each must act on the actors it runs; events
// missed while no instance ran are made up for by reconciling.
func (s *Service) follow(ctx context.Context, bg *svc.Background) error {
	f, err := bus.Follow(ctx, bg.Context(), s.d.JS, bus.FollowOptions{
		Stream: bus.StreamEvents, Subjects: []string{events.ExperimentAll}, Timeout: 10 * time.Second, Log: s.d.Log,
	}, func(ctx context.Context, e bus.Event[events.Experiment]) error {
		if e.Data.Slug != "" {
			s.onEvent(ctx, e.Subject, e.Data, telemetry.RequestID(ctx))
		}
		return nil
	})
	if err != nil {
		return err
	}
	bg.Follow(f)
	// The watcher stops with the context it was made with: the
	// background's, not ctx.
	w, err := s.leases.WatchAll(bg.Context(), jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch actor leases: %w", err)
	}
	bg.Go(func(ctx context.Context) {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || (e.Operation() != jetstream.KeyValueDelete && e.Operation() != jetstream.KeyValuePurge) {
					continue
				}
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				s.onLeaseGone(lctx, e.Key(), e.Revision())
				cancel()
			}
		}
	})
	return nil
}

// onEvent acts on an experiment's change: the instance running its actor
// reloads or stops it; an active version with an actor that runs nowhere
// gets a start job.
func (s *Service) onEvent(ctx context.Context, subject string, ev events.Experiment, rid string) {
	deleted := subject == events.ExperimentDeleted
	var cfg *experiments.Config
	if !deleted {
		var err error
		if cfg, err = s.configs.Get(ctx, ev.Slug); err != nil {
			s.d.Log.WarnContext(ctx, "read experiment for its event failed; reconciling will catch up", "slug", ev.Slug, "err", err)
			return
		}
		if cfg != nil && cfg.Seq < ev.Seq {
			return // a stale read; the newer state's own event follows
		}
	}
	sp := specOf(cfg)
	for _, a := range s.instancesOf(ev.Slug) {
		if sp != nil && a.index < sp.instances {
			a.reload(sp)
		}
	}
	if sp != nil {
		if s.local(ev.Slug) == nil {
			s.enqueueStart(ctx, cfg, 0, actorapi.StartDeployed, fmt.Sprint(cfg.Seq))
		}
		// More instances than before start; fewer stop (instances.go).
		for i := 1; i < sp.instances; i++ {
			if s.local(instanceKey(ev.Slug, i)) == nil {
				s.enqueueStart(ctx, cfg, i, actorapi.StartDeployed, fmt.Sprint(cfg.Seq))
			}
		}
		s.dropSurplus(ctx, ev.Slug, sp.instances)
		return
	}
	s.dropSurplus(ctx, ev.Slug, 0)
	// No actor should run: remove what remains of one that ran nowhere.
	if held, err := s.leaseHeld(ctx, ev.Slug); err == nil && !held && s.local(ev.Slug) == nil {
		s.dropState(ctx, ev.Slug)
	}
	if deleted {
		s.purgeKV(ctx, ev.Slug)
		s.purgeTimers(ctx, ev.Slug, s.d.Log)
	}
}

// onLeaseGone queues a start when the lease (key) of an actor instance
// that should run expired or was released.
func (s *Service) onLeaseGone(ctx context.Context, key string, rev uint64) {
	slug, i, ok := parseInstanceKey(key)
	if !ok {
		return
	}
	cfg, err := s.configs.Get(ctx, slug)
	if err != nil {
		s.d.Log.WarnContext(ctx, "read experiment for an expired lease failed; reconciling will catch up", "slug", slug, "err", err)
		return
	}
	sp := specOf(cfg)
	if sp == nil {
		return
	}
	if i >= sp.instances {
		// An instance there are no longer as many of, whose worker died:
		// nothing of it should remain.
		if s.local(key) == nil {
			s.dropState(ctx, key)
		}
		return
	}
	if st, err := s.readState(ctx, key); err == nil && isIdle(st) {
		return // unloaded for want of calls: the next call starts it
	}
	s.enqueueStart(ctx, cfg, i, actorapi.StartLeaseExpired, fmt.Sprint(rev))
}

// reconcileLoop compares what runs with what should, at start and every
// Reconcile.
func (s *Service) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.tune.Reconcile)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, s.tune.Reconcile)
		if err := s.reconcile(rctx); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("reconciling actors failed", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile stops or reloads the actors running here that no longer match
// their experiment, and queues a start for every active actor that no
// instance holds, unless it failed for good.
func (s *Service) reconcile(ctx context.Context) error {
	active, err := s.configs.List(ctx, experiments.StatusActive)
	if err != nil {
		return err
	}
	want := map[string]*spec{}
	for i := range active {
		if sp := specOf(&active[i]); sp != nil {
			want[sp.slug] = sp
		}
	}
	for _, a := range s.all() {
		if sp := want[a.slug]; sp == nil || a.index >= sp.instances {
			a.requestStop(stopRetire)
		} else {
			a.reload(sp)
		}
	}
	window := fmt.Sprint(time.Now().Unix() / max(1, int64(s.tune.RetryFailedStart/time.Second)))
	for i := range active {
		cfg := &active[i]
		sp := want[cfg.Slug]
		if sp == nil {
			continue
		}
		var first *actorapi.State
		if sp.instances > 1 {
			if first, err = s.readState(ctx, cfg.Slug); err != nil {
				return err
			}
		}
		for n := range sp.instances {
			if err := s.reconcileInstance(ctx, cfg, n, first, window); err != nil {
				return err
			}
		}
	}
	return nil
}

// reconcileInstance queues a start for instance n of cfg's actor if no
// worker holds it and it should run: it did not fail for now, and it is
// not idle (unless, for an instance but the first, the first served calls
// since it was unloaded: wakeExtra).
func (s *Service) reconcileInstance(ctx context.Context, cfg *experiments.Config, n int, first *actorapi.State, window string) error {
	key := instanceKey(cfg.Slug, n)
	if s.local(key) != nil {
		return nil
	}
	held, err := s.leaseHeld(ctx, key)
	if err != nil || held {
		return err
	}
	st, err := s.readState(ctx, key)
	if err != nil {
		return err
	}
	if failedForNow(st, cfg.Seq) || (isIdle(st) && (n == 0 || !wakeExtra(first, st))) {
		return nil
	}
	reason := actorapi.StartDeployed
	if st != nil {
		reason = actorapi.StartLeaseExpired
	}
	s.enqueueStart(ctx, cfg, n, reason, "reconcile-"+window)
	return nil
}

// purgeKV removes every key of slug's key-value store with one purge of
// the bucket's stream by subject: a single operation of the stream's
// leader, bounded by bus.OpTimeout, that takes every key stored before it.
// Listing the keys first and purging them one by one waited on a watcher
// that a lost node could stall without end, and missed keys written after
// the listing. Every worker purges after it stopped its own instances, so
// the last purge follows the last write of any instance. The purge leaves
// no delete markers: nothing watches this bucket, and a read of a purged
// key finds nothing, as after a delete.
func (s *Service) purgeKV(ctx context.Context, slug string) {
	if !plainSlug(slug) {
		// A dot or a wildcard would reach other experiments' keys.
		s.d.Log.WarnContext(ctx, "purge actor keys refused: not a slug", "slug", slug)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, bus.OpTimeout)
	defer cancel()
	stream, err := s.d.JS.Stream(ctx, "KV_"+bus.BucketActorKV)
	if err == nil {
		err = stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bus.BucketActorKV+"."+slug+".>"))
	}
	if err != nil {
		s.d.Log.WarnContext(ctx, "purge actor keys failed", "slug", slug, "err", err)
	}
}

// plainSlug reports whether slug has the manifest's slug syntax
// (^[a-z0-9_-]+$), with no dot or wildcard that would widen a subject.
func plainSlug(slug string) bool {
	if slug == "" {
		return false
	}
	for _, r := range slug {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
