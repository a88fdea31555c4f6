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
	"github.com/gnome-platform/gnome/libs/store"
)

// DeleteAll drops every collection of the experiment: under the
// injective naming they hold only its documents. Documents it may still
// have in collections of the old naming that MigrateNames could not place
// are deleted too (by experiment_id, never another experiment's).
func DeleteAll(ctx context.Context, db *mongo.Database, slug string) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, name := range names {
		if s, _, ok := ParseCollectionName(name); ok {
			if s != slug {
				continue
			}
			if err := db.Collection(name).Drop(ctx); err != nil {
				return fmt.Errorf("drop %s: %w", name, err)
			}
			continue
		}
		if !strings.HasPrefix(name, slug+"_") {
			continue
		}
		c := db.Collection(name)
		if _, err := c.DeleteMany(ctx, bson.D{{Key: Field, Value: slug}}); err != nil {
			return fmt.Errorf("delete data of %s in %s: %w", slug, name, err)
		}
	}
	// Its record of slow operations goes too: a later experiment of the
	// same slug starts without them.
	if _, err := db.Collection(store.DataSlowOps).DeleteOne(ctx, bson.D{{Key: "_id", Value: slug}}); err != nil {
		return fmt.Errorf("delete the slow operations of %s: %w", slug, err)
	}
	return nil
}

// CreateIndex builds a managed index of a manifest on the experiment
// slug's collection base: only ever one of the experiment's own
// collections, whatever the manifest names.
func CreateIndex(ctx context.Context, db *mongo.Database, slug, base string, spec bundle.IndexSpec) error {
	if err := checkSlug(slug); err != nil {
		return fmt.Errorf("slug %q %w", slug, err)
	}
	if !baseSyntax.MatchString(base) {
		return fmt.Errorf("collection %q is not a base name of 1 to 64 ASCII letters, digits or underscores", base)
	}
	c := db.Collection(CollectionName(slug, base))
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
