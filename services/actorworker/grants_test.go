package actorworker

import (
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// grant makes reader's reads of data active in the data_grants bucket, as
// the upload service does on a grant (or for one owner's experiments).
func (w *world) grant(reader, data string) {
	w.t.Helper()
	ctx := ctxT(w.t)
	if err := w.d.Topology.EnsureBuckets(ctx, bus.BucketDataGrants); err != nil {
		w.t.Fatal(err)
	}
	kv, err := w.d.JS.KeyValue(ctx, bus.BucketDataGrants)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := kv.Put(ctx, uploadapi.AccessKey(reader, data), []byte(`{"reader":"`+reader+`","data":"`+data+`","kind":"granted"}`)); err != nil {
		w.t.Fatal(err)
	}
}

// revoke ends reader's reads of data, as the upload service does.
func (w *world) revoke(reader, data string) {
	w.t.Helper()
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketDataGrants)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := kv.Delete(ctxT(w.t), uploadapi.AccessKey(reader, data)); err != nil {
		w.t.Fatal(err)
	}
}

// readsOf is how a read by reader's actor of data's notes ends: "ok" or
// the error code of the refusal.
func (w *world) readsOf(reader, data string) string {
	w.t.Helper()
	r := w.call(reader, "GET", "/db/from", "slug="+data, nil)
	if r.err != nil {
		return string(r.err.Code)
	}
	if r.status == 200 {
		return "ok"
	}
	body := r.json(w.t)
	if e, ok := body["error"].(map[string]any); ok {
		code, _ := e["code"].(string)
		return code
	}
	return r.String()
}

// A running actor reads another experiment's data only while it is
// granted: a revocation refuses its next read within a second, a new grant
// allows it again, and neither restarts the actor or needs a new upload.
func TestGrantRevocationReachesRunningActor(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("owner-data", nil, probe(t))
	w.deploy("reader", map[string]any{"data_scope": []string{"self", "owner-data"}}, probe(t))
	w.serving("owner-data", 20*time.Second)
	w.serving("reader", 20*time.Second)
	if r := w.call("owner-data", "POST", "/db/insert", "", []byte(`{"n": 1}`)); r.err != nil || r.status != 200 {
		t.Fatalf("insert: %v", r)
	}
	started := *w.state("reader").StartedAt

	// Listed in data_scope, not granted: refused.
	if got := w.readsOf("reader", "owner-data"); got != "scope_forbidden" {
		t.Fatalf("read before any grant: %s, want scope_forbidden", got)
	}
	w.grant("reader", "owner-data")
	eventually(t, time.Second, "the grant to reach the running actor", func() bool { return w.readsOf("reader", "owner-data") == "ok" })
	if n := len(w.call("reader", "GET", "/db/from", "slug=owner-data", nil).json(t)["documents"].([]any)); n != 1 {
		t.Fatalf("the granted read saw %d documents, want 1", n)
	}

	w.revoke("reader", "owner-data")
	took := eventually(t, time.Second, "the revocation to reach the running actor", func() bool {
		return w.readsOf("reader", "owner-data") == "scope_forbidden"
	})
	t.Logf("revocation reached the actor in %v", took)
	// Its own data and writes are unaffected.
	if r := w.call("reader", "POST", "/db/insert", "", []byte(`{"n": 2}`)); r.err != nil || r.status != 200 {
		t.Fatalf("own insert after the revocation: %v", r)
	}

	w.grant("reader", "owner-data")
	eventually(t, time.Second, "a new grant to reach the running actor", func() bool { return w.readsOf("reader", "owner-data") == "ok" })
	if st := w.state("reader"); st.StartedAt == nil || !st.StartedAt.Equal(started) {
		t.Errorf("the actor restarted (%v, then %v): grants must not need one", started, st.StartedAt)
	}
}
