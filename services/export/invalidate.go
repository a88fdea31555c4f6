package export

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// invalidatorConfig is the durable consumer of experiment events. It
// reads the whole stream when first made: an old event only ever
// invalidates exports made before it.
func invalidatorConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        InvalidatorDurable,
		Description:    "invalidates the exports a new version or a deletion makes stale",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  1000,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: []string{events.ExperimentUpdated, events.ExperimentDeleted},
	}
}

// eventRetry is the wait before an event that could not be handled (the
// database or the store failed) comes again.
const eventRetry = 2 * time.Second

// followEvents consumes the experiment events through the shared durable,
// so that each is handled once by some instance, and again after a failure.
func (s *Service) followEvents(ctx context.Context) error {
	cons, err := s.d.JS.CreateOrUpdateConsumer(ctx, bus.StreamEvents, invalidatorConfig())
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", InvalidatorDurable, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var ev events.Experiment
		if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.Slug == "" {
			s.d.Log.Warn("unreadable experiment event dropped", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			return
		}
		if ev.At.IsZero() {
			if md, err := msg.Metadata(); err == nil {
				ev.At = md.Timestamp
			}
		}
		ectx, rid := bus.Extract(context.Background(), msg.Headers())
		ectx = telemetry.WithRequestID(ectx, rid)
		ectx, cancel := context.WithTimeout(ectx, time.Minute)
		defer cancel()
		if err := s.onExperimentEvent(ectx, msg.Subject(), ev); err != nil {
			s.d.Log.WarnContext(ectx, "invalidating exports for an experiment event failed; it comes again", "slug", ev.Slug, "subject", msg.Subject(), "err", err)
			_ = msg.NakWithDelay(eventRetry)
			return
		}
		if err := msg.DoubleAck(ectx); err != nil {
			s.d.Log.WarnContext(ectx, "ack of an experiment event failed; it comes again", "slug", ev.Slug, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", InvalidatorDurable, err)
	}
	s.invalidator = cc
	return nil
}

// onExperimentEvent invalidates, and deletes the files of, the exports
// made before the event that it makes stale: all of a deleted experiment,
// those of another version for an update. Handling an event twice changes
// nothing more.
func (s *Service) onExperimentEvent(ctx context.Context, subject string, ev events.Experiment) error {
	filter := bson.D{
		{Key: "slug_id", Value: ev.Slug}, {Key: "invalidated", Value: false},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: ev.At}}},
	}
	var by string
	switch subject {
	case events.ExperimentDeleted:
		by = "experiment deleted"
	case events.ExperimentUpdated:
		if ev.Checksum == "" {
			return nil
		}
		filter = append(filter, bson.E{Key: "version_checksum", Value: bson.D{{Key: "$ne", Value: ev.Checksum}}})
		by = fmt.Sprintf("new version %d", ev.Version)
	default:
		return nil
	}
	ids, err := s.logs.ids(ctx, filter)
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
	keys := map[string]bool{}
	if deleteFiles {
		cur, err := s.logs.find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, int64(len(ids)))
		if err != nil {
			return err
		}
		for _, l := range cur {
			if l.StorageKey != "" {
				keys[l.StorageKey] = true
			}
		}
	}
	changed, err := s.logs.invalidate(ctx, ids, by, now())
	if err != nil {
		return err
	}
	for _, id := range changed {
		if l, err := s.logs.get(ctx, id); err == nil && l != nil {
			s.publish(ctx, l)
		}
	}
	var failed error
	for key := range keys {
		used, err := s.logs.fileInUse(ctx, key, now())
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
