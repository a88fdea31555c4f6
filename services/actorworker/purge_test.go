package actorworker

import (
	"fmt"
	"testing"
	"time"
)

// Deleting an experiment removes every key of its key-value store, however
// many, and no key of another experiment, even one whose slug starts the
// same.
func TestDeletedExperimentsKeysArePurged(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deployFiles("gone", map[string]any{"schema_version": "2.0", "slug": "gone", "name": "gone", "status": "active"},
		map[string][]byte{"index.html": []byte("<title>gone</title>")})
	kv, err := w.d.JS.KeyValue(ctxT(t), "actor_kv")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := kv.Put(ctxT(t), fmt.Sprintf("gone.k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	others := []string{"gone-too.k", "gonex.k", "gone_.k"}
	for _, k := range others {
		if _, err := kv.Put(ctxT(t), k, []byte("kept")); err != nil {
			t.Fatal(err)
		}
	}
	w.remove("gone")
	eventually(t, 10*time.Second, "the deleted experiment's keys to go", func() bool {
		keys, err := kv.ListKeysFiltered(ctxT(t), "gone.>")
		if err != nil {
			return true
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 0
	})
	for _, k := range others {
		if e, err := kv.Get(ctxT(t), k); err != nil || string(e.Value()) != "kept" {
			t.Errorf("key %s of another experiment: %v, want it kept", k, err)
		}
	}
	if plainSlug("gone.>") || plainSlug("*") || plainSlug("") || !plainSlug("gone-too_1") {
		t.Error("plainSlug lets a subject wildcard through, or refuses a slug")
	}
}
