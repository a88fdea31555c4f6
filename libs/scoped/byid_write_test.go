package scoped_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// sentWrite is a write command as the store received it: its name and the
// filter of its one statement.
type sentWrite struct {
	cmd    string
	coll   string
	filter bson.Raw
}

// sentWrites connects with a command monitor and returns the database and
// the update, delete and find commands sent so far.
func sentWrites(t *testing.T) (*mongo.Database, func() []sentWrite) {
	t.Helper()
	env := testenv.Start(t)
	var mu sync.Mutex
	var sent []sentWrite
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		var f bson.Raw
		switch e.CommandName {
		case "find":
			f = e.Command.Lookup("filter").Document()
		case "update":
			f = e.Command.Lookup("updates", "0", "q").Document()
		case "delete":
			f = e.Command.Lookup("deletes", "0", "q").Document()
		default:
			return
		}
		mu.Lock()
		sent = append(sent, sentWrite{e.CommandName, e.Command.Lookup(e.CommandName).StringValue(), slices.Clone(f)})
		mu.Unlock()
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI).SetMonitor(mon))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database("scoped_byid_write_test"), func() []sentWrite {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sent)
	}
}

// docsByID is every document of the collections, as stored, by collection
// and _id.
func docsByID(t *testing.T, db *mongo.Database, colls ...string) map[string]map[string]bson.Raw {
	t.Helper()
	out := map[string]map[string]bson.Raw{}
	for _, c := range colls {
		out[c] = map[string]bson.Raw{}
		for _, d := range rawFind(t, db, c, `{}`) {
			out[c][d.Lookup("_id").String()] = d
		}
	}
	return out
}

func sameDocs(a, b map[string]bson.Raw) bool {
	return maps.EqualFunc(a, b, func(x, y bson.Raw) bool { return bytes.Equal(x, y) })
}

// An update, replacement or delete by _id alone never touches a document
// of another experiment: not one planted in the experiment's own physical
// collection under the _id asked for, nor one with the same _id in a
// granted or shared collection; an upsert neither overwrites such a
// document nor makes a second one. On SQLite an own document is written
// with the bare filter {_id: X} after a lookup, and nothing is sent when
// none of the experiment's is there; on other stores the bound filter
// goes.
func TestWriteByIDAloneNeverTouchesAnotherExperimentsDocument(t *testing.T) {
	db, sent := sentWrites(t)
	ctx := ctxT(t)
	own, granted, shared := scoped.CollectionName("exp-a", "clicks"), scoped.CollectionName("exp-b", "clicks"), "shared_clicks"
	oid := bson.NewObjectID()
	planted := map[string][]bson.D{
		own: {
			{{Key: "_id", Value: "a1"}, {Key: scoped.Field, Value: "exp-a"}, {Key: "x", Value: 1}},
			{{Key: "_id", Value: "b-in-a"}, {Key: scoped.Field, Value: "exp-b"}, {Key: "x", Value: 2}},
			{{Key: "_id", Value: "none-in-a"}, {Key: "x", Value: 3}},
			{{Key: "_id", Value: "array-in-a"}, {Key: scoped.Field, Value: bson.A{"exp-b", "exp-a"}}, {Key: "x", Value: 4}},
			{{Key: "_id", Value: "doc-in-a"}, {Key: scoped.Field, Value: bson.D{{Key: "slug", Value: "exp-a"}}}, {Key: "x", Value: 5}},
			{{Key: "_id", Value: oid}, {Key: scoped.Field, Value: "exp-c"}, {Key: "x", Value: 6}},
		},
		granted: {
			{{Key: "_id", Value: "a1"}, {Key: scoped.Field, Value: "exp-b"}, {Key: "x", Value: 10}},
			{{Key: "_id", Value: "b1"}, {Key: scoped.Field, Value: "exp-b"}, {Key: "x", Value: 11}},
		},
		shared: {
			{{Key: "_id", Value: "a1"}, {Key: "x", Value: 20}},
		},
	}
	for coll, docs := range planted {
		for _, d := range docs {
			// Raw inserts: what only direct access to the store could do.
			if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
				t.Fatalf("plant in %s: %v", coll, err)
			}
		}
	}
	a := newScope(t, db, "exp-a", []string{"self", "exp-b", "shared"}, scoped.WithStore(storeKind(t, db)))
	lookupFirst := false
	if k, _ := scoped.DetectStore(ctx, db); k == scoped.StoreFerretDB {
		_ = rawFind(t, db, own, `{}`) // FerretDB names its backend once it has used it
		lookupFirst = scoped.EmbeddedBackend(ctx, db) != scoped.BackendPostgreSQL
	}
	t.Logf("writes by _id alone look the document up first: %v (backend %q)", lookupFirst, scoped.EmbeddedBackend(ctx, db))

	set := func(v int) bson.D { return bson.D{{Key: "$set", Value: bson.D{{Key: "y", Value: v}}}} }
	type write struct {
		name string
		do   func(id any) (matched int64, err error)
	}
	writes := []write{
		{"UpdateOne", func(id any) (int64, error) {
			r, err := a.UpdateOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, set(1), scoped.UpdateOptions{})
			return r.Matched, err
		}},
		{"UpdateMany", func(id any) (int64, error) {
			r, err := a.UpdateMany(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, set(2), scoped.UpdateOptions{})
			return r.Matched, err
		}},
		{"ReplaceOne", func(id any) (int64, error) {
			r, err := a.ReplaceOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "y", Value: 3}}, scoped.UpdateOptions{})
			return r.Matched, err
		}},
		{"DeleteOne", func(id any) (int64, error) {
			return a.DeleteOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}})
		}},
		{"DeleteMany", func(id any) (int64, error) {
			return a.DeleteMany(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}})
		}},
	}
	upserts := []write{
		{"UpdateOne upsert", func(id any) (int64, error) {
			r, err := a.UpdateOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, set(4), scoped.UpdateOptions{Upsert: true})
			return r.Matched, err
		}},
		{"ReplaceOne upsert", func(id any) (int64, error) {
			r, err := a.ReplaceOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "y", Value: 5}}, scoped.UpdateOptions{Upsert: true})
			return r.Matched, err
		}},
	}
	all := []string{own, granted, shared}

	// Another experiment's document, or one that is nobody's or ambiguous,
	// under the _id asked for: nothing matches, nothing changes.
	// (array-in-a, whose experiment_id is an array holding "exp-a", is the
	// experiment's to a bound filter: TestWriteByIDArrayOwner.)
	for _, id := range []any{"b-in-a", "none-in-a", "doc-in-a", oid} {
		for _, w := range writes {
			t.Run(fmt.Sprintf("%s %v", w.name, id), func(t *testing.T) {
				before, n0 := docsByID(t, db, all...), len(sent())
				n, err := w.do(id)
				if err != nil || n != 0 {
					t.Fatalf("= %d, %v; want nothing matched", n, err)
				}
				if after := docsByID(t, db, all...); !sameDocs(before[own], after[own]) || !sameDocs(before[granted], after[granted]) {
					t.Fatalf("documents changed: before %v, after %v", before, after)
				}
				for _, s := range ownWrites(sent()[n0:], own) {
					if bound(s) != "exp-a" {
						t.Fatalf("sent %s with filter %v: a write by _id goes bound unless the document is the experiment's own", s.cmd, s.filter)
					}
				}
			})
		}
		for _, w := range upserts {
			t.Run(fmt.Sprintf("%s %v", w.name, id), func(t *testing.T) {
				before := docsByID(t, db, all...)
				if _, err := w.do(id); err == nil {
					t.Fatal("an upsert onto another experiment's _id succeeded; want the duplicate _id refused")
				}
				if after := docsByID(t, db, all...); !sameDocs(before[own], after[own]) || !sameDocs(before[granted], after[granted]) {
					t.Fatalf("documents changed: before %v, after %v", before, after)
				}
			})
		}
	}

	// The own document: written, with the bare filter where the store
	// looks _id up only so; the same _id elsewhere is left alone.
	for _, w := range append(slices.Clone(writes[:3]), upserts...) {
		t.Run(w.name+" own", func(t *testing.T) {
			before, n0 := docsByID(t, db, granted, shared), len(sent())
			n, err := w.do("a1")
			if err != nil || n != 1 {
				t.Fatalf("= %d, %v; want 1 matched", n, err)
			}
			if after := docsByID(t, db, granted, shared); !sameDocs(before[granted], after[granted]) || !sameDocs(before[shared], after[shared]) {
				t.Fatalf("another collection changed: before %v, after %v", before, after)
			}
			writesSent := ownWrites(sent()[n0:], own)
			if len(writesSent) != 1 {
				t.Fatalf("sent %v, want one write", writesSent)
			}
			if lookupFirst == (bound(writesSent[0]) != "") {
				t.Fatalf("sent filter %v; want it bare (only _id) exactly when the lookup comes first (%v)", writesSent[0].filter, lookupFirst)
			}
			got := rawFind(t, db, own, `{"_id": "a1"}`)
			if len(got) != 1 || got[0].Lookup(scoped.Field).StringValue() != "exp-a" {
				t.Fatalf("own document after the write: %v", got)
			}
		})
	}

	// Writes to a granted or the shared collection are refused before any
	// lookup.
	for _, ref := range []scoped.Ref{scoped.From("exp-b", "clicks"), scoped.From("shared", "clicks")} {
		_, err := a.UpdateOne(ctx, ref, bson.D{{Key: "_id", Value: "a1"}}, set(9), scoped.UpdateOptions{Upsert: true})
		wantCode(t, err, apierr.CodeScopeForbidden)
		_, err = a.DeleteOne(ctx, ref, bson.D{{Key: "_id", Value: "a1"}})
		wantCode(t, err, apierr.CodeScopeForbidden)
	}

	// _ids that are not a plain string or ObjectID go bound, and reach only
	// the experiment's own documents: an array, a document, a regular
	// expression, operators.
	// array-in-a holds "exp-a" in an array: the bound filter matches it,
	// as MongoDB does, on every store.
	for _, tc := range []struct {
		name string
		id   any
		want int64 // documents matched: a1, and array-in-a where named
	}{
		{"array", bson.A{"a1"}, 0},
		{"document", bson.D{{Key: "slug", Value: "exp-a"}}, 0},
		{"regular expression", bson.Regex{Pattern: "^a"}, 2},
		{"$ne", bson.D{{Key: "$ne", Value: nil}}, 2},
		{"$gt", bson.D{{Key: "$gt", Value: ""}}, 2},
		{"$in", bson.D{{Key: "$in", Value: bson.A{"a1", "b-in-a", "none-in-a"}}}, 1},
		{"$exists", bson.D{{Key: "$exists", Value: true}}, 2},
		{"integer", int64(7), 0},
	} {
		t.Run("bound "+tc.name, func(t *testing.T) {
			before, n0 := docsByID(t, db, all...), len(sent())
			r, err := a.UpdateMany(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: tc.id}}, set(7), scoped.UpdateOptions{})
			if err != nil {
				// An operator the store does not take under _id is refused
				// whole, which touches nothing either.
				t.Logf("UpdateMany: %v", err)
			} else if r.Matched != tc.want {
				t.Fatalf("matched %d, want %d", r.Matched, tc.want)
			}
			after := docsByID(t, db, all...)
			if !sameDocs(before[granted], after[granted]) || !sameDocs(before[shared], after[shared]) {
				t.Fatal("a granted or shared collection changed")
			}
			for id, d := range after[own] {
				if id != `"a1"` && id != `"array-in-a"` && !bytes.Equal(d, before[own][id]) {
					t.Fatalf("another experiment's document changed: %v -> %v", before[own][id], d)
				}
			}
			for _, s := range ownWrites(sent()[n0:], own) {
				if bound(s) != "exp-a" {
					t.Fatalf("sent update with filter %v, want it bound to exp-a", s.filter)
				}
			}
		})
	}
}

// A bad write by _id alone is refused whether or not the document is
// there: the lookup comes after every check.
func TestWriteByIDAloneChecksBeforeItLooks(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	a := newScope(t, db, "exp-a", nil)
	if _, err := a.InsertOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: "here"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"here", "not-here"} {
		_, err := a.UpdateOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: scoped.Field, Value: "exp-b"}}}}, scoped.UpdateOptions{})
		wantCode(t, err, apierr.CodeScopeForbidden)
		_, err = a.UpdateOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "n", Value: 1}}, scoped.UpdateOptions{})
		wantCode(t, err, apierr.CodeBadRequest)
		_, err = a.ReplaceOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$where", Value: "1"}}, scoped.UpdateOptions{})
		if err == nil {
			t.Errorf("a replacement with an operator for %s was taken", id)
		}
	}
	got := rawFind(t, db, scoped.CollectionName("exp-a", "clicks"), `{}`)
	if len(got) != 1 || got[0].Lookup(scoped.Field).StringValue() != "exp-a" || len(rawElems(t, got[0])) != 2 {
		t.Errorf("after refused writes: %v; want the document as inserted", got)
	}
}

func rawElems(t *testing.T, d bson.Raw) []bson.RawElement {
	t.Helper()
	e, err := d.Elements()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A document whose experiment_id is an array holding the slug is the
// experiment's to a bound filter (MongoDB's matching of arrays), and a
// write by _id alone treats it alike on every store: the lookup, which
// wants exactly the slug, sends such a write bound.
func TestWriteByIDArrayOwner(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	own := scoped.CollectionName("exp-a", "clicks")
	if _, err := db.Collection(own).InsertOne(ctx, bson.D{{Key: "_id", Value: "arr"}, {Key: scoped.Field, Value: bson.A{"exp-b", "exp-a"}}}); err != nil {
		t.Fatal(err)
	}
	a := newScope(t, db, "exp-a", nil)
	for _, upsert := range []bool{false, true} {
		r, err := a.UpdateOne(ctx, scoped.Own("clicks"), bson.D{{Key: "_id", Value: "arr"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "y", Value: 1}}}}, scoped.UpdateOptions{Upsert: upsert})
		if err != nil || r.Matched != 1 {
			t.Fatalf("UpdateOne (upsert %v) = %+v, %v; want 1 matched, as a bound filter matches", upsert, r, err)
		}
	}
	if n, err := a.Count(ctx, scoped.Own("clicks"), nil); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want the one document", n, err)
	}
}

// ownWrites are the updates and deletes of sent that went to coll.
func ownWrites(sent []sentWrite, coll string) []sentWrite {
	var out []sentWrite
	for _, s := range sent {
		if s.cmd != "find" && s.coll == coll {
			out = append(out, s)
		}
	}
	return out
}

// bound is the experiment_id a sent filter is bound to, "" if none.
func bound(s sentWrite) string {
	v, _ := s.filter.Lookup(scoped.Field).StringValueOK()
	return v
}

// storeKind is what the test store is.
func storeKind(t *testing.T, db *mongo.Database) scoped.StoreKind {
	t.Helper()
	k, err := scoped.DetectStore(ctxT(t), db)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Upserts by _id racing each other, and deletes of the same _id, lose no
// increment, never store a document of another experiment's, and never
// touch the same _id in a granted collection or another experiment's
// document planted under an _id the racers also ask for. Through the
// platform's store client, which serialises FerretDB's updates.
func TestUpsertsByIDRace(t *testing.T) {
	env := testenv.Start(t)
	ctx := ctxT(t)
	st, err := store.Open(ctx, store.Options{URI: env.MongoURI, Database: "scoped_upsert_race", MaxPool: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Client.Disconnect(context.Background()) })
	db := st.DB
	own, granted := scoped.CollectionName("exp-a", "counts"), scoped.CollectionName("exp-b", "counts")
	for coll, d := range map[string]bson.D{
		granted: {{Key: "_id", Value: "ctr"}, {Key: scoped.Field, Value: "exp-b"}, {Key: "n", Value: 100}},
		own:     {{Key: "_id", Value: "theirs"}, {Key: scoped.Field, Value: "exp-b"}, {Key: "n", Value: 100}},
	} {
		if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	a := newScope(t, db, "exp-a", []string{"exp-b"})
	inc := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if _, err := a.UpdateOne(ctx, scoped.Own("counts"), bson.D{{Key: "_id", Value: "ctr"}}, inc, scoped.UpdateOptions{Upsert: true}); err != nil {
					errs <- fmt.Errorf("upsert ctr: %w", err)
				}
				if _, err := a.UpdateOne(ctx, scoped.Own("counts"), bson.D{{Key: "_id", Value: "theirs"}}, inc, scoped.UpdateOptions{Upsert: true}); err == nil {
					errs <- fmt.Errorf("an upsert onto another experiment's document succeeded")
				}
				if _, err := a.UpdateOne(ctx, scoped.Own("counts"), bson.D{{Key: "_id", Value: "gone"}}, inc, scoped.UpdateOptions{Upsert: true}); err != nil {
					errs <- fmt.Errorf("upsert gone: %w", err)
				}
				if _, err := a.DeleteOne(ctx, scoped.Own("counts"), bson.D{{Key: "_id", Value: "gone"}}); err != nil {
					errs <- fmt.Errorf("delete gone: %w", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctr := rawFind(t, db, own, `{"_id": "ctr"}`)
	if len(ctr) != 1 || ctr[0].Lookup("n").AsInt64() != workers*rounds || ctr[0].Lookup(scoped.Field).StringValue() != "exp-a" {
		t.Errorf("counter after %d upserts: %v; want n %d, experiment_id exp-a", workers*rounds, ctr, workers*rounds)
	}
	for _, coll := range []string{own, granted} {
		for _, d := range rawFind(t, db, coll, `{}`) {
			id := d.Lookup("_id").StringValue()
			owner := d.Lookup(scoped.Field).StringValue()
			switch {
			case coll == granted || id == "theirs":
				if owner != "exp-b" || d.Lookup("n").AsInt64() != 100 {
					t.Errorf("%s in %s changed: %v", id, coll, d)
				}
			case owner != "exp-a":
				t.Errorf("%s in %s has experiment_id %q", id, coll, owner)
			}
		}
	}
}
