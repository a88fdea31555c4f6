package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DataSlowOps holds, per experiment, its most recent slow data operations
// ({_id: slug, ops: [SlowOp...]}, at most SlowOpsKept, newest last): what
// its owner sees on the experiment's page. One document per experiment,
// read and written by _id, keeps it bounded and cheap on every store (the
// embedded store finds a document by _id alone without a scan).
const DataSlowOps = "data_slow_ops"

// SlowOpsKept is how many slow operations are kept per experiment.
const SlowOpsKept = 20

// SlowOp is one slow data operation of an experiment's actor.
type SlowOp struct {
	// Collection is the base name; From the experiment whose collection
	// was read when not the own one ("" otherwise).
	Collection string `bson:"collection" json:"collection"`
	From       string `bson:"from,omitempty" json:"from,omitempty"`
	// Op is find, count, aggregate, insert, update, replace or delete.
	Op         string `bson:"op" json:"op"`
	DurationMS int64  `bson:"duration_ms" json:"duration_ms"`
	// Documents returned (reads) or written; the store does not say how
	// many it examined.
	Documents int64 `bson:"documents" json:"documents"`
	// Error is the error code when the operation failed.
	Error string    `bson:"error,omitempty" json:"error,omitempty"`
	At    time.Time `bson:"at" json:"at"`
}

type slowOpsDoc struct {
	ID  string   `bson:"_id"`
	Ops []SlowOp `bson:"ops"`
}

// SlowOps is the slow operations of the experiment slug, oldest first.
func (s *Store) SlowOps(ctx context.Context, slug string) ([]SlowOp, error) {
	d, err := FindByID[slowOpsDoc](ctx, s.Collection(DataSlowOps), slug)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return []SlowOp{}, nil
	}
	return d.Ops, nil
}

// AddSlowOps appends ops to the experiment slug's slow operations, keeping
// the last SlowOpsKept. It reads and replaces the one document: two
// workers recording at the same moment may lose one's operations, which a
// log of examples can afford (a $push with $slice is not on the embedded
// store).
func (s *Store) AddSlowOps(ctx context.Context, slug string, ops ...SlowOp) error {
	have, err := s.SlowOps(ctx, slug)
	if err != nil {
		return err
	}
	all := append(have, ops...)
	if len(all) > SlowOpsKept {
		all = all[len(all)-SlowOpsKept:]
	}
	_, err = s.Collection(DataSlowOps).ReplaceOne(ctx, bson.D{{Key: "_id", Value: slug}},
		slowOpsDoc{ID: slug, Ops: all}, options.Replace().SetUpsert(true))
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("record slow operations of %s: %w", slug, err)
	}
	return nil
}
