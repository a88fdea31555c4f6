package actorworker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost/hostilewasm"
	"github.com/gnome-platform/gnome/libs/apierr"
)

// Hostile modules on a worker, each beside another experiment's actor
// ("calm") that must keep answering, and counting, throughout.

// calm keeps another experiment's actor busy counting while a hostile one
// misbehaves.
type calm struct {
	w        *world
	stop     chan struct{}
	done     chan struct{}
	answered atomic.Int64
	mu       sync.Mutex
	failures []string
	last     int
}

func startCalm(w *world) *calm {
	c := &calm{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			r := w.callAsEdge(10*time.Second, "calm", "POST", "/count")
			c.mu.Lock()
			var n struct{ N int }
			if r.err != nil || r.status != 200 || json.Unmarshal(r.body, &n) != nil {
				c.failures = append(c.failures, r.String())
			} else if n.N != c.last+1 {
				// A count lost means its instance was replaced.
				c.failures = append(c.failures, fmt.Sprintf("count %d after %d", n.N, c.last))
			} else {
				c.last = n.N
				c.answered.Add(1)
			}
			c.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return c
}

// check waits until calm answered again since since, and fails t if it
// failed, lost a count, or answered nothing.
func (c *calm) check(t *testing.T, since int64) {
	t.Helper()
	eventually(t, 20*time.Second, "the other experiment's actor to answer", func() bool { return c.answered.Load() > since })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failures) > 0 {
		t.Errorf("the other experiment's actor failed: %v", c.failures)
		c.failures = nil
	}
}

func (c *calm) close(t *testing.T) {
	t.Helper()
	close(c.stop)
	<-c.done
	c.check(t, -1)
}

// The hostile modules of the isolation work, one after the other, on one
// worker: each fails only itself with the documented error, the worker
// stays healthy, and calm answers throughout with nothing lost.
func TestHostileModulesHurtOnlyThemselves(t *testing.T) {
	w := newWorld(t)
	wasm := probe(t)
	w.worker()
	w.deploy("calm", nil, wasm)
	w.serving("calm", 20*time.Second)
	c := startCalm(w)
	defer c.close(t)

	t.Run("table growth", func(t *testing.T) {
		w.deploy("tables", nil, hostilewasm.TableGrower())
		eventually(t, 20*time.Second, "the table grower to run", func() bool {
			st := w.state("tables")
			return st != nil && st.State == actorapi.StateRunning
		})
		since := c.answered.Load()
		for range 3 {
			// Each call asks for 2^32-16 more entries: refused, and the
			// actor goes on.
			if r := w.callAsEdge(10*time.Second, "tables", "GET", "/"); r.err != nil || string(r.body) != "refused" {
				t.Fatalf("table.grow by 2^32-16: %v", r)
			}
		}
		c.check(t, since)
		if st := w.state("tables"); st.Restarts != 0 || st.State != actorapi.StateRunning {
			t.Errorf("state %+v", st)
		}
	})

	t.Run("memory growth to the limit", func(t *testing.T) {
		w.deploy("hog", map[string]any{"actor": map[string]any{"module": "actor.wasm", "memory_mb": 128, "timeout_ms": 30000}}, wasm)
		w.serving("hog", 20*time.Second)
		since := c.answered.Load()
		if r := w.callAsEdge(40*time.Second, "hog", "GET", "/oom"); r.err == nil || r.err.Code != apierr.CodeBadGateway {
			t.Errorf("running out of memory: %v, want bad_gateway", r)
		}
		c.check(t, since)
		w.serving("hog", 20*time.Second)
	})

	t.Run("sleep forever in a call", func(t *testing.T) {
		w.deploy("sleepy", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 1000}}, wasm)
		w.serving("sleepy", 20*time.Second)
		since := c.answered.Load()
		start := time.Now()
		r := w.callAsEdge(30*time.Second, "sleepy", "GET", "/sleep?ms=3600000")
		took := time.Since(start)
		if r.err == nil || r.err.Code != apierr.CodeTimeout {
			t.Errorf("an hour's sleep under a 1 s limit: %v, want timeout", r)
		}
		// Generous: what matters is that the hour is not slept.
		if took > 20*time.Second {
			t.Errorf("the call ended after %v", took)
		}
		c.check(t, since)
		w.serving("sleepy", 20*time.Second)
	})

	t.Run("stdout flood", func(t *testing.T) {
		w.deploy("loud", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 30000}}, wasm)
		w.serving("loud", 20*time.Second)
		since := c.answered.Load()
		if r := w.callAsEdge(40*time.Second, "loud", "GET", "/print?mb=16&line=4"); r.err != nil || r.status != 200 {
			t.Errorf("the flood: %v", r)
		}
		c.check(t, since)
		if r := w.call("loud", "POST", "/count", "", nil); r.err != nil || r.status != 200 {
			t.Errorf("after the flood: %v", r)
		}
	})
}

// A module that can never load (an import the platform lacks, a missing
// export, not WebAssembly) ends failed at once, without retries: its state
// says why and names no retry time, its lease is released, and a new
// version that loads runs.
func TestUnloadableModulesFailWithoutRetries(t *testing.T) {
	w := newWorld(t)
	s := w.worker()
	for _, tc := range []struct {
		slug, why string
		wasm      []byte
	}{
		{"imports", "open_socket", hostilewasm.UnknownImport()},
		{"exports", "gnome_alloc", []byte("\x00asm\x01\x00\x00\x00")},
		{"garbage", "not valid WebAssembly", []byte("not wasm at all")},
	} {
		t.Run(tc.slug, func(t *testing.T) {
			w.deploy(tc.slug, nil, tc.wasm)
			var st *actorapi.State
			eventually(t, 20*time.Second, tc.slug+" to fail", func() bool {
				st = w.state(tc.slug)
				return st != nil && st.State == actorapi.StateFailed
			})
			if !strings.Contains(st.LastError, tc.why) || st.RetryAt != nil || st.Restarts != 0 {
				t.Errorf("state %+v: want the reason (%s), no retry time, no restart", st, tc.why)
			}
			eventually(t, 10*time.Second, tc.slug+"'s lease to be released", func() bool { return w.lease(tc.slug) == nil })
		})
	}
	// Reconciling runs many times meanwhile and starts none of them again.
	for range 3 {
		if err := s.reconcile(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, slug := range []string{"imports", "exports", "garbage"} {
		if st := w.state(slug); st == nil || st.State != actorapi.StateFailed || st.Restarts != 0 {
			t.Errorf("%s after reconciling: %+v", slug, st)
		}
	}
	w.deploy("imports", nil, probe(t))
	w.serving("imports", 20*time.Second)
}

// An actor whose start hangs (asleep in gnome_init) does not make its
// callers wait for their timeout: during its first start a call is
// answered 503 with Retry-After before its caller gives up, and once the
// start has failed, calls are answered 503 with Retry-After at once while
// the next start runs. The worker's other actor answers throughout.
func TestCallersOfAnActorNotServingGet503(t *testing.T) {
	w := newWorld(t)
	wasm := probe(t)
	w.worker()
	w.deploy("calm", nil, wasm)
	w.serving("calm", 20*time.Second)
	c := startCalm(w)
	defer c.close(t)

	w.deploy("stuck", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 1000,
		"config": map[string]any{"sleep_init": 3600000}}}, wasm)
	eventually(t, 20*time.Second, "stuck's start to begin", func() bool { return w.lease("stuck") != nil })
	since := c.answered.Load()
	// The edge waits the time limit plus a second. Between taking the lease
	// and subscribing the actor's subject the worker has no responder yet
	// (the edge then asks for a start and says when to retry): call until
	// the worker answers.
	var r reply
	eventually(t, 20*time.Second, "stuck's subject to be served", func() bool {
		r = w.callAsEdge(2*time.Second, "stuck", "GET", "/count")
		return r.err == nil || !strings.Contains(r.err.Message, "no responders")
	})
	if r.err == nil || r.err.Code != apierr.CodeUnavailable || r.retryAfter == "" {
		t.Errorf("a call during a hanging start: %v (Retry-After %q), want unavailable with Retry-After", r, r.retryAfter)
	}
	c.check(t, since)

	var st *actorapi.State
	eventually(t, 30*time.Second, "stuck's start to fail", func() bool {
		st = w.state("stuck")
		return st != nil && st.State == actorapi.StateFailed
	})
	if !strings.Contains(st.LastError, "did not answer in time") {
		t.Errorf("state %+v: want the start's timeout as the reason", st)
	}
	// The next start hangs too; its callers are answered at once.
	for range 3 {
		r := w.callAsEdge(2*time.Second, "stuck", "GET", "/count")
		if r.err == nil || r.err.Code != apierr.CodeUnavailable || !strings.Contains(r.err.Message, "failed to start") {
			t.Fatalf("a call while the start keeps failing: %v", r)
		}
		if n, err := strconv.Atoi(r.retryAfter); err != nil || n < 1 {
			t.Errorf("Retry-After %q", r.retryAfter)
		}
	}
	c.check(t, c.answered.Load())
}
