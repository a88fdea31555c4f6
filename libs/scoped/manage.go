// What the platform does to an experiment's data as a whole, outside any
// scope: deleting it with the experiment, building the indexes its
// manifest manages.

package scoped

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
)

// DeleteAll deletes the experiment's documents from every {slug}_*
// collection, and drops a collection left empty. Slugs may contain "_", so
// another experiment's collection can share the prefix (experiment "a_b"'s
// "c" and experiment "a"'s "b_c" are both a_b_c): only documents carrying
// this experiment's id are removed.
func DeleteAll(ctx context.Context, db *mongo.Database, slug string) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range names {
		if !strings.HasPrefix(name, slug+"_") {
			continue
		}
		c := db.Collection(name)
		if _, err := c.DeleteMany(ctx, bson.D{{Key: Field, Value: slug}}); err != nil {
			return fmt.Errorf("delete data of %s in %s: %w", slug, name, err)
		}
		if n, err := c.CountDocuments(ctx, bson.D{}); err == nil && n == 0 {
			if err := c.Drop(ctx); err != nil {
				return fmt.Errorf("drop %s: %w", name, err)
			}
		}
	}
	return nil
}

// CreateIndex builds a managed index of a manifest on the experiment's
// collection c.
func CreateIndex(ctx context.Context, c *mongo.Collection, spec bundle.IndexSpec) error {
	if len(spec.Keys) == 0 {
		return fmt.Errorf("no keys")
	}
	keys := bson.D{}
	for _, k := range spec.Keys {
		keys = append(keys, bson.E{Key: k.Field, Value: k.Value()})
	}
	opts := options.Index().SetName(spec.Name)
	if v, ok := spec.Options["unique"].(bool); ok {
		opts.SetUnique(v)
	}
	if v, ok := spec.Options["sparse"].(bool); ok {
		opts.SetSparse(v)
	}
	if v, ok := spec.Options["expireAfterSeconds"].(float64); ok {
		opts.SetExpireAfterSeconds(int32(v))
	}
	if v, ok := spec.Options["partialFilterExpression"].(map[string]any); ok {
		opts.SetPartialFilterExpression(v)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: opts})
	return err
}
