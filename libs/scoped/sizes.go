package scoped

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// EmbeddedSlowDocuments is the size of a collection, in documents, past
// which the embedded store (FerretDB 1.24 on SQLite) answers its queries
// slower than the slow-command threshold (100 ms, libs/store.SlowCommand):
// it reads every document for any query but a find by _id alone, at about
// 40 µs a document on the development machine (docs/benchmarks.md, "Data
// at scale": 42–50 ms at 1,000 documents, 300–440 ms at 10,000). Past it
// the platform warns that MongoDB (a docker package) is the way up.
const EmbeddedSlowDocuments = 2000

// CollectionSize is one collection of an experiment and its size as the
// store keeps it.
type CollectionSize struct {
	// Name is the base name.
	Name      string `json:"name"`
	Documents int64  `json:"documents"`
	// Bytes is the size of the documents (collStats size), without indexes.
	Bytes int64 `json:"bytes"`
}

// CollectionSizes lists the collections of the experiment slug, sorted by
// name, with their sizes from collStats: what the store keeps for the
// collection, without reading its documents, so that it stays cheap at any
// size. Every document of the collection counts: by the injective naming
// all are the experiment's.
func CollectionSizes(ctx context.Context, db *mongo.Database, slug string) ([]CollectionSize, error) {
	if err := checkSlug(slug); err != nil {
		return nil, fmt.Errorf("slug %q %s", slug, err)
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	out := []CollectionSize{}
	for _, name := range names {
		s, base, ok := ParseCollectionName(name)
		if !ok || s != slug {
			continue
		}
		var stats bson.Raw
		if err := db.RunCommand(ctx, bson.D{{Key: "collStats", Value: name}}).Decode(&stats); err != nil {
			// Dropped between the listing and now: not there any more.
			if strings.Contains(err.Error(), "NamespaceNotFound") || strings.Contains(err.Error(), "ns not found") {
				continue
			}
			return nil, fmt.Errorf("read the size of %s: %w", base, err)
		}
		out = append(out, CollectionSize{Name: base, Documents: number(stats.Lookup("count")), Bytes: number(stats.Lookup("size"))})
	}
	slices.SortFunc(out, func(a, b CollectionSize) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// number is a numeric field of a command's answer, whichever BSON number
// type the store chose; 0 when absent.
func number(v bson.RawValue) int64 {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDouble:
		return int64(v.Double())
	}
	return 0
}
