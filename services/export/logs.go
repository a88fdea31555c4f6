package export

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/exportapi"
)

// logs is the export_logs collection. Every change of an export's status
// is a compare-and-set on the status it had, so that two instances (a
// redelivered job, the clean-up, an invalidation) never both win.
type logs struct{ c *mongo.Collection }

// now is the time the service records: BSON dates keep milliseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

var liveStatuses = bson.A{exportapi.StatusQueued, exportapi.StatusRunning}

func (l logs) insert(ctx context.Context, log *exportapi.Log) error {
	log.ExportID = log.ID
	if _, err := l.c.InsertOne(ctx, log); err != nil {
		return fmt.Errorf("record export %s: %w", log.ID, err)
	}
	return nil
}

// get is the export's log, or nil when there is none.
func (l logs) get(ctx context.Context, id string) (*exportapi.Log, error) {
	var log exportapi.Log
	err := l.c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&log)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read export %s: %w", id, err)
	}
	return &log, nil
}

// find lists the logs matching filter, newest first, at most limit.
func (l logs) find(ctx context.Context, filter bson.D, limit int64) ([]exportapi.Log, error) {
	cur, err := l.c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	out := []exportapi.Log{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return out, nil
}

// change applies update to the log matching filter and returns it as it
// is after, or nil when none matched.
func (l logs) change(ctx context.Context, filter, update bson.D) (*exportapi.Log, error) {
	var log exportapi.Log
	err := l.c.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&log)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update export: %w", err)
	}
	return &log, nil
}

// start marks a live export running for another attempt by worker; nil
// when it is no longer live.
func (l logs) start(ctx context.Context, id, worker string, at time.Time) (*exportapi.Log, error) {
	return l.change(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}}, {Key: "invalidated", Value: false}},
		bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "status", Value: exportapi.StatusRunning}, {Key: "worker", Value: worker}, {Key: "step", Value: stepStarting},
				{Key: "progress", Value: 0.0}, {Key: "started_at", Value: at}, {Key: "heartbeat_at", Value: at}, {Key: "updated_at", Value: at},
			}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		})
}

// touch sets fields of a running export (and its heartbeat); nil when it
// is no longer running, or was invalidated meanwhile.
func (l logs) touch(ctx context.Context, id string, at time.Time, fields bson.D) (*exportapi.Log, error) {
	set := append(bson.D{{Key: "heartbeat_at", Value: at}, {Key: "updated_at", Value: at}}, fields...)
	return l.change(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: exportapi.StatusRunning}, {Key: "invalidated", Value: false}},
		bson.D{{Key: "$set", Value: set}})
}

// fail marks a live export failed with reason, if it still is live (cond
// nil) or matches cond, which must keep it to a live status; nil otherwise.
func (l logs) fail(ctx context.Context, id, reason string, at time.Time, cond bson.D) (*exportapi.Log, error) {
	if cond == nil {
		cond = bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}}}
	}
	filter := append(bson.D{{Key: "_id", Value: id}}, cond...)
	return l.change(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: exportapi.StatusFailed}, {Key: "error", Value: reason},
		{Key: "finished_at", Value: at}, {Key: "updated_at", Value: at},
	}}})
}

// invalidate marks the logs of ids that are not invalidated yet as
// invalidated by by; a failed one keeps its status. It returns the IDs it
// changed.
func (l logs) invalidate(ctx context.Context, ids []string, by string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "invalidated", Value: false}}
	changed, err := l.ids(ctx, filter)
	if err != nil || len(changed) == 0 {
		return nil, err
	}
	flags := bson.D{
		{Key: "invalidated", Value: true}, {Key: "invalidated_at", Value: at},
		{Key: "invalidated_by", Value: by}, {Key: "updated_at", Value: at},
	}
	withStatus := append(bson.D{{Key: "status", Value: exportapi.StatusInvalidated}}, flags...)
	notFailed := append(slices.Clone(filter), bson.E{Key: "status", Value: bson.D{{Key: "$ne", Value: exportapi.StatusFailed}}})
	if _, err := l.c.UpdateMany(ctx, notFailed, bson.D{{Key: "$set", Value: withStatus}}); err != nil {
		return nil, fmt.Errorf("invalidate exports: %w", err)
	}
	failed := append(slices.Clone(filter), bson.E{Key: "status", Value: exportapi.StatusFailed})
	if _, err := l.c.UpdateMany(ctx, failed, bson.D{{Key: "$set", Value: flags}}); err != nil {
		return nil, fmt.Errorf("invalidate exports: %w", err)
	}
	return changed, nil
}

// ids lists the IDs of the logs matching filter.
func (l logs) ids(ctx context.Context, filter bson.D) ([]string, error) {
	cur, err := l.c.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find exports: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find exports: %w", err)
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out, nil
}

// fileInUse reports whether a log that may still be downloaded, now or
// later, holds the stored file key: a live one, or a ready one that is
// neither invalidated nor past its expiry.
func (l logs) fileInUse(ctx context.Context, key string, at time.Time) (bool, error) {
	n, err := l.c.CountDocuments(ctx, bson.D{
		{Key: "b2_file_name", Value: key}, {Key: "invalidated", Value: false}, {Key: "expired", Value: false},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}}},
			bson.D{{Key: "status", Value: exportapi.StatusReady}, {Key: "expires_at", Value: bson.D{{Key: "$gt", Value: at}}}},
		}},
	}, options.Count().SetLimit(1))
	if err != nil {
		return false, fmt.Errorf("count exports of %s: %w", key, err)
	}
	return n > 0, nil
}
