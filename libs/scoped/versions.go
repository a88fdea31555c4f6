package scoped

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/store"
)

// The data version: every write through a Scope that changed the
// experiment's data (or failed in a way that may have changed some of it)
// increases a counter of the experiment in the core collection
// data_versions, {_id: slug, seq, updated_at}. It is increased after the
// write, never before: a reader that takes DataSeq and then reads the data
// sees at least the writes the number counts, so a package recorded with
// that number is never older than it claims. Exports compare it to tell
// whether a package of the data is still current.

// bumpWait bounds the counter's update when the caller's context has ended
// between the write and its record.
const bumpWait = 5 * time.Second

// DataSeq is the experiment's data version: 0 until a write changed its data.
func DataSeq(ctx context.Context, db *mongo.Database, slug string) (int64, error) {
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := db.Collection(store.DataVersions).FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the data version of %s: %w", slug, err)
	}
	return doc.Seq, nil
}

// BumpDataSeq increases the experiment's data version. Scopes call it
// after their writes; anything else that changes an experiment's
// collections (its deletion, an import) calls it after the change.
func BumpDataSeq(ctx context.Context, db *mongo.Database, slug string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bumpWait)
	defer cancel()
	_, err := db.Collection(store.DataVersions).UpdateOne(ctx, bson.D{{Key: "_id", Value: slug}},
		bson.D{
			{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}},
			{Key: "$set", Value: bson.D{{Key: "updated_at", Value: time.Now().UTC()}}},
		},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("record the data version of %s: %w", slug, err)
	}
	return nil
}

// noteWrite records a write of the own slug's data: one that changed
// something, or that failed (werr, already a catalogue error) after
// reaching the store, since a failed multi-document write may have done
// part of its work. The write's own error wins over the record's.
func (s *Scope) noteWrite(ctx context.Context, changed bool, werr error) error {
	if !changed && werr == nil {
		return nil
	}
	err := BumpDataSeq(ctx, s.db, s.slug)
	switch {
	case werr != nil:
		return werr
	case err != nil:
		return apierr.Wrap(apierr.CodeUnavailable, err, "the write was stored, but recording the experiment's data version failed")
	}
	return nil
}
