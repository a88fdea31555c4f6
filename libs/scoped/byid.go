package scoped

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Finds by _id alone.
//
// The embedded store (FerretDB 1.24 on SQLite) answers a filter that is
// exactly {_id: X} with one primary-key lookup, and any other filter by
// reading every document of the collection: {experiment_id: slug, _id: X},
// what bind makes of it, costs as much as a scan (docs/benchmarks.md,
// "Data at scale"). So a find whose filter is exactly {_id: X}, on an
// experiment's collection, is sent as {_id: X} and experiment_id is checked
// on what comes back instead, by the library, before the caller sees it: a
// document of another experiment is dropped as if it did not match. By the
// injective naming no other experiment's document is ever in the
// collection; the check keeps that from being what reads rely on.
//
// The shortcut is taken only where it returns what the bound filter would:
// no skip (a dropped document would have counted), and no projection (which
// could leave experiment_id out of what comes back). _id is unique in a
// collection, so at most one document comes back either way.

// idOnly reports whether f is exactly {_id: X} with X a plain value (a
// string, ObjectID or integer), not an operator document such as {$in:
// ...}, and returns X.
func idOnly(f bson.Raw) (bson.RawValue, bool) {
	elems, err := f.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
		return bson.RawValue{}, false
	}
	v := elems[0].Value()
	switch v.Type {
	case bson.TypeString, bson.TypeObjectID, bson.TypeInt32, bson.TypeInt64:
		return v, true
	}
	return bson.RawValue{}, false
}

// findByID finds {_id: id} in t's collection and keeps only a document
// whose experiment_id is t.slug.
func (s *Scope) findByID(ctx context.Context, t target, id bson.RawValue, fo *options.FindOptionsBuilder) ([]bson.Raw, error) {
	cur, err := s.db.Collection(t.coll).Find(ctx, bson.D{{Key: "_id", Value: id}}, fo)
	if err != nil {
		return nil, s.storeError("the find", err)
	}
	docs, err := s.drain(ctx, cur)
	if err != nil {
		return nil, err
	}
	out := docs[:0]
	for _, d := range docs {
		if owner, ok := d.Lookup(Field).StringValueOK(); ok && owner == t.slug {
			out = append(out, d)
		}
	}
	return out, nil
}
