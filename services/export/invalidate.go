package export

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/exportapi"
)

// invalidationLogs is what invalidating exports needs of the export logs.
type invalidationLogs interface {
	Get(ctx context.Context, id string) (*exportapi.Log, error)
	MadeBefore(ctx context.Context, slug string, at time.Time, exceptChecksum string) ([]string, error)
	Files(ctx context.Context, ids []string) ([]string, error)
	Invalidate(ctx context.Context, ids []string, by string, at time.Time) ([]string, error)
	FileInUse(ctx context.Context, key string, at time.Time) (bool, error)
}

// invalidatorOptions follow the experiment events through a durable
// consumer shared by every instance, so that each event is handled once by
// some instance, and again after a failure. It reads the whole stream when
// first made: an old event only ever invalidates exports made before it.
func invalidatorOptions(log *slog.Logger) bus.FollowOptions {
	return bus.FollowOptions{
		Stream:   bus.StreamEvents,
		Subjects: []string{events.ExperimentUpdated, events.ExperimentDeleted},
		Durable: &jetstream.ConsumerConfig{
			Durable:       InvalidatorDurable,
			Description:   "invalidates the exports a new version or a deletion makes stale",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    -1,
			MaxAckPending: 1000,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
		// An event that could not be handled (the database or the store
		// failed) comes again after this wait.
		Retry:   2 * time.Second,
		Timeout: time.Minute,
		Log:     log,
	}
}

// onExperimentEvent invalidates, and deletes the files of, the exports
// made before the event that it makes stale: all of a deleted experiment,
// those of another version for an update. Handling an event twice changes
// nothing more.
func (s *Service) onExperimentEvent(ctx context.Context, e bus.Event[events.Experiment]) error {
	subject, ev := e.Subject, e.Data
	if ev.Slug == "" {
		s.d.Log.WarnContext(ctx, "experiment event without a slug dropped", "subject", subject)
		return nil
	}
	if ev.At.IsZero() {
		ev.At = e.Time
	}
	var by, except string
	switch subject {
	case events.ExperimentDeleted:
		by = "experiment deleted"
	case events.ExperimentUpdated:
		if ev.Checksum == "" {
			return nil
		}
		by, except = fmt.Sprintf("new version %d", ev.Version), ev.Checksum
	default:
		return nil
	}
	ids, err := s.logs.MadeBefore(ctx, ev.Slug, ev.At, except)
	if err != nil {
		return err
	}
	return s.invalidateLogs(ctx, ids, by, true)
}

// invalidateLogs invalidates the logs of ids, publishes their new state,
// and with deleteFiles deletes each of their files that no export still
// valid holds. A build under way notices at its next heartbeat, stops,
// and deletes what it stored.
func (s *Service) invalidateLogs(ctx context.Context, ids []string, by string, deleteFiles bool) error {
	if len(ids) == 0 {
		return nil
	}
	// The files are read before: a retry after a failure below finds the
	// logs invalidated already, and the clean-up deletes their files at
	// expiry.
	var keys []string
	if deleteFiles {
		var err error
		if keys, err = s.logs.Files(ctx, ids); err != nil {
			return err
		}
	}
	changed, err := s.logs.Invalidate(ctx, ids, by, now())
	if err != nil {
		return err
	}
	for _, id := range changed {
		if l, err := s.logs.Get(ctx, id); err == nil && l != nil {
			s.publish(ctx, l)
		}
	}
	var failed error
	for _, key := range keys {
		used, err := s.logs.FileInUse(ctx, key, now())
		if err != nil {
			return err
		}
		if used {
			continue
		}
		if err := s.files.Delete(ctx, key); err != nil {
			failed = fmt.Errorf("delete export file %s: %w", key, err)
		}
	}
	return failed
}
