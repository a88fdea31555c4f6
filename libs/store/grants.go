package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Grants is the repository of data grants: the records of an experiment's
// owner letting another experiment read its data. The upload service alone
// writes it; the data_grants bucket mirrors what it makes active.
type Grants struct{ c *mongo.Collection }

// Grants is the repository over this store.
func (s *Store) Grants() Grants { return Grants{s.Collection(DataGrants)} }

// grantDoc is a grant as stored: its _id is the pair, so that one pair has
// one record on any store.
type grantDoc struct {
	ID              string `bson:"_id"`
	uploadapi.Grant `bson:",inline"`
}

func grantID(data, reader string) string { return data + "/" + reader }

// Add records g unless the pair has a record already; it returns the
// record as stored and whether this call made it.
func (r Grants) Add(ctx context.Context, g uploadapi.Grant) (uploadapi.Grant, bool, error) {
	_, err := r.c.InsertOne(ctx, grantDoc{ID: grantID(g.From, g.To), Grant: g})
	if err == nil {
		return g, true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return g, false, fmt.Errorf("record the grant of %s to %s: %w", g.From, g.To, err)
	}
	cur, err := r.Get(ctx, g.From, g.To)
	if err != nil || cur == nil {
		return g, false, fmt.Errorf("read the grant of %s to %s: %w", g.From, g.To, errors.Join(err, ErrDuplicate))
	}
	return *cur, false, nil
}

// Get is the grant of data's data to reader, or nil.
func (r Grants) Get(ctx context.Context, data, reader string) (*uploadapi.Grant, error) {
	d, err := FindByID[grantDoc](ctx, r.c, grantID(data, reader))
	if err != nil || d == nil {
		return nil, err
	}
	return &d.Grant, nil
}

// Remove deletes the grant of data's data to reader and reports whether
// there was one.
func (r Grants) Remove(ctx context.Context, data, reader string) (bool, error) {
	res, err := r.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: grantID(data, reader)}})
	if err != nil {
		return false, fmt.Errorf("delete the grant of %s to %s: %w", data, reader, err)
	}
	return res.DeletedCount > 0, nil
}

// From are the grants of slug's data to other experiments, oldest first.
func (r Grants) From(ctx context.Context, slug string) ([]uploadapi.Grant, error) {
	return r.find(ctx, bson.D{{Key: "data", Value: slug}})
}

// To are the grants of other experiments' data to slug, oldest first.
func (r Grants) To(ctx context.Context, slug string) ([]uploadapi.Grant, error) {
	return r.find(ctx, bson.D{{Key: "reader", Value: slug}})
}

// All are every grant.
func (r Grants) All(ctx context.Context) ([]uploadapi.Grant, error) {
	return r.find(ctx, bson.D{})
}

// RemoveOf deletes every grant from or to slug (the experiment is gone, and
// a new one of that slug starts with none) and returns them.
func (r Grants) RemoveOf(ctx context.Context, slug string) ([]uploadapi.Grant, error) {
	filter := bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "data", Value: slug}}, bson.D{{Key: "reader", Value: slug}}}}}
	gone, err := r.find(ctx, filter)
	if err != nil {
		return nil, err
	}
	if _, err := r.c.DeleteMany(ctx, filter); err != nil {
		return nil, fmt.Errorf("delete the grants of %s: %w", slug, err)
	}
	return gone, nil
}

func (r Grants) find(ctx context.Context, filter bson.D) ([]uploadapi.Grant, error) {
	cur, err := r.c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "granted_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	var docs []grantDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	out := make([]uploadapi.Grant, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.Grant)
	}
	return out, nil
}
