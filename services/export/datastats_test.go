package export

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// An experiment's data statistics: its own collections' sizes, which are
// past the embedded store's slow size, and its slow operations, for its
// owner and admins only; another experiment's collections and slow
// operations never show.
func TestDataStats(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.service(fast())
	w.deploy("shop", "first") // owned by reader
	w.deploy("shopx", "other")
	w.write("shop", "orders", bson.M{"_id": "o1"}, bson.M{"_id": "o2"})
	w.write("shopx", "orders", bson.M{"_id": "x1"})
	w.write("shopx", "secret_stuff", bson.M{"_id": "x2"})
	big := make([]any, scoped.EmbeddedSlowDocuments+1)
	for i := range big {
		big[i] = bson.D{{Key: scoped.Field, Value: "shop"}, {Key: "i", Value: i}}
	}
	if _, err := w.d.Store.Collection(scoped.CollectionName("shop", "events")).InsertMany(ctxT(t), big); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := w.d.Store.AddSlowOps(ctxT(t), "shop", store.SlowOp{Collection: "events", Op: "aggregate", DurationMS: 150, Documents: 3, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Store.AddSlowOps(ctxT(t), "shopx", store.SlowOp{Collection: "secret_stuff", Op: "find", DurationMS: 900, At: at}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		slug   string
		caller uploadapi.Caller
		code   apierr.Code
	}{
		{"a user", "shop", other, apierr.CodeForbidden},
		{"a developer who owns other experiments", "shop", testenv.Caller("dev@example.com", "developer"), apierr.CodeForbidden},
		{"a message claiming admin, its token not", "shop", claimAdmin(testenv.Caller("x@example.com", "user")), apierr.CodeForbidden},
		{"the owner's address inside another", "shop", testenv.Caller("reader@example.com.evil"), apierr.CodeForbidden},
		{"nobody", "shop", uploadapi.Caller{}, apierr.CodeUnauthenticated},
		{"an unknown experiment", "nope", admin, apierr.CodeNotFound},
	} {
		_, err := call(t, w.d.NC, exportapi.EndpointDataStats, exportapi.DataStatsRequest{Slug: c.slug, Caller: c.caller})
		wantCode(t, c.name, err, c.code)
	}

	for _, who := range []uploadapi.Caller{reader, admin} {
		got, err := call(t, w.d.NC, exportapi.EndpointDataStats, exportapi.DataStatsRequest{Slug: "shop", Caller: who})
		if err != nil {
			t.Fatalf("%s: %v", who.Email, err)
		}
		if got.Slug != "shop" || got.Store != exportapi.StoreEmbedded || got.SlowDocuments != scoped.EmbeddedSlowDocuments || got.SlowMS != 100 {
			t.Errorf("%s: %+v", who.Email, got)
		}
		want := []exportapi.DataStatsCollection{{Name: "events", Documents: int64(len(big)), Slow: true}, {Name: "orders", Documents: 2}}
		if len(got.Collections) != len(want) {
			t.Fatalf("%s: collections %+v, want %+v", who.Email, got.Collections, want)
		}
		for i, c := range got.Collections {
			if c.Bytes <= 0 {
				t.Errorf("%s: %s has no bytes", who.Email, c.Name)
			}
			c.Bytes = 0
			if c != want[i] {
				t.Errorf("%s: collection %+v, want %+v", who.Email, c, want[i])
			}
		}
		if len(got.SlowOps) != 1 || got.SlowOps[0].Collection != "events" || got.SlowOps[0].DurationMS != 150 || !got.SlowOps[0].At.Equal(at) {
			t.Errorf("%s: slow operations %+v, want shop's one", who.Email, got.SlowOps)
		}
	}
}
