package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// StandaloneImports records, per experiment, the package whose data a
// standalone run imported.
const StandaloneImports = "standalone_imports"

// Import is a document of StandaloneImports.
type Import struct {
	Slug       string    `bson:"_id"`
	Package    string    `bson:"package"`
	Documents  int64     `bson:"documents"`
	Inserted   int64     `bson:"inserted"`
	ImportedAt time.Time `bson:"imported_at"`
}

// Imports is the repository of standalone imports.
type Imports struct{ c *mongo.Collection }

// Imports is the repository over this store.
func (s *Store) Imports() Imports { return Imports{s.Collection(StandaloneImports)} }

// Get is the experiment's import record, or nil.
func (r Imports) Get(ctx context.Context, slug string) (*Import, error) {
	return FindByID[Import](ctx, r.c, slug)
}

// Put records an import, replacing the experiment's previous record.
func (r Imports) Put(ctx context.Context, rec Import) error {
	if _, err := r.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: rec.Slug}}, rec, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("record the import of %s: %w", rec.Slug, err)
	}
	return nil
}
