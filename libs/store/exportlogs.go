package store

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

// ErrDuplicate is an insert of a document whose key exists.
var ErrDuplicate = errors.New("store: duplicate key")

// Exports is the export_logs repository; only the export service writes
// it. Every change of an export's status is a compare-and-set on the status
// it had, so that two instances (a redelivered job, the clean-up, an
// invalidation) never both win.
type Exports struct{ c *mongo.Collection }

// Exports is the repository over this store.
func (s *Store) Exports() Exports { return Exports{s.Collection(ExportLogs)} }

var liveStatuses = bson.A{exportapi.StatusQueued, exportapi.StatusRunning}

// Insert records a new export; ErrDuplicate when its ID exists.
func (r Exports) Insert(ctx context.Context, l *exportapi.Log) error {
	l.ExportID = l.ID
	if _, err := r.c.InsertOne(ctx, l); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("record export %s: %w", l.ID, ErrDuplicate)
		}
		return fmt.Errorf("record export %s: %w", l.ID, err)
	}
	return nil
}

// Get is the export's log, or nil when there is none.
func (r Exports) Get(ctx context.Context, id string) (*exportapi.Log, error) {
	return FindByID[exportapi.Log](ctx, r.c, id)
}

// List is the logs, of one experiment when slug is set, newest first, at
// most limit.
func (r Exports) List(ctx context.Context, slug string, limit int) ([]exportapi.Log, error) {
	filter := bson.D{}
	if slug != "" {
		filter = bson.D{{Key: "slug_id", Value: slug}}
	}
	return r.find(ctx, filter, int64(limit))
}

// Reusable is the ready exports of a source that may be handed out again:
// neither invalidated nor expired, and valid past expiresAfter.
func (r Exports) Reusable(ctx context.Context, sourceKey string, expiresAfter time.Time) ([]exportapi.Log, error) {
	return r.find(ctx, bson.D{
		{Key: "source_key", Value: sourceKey}, {Key: "status", Value: exportapi.StatusReady},
		{Key: "invalidated", Value: false}, {Key: "expired", Value: false},
		{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: expiresAfter}}},
	}, 50)
}

// Building is the requester's export of a source still queued or running,
// or nil.
func (r Exports) Building(ctx context.Context, sourceKey, email string) (*exportapi.Log, error) {
	live, err := r.find(ctx, bson.D{
		{Key: "source_key", Value: sourceKey}, {Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}},
		{Key: "invalidated", Value: false}, {Key: "user_email", Value: email},
	}, 1)
	if err != nil || len(live) == 0 {
		return nil, err
	}
	return &live[0], nil
}

// Spent counts the requester's exports of a source that can no longer be
// handed out: failed, invalidated, expired, or ready but expiring by
// expiresBy.
func (r Exports) Spent(ctx context.Context, sourceKey, email string, expiresBy time.Time) (int64, error) {
	n, err := r.c.CountDocuments(ctx, bson.D{
		{Key: "source_key", Value: sourceKey}, {Key: "user_email", Value: email},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{exportapi.StatusFailed, exportapi.StatusInvalidated}}}}},
			bson.D{{Key: "invalidated", Value: true}},
			bson.D{{Key: "expired", Value: true}},
			bson.D{{Key: "status", Value: exportapi.StatusReady}, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: expiresBy}}}},
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("count exports: %w", err)
	}
	return n, nil
}

// Start marks a live export running for another attempt by worker; nil
// when it is no longer live.
func (r Exports) Start(ctx context.Context, id, worker, step string, at time.Time) (*exportapi.Log, error) {
	return r.change(ctx, id,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}}, {Key: "invalidated", Value: false}},
		bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "status", Value: exportapi.StatusRunning}, {Key: "worker", Value: worker}, {Key: "step", Value: step},
				{Key: "progress", Value: 0.0}, {Key: "started_at", Value: at}, {Key: "heartbeat_at", Value: at}, {Key: "updated_at", Value: at},
			}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		})
}

// Progress is how far a build is.
type Progress struct {
	Fraction float64
	Step     string
}

// Touch records a running export's heartbeat, and its progress when p is
// set; nil when it is no longer running or was invalidated meanwhile.
func (r Exports) Touch(ctx context.Context, id string, at time.Time, p *Progress) (*exportapi.Log, error) {
	set := bson.D{{Key: "heartbeat_at", Value: at}, {Key: "updated_at", Value: at}}
	if p != nil {
		set = append(set, bson.E{Key: "progress", Value: p.Fraction}, bson.E{Key: "step", Value: p.Step})
	}
	return r.change(ctx, id,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: exportapi.StatusRunning}, {Key: "invalidated", Value: false}},
		bson.D{{Key: "$set", Value: set}})
}

// Built is what a finished build records.
type Built struct {
	Size       int64
	Checksum   string
	Documents  int64
	FileName   string
	StorageKey string
	Step       string
	// The source the package was made of.
	Version   int
	ConfigSeq int64
	DataSeq   int64
	SourceKey string
	At        time.Time
	ExpiresAt time.Time
}

// Ready marks a running export ready with what its build made; nil when it
// is no longer running or was invalidated meanwhile.
func (r Exports) Ready(ctx context.Context, id string, b Built) (*exportapi.Log, error) {
	return r.change(ctx, id,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: exportapi.StatusRunning}, {Key: "invalidated", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: exportapi.StatusReady}, {Key: "progress", Value: 1.0}, {Key: "step", Value: b.Step},
			{Key: "file_size", Value: b.Size}, {Key: "checksum", Value: b.Checksum}, {Key: "documents", Value: b.Documents},
			{Key: "file_name", Value: b.FileName}, {Key: "b2_file_name", Value: b.StorageKey},
			{Key: "version", Value: b.Version}, {Key: "config_seq", Value: b.ConfigSeq}, {Key: "data_seq", Value: b.DataSeq},
			{Key: "source_key", Value: b.SourceKey}, {Key: "finished_at", Value: b.At}, {Key: "expires_at", Value: b.ExpiresAt},
			{Key: "heartbeat_at", Value: b.At}, {Key: "updated_at", Value: b.At},
		}}})
}

// Stale names exports that stopped showing life. The zero Stale is every
// live export.
type Stale struct {
	// HeartbeatBefore: running exports whose last heartbeat is older.
	HeartbeatBefore time.Time
	// CreatedBefore: queued exports created before it.
	CreatedBefore time.Time
}

func (s Stale) filter() bson.D {
	switch {
	case !s.HeartbeatBefore.IsZero():
		return bson.D{{Key: "status", Value: exportapi.StatusRunning}, {Key: "heartbeat_at", Value: bson.D{{Key: "$lt", Value: s.HeartbeatBefore}}}}
	case !s.CreatedBefore.IsZero():
		return bson.D{{Key: "status", Value: exportapi.StatusQueued}, {Key: "created_at", Value: bson.D{{Key: "$lt", Value: s.CreatedBefore}}}}
	}
	return bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: liveStatuses}}}}
}

// StaleIDs lists the IDs of the exports s names.
func (r Exports) StaleIDs(ctx context.Context, s Stale) ([]string, error) {
	return r.ids(ctx, s.filter())
}

// Fail marks the export failed with reason if s still names it (the zero
// Stale: if it is still live); nil otherwise.
func (r Exports) Fail(ctx context.Context, id, reason string, at time.Time, s Stale) (*exportapi.Log, error) {
	filter := append(bson.D{{Key: "_id", Value: id}}, s.filter()...)
	return r.change(ctx, id, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: exportapi.StatusFailed}, {Key: "error", Value: reason},
		{Key: "finished_at", Value: at}, {Key: "updated_at", Value: at},
	}}})
}

// Invalidate marks the logs of ids that are not invalidated yet as
// invalidated by by; a failed one keeps its status. It returns the IDs it
// changed.
func (r Exports) Invalidate(ctx context.Context, ids []string, by string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "invalidated", Value: false}}
	changed, err := r.ids(ctx, filter)
	if err != nil || len(changed) == 0 {
		return nil, err
	}
	flags := bson.D{
		{Key: "invalidated", Value: true}, {Key: "invalidated_at", Value: at},
		{Key: "invalidated_by", Value: by}, {Key: "updated_at", Value: at},
	}
	defer locks.lock(ExportLogs, changed...)()
	withStatus := append(bson.D{{Key: "status", Value: exportapi.StatusInvalidated}}, flags...)
	notFailed := append(slices.Clone(filter), bson.E{Key: "status", Value: bson.D{{Key: "$ne", Value: exportapi.StatusFailed}}})
	if _, err := r.c.UpdateMany(ctx, notFailed, bson.D{{Key: "$set", Value: withStatus}}); err != nil {
		return nil, fmt.Errorf("invalidate exports: %w", err)
	}
	failed := append(slices.Clone(filter), bson.E{Key: "status", Value: exportapi.StatusFailed})
	if _, err := r.c.UpdateMany(ctx, failed, bson.D{{Key: "$set", Value: flags}}); err != nil {
		return nil, fmt.Errorf("invalidate exports: %w", err)
	}
	return changed, nil
}

// MadeBefore lists the IDs of the experiment's exports, not invalidated
// yet, created at or before at; with exceptChecksum set, only those of
// another version.
func (r Exports) MadeBefore(ctx context.Context, slug string, at time.Time, exceptChecksum string) ([]string, error) {
	filter := bson.D{
		{Key: "slug_id", Value: slug}, {Key: "invalidated", Value: false},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: at}}},
	}
	if exceptChecksum != "" {
		filter = append(filter, bson.E{Key: "version_checksum", Value: bson.D{{Key: "$ne", Value: exceptChecksum}}})
	}
	return r.ids(ctx, filter)
}

// SharingFile lists the IDs of the exports whose file is key.
func (r Exports) SharingFile(ctx context.Context, key string) ([]string, error) {
	return r.ids(ctx, bson.D{{Key: "b2_file_name", Value: key}})
}

// Files is the storage keys of the logs of ids that have one.
func (r Exports) Files(ctx context.Context, ids []string) ([]string, error) {
	logs, err := r.find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, int64(len(ids)))
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, l := range logs {
		if l.StorageKey != "" && !slices.Contains(keys, l.StorageKey) {
			keys = append(keys, l.StorageKey)
		}
	}
	return keys, nil
}

// FileInUse reports whether a log that may still be downloaded, now or
// later, holds the stored file key: a live one, or a ready one that is
// neither invalidated nor past its expiry.
func (r Exports) FileInUse(ctx context.Context, key string, at time.Time) (bool, error) {
	n, err := r.c.CountDocuments(ctx, bson.D{
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

// Expiring is up to limit exports past their expiry and not marked
// expired yet.
func (r Exports) Expiring(ctx context.Context, at time.Time, limit int) ([]exportapi.Log, error) {
	return r.find(ctx, bson.D{
		{Key: "expired", Value: false}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: at}}},
	}, int64(limit))
}

// MarkExpired records that the exports of ids hold no file any more.
func (r Exports) MarkExpired(ctx context.Context, ids []string, at time.Time) error {
	defer locks.lock(ExportLogs, ids...)()
	_, err := r.c.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expired", Value: true}, {Key: "updated_at", Value: at}}}})
	if err != nil {
		return fmt.Errorf("expire exports: %w", err)
	}
	return nil
}

// Leftovers is up to limit exports that ended without becoming ready
// (failed, or invalidated while built) before endedBefore, whose file may
// remain.
func (r Exports) Leftovers(ctx context.Context, endedBefore time.Time, limit int) ([]exportapi.Log, error) {
	return r.find(ctx, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{exportapi.StatusFailed, exportapi.StatusInvalidated}}}},
		{Key: "expired", Value: false}, {Key: "expires_at", Value: nil},
		{Key: "updated_at", Value: bson.D{{Key: "$lt", Value: endedBefore}}},
	}, int64(limit))
}

// LeftoverRemoved records that a leftover holds no file any more.
func (r Exports) LeftoverRemoved(ctx context.Context, id string) error {
	defer locks.lock(ExportLogs, id)()
	_, err := r.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "expires_at", Value: nil}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expired", Value: true}}}})
	if err != nil {
		return fmt.Errorf("record leftover %s removed: %w", id, err)
	}
	return nil
}

// find lists the logs matching filter, newest first, at most limit.
func (r Exports) find(ctx context.Context, filter bson.D, limit int64) ([]exportapi.Log, error) {
	cur, err := r.c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	out := []exportapi.Log{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return out, nil
}

// change applies update to the log id if it matches filter, and returns it
// as it is after, or nil when it did not match.
func (r Exports) change(ctx context.Context, id string, filter, update bson.D) (*exportapi.Log, error) {
	defer locks.lock(ExportLogs, id)()
	var l exportapi.Log
	err := r.c.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update export: %w", err)
	}
	return &l, nil
}

// ids lists the IDs of the logs matching filter.
func (r Exports) ids(ctx context.Context, filter bson.D) ([]string, error) {
	cur, err := r.c.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
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
