package store_test

import (
	"fmt"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// FerretDB rewrites a whole document on every update: two writers
// changing different fields of one document at the same moment would lose
// one's change now and then. Every change of both must be in the end. The
// writers use two Stores, each its own client, as two services of one
// process do in the embedded mode.
func TestConcurrentUpdatesOfOneDocumentAllLand(t *testing.T) {
	env := testenv.Start(t)
	c := open(t, env, nil, "serial").Collection("counters")
	other := open(t, env, nil, "serial").Collection("counters")
	if _, err := c.InsertOne(ctx(t), bson.D{{Key: "_id", Value: "one"}, {Key: "a", Value: 0}, {Key: "b", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	const n = 150
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	wg.Add(4)
	// Two writers increment their own counter, one through update and
	// one through findAndModify; two set fields of their own.
	go func() {
		defer wg.Done()
		for range n {
			if _, err := c.UpdateOne(ctx(t), bson.D{{Key: "_id", Value: "one"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "a", Value: 1}}}}); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range n {
			if err := other.FindOneAndUpdate(ctx(t), bson.D{{Key: "_id", Value: "one"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "b", Value: 1}}}},
				options.FindOneAndUpdate().SetReturnDocument(options.After)).Err(); err != nil {
				errs <- err
			}
		}
	}()
	for _, w := range []struct {
		prefix string
		c      *mongo.Collection
	}{{"x", c}, {"y", other}} {
		prefix := w.prefix
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := w.c.UpdateOne(ctx(t), bson.D{{Key: "a", Value: bson.D{{Key: "$gte", Value: 0}}}}, bson.D{{Key: "$set", Value: bson.D{{Key: fmt.Sprintf("%s%d", prefix, i), Value: i}}}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("update: %v", err)
	}
	var doc bson.M
	if err := c.FindOne(ctx(t), bson.D{{Key: "_id", Value: "one"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["a"] != int32(n) || doc["b"] != int32(n) {
		t.Errorf("a = %v, b = %v; want %d each: increments were lost", doc["a"], doc["b"], n)
	}
	var missing []string
	for _, prefix := range []string{"x", "y"} {
		for i := range n {
			if _, ok := doc[fmt.Sprintf("%s%d", prefix, i)]; !ok {
				missing = append(missing, fmt.Sprintf("%s%d", prefix, i))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d fields set were lost, among them %v", len(missing), missing[:min(5, len(missing))])
	}
}
