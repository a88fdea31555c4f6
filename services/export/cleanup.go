package export

import (
	"context"
	"errors"
	"time"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/store"
)

// Reasons the clean-up gives a live export it fails.
const (
	reasonStale     = "the export job stopped responding"
	reasonNeverRun  = "the export job was never run"
	cleanupBatch    = 500
	leftoverGrace   = time.Minute
	cleanupDeadline = 5 * time.Minute
)

// cleanupLogs is what the clean-up needs of the export logs.
type cleanupLogs interface {
	Get(ctx context.Context, id string) (*exportapi.Log, error)
	Expiring(ctx context.Context, at time.Time, limit int) ([]exportapi.Log, error)
	FileInUse(ctx context.Context, key string, at time.Time) (bool, error)
	MarkExpired(ctx context.Context, ids []string, at time.Time) error
	Leftovers(ctx context.Context, endedBefore time.Time, limit int) ([]exportapi.Log, error)
	LeftoverRemoved(ctx context.Context, id string) error
	StaleIDs(ctx context.Context, s store.Stale) ([]string, error)
	Fail(ctx context.Context, id, reason string, at time.Time, s store.Stale) (*exportapi.Log, error)
}

// cleanupLoop runs the clean-up at start and every CleanupEvery until ctx
// ends. Every step is a compare-and-set or idempotent, so that instances
// running it at once do no harm.
func (s *Service) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(s.o.CleanupEvery)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, cleanupDeadline)
		if err := s.cleanup(cctx); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("export clean-up failed; it runs again", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cleanup expires ready exports past retention (deleting their files),
// removes files left by exports that never became ready, and fails the
// jobs that stopped responding or never ran.
func (s *Service) cleanup(ctx context.Context) error {
	return errors.Join(s.expire(ctx), s.removeLeftovers(ctx), s.failStale(ctx))
}

// expire deletes the files of exports past their expiry, once no export
// still downloadable holds them, and marks those exports expired.
func (s *Service) expire(ctx context.Context) error {
	at := now()
	due, err := s.logs.Expiring(ctx, at, cleanupBatch)
	if err != nil {
		return err
	}
	var errs []error
	done := map[string]bool{} // storage key -> deleted or in use elsewhere
	var expired []string
	for _, l := range due {
		if handled, ok := done[l.StorageKey]; ok {
			if handled {
				expired = append(expired, l.ID)
			}
			continue
		}
		if l.StorageKey != "" {
			used, err := s.logs.FileInUse(ctx, l.StorageKey, at)
			if err != nil {
				errs = append(errs, err)
				done[l.StorageKey] = false
				continue
			}
			if !used {
				if err := s.files.Delete(ctx, l.StorageKey); err != nil {
					errs = append(errs, err)
					done[l.StorageKey] = false
					continue
				}
			}
		}
		done[l.StorageKey] = true
		expired = append(expired, l.ID)
	}
	if len(expired) > 0 {
		if err := s.logs.MarkExpired(ctx, expired, now()); err != nil {
			errs = append(errs, err)
		}
		for _, id := range expired {
			if l, err := s.logs.Get(ctx, id); err == nil && l != nil {
				s.publish(ctx, l)
			}
		}
	}
	return errors.Join(errs...)
}

// removeLeftovers deletes what may remain of the files of exports that
// ended without becoming ready (failed, or invalidated while built): their
// own deletion may have failed with the store. Expired then records that
// they hold no file.
func (s *Service) removeLeftovers(ctx context.Context) error {
	left, err := s.logs.Leftovers(ctx, now().Add(-leftoverGrace), cleanupBatch)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range left {
		if l.StorageKey == l.StorageKeyOf() {
			if err := s.files.Delete(ctx, l.StorageKey); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := s.logs.LeftoverRemoved(ctx, l.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// failStale fails running exports whose job has shown no sign of life for
// StaleAfter (every worker that could take it over died, or the job ran
// out of deliveries while no worker heard of it), and queued ones older
// than the job queue keeps a job.
func (s *Service) failStale(ctx context.Context) error {
	at := now()
	for _, c := range []struct {
		stale  store.Stale
		reason string
	}{
		{store.Stale{HeartbeatBefore: at.Add(-s.o.StaleAfter)}, reasonStale},
		{store.Stale{CreatedBefore: at.Add(-s.o.QueuedFor)}, reasonNeverRun},
	} {
		ids, err := s.logs.StaleIDs(ctx, c.stale)
		if err != nil {
			return err
		}
		for _, id := range ids {
			// The condition again, so that a job that came back to life
			// meanwhile keeps its export.
			s.failBuild(ctx, id, c.reason, c.stale)
		}
	}
	return nil
}
