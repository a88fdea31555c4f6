package store_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// A stopped database is unavailable (503, Retry-After), not internal,
// however the repository wrapped the driver's error.
func TestAStoppedDatabaseIsUnavailable(t *testing.T) {
	env := testenv.Start(t)
	s := open(t, env, nil, "outage")
	if _, err := s.Collection("c").InsertOne(ctx(t), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	env.Store.Shutdown()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := store.FindByID[bson.M](c, s.Collection("c"), "1")
	if err == nil {
		t.Fatal("a read from a stopped database succeeded")
	}
	if !store.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = false", err)
	}
	if ae := apierr.From(fmt.Errorf("load the thing: %w", err)); ae.Code.Status() != http.StatusServiceUnavailable || ae.RetryAfter <= 0 {
		t.Errorf("From(%v) = %s, want 503 with a Retry-After", err, ae.Code)
	}
	if store.IsUnavailable(fmt.Errorf("decode: %w", bson.ErrDecodeToNil)) {
		t.Error("a decoding error is taken for an outage")
	}
}
