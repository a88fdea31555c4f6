package actorworker

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
)

// whoami is the ID of the instance that answered, or "" when none did.
func (w *world) whoami(slug string) string {
	w.t.Helper()
	r := w.callWithin(2*time.Second, slug, "GET", "/whoami", "", nil)
	if r.err != nil || r.status != 200 {
		return ""
	}
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.ID
}

// instanceIDs calls slug's actor until n different instances answered, and
// returns their IDs.
func (w *world) instanceIDs(slug string, n int) map[string]bool {
	w.t.Helper()
	seen := map[string]bool{}
	eventually(w.t, 20*time.Second, fmt.Sprintf("calls answered by %d instances", n), func() bool {
		if id := w.whoami(slug); id != "" {
			seen[id] = true
		}
		return len(seen) >= n
	})
	if len(seen) != n {
		w.t.Fatalf("calls answered by %d instances, want %d", len(seen), n)
	}
	return seen
}

// keysOf are the keys of slug's actor (all its instances) in bucket.
func (w *world) keysOf(bucket, slug string) []string {
	w.t.Helper()
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bucket)
	if err != nil {
		w.t.Fatal(err)
	}
	keys, err := kv.Keys(ctxT(w.t))
	if err != nil && err != jetstream.ErrNoKeysFound {
		w.t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if s, _, ok := parseInstanceKey(k); ok && s == slug {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// running reports whether every key names an instance that runs.
func (w *world) running(keys ...string) bool { return w.runningVersion(0, keys...) }

// runningVersion reports whether every key names an instance that runs
// version v (any, for 0).
func (w *world) runningVersion(v int, keys ...string) bool {
	for _, k := range keys {
		if st := w.state(k); st == nil || st.State != actorapi.StateRunning || (v != 0 && st.Version != v) {
			return false
		}
	}
	return true
}

func TestInstanceKeys(t *testing.T) {
	for _, c := range []struct {
		key  string
		slug string
		i    int
		ok   bool
	}{
		{"notes", "notes", 0, true},
		{"notes.i1", "notes", 1, true},
		{"notes.i7", "notes", 7, true},
		{"notes.i0", "", 0, false},
		{"notes.i8", "", 0, false},
		{"notes.i01", "", 0, false},
		{"notes.i-1", "", 0, false},
		{"notes.ix", "", 0, false},
		{"notes.i", "", 0, false},
		{".i1", "", 0, false},
		{"notes.x1", "", 0, false},
		{"a.b.i1", "", 0, false},
		{"", "", 0, false},
	} {
		slug, i, ok := parseInstanceKey(c.key)
		if slug != c.slug || i != c.i || ok != c.ok {
			t.Errorf("parseInstanceKey(%q) = %q, %d, %v; want %q, %d, %v", c.key, slug, i, ok, c.slug, c.i, c.ok)
		}
		if c.ok && instanceKey(slug, i) != c.key {
			t.Errorf("instanceKey(%q, %d) = %q, want %q", slug, i, instanceKey(slug, i), c.key)
		}
	}
}

// With actor.instances 2, two instances serve the calls: each keeps its
// own memory (two IDs answer), each has its lease and state (the first
// under the slug), and a trap in one leaves the other serving while it is
// replaced. A version with 3 starts a third; one with 1 stops the others
// and removes their leases and states; deleting the experiment leaves
// nothing of any.
func TestInstancesShareTheCalls(t *testing.T) {
	w := newWorld(t)
	s := w.worker()
	w.deploy("many", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 2}}, probe(t))
	eventually(t, 20*time.Second, "both instances to run", func() bool { return w.running("many", "many.i1") })
	ids := w.instanceIDs("many", 2)
	if got := w.keysOf(bus.BucketActorLeases, "many"); !slices.Equal(got, []string{"many", "many.i1"}) {
		t.Errorf("leases %v, want many and many.i1", got)
	}
	if a, b := s.local("many"), s.local("many.i1"); a == nil || b == nil || !a.primary() || b.primary() || a.timers == nil || b.timers != nil {
		t.Errorf("instances here: %+v, %+v: want the first with timers, the second without", a, b)
	}

	// A trap discards one instance; the other goes on serving meanwhile,
	// and the broken one comes back with a fresh memory.
	if r := w.call("many", "GET", "/panic", "", nil); r.err == nil || r.err.Code != "bad_gateway" {
		t.Fatalf("panic: %v, want bad_gateway", r)
	}
	broken, survivor := "", ""
	for _, k := range []string{"many", "many.i1"} {
		if w.state(k).Restarts == 1 {
			broken = k
		} else {
			survivor = k
		}
	}
	if broken == "" || survivor == "" {
		t.Fatalf("restarts: %+v, %+v: want one instance replaced", w.state("many"), w.state("many.i1"))
	}
	for range 10 {
		if id := w.whoami("many"); id == "" {
			t.Fatal("a call failed while one instance was being replaced")
		}
	}
	eventually(t, 10*time.Second, "the replaced instance to run", func() bool { return w.running(broken) })
	after := w.instanceIDs("many", 2)
	if n := len(after) - countIn(after, ids); n != 1 {
		t.Errorf("IDs before %v, after %v: want exactly one new", ids, after)
	}

	// Three, then one.
	w.deploy("many", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 3}}, probe(t))
	eventually(t, 20*time.Second, "three instances to run version 2", func() bool {
		return w.runningVersion(2, "many", "many.i1", "many.i2")
	})
	w.instanceIDs("many", 3)
	w.deploy("many", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 1}}, probe(t))
	eventually(t, 20*time.Second, "the extra instances to go", func() bool {
		return slices.Equal(w.keysOf(bus.BucketActorLeases, "many"), []string{"many"}) &&
			slices.Equal(w.keysOf(bus.BucketActorState, "many"), []string{"many"}) &&
			s.local("many.i1") == nil && s.local("many.i2") == nil && w.runningVersion(3, "many")
	})
	one := w.whoami("many")
	for range 10 {
		if id := w.whoami("many"); id != one {
			t.Fatalf("answers from %s and %s with one instance", one, id)
		}
	}

	// Start jobs for instances there are not as many of do nothing.
	for _, i := range []int{1, 5, -1, 99} {
		data, _ := json.Marshal(actorapi.StartJob{Slug: "many", Version: 3, Reason: actorapi.StartDeployed, Instance: i})
		if err := s.startJob(ctxT(t), &jobs.Job{ID: "x", Kind: actorapi.JobKind, Data: data}); err != nil {
			t.Errorf("start job for instance %d: %v", i, err)
		}
	}
	if got := w.keysOf(bus.BucketActorLeases, "many"); !slices.Equal(got, []string{"many"}) {
		t.Errorf("leases after start jobs for instances beyond the manifest's: %v", got)
	}

	w.deploy("many", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 2}}, probe(t))
	eventually(t, 20*time.Second, "two instances again", func() bool { return w.running("many", "many.i1") })
	w.remove("many")
	eventually(t, 20*time.Second, "nothing of the actor to remain", func() bool {
		return len(w.keysOf(bus.BucketActorLeases, "many")) == 0 && len(w.keysOf(bus.BucketActorState, "many")) == 0 &&
			len(s.instancesOf("many")) == 0
	})
}

func countIn(m, in map[string]bool) int {
	n := 0
	for k := range m {
		if in[k] {
			n++
		}
	}
	return n
}

// Two workers share the instances; when the one holding the first dies,
// the other's instance keeps serving at once, and the first fails over to
// it through its own lease.
func TestInstancesAcrossWorkers(t *testing.T) {
	w := newWorld(t)
	a, crashA := w.crashableWorker()
	b, crashB := w.crashableWorker()
	w.deploy("pair", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 2}}, probe(t))
	eventually(t, 20*time.Second, "both instances to run", func() bool { return w.running("pair", "pair.i1") })
	// Where the start jobs land is up to the job queue: hand the second
	// instance over until it runs on the other worker than the first.
	eventually(t, 30*time.Second, "the instances to run on two workers", func() bool {
		first, second := w.state("pair"), w.state("pair.i1")
		if first == nil || second == nil || first.State != actorapi.StateRunning || second.State != actorapi.StateRunning {
			return false
		}
		if first.Worker != second.Worker {
			return true
		}
		for _, s := range []*Service{a, b} {
			if x := s.local("pair.i1"); x != nil && s.d.InstanceID == second.Worker {
				x.stopAndWait(ctxT(t), stopHandover)
			}
		}
		return false
	})
	w.instanceIDs("pair", 2)
	from, to := w.holder("pair", a, b)
	crash := crashA
	if from == b {
		crash = crashB
	}
	crash()
	// The instance on the other worker answers every call, the first's
	// failover or not.
	survivor := w.whoami("pair")
	if survivor == "" {
		survivor = w.whoami("pair") // a call sent as the connection went
	}
	if survivor == "" {
		t.Fatal("no instance answers after the crash")
	}
	for range 10 {
		if id := w.whoami("pair"); id == "" {
			t.Fatal("a call failed after the crash of the other worker")
		}
	}
	eventually(t, 20*time.Second, "the first instance to fail over", func() bool {
		st, l := w.state("pair"), w.lease("pair")
		return st != nil && st.State == actorapi.StateRunning && st.Worker == to.d.InstanceID && l != nil && l.Worker == to.d.InstanceID
	})
	if ids := w.instanceIDs("pair", 2); !ids[survivor] {
		t.Errorf("IDs %v after the failover: the surviving instance %s is gone", ids, survivor)
	}
	if x := to.local("pair"); x == nil || !x.primary() {
		t.Errorf("the first instance does not run on %s", to.d.InstanceID)
	}
}

// Idle instances unload each on its own; the first woken by a call starts
// the others again.
func TestIdleInstancesWakeTogether(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 500 * time.Millisecond
	w.worker()
	w.deploy("dozy", map[string]any{"actor": map[string]any{"module": "actor.wasm", "instances": 2}}, probe(t))
	// Calls keep a started instance loaded while the other starts: on a
	// busy machine a start can take longer than the idle time.
	eventually(t, 20*time.Second, "both instances to run", func() bool {
		w.whoami("dozy")
		return w.running("dozy", "dozy.i1")
	})
	w.instanceIDs("dozy", 2)
	eventually(t, 20*time.Second, "both instances to unload", func() bool {
		a, b := w.state("dozy"), w.state("dozy.i1")
		return isIdle(a) && isIdle(b) && len(w.keysOf(bus.BucketActorLeases, "dozy")) == 0
	})
	w.wake("dozy")
	// Calls keep the first loaded while the second starts.
	eventually(t, 20*time.Second, "both instances to run again", func() bool {
		w.whoami("dozy")
		return w.running("dozy", "dozy.i1")
	})
	w.instanceIDs("dozy", 2)
}
