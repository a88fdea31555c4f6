package scoped_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// sentFilters connects with a command monitor and returns the database and
// the filters of the find commands sent so far.
func sentFilters(t *testing.T) (*mongo.Database, func() []string) {
	t.Helper()
	env := testenv.Start(t)
	var mu sync.Mutex
	var filters []string
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "find" {
			return
		}
		j, _ := bson.MarshalExtJSON(e.Command.Lookup("filter").Document(), false, false)
		mu.Lock()
		filters = append(filters, string(j))
		mu.Unlock()
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI).SetMonitor(mon))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database("scoped_byid_test"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(filters)
	}
}

// A find by _id alone is sent as {_id: X}, which the embedded store
// answers with one lookup, and never hands back a document of another
// experiment, even one planted in the experiment's own physical collection
// or in a granted one.
func TestFindByIDAloneNeverReturnsAnotherExperimentsDocument(t *testing.T) {
	db, filters := sentFilters(t)
	ctx := ctxT(t)
	planted := map[string][]string{
		scoped.CollectionName("exp-a", "clicks"): {
			`{"_id": "a1", "experiment_id": "exp-a", "x": 1}`,
			`{"_id": "b-in-a", "experiment_id": "exp-b", "x": 2}`,
			`{"_id": "none-in-a", "x": 3}`,
			`{"_id": "array-in-a", "experiment_id": ["exp-b", "exp-a"], "x": 4}`,
			`{"_id": "doc-in-a", "experiment_id": {"slug": "exp-a"}, "x": 5}`,
			`{"_id": 7, "experiment_id": "exp-b", "x": 6}`,
			`{"_id": {"$oid": "65a000000000000000000001"}, "experiment_id": "exp-c", "x": 7}`,
		},
		scoped.CollectionName("exp-b", "clicks"): {
			`{"_id": "b1", "experiment_id": "exp-b", "x": 10}`,
			`{"_id": "a-in-b", "experiment_id": "exp-a", "x": 11}`,
		},
	}
	for coll, docs := range planted {
		for _, j := range docs {
			// Raw inserts: what only direct access to the store could do.
			if _, err := db.Collection(coll).InsertOne(ctx, doc(t, j)); err != nil {
				t.Fatalf("plant in %s: %v", coll, err)
			}
		}
	}
	a := newScope(t, db, "exp-a", []string{"self", "exp-b"})

	for _, tc := range []struct {
		name   string
		ref    scoped.Ref
		filter string
		opts   scoped.FindOptions
		want   []string
	}{
		{"own document", scoped.Own("clicks"), `{"_id": "a1"}`, scoped.FindOptions{}, []string{"a1"}},
		{"another experiment's, planted", scoped.Own("clicks"), `{"_id": "b-in-a"}`, scoped.FindOptions{}, nil},
		{"without experiment_id", scoped.Own("clicks"), `{"_id": "none-in-a"}`, scoped.FindOptions{}, nil},
		{"experiment_id an array holding the slug", scoped.Own("clicks"), `{"_id": "array-in-a"}`, scoped.FindOptions{}, nil},
		{"experiment_id a document", scoped.Own("clicks"), `{"_id": "doc-in-a"}`, scoped.FindOptions{}, nil},
		{"integer _id of another experiment", scoped.Own("clicks"), `{"_id": 7}`, scoped.FindOptions{}, nil},
		{"ObjectID of another experiment", scoped.Own("clicks"), `{"_id": {"$oid": "65a000000000000000000001"}}`, scoped.FindOptions{}, nil},
		{"with a sort and a limit", scoped.Own("clicks"), `{"_id": "b-in-a"}`, scoped.FindOptions{Sort: bson.D{{Key: "x", Value: 1}}, Limit: 5}, nil},
		{"granted collection", scoped.From("exp-b", "clicks"), `{"_id": "b1"}`, scoped.FindOptions{}, []string{"b1"}},
		{"own document planted in the granted collection", scoped.From("exp-b", "clicks"), `{"_id": "a-in-b"}`, scoped.FindOptions{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(filters())
			docs, err := a.Find(ctx, tc.ref, doc(t, tc.filter), tc.opts)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if got := ids(t, docs); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("Find(%s) = %v, want %v", tc.filter, got, tc.want)
			}
			one, err := a.FindOne(ctx, tc.ref, doc(t, tc.filter), scoped.FindOptions{})
			if err != nil {
				t.Fatalf("FindOne: %v", err)
			}
			if (one != nil) != (len(tc.want) == 1) {
				t.Fatalf("FindOne(%s) = %v, want %v", tc.filter, one, tc.want)
			}
			sent := filters()[before:]
			if len(sent) != 2 {
				t.Fatalf("sent %d finds, want 2: %v", len(sent), sent)
			}
			for _, f := range sent {
				var got, want bson.D
				_ = bson.UnmarshalExtJSON([]byte(f), false, &got)
				_ = bson.UnmarshalExtJSON([]byte(tc.filter), false, &want)
				if len(got) != 1 || got[0].Key != "_id" {
					t.Fatalf("sent filter %s, want %s alone (the store's fast path)", f, tc.filter)
				}
			}
		})
	}

	// Anything but _id alone keeps the bound filter: an operator, another
	// field beside _id, a skip, a projection.
	for _, tc := range []struct {
		name   string
		filter string
		opts   scoped.FindOptions
	}{
		{"$in", `{"_id": {"$in": ["b-in-a", "a1"]}}`, scoped.FindOptions{}},
		{"_id and another field", `{"_id": "b-in-a", "x": 2}`, scoped.FindOptions{}},
		{"skip", `{"_id": "b-in-a"}`, scoped.FindOptions{Skip: 1}},
		{"projection", `{"_id": "b-in-a"}`, scoped.FindOptions{Projection: bson.D{{Key: scoped.Field, Value: 0}}}},
	} {
		t.Run("bound "+tc.name, func(t *testing.T) {
			before := len(filters())
			docs, err := a.Find(ctx, scoped.Own("clicks"), doc(t, tc.filter), tc.opts)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			for _, id := range ids(t, docs) {
				if id != "a1" {
					t.Fatalf("Find(%s) returned %s", tc.filter, id)
				}
			}
			sent := filters()[before:]
			if len(sent) != 1 || bson.Raw(mustRaw(t, sent[0])).Lookup(scoped.Field).StringValue() != "exp-a" {
				t.Fatalf("sent %v, want the filter bound to experiment_id exp-a", sent)
			}
		})
	}
}

func mustRaw(t *testing.T, j string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(j), false, &r); err != nil {
		t.Fatalf("parse %s: %v", j, err)
	}
	return r
}

// The observer is told of every operation: which experiment, collection and
// operation, how long and how many documents; a read of a granted
// collection names whose it was.
func TestObserverSeesEveryOperation(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	var ops []scoped.Op
	obs := scoped.WithObserver(func(_ context.Context, op scoped.Op) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	})
	b := newScope(t, db, "exp-b", nil)
	if _, err := b.InsertOne(ctx, scoped.Own("notes"), bson.D{{Key: "_id", Value: "n1"}}); err != nil {
		t.Fatal(err)
	}
	a := newScope(t, db, "exp-a", []string{"exp-b"}, obs)
	if _, err := a.InsertMany(ctx, scoped.Own("clicks"), bson.A{bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Find(ctx, scoped.From("exp-b", "notes"), nil, scoped.FindOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Count(ctx, scoped.Own("clicks"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateMany(ctx, scoped.Own("clicks"), nil, doc(t, `{"$inc": {"k": 1}}`), scoped.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteMany(ctx, scoped.Own("clicks"), nil); err != nil {
		t.Fatal(err)
	}
	_, refused := a.Find(ctx, scoped.Own("bad name"), nil, scoped.FindOptions{})
	want := []scoped.Op{
		{Slug: "exp-a", Collection: "clicks", Name: scoped.OpInsert, Documents: 2},
		{Slug: "exp-a", From: "exp-b", Collection: "notes", Name: scoped.OpFind, Documents: 1},
		{Slug: "exp-a", Collection: "clicks", Name: scoped.OpCount, Documents: 2},
		{Slug: "exp-a", Collection: "clicks", Name: scoped.OpUpdate, Documents: 2},
		{Slug: "exp-a", Collection: "clicks", Name: scoped.OpDelete, Documents: 2},
		{Slug: "exp-a", Collection: "bad name", Name: scoped.OpFind, Err: refused},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ops) != len(want) {
		t.Fatalf("observed %d operations, want %d: %+v", len(ops), len(want), ops)
	}
	for i, op := range ops {
		if op.Duration <= 0 {
			t.Errorf("operation %d has no duration: %+v", i, op)
		}
		op.Duration = 0
		if op != want[i] {
			t.Errorf("operation %d = %+v, want %+v", i, op, want[i])
		}
	}
}

// Sizes list the experiment's own collections only, from the store's
// statistics.
func TestCollectionSizes(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	a := newScope(t, db, "exp-a", nil)
	b := newScope(t, db, "exp-ab", nil)
	docs := bson.A{}
	for i := range 30 {
		docs = append(docs, bson.D{{Key: "i", Value: i}, {Key: "pad", Value: "some text to take room"}})
	}
	if _, err := a.InsertMany(ctx, scoped.Own("clicks"), docs); err != nil {
		t.Fatal(err)
	}
	if _, err := a.InsertOne(ctx, scoped.Own("answers"), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.InsertOne(ctx, scoped.Own("clicks"), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	sizes, err := scoped.CollectionSizes(ctx, db, "exp-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 || sizes[0].Name != "answers" || sizes[1].Name != "clicks" {
		t.Fatalf("sizes = %+v, want answers and clicks", sizes)
	}
	if sizes[0].Documents != 1 || sizes[1].Documents != 30 {
		t.Errorf("documents = %d, %d; want 1, 30", sizes[0].Documents, sizes[1].Documents)
	}
	if sizes[1].Bytes < 30*20 {
		t.Errorf("clicks bytes = %d, want at least the padding's", sizes[1].Bytes)
	}
	if _, err := scoped.CollectionSizes(ctx, db, "Bad slug"); err == nil {
		t.Error("a bad slug was accepted")
	}
	none, err := scoped.CollectionSizes(ctx, db, "exp-none")
	if err != nil || len(none) != 0 {
		t.Errorf("sizes of an experiment without data = %v, %v", none, err)
	}
}

// Deleting an experiment's data deletes its record of slow operations,
// and no other experiment's.
func TestDeleteAllTakesTheSlowOperations(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	for _, slug := range []string{"exp-a", "exp-ab"} {
		if _, err := db.Collection(store.DataSlowOps).InsertOne(ctx, bson.D{{Key: "_id", Value: slug}, {Key: "ops", Value: bson.A{}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := scoped.DeleteAll(ctx, db, "exp-a"); err != nil {
		t.Fatal(err)
	}
	left := rawFind(t, db, store.DataSlowOps, `{}`)
	if got := ids(t, left); !slices.Equal(got, []string{"exp-ab"}) {
		t.Errorf("slow operations left: %v, want exp-ab's", got)
	}
}
