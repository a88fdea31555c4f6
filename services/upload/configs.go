package upload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// configs is the experiments_config collection.
type configs struct{ c *mongo.Collection }

func (s configs) get(ctx context.Context, slug string) (*experiments.Config, error) {
	var cfg experiments.Config
	err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&cfg)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read experiment %s: %w", slug, err)
	}
	return &cfg, nil
}

// change reads the experiment (nil when it does not exist), lets fn change
// it (fn returns the new document, or nil to change nothing), and writes it
// back only if nobody changed it meanwhile (compare-and-set on Seq),
// retrying otherwise. It returns the document as written, and the one it
// replaced.
func (s configs) change(ctx context.Context, slug string, fn func(cur *experiments.Config) (*experiments.Config, error)) (next, prev *experiments.Config, err error) {
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := s.get(ctx, slug)
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
		if err != nil || next == nil {
			return next, before, err
		}
		next.Slug, next.SlugField = slug, slug
		next.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		if before == nil {
			next.Seq = 1
			next.CreatedAt = next.UpdatedAt
			if _, err := s.c.InsertOne(ctx, next); err != nil {
				if mongo.IsDuplicateKeyError(err) {
					continue // created meanwhile: decide again on it
				}
				return nil, nil, fmt.Errorf("store experiment %s: %w", slug, err)
			}
			return next, nil, nil
		}
		next.Seq = before.Seq + 1
		res, err := s.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: slug}, {Key: "seq", Value: before.Seq}}, next)
		if err != nil {
			return nil, nil, fmt.Errorf("store experiment %s: %w", slug, err)
		}
		if res.MatchedCount == 1 {
			return next, before, nil
		}
	}
	return nil, nil, apierr.New(apierr.CodeConflict, "experiment %s is being changed by another request; try again", slug)
}

func (s configs) remove(ctx context.Context, slug string) error {
	if _, err := s.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: slug}}); err != nil {
		return fmt.Errorf("delete experiment %s: %w", slug, err)
	}
	return nil
}
