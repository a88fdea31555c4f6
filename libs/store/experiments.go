package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// Experiments is the experiments repository: the one way every service
// reads and changes experiments_config. A document's _id is its slug, so
// every lookup is an _id lookup on any store.
type Experiments struct{ c *mongo.Collection }

// Experiments is the repository over this store.
func (s *Store) Experiments() Experiments { return Experiments{s.Collection(ExperimentsConfig)} }

// Get is the experiment, or nil when there is none.
func (r Experiments) Get(ctx context.Context, slug string) (*experiments.Config, error) {
	return FindByID[experiments.Config](ctx, r.c, slug)
}

// List is every experiment, or those of one status when status is set.
func (r Experiments) List(ctx context.Context, status string) ([]experiments.Config, error) {
	filter := bson.D{}
	if status != "" {
		filter = bson.D{{Key: "status", Value: status}}
	}
	cur, err := r.c.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	var all []experiments.Config
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	return all, nil
}

// Change reads the experiment (nil when it does not exist), lets fn change
// it (fn returns the new document, or nil to change nothing), and writes it
// back only if nobody changed it meanwhile (compare-and-set on Seq),
// retrying otherwise. It returns the document as written, and the one it
// replaced. A new experiment gets Seq 1 and its creation time.
func (r Experiments) Change(ctx context.Context, slug string, fn func(cur *experiments.Config) (*experiments.Config, error)) (next, prev *experiments.Config, err error) {
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := r.Get(ctx, slug)
		if err != nil {
			return nil, nil, err
		}
		var before *experiments.Config
		if cur != nil {
			cp := *cur
			cp.Versions = append([]experiments.Version(nil), cur.Versions...)
			before = &cp
		}
		next, err := fn(cur)
		if err != nil {
			return nil, before, err
		}
		if next == nil {
			return nil, before, nil
		}
		next.Slug, next.SlugField = slug, slug
		next.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		if before == nil {
			next.Seq = 1
			next.CreatedAt = next.UpdatedAt
			if _, err := r.c.InsertOne(ctx, next); err != nil {
				if mongo.IsDuplicateKeyError(err) {
					continue // created meanwhile: decide again on it
				}
				return nil, nil, fmt.Errorf("store experiment %s: %w", slug, err)
			}
			return next, nil, nil
		}
		next.Seq = before.Seq + 1
		res, err := r.replace(ctx, slug, before.Seq, next)
		if err != nil {
			return nil, nil, fmt.Errorf("store experiment %s: %w", slug, err)
		}
		if res.MatchedCount == 1 {
			return next, before, nil
		}
	}
	return nil, nil, apierr.New(apierr.CodeConflict, "experiment %s is being changed by another request; try again", slug)
}

// replace writes next over the experiment if its Seq is still seq (see
// docLocks for why this process's writes of it go one at a time).
func (r Experiments) replace(ctx context.Context, slug string, seq int64, next *experiments.Config) (*mongo.UpdateResult, error) {
	defer locks.lock(ExperimentsConfig, slug)()
	return r.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: slug}, {Key: "seq", Value: seq}}, next)
}

// SetIndexes records the states of the managed indexes planned at seq; a
// newer change of the experiment wins. It returns the experiment as
// stored, or nil when seq is no longer current.
func (r Experiments) SetIndexes(ctx context.Context, slug string, seq int64, states []experiments.IndexState) (*experiments.Config, error) {
	unlock := locks.lock(ExperimentsConfig, slug)
	res, err := r.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: slug}, {Key: "seq", Value: seq}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "indexes", Value: states}}}})
	unlock()
	if err != nil || res.MatchedCount == 0 {
		return nil, err
	}
	return r.Get(ctx, slug)
}

// Remove deletes the experiment's document.
func (r Experiments) Remove(ctx context.Context, slug string) error {
	if _, err := r.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: slug}}); err != nil {
		return fmt.Errorf("delete experiment %s: %w", slug, err)
	}
	return nil
}
