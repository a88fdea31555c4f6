package upload_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/upload"
)

// A key of data_grants put between the upload service's reading of the
// bucket and its acting on what it read (a grant another request or
// instance made meanwhile) stays: an access is ended only as it was read.
func TestAccessPutMeanwhileIsNotEnded(t *testing.T) {
	w := newWorld(t)
	cfg := *w.cfg
	d := w.env.Deps(t, &cfg)
	s := upload.New(d)
	var armed atomic.Bool
	upload.SetAfterAccessList(s, func() {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		v, _ := json.Marshal(uploadapi.Access{Reader: "reader", Data: "source", Kind: uploadapi.ScopeGranted, GrantedBy: "bob@example.com", GrantedAt: time.Now().UTC()})
		if _, err := w.accessKV().Put(ctxT(t), uploadapi.AccessKey("reader", "source"), v); err != nil {
			t.Error(err)
		}
	})
	testenv.Run(t, d, s)
	uploads, err := w.d.JS.ObjectStore(ctxT(t), bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	w.client = uploadapi.Client{T: bus.Client{NC: w.d.NC}, Staging: bus.ObjectStaging{Store: uploads}}

	w.upload(ann, "source", nil)
	w.upload(ann, "reader", map[string]any{"data_scope": []string{"source"}})
	if a := w.access("reader", "source"); a == nil || a.Kind != uploadapi.ScopeOwner {
		t.Fatalf("reader's access to source = %+v, want an owner access", a)
	}
	// reader no longer names source: its owner access is to end, but a grant
	// lands on the key after the service read it.
	armed.Store(true)
	w.upload(ann, "reader", map[string]any{"name": "Reader without scope"})
	if armed.Load() {
		t.Fatal("the service never listed the bucket")
	}
	if a := w.access("reader", "source"); a == nil || a.Kind != uploadapi.ScopeGranted {
		t.Fatalf("the access put meanwhile = %+v, want the grant kept", a)
	}
}
