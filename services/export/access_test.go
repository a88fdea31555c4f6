package export

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Packages with data are for the experiment's owner and admins: anyone
// else asking for one over the bus is refused with 403 and nothing is
// recorded or queued, even when a ready package of the same source exists
// to reuse; upload-ready packages stay open to them.
func TestPackagesWithDataAreTheOwners(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.service(fast())
	w.deploy("shop", "first") // owned by reader
	w.write("shop", "orders", bson.M{"_id": "o1"})
	ready := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)

	logs := func() int64 {
		n, err := w.d.Store.Collection(store.ExportLogs).CountDocuments(ctxT(t), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	jobs := func() uint64 {
		st, err := w.d.JS.Stream(ctxT(t), bus.StreamExportJobs)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before, queued := logs(), jobs()
	for _, c := range []struct {
		name   string
		caller uploadapi.Caller
		typ    exportapi.Type
	}{
		{"a user, standalone", other, exportapi.Standalone},
		{"a user, docker", other, exportapi.Docker},
		{"a developer who owns other experiments", testenv.Caller("dev@example.com", "developer"), exportapi.Standalone},
		{"a message claiming admin, its token not", claimAdmin(testenv.Caller("x@example.com", "user")), exportapi.Docker},
		{"the owner's address inside another", testenv.Caller("reader@example.com.evil"), exportapi.Standalone},
	} {
		_, err := call(t, w.d.NC, exportapi.EndpointRequest, exportapi.Request{Slug: "shop", Type: c.typ, Caller: c.caller})
		wantCode(t, c.name, err, apierr.CodeForbidden)
	}
	if logs() != before || jobs() != queued {
		t.Fatalf("refused requests recorded or queued: logs %d -> %d, jobs %d -> %d", before, logs(), queued, jobs())
	}
	if _, err := w.get(ready.ID, other); err == nil {
		t.Error("a non-owner reads the owner's standalone export")
	}

	// The owner (in another case) and admins get theirs; anyone the
	// access rules let in gets an upload-ready package.
	if r := w.request("shop", exportapi.Standalone, testenv.Caller(" Reader@Example.com ")); !r.Reused || r.Export.ID != ready.ID {
		t.Errorf("the owner's request: %+v, want %s reused", r, ready.ID)
	}
	if r := w.request("shop", exportapi.Docker, admin); r.Export.ID == "" {
		t.Error("an admin's docker request got no export")
	}
	if r := w.request("shop", exportapi.UploadReady, other); r.Export.ID == "" || r.Export.UserEmail != other.Email {
		t.Errorf("a user's upload-ready request: %+v", r)
	}
}

// claimAdmin is c claiming the admin role and flag in the message while its
// token does not: services act on the token.
func claimAdmin(c uploadapi.Caller) uploadapi.Caller {
	c.Roles, c.IsAdmin = []string{"admin"}, true
	return c
}
