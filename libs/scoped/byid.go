package scoped

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"weak"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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

// Writes by _id alone.
//
// An update, replacement or delete whose filter is exactly {_id: X} would
// be sent bound, {experiment_id: slug, _id: X}, which FerretDB 1.24 on
// SQLite answers by reading every document of the collection, as for a
// find. There, and only there (MongoDB uses its _id index for the bound
// filter, and FerretDB on PostgreSQL evaluates both conditions in SQL: a
// second request would only add to them), the write is made in two steps
// that SQLite both answers with a lookup:
//
//  1. the document {_id: X} is read, and its experiment_id checked as a find
//     by _id alone checks it (exactly the slug, a string);
//  2. if it is the experiment's own, the write is sent with the bare filter
//     {_id: X}. If there is none, a plain write is not sent at all (nothing
//     of the experiment's could match: as if it had come just before the
//     document was inserted) and an upsert goes bound. If the document is
//     not exactly the experiment's (another experiment's, or experiment_id
//     missing or not a string), the write goes bound, and the store decides
//     as it would without this path: no match, and for an upsert a
//     duplicate _id refused instead of the document overwritten (a rare
//     case, so its speed does not matter).
//
// Between the two steps the document could change. A write with the bare
// filter touches whatever has _id X then, so it relies on this: the
// experiment's own collection holds nothing of another experiment's that
// was not there at step 1. Every writer the platform has keeps that: the
// library stamps experiment_id on every insert, replacement and upsert and
// lets no update change it, the name migration moves each document to the
// collection of its own experiment_id, and a standalone run imports its
// package's documents (as they are) before it serves the experiment. Only
// a writer outside the platform, deleting the experiment's document and
// inserting another experiment's under the same _id between the two
// steps, could make the write land there; the check of step 1 is what
// keeps a document planted before from being touched. The store's serialising of updates (libs/store) covers the
// second step as any update.
//
// Only string and ObjectID _ids take this path: they are what SQLite looks
// up by _id; any other _id (a number, an array, a document, a regular
// expression, an operator) is sent bound, as before.

// idWriteOnly reports whether f is exactly {_id: X} with X a string or an
// ObjectID, and returns X.
func idWriteOnly(f bson.Raw) (bson.RawValue, bool) {
	v, ok := idOnly(f)
	if !ok || (v.Type != bson.TypeString && v.Type != bson.TypeObjectID) {
		return bson.RawValue{}, false
	}
	return v, true
}

// writeByID is step 1 of a write by _id alone on t: bare says the write
// may go with the bare filter {_id: id}, none that nothing is to be
// written. Neither: the write goes bound.
func (s *Scope) writeByID(ctx context.Context, t target, id bson.RawValue, upsert bool) (bare, none bool, err error) {
	if t.slug != s.slug {
		return false, false, nil
	}
	lookup, err := s.lookupFirst(ctx)
	if err != nil || !lookup {
		return false, false, err
	}
	cur, err := s.db.Collection(t.coll).Find(ctx, bson.D{{Key: "_id", Value: id}},
		options.Find().SetLimit(1).SetProjection(bson.D{{Key: Field, Value: 1}}))
	if err != nil {
		return false, false, s.storeError("the lookup by _id", err)
	}
	docs, err := s.drain(ctx, cur)
	if err != nil {
		return false, false, err
	}
	if len(docs) == 0 {
		return false, !upsert, nil
	}
	if owner, ok := docs[0].Lookup(Field).StringValueOK(); ok && owner == t.slug {
		return true, false, nil
	}
	// Anything else goes bound, which decides as on every other store.
	return false, false, nil
}

// lookupFirst says whether writes by _id alone are made in two steps:
// on FerretDB on SQLite, or on FerretDB whose backend is not known yet.
func (s *Scope) lookupFirst(ctx context.Context) (bool, error) {
	kind, err := s.storeKind(ctx)
	if err != nil || kind != StoreFerretDB {
		return false, err
	}
	return EmbeddedBackend(ctx, s.db) != BackendPostgreSQL, nil
}

// The backends of the embedded store, as EmbeddedBackend names them.
const (
	BackendSQLite     = "SQLite"
	BackendPostgreSQL = "PostgreSQL"
)

// backends remembers EmbeddedBackend's answer per client.
var backends sync.Map // weak.Pointer[mongo.Client] -> string

// EmbeddedBackend is the backend under a FerretDB store, BackendSQLite or
// BackendPostgreSQL, or "" when it is not known: FerretDB names it in its
// startup warnings (getLog) once its first command has reached it, and
// nowhere else. An answer is remembered per client; "" is not, but a
// refusal is (as ""), so that a store that refuses getLog is asked once.
func EmbeddedBackend(ctx context.Context, db *mongo.Database) string {
	client := db.Client()
	key := weak.Make(client)
	if b, ok := backends.Load(key); ok {
		return b.(string)
	}
	var res struct {
		Log []string `bson:"log"`
	}
	err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "getLog", Value: "startupWarnings"}}).Decode(&res)
	b := ""
	for _, line := range res.Log {
		for _, name := range []string{BackendSQLite, BackendPostgreSQL} {
			if strings.Contains(line, "Powered by FerretDB") && strings.Contains(line, " and "+name+" ") {
				b = name
			}
		}
	}
	if b != "" || (err != nil && ctx.Err() == nil) {
		if _, loaded := backends.LoadOrStore(key, b); !loaded {
			runtime.AddCleanup(client, func(key weak.Pointer[mongo.Client]) { backends.Delete(key) }, key)
		}
	}
	return b
}
