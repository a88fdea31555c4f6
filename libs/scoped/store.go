package scoped

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"weak"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// StoreKind is the store a Scope runs on. Some aggregations that MongoDB
// computes are answered wrongly, without an error, by the embedded store
// (FerretDB 1.x on SQLite); on it the Scope refuses them with
// store_unsupported:
//
//   - $group with more than one accumulator: only the first is filled, the
//     others come back 0;
//   - $addFields, $set and $project values that are field paths ("$x",
//     also inside arrays and sub-documents) or sub-documents: they come back
//     as the literal string or document, and a nested $project is not a
//     projection; operator expressions such as {$sum: ["$x", 1]} work;
//   - dotted names in $addFields and $set ("a.b"): a field literally named
//     "a.b" is made instead of b inside a;
//   - the same field paths and sub-documents in a Find projection;
//   - upserts whose filter has a top-level $and or $or: their equality
//     conditions are not copied into the inserted document.
//
// What the embedded store does not implement at all (most accumulators and
// expression operators, $unwind options, ...) it reports itself, and the
// Scope passes that on as store_unsupported too.
type StoreKind int

const (
	// StoreAuto asks the store with DetectStore on first use.
	StoreAuto StoreKind = iota
	// StoreMongoDB is MongoDB, or anything that is not FerretDB.
	StoreMongoDB
	// StoreFerretDB is FerretDB, the embedded store.
	StoreFerretDB
)

func (k StoreKind) String() string {
	switch k {
	case StoreMongoDB:
		return "mongodb"
	case StoreFerretDB:
		return "ferretdb"
	}
	return "auto"
}

// DetectStore asks the store what it is: FerretDB answers buildInfo with
// fields of its own (ferretdbVersion, ferretdbFeatures) beside the MongoDB
// version it imitates.
func DetectStore(ctx context.Context, db *mongo.Database) (StoreKind, error) {
	var info bson.Raw
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return StoreAuto, fmt.Errorf("ask the store for its build: %w", err)
	}
	elems, err := info.Elements()
	if err != nil {
		return StoreAuto, fmt.Errorf("read the store's build: %w", err)
	}
	for _, e := range elems {
		if strings.HasPrefix(strings.ToLower(e.Key()), "ferretdb") {
			return StoreFerretDB, nil
		}
	}
	return StoreMongoDB, nil
}

// detected remembers DetectStore's answer per client, so that scopes made
// for each call ask once. Weak keys let clients be collected.
var detected sync.Map // weak.Pointer[mongo.Client] -> StoreKind

func (s *Scope) storeKind(ctx context.Context) (StoreKind, error) {
	if s.store != StoreAuto {
		return s.store, nil
	}
	client := s.db.Client()
	key := weak.Make(client)
	if k, ok := detected.Load(key); ok {
		return k.(StoreKind), nil
	}
	k, err := DetectStore(ctx, s.db)
	if err != nil {
		return StoreAuto, s.storeError("detecting the store", err)
	}
	if _, loaded := detected.LoadOrStore(key, k); !loaded {
		runtime.AddCleanup(client, func(key weak.Pointer[mongo.Client]) { detected.Delete(key) }, key)
	}
	return k, nil
}

// unsupported is the refusal of what the embedded store would answer
// wrongly; format says what it would do.
func unsupported(path []string, format string, args ...any) *apierr.Error {
	return apierr.New(apierr.CodeStoreUnsupported, "%s: the embedded store "+format, append([]any{render(path)}, args...)...).OnField(pointer(path))
}

// checkEmbeddedPipeline refuses the stages the embedded store computes
// wrongly (see StoreKind).
func checkEmbeddedPipeline(stages []bson.Raw) error {
	for i, st := range stages {
		e := st.Index(0)
		name := e.Key()
		path := []string{"pipeline", fmt.Sprint(i), name}
		spec, isDoc := e.Value().DocumentOK()
		if !isDoc {
			continue
		}
		fields, _ := spec.Elements()
		switch name {
		case "$group":
			n := 0
			for _, f := range fields {
				if f.Key() != "_id" {
					n++
				}
			}
			if n > 1 {
				return unsupported(path, "would fill only the first of %d accumulators of a $group; use one accumulator per aggregation", n)
			}
		case "$addFields", "$set", "$project":
			for _, f := range fields {
				p := append(path[:len(path):len(path)], f.Key())
				if name != "$project" && strings.Contains(f.Key(), ".") {
					return unsupported(p, "would make a field literally named %q instead of a nested one; dotted names in %s are not supported there", f.Key(), name)
				}
				if err := checkEmbeddedExpr(f.Value(), false, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkEmbeddedProjection refuses the Find projections the embedded store
// computes wrongly.
func checkEmbeddedProjection(proj bson.Raw, what string) error {
	fields, _ := proj.Elements()
	for _, f := range fields {
		if err := checkEmbeddedExpr(f.Value(), false, []string{what, f.Key()}); err != nil {
			return err
		}
	}
	return nil
}

// checkEmbeddedExpr refuses field paths outside operator expressions, and
// sub-documents that are not operator expressions.
func checkEmbeddedExpr(v bson.RawValue, operand bool, path []string) error {
	switch v.Type {
	case bson.TypeString:
		if s := v.StringValue(); strings.HasPrefix(s, "$") && !operand {
			return unsupported(path, "would take the field path %q here as a literal string; include fields with $project {field: 1}, or compute numbers with {$sum: [%q]}", s, s)
		}
	case bson.TypeEmbeddedDocument:
		d := v.Document()
		elems, _ := d.Elements()
		op := false
		for _, e := range elems {
			op = op || strings.HasPrefix(e.Key(), "$")
		}
		if !op {
			return unsupported(path, "would take this sub-document literally; use dotted names in $project, or an operator expression")
		}
		for _, e := range elems {
			if err := checkEmbeddedExpr(e.Value(), true, append(path[:len(path):len(path)], e.Key())); err != nil {
				return err
			}
		}
	case bson.TypeArray:
		vals, _ := v.Array().Values()
		for i, x := range vals {
			if err := checkEmbeddedExpr(x, operand, append(path[:len(path):len(path)], fmt.Sprint(i))); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEmbeddedUpsertFilter refuses upsert filters whose equality conditions
// the embedded store would leave out of the inserted document.
func checkEmbeddedUpsertFilter(f bson.Raw) error {
	elems, _ := f.Elements()
	for _, e := range elems {
		if e.Key() == "$and" || e.Key() == "$or" {
			return unsupported([]string{"filter", e.Key()}, "would leave the conditions inside %s out of the document an upsert inserts; write them at the top level of the filter", e.Key())
		}
	}
	return nil
}
