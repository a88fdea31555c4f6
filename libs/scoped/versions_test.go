package scoped_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// Every write that changes the experiment's data, and only such a write,
// increases its data version, by the time the write returns; other
// experiments' versions stay as they are.
func TestWritesAdvanceTheDataVersion(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	seq := func(slug string) int64 {
		t.Helper()
		n, err := scoped.DataSeq(ctx, f.db, slug)
		if err != nil {
			t.Fatalf("DataSeq(%s): %v", slug, err)
		}
		return n
	}
	if a, c := seq("exp-a"), seq("exp-c"); a != 0 || c != 0 {
		t.Fatalf("versions before any write: exp-a %d, exp-c %d; want 0", a, c)
	}
	clicks := scoped.Own("clicks")
	steps := []struct {
		name    string
		op      func() error
		changes bool
	}{
		{"insert", func() error { _, err := f.a.InsertOne(ctx, clicks, bson.M{"_id": "n1", "x": 5}); return err }, true},
		{"insert many", func() error {
			_, err := f.a.InsertMany(ctx, clicks, bson.A{bson.M{"_id": "n2"}, bson.M{"_id": "n3"}})
			return err
		}, true},
		{"update of nothing", func() error {
			_, err := f.a.UpdateOne(ctx, clicks, bson.M{"_id": "nobody"}, bson.M{"$set": bson.M{"x": 1}}, scoped.UpdateOptions{})
			return err
		}, false},
		{"update to the same value", func() error {
			_, err := f.a.UpdateOne(ctx, clicks, bson.M{"_id": "n1"}, bson.M{"$set": bson.M{"x": 5}}, scoped.UpdateOptions{})
			return err
		}, false},
		{"update", func() error {
			_, err := f.a.UpdateMany(ctx, clicks, bson.M{"x": 5}, bson.M{"$set": bson.M{"x": 6}}, scoped.UpdateOptions{})
			return err
		}, true},
		{"upsert", func() error {
			_, err := f.a.UpdateOne(ctx, clicks, bson.M{"_id": "u1"}, bson.M{"$set": bson.M{"x": 1}}, scoped.UpdateOptions{Upsert: true})
			return err
		}, true},
		{"replace", func() error {
			_, err := f.a.ReplaceOne(ctx, clicks, bson.M{"_id": "u1"}, bson.M{"x": 2}, scoped.UpdateOptions{})
			return err
		}, true},
		{"delete of nothing", func() error { _, err := f.a.DeleteOne(ctx, clicks, bson.M{"_id": "nobody"}); return err }, false},
		{"delete", func() error {
			_, err := f.a.DeleteMany(ctx, clicks, bson.M{"_id": bson.M{"$in": bson.A{"n2", "n3"}}})
			return err
		}, true},
		{"a read", func() error { _, err := f.a.Find(ctx, clicks, nil, scoped.FindOptions{}); return err }, false},
	}
	want := int64(0)
	for _, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.changes {
			want++
		}
		if got := seq("exp-a"); got != want {
			t.Errorf("after %s: version %d, want %d", st.name, got, want)
			want = got
		}
	}

	// A refused write reaches no store and changes nothing.
	_, err := f.a.InsertOne(ctx, scoped.From("exp-b", "clicks"), bson.M{"x": 1})
	wantCode(t, err, apierr.CodeScopeForbidden)
	// A multi-document write the store stops midway has done part of its
	// work: it counts.
	_, err = f.a.InsertMany(ctx, clicks, bson.A{bson.M{"_id": "m1"}, bson.M{"_id": "n1"}, bson.M{"_id": "m2"}})
	wantCode(t, err, apierr.CodeConflict)
	if got := seq("exp-a"); got != want+1 {
		t.Errorf("after a refused write and a partly done one: version %d, want %d", got, want+1)
	}
	if got := seq("exp-c"); got != 0 {
		t.Errorf("exp-c's version moved to %d with exp-a's writes", got)
	}

	// A write whose caller gave up right after it still counts.
	cctx, cancel := context.WithCancel(ctx)
	if _, err := f.c.InsertOne(cctx, clicks, bson.M{"_id": "c2"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := scoped.BumpDataSeq(cctx, f.db, "exp-c"); err != nil {
		t.Errorf("BumpDataSeq with an ended context: %v", err)
	}
	if got := seq("exp-c"); got != 2 {
		t.Errorf("exp-c's version %d, want 2", got)
	}
}
