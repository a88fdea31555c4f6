package scoped_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
)

func TestDetectStoreFindsTheEmbeddedStore(t *testing.T) {
	db := connect(t)
	k, err := scoped.DetectStore(ctxT(t), db)
	if err != nil || k != scoped.StoreFerretDB {
		t.Fatalf("DetectStore = %s, %v; want ferretdb", k, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scoped.DetectStore(ctx, db); err == nil {
		t.Error("DetectStore succeeded without a connection")
	}
}

// On the embedded store, what it would compute wrongly is refused; the
// Scope finds out by itself (no WithStore).
func TestEmbeddedStoreRefusesWhatItComputesWrongly(t *testing.T) {
	f := setup(t)
	before := snapshot(t, f.db)
	for _, tc := range []struct {
		name string
		op   func(context.Context, *testing.T) error
	}{
		{"$group with two accumulators", aggregateOn(f.a, `[{"$group": {"_id": "$g", "n": {"$sum": 1}, "total": {"$sum": "$x"}}}]`)},
		{"$addFields with a field path", aggregateOn(f.a, `[{"$addFields": {"y": "$x"}}]`)},
		{"$set with a field path", aggregateOn(f.a, `[{"$set": {"y": "$x"}}]`)},
		{"$set with a variable", aggregateOn(f.a, `[{"$set": {"y": "$$ROOT"}}]`)},
		{"$set with a field path in an array", aggregateOn(f.a, `[{"$set": {"y": [1, "$x"]}}]`)},
		{"$set with a field path in a sub-document", aggregateOn(f.a, `[{"$set": {"y": {"a": "$x"}}}]`)},
		{"$set with a sub-document", aggregateOn(f.a, `[{"$set": {"y": {"a": 1}}}]`)},
		{"$set with a dotted name", aggregateOn(f.a, `[{"$set": {"y.a": 1}}]`)},
		{"$addFields with a sub-document in an operator", aggregateOn(f.a, `[{"$addFields": {"y": {"$ifNull": [{"a": "$x"}, 0]}}}]`)},
		{"$project with a field path", aggregateOn(f.a, `[{"$project": {"y": "$x"}}]`)},
		{"$project nested", aggregateOn(f.a, `[{"$project": {"tags": {"k": 1}}}]`)},
		{"a later stage", aggregateOn(f.a, `[{"$match": {}}, {"$sort": {"x": 1}}, {"$project": {"y": "$x"}}]`)},
		{"Find projection with a field path", func(ctx context.Context, t *testing.T) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{Projection: bson.M{"y": "$x"}})
			return err
		}},
		{"upsert with $and", func(ctx context.Context, t *testing.T) error {
			_, err := f.a.UpdateOne(ctx, scoped.Own("clicks"), doc(t, `{"$and": [{"k": 1}]}`), doc(t, `{"$set": {"v": 1}}`), scoped.UpdateOptions{Upsert: true})
			return err
		}},
		{"upsert with $or", func(ctx context.Context, t *testing.T) error {
			_, err := f.a.UpdateMany(ctx, scoped.Own("clicks"), doc(t, `{"$or": [{"k": 1}]}`), doc(t, `{"$set": {"v": 1}}`), scoped.UpdateOptions{Upsert: true})
			return err
		}},
		{"what the store does not implement", aggregateOn(f.a, `[{"$group": {"_id": null, "m": {"$max": "$x"}}}]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op(ctxT(t), t)
			wantCode(t, err, apierr.CodeStoreUnsupported)
			if apierr.CodeStoreUnsupported.Status() != 501 {
				t.Errorf("store_unsupported is %d", apierr.CodeStoreUnsupported.Status())
			}
			if after := snapshot(t, f.db); after != before {
				t.Fatalf("the database changed:\n%s", after)
			}
		})
	}

	// What it computes right is allowed and right.
	for _, tc := range []struct{ pipeline, want string }{
		{`[{"$group": {"_id": "$g", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]`, `[{"_id":"p","n":1},{"_id":"q","n":1}]`},
		{`[{"$group": {"_id": {"g": "$g", "e": "$experiment_id"}, "n": {"$sum": "$x"}}}, {"$sort": {"_id.g": 1}}]`,
			`[{"_id":{"g":"p","e":"exp-a"},"n":1},{"_id":{"g":"q","e":"exp-a"},"n":2}]`},
		{`[{"$addFields": {"y": {"$sum": ["$x", "$x"]}}}, {"$project": {"y": 1}}, {"$sort": {"y": 1}}]`, `[{"_id":"a1","y":2},{"_id":"a2","y":4}]`},
		{`[{"$project": {"tags.k": 1, "x": 1}}, {"$sort": {"x": 1}}]`, `[{"_id":"a1","x":1,"tags":[]},{"_id":"a2","x":2,"tags":[]}]`},
		{`[{"$project": {"tags": 0, "g": 0, "experiment_id": 0}}, {"$sort": {"x": 1}}]`, `[{"_id":"a1","x":1},{"_id":"a2","x":2}]`},
		{`[{"$set": {"s": "literal"}}, {"$project": {"s": 1}}, {"$sort": {"_id": 1}}]`, `[{"_id":"a1","s":"literal"},{"_id":"a2","s":"literal"}]`},
	} {
		docs, err := f.a.Aggregate(ctxT(t), scoped.Own("clicks"), arr(t, tc.pipeline))
		if err != nil {
			t.Errorf("%s: %v", tc.pipeline, err)
			continue
		}
		if j, _ := scoped.MarshalResults(docs); string(j) != tc.want {
			t.Errorf("%s = %s, want %s", tc.pipeline, j, tc.want)
		}
	}
	res, err := f.a.UpdateOne(ctxT(t), scoped.Own("clicks"), doc(t, `{"k": "top", "n": {"$eq": 3}}`), doc(t, `{"$set": {"v": 1}}`), scoped.UpdateOptions{Upsert: true})
	if err != nil || res.UpsertedID == nil {
		t.Fatalf("upsert with a top-level filter = %+v, %v", res, err)
	}
	if got := rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{"k": "top", "n": 3, "v": 1, "experiment_id": "exp-a"}`); len(got) != 1 {
		t.Error("the upserted document lacks its filter's equality conditions or experiment_id")
	}
}

// Told it runs on MongoDB, the Scope lets these through; on the embedded
// store they then answer wrongly, which is why they are refused there. If
// this test fails, the embedded store got that right and the refusal can go.
func TestEmbeddedStoreGapsAreReal(t *testing.T) {
	f := setup(t)
	asMongo := newScope(t, f.db, "exp-a", nil, scoped.WithStore(scoped.StoreMongoDB))
	docs, err := asMongo.Aggregate(ctxT(t), scoped.Own("clicks"), arr(t, `[{"$group": {"_id": null, "n": {"$sum": 1}, "total": {"$sum": "$x"}}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := scoped.MarshalResults(docs); string(j) != `[{"_id":null,"n":2,"total":0}]` {
		t.Errorf("$group with two accumulators on the embedded store = %s (MongoDB: total 3)", j)
	}
	docs, err = asMongo.Aggregate(ctxT(t), scoped.Own("clicks"), arr(t, `[{"$match": {"_id": "a1"}}, {"$set": {"y": "$x"}}, {"$project": {"y": 1}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := scoped.MarshalResults(docs); string(j) != `[{"_id":"a1","y":"$x"}]` {
		t.Errorf("$set with a field path on the embedded store = %s (MongoDB: y 1)", j)
	}
	// And WithStore(StoreFerretDB) refuses without asking.
	asEmbedded := newScope(t, f.db, "exp-a", nil, scoped.WithStore(scoped.StoreFerretDB))
	_, err = asEmbedded.Aggregate(ctxT(t), scoped.Own("clicks"), arr(t, `[{"$set": {"y": "$x"}}]`))
	wantCode(t, err, apierr.CodeStoreUnsupported)
}

func aggregateOn(s *scoped.Scope, pipeline string) func(context.Context, *testing.T) error {
	return func(ctx context.Context, t *testing.T) error {
		_, err := s.Aggregate(ctx, scoped.Own("clicks"), arr(t, pipeline))
		return err
	}
}
