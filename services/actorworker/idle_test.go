package actorworker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
)

// wake queues the on-demand start an edge queues for a call to an idle
// actor (services/edge/actorwake.go), with the same job ID.
func (w *world) wake(slug string) {
	w.t.Helper()
	st := w.state(slug)
	if st == nil {
		w.t.Fatalf("%s has no state to wake from", slug)
	}
	q := jobs.NewQueue(w.d.JS, bus.StreamActorJobs, "jobs.actor")
	id := fmt.Sprintf("%s@%d:%s:idle-%d", slug, st.Version, actorapi.StartOnDemand, st.UpdatedAt.UnixNano())
	if _, err := q.Enqueue(ctxT(w.t), actorapi.JobKind, id, actorapi.StartJob{Slug: slug, Version: st.Version, Checksum: st.Checksum, Reason: actorapi.StartOnDemand}); err != nil {
		w.t.Fatal(err)
	}
}

// jobsQueued is how many start jobs were ever queued.
func (w *world) jobsQueued() uint64 {
	w.t.Helper()
	str, err := w.d.JS.Stream(ctxT(w.t), bus.StreamActorJobs)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := str.Info(ctxT(w.t))
	if err != nil {
		w.t.Fatal(err)
	}
	return info.State.LastSeq
}

// sinceRunning drops the running states recorded first: call counts
// written while the actor ran.
func sinceRunning(states []string) []string {
	for len(states) > 0 && states[0] == actorapi.StateRunning {
		states = states[1:]
	}
	return states
}

func (w *world) count(slug string) float64 {
	w.t.Helper()
	n, _ := w.call(slug, "POST", "/count", "", nil).json(w.t)["n"].(float64)
	return n
}

// An actor without calls for the idle time is unloaded: its state shows
// idle, its lease is released, its instance and module are closed and the
// worker forgets it. Nothing starts it again by itself (neither the lease
// watchers nor reconciling); the next call's on-demand start brings up a
// fresh instance, on whichever worker takes the job, which serves.
func TestIdleActorIsUnloadedAndStartsOnTheNextCall(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 500 * time.Millisecond
	wasm := probe(t)
	s1, s2 := w.worker(), w.worker()
	w.deploy("sleepy", nil, wasm)
	w.serving("sleepy", 60*time.Second)
	states := w.states("sleepy")
	holder := s1
	if w.lease("sleepy").Worker == s2.d.InstanceID {
		holder = s2
	}
	a := holder.local("sleepy")
	if a == nil {
		t.Fatal("the lease holder does not run the actor")
	}
	if n1, n2 := w.count("sleepy"), w.count("sleepy"); n1 != 1 || n2 != 2 {
		t.Fatalf("counts %v, %v: want 1, 2", n1, n2)
	}

	eventually(t, 10*time.Second, "the actor to be unloaded", func() bool {
		st := w.state("sleepy")
		return st != nil && st.State == actorapi.StateIdle && w.lease("sleepy") == nil && holder.local("sleepy") == nil
	})
	<-a.done
	if a.inst != nil || a.host != nil || a.exit != stopIdle {
		t.Errorf("after unloading: instance %v, host %v, exit %v: want both released, stopIdle", a.inst, a.host, a.exit)
	}
	st := w.state("sleepy")
	if st.Worker != "" || st.StartedAt != nil || st.Calls < 3 || st.Version != 1 {
		t.Errorf("idle state = %+v: want no worker, no start time, the calls counted, version 1", st)
	}
	eventually(t, 10*time.Second, "the state watch to see the unloading", func() bool { return len(sinceRunning(states())) >= 1 })
	if got := sinceRunning(states()); !slices.Equal(got, []string{actorapi.StateIdle}) {
		t.Errorf("states while unloading: %v, want [idle]", got)
	}
	eventually(t, 15*time.Second, "the worker to return the freed memory to the system", func() bool {
		holder.freed.mu.Lock()
		defer holder.freed.mu.Unlock()
		return holder.freed.count > 0
	})

	// Neither watcher of the leases nor reconciling starts an idle actor.
	before := w.jobsQueued()
	for _, s := range []*Service{s1, s2} {
		if err := s.reconcile(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		s.onLeaseGone(ctxT(t), "sleepy", 1)
	}
	if after := w.jobsQueued(); after != before {
		t.Errorf("%d start jobs queued for an idle actor", after-before)
	}

	// A call finds no responder, as at the edge, which wakes the actor.
	if r := w.call("sleepy", "POST", "/count", "", nil); r.err == nil || !strings.Contains(r.err.Message, "no responders") {
		t.Fatalf("a call to the unloaded actor: %v, want no responders", r)
	}
	w.wake("sleepy")
	eventually(t, 20*time.Second, "the woken actor to serve", func() bool {
		r := w.callWithin(2*time.Second, "sleepy", "POST", "/count", "", nil)
		return r.err == nil && r.status == 200
	})
	if n := w.count("sleepy"); n != 2 {
		t.Errorf("count after waking = %v, want 2: a fresh instance (1 was the call that saw it serve)", n)
	}
	if st := w.state("sleepy"); st == nil || st.State != actorapi.StateRunning || w.lease("sleepy") == nil || st.Calls < 3 {
		t.Errorf("after waking: state %+v, lease %+v", st, w.lease("sleepy"))
	}
	// The watch delivers a moment after the writes: wait for it to have
	// seen three states before comparing them.
	eventually(t, 10*time.Second, "the state watch to see the wake-up", func() bool { return len(sinceRunning(states())) >= 3 })
	if got := sinceRunning(states()); len(got) < 3 || !slices.Equal(got[:3], []string{actorapi.StateIdle, actorapi.StateStarting, actorapi.StateRunning}) {
		t.Errorf("states: %v, want idle, starting, running", got)
	}
	// And it goes idle again.
	eventually(t, 10*time.Second, "the actor to be unloaded again", func() bool {
		st := w.state("sleepy")
		return st != nil && st.State == actorapi.StateIdle && w.lease("sleepy") == nil
	})
}

// An actor that keeps being called, or that is in a call longer than the
// idle time, is never unloaded: its instance (the probe's counter) goes on.
func TestBusyActorIsNotUnloaded(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 400 * time.Millisecond
	w.worker()
	w.deploy("busy", nil, probe(t))
	w.serving("busy", 60*time.Second)
	states := w.states("busy")

	// Calls closer together than the idle time, for several idle times:
	// each call is a sleep inside the actor, so the test spends no CPU.
	start := time.Now()
	last := 0.0
	for time.Since(start) < 4*w.tune.IdleUnload {
		if r := w.call("busy", "GET", "/sleep", "ms=50", nil); r.err != nil || r.status != 200 {
			t.Fatalf("a call while busy: %v", r)
		}
		if n := w.count("busy"); n != last+1 {
			t.Fatalf("count %v after %v: the instance was replaced", n, last)
		}
		last++
	}
	// One call three times as long as the idle time: the actor's clock
	// starts when it ends, so the next call finds the same instance.
	ms := 3 * w.tune.IdleUnload.Milliseconds()
	if r := w.callWithin(10*time.Second, "busy", "GET", "/sleep", fmt.Sprintf("ms=%d", ms), nil); r.err != nil || r.status != 200 {
		t.Fatalf("a long call: %v", r)
	}
	if n := w.count("busy"); n != last+1 {
		t.Fatalf("count %v after %v: the instance was replaced during or right after a long call", n, last)
	}
	if got := states(); slices.Contains(got, actorapi.StateIdle) {
		t.Errorf("a busy actor went idle: states %v", got)
	}
	// Left alone, it goes idle.
	eventually(t, 10*time.Second, "the actor to be unloaded once calls stop", func() bool {
		st := w.state("busy")
		return st != nil && st.State == actorapi.StateIdle
	})
}

// An actor whose instance broke is restarting, not idle, however long the
// back-off: it is unloaded only once a new instance runs and stays
// uncalled.
func TestRestartingActorIsNotUnloaded(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 500 * time.Millisecond
	w.tune.BackoffMin, w.tune.BackoffMax = 1500*time.Millisecond, 1500*time.Millisecond
	w.worker()
	w.deploy("fragile", nil, probe(t))
	w.serving("fragile", 60*time.Second)
	states := w.states("fragile")
	if r := w.call("fragile", "GET", "/panic", "", nil); r.err == nil || r.err.Code != apierr.CodeBadGateway {
		t.Fatalf("a panic: %v, want bad_gateway", r)
	}
	eventually(t, 20*time.Second, "the actor to restart and then go idle", func() bool {
		st := w.state("fragile")
		return st != nil && st.State == actorapi.StateIdle
	})
	// The recorder follows the bucket's watch, which may lag the read.
	eventually(t, 20*time.Second, "the recorder to see the actor idle", func() bool {
		got := states()
		return len(got) > 0 && got[len(got)-1] == actorapi.StateIdle
	})
	want := []string{actorapi.StateRestarting, actorapi.StateRunning, actorapi.StateIdle}
	if got := sinceRunning(states()); !slices.Equal(got, want) {
		t.Errorf("states: %v, want %v", got, want)
	}
	if st := w.state("fragile"); st.Restarts != 1 || st.LastError == "" {
		t.Errorf("idle state after a restart = %+v: want its restart and error kept", st)
	}
}

// A started version's module is kept in the module cache, so that the next
// start reads it from there; a damaged or torn file is never used (it is
// fetched again from the bundle and rewritten); retiring the actor removes
// it.
func TestModuleCache(t *testing.T) {
	w := newWorld(t)
	wasm := probe(t)
	s := w.worker()
	cfg := w.deploy("cached", nil, wasm)
	w.serving("cached", 60*time.Second)
	sp := specOf(&cfg)
	path := s.moduleCachePath(sp)
	var kept []byte
	eventually(t, 10*time.Second, "the module to be kept in the cache", func() bool {
		b, err := os.ReadFile(path)
		kept = b
		return err == nil && len(b) == sha256.Size+len(wasm) && bytes.Equal(b[sha256.Size:], wasm)
	})
	for name, damage := range map[string][]byte{
		"a flipped byte": append(append([]byte{}, kept[:len(kept)-1]...), kept[len(kept)-1]^0xff),
		"torn":           kept[:len(kept)/2],
		"empty":          {},
		"another module": append(append([]byte{}, kept[:sha256.Size]...), []byte("\x00asm\x01\x00\x00\x00")...),
	} {
		if err := os.WriteFile(path, damage, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := s.moduleOf(ctxT(t), sp)
		if err != nil || !bytes.Equal(got, wasm) {
			t.Errorf("%s: the module read is %d bytes (err %v), want the bundle's", name, len(got), err)
		}
		eventually(t, 10*time.Second, name+": the cache file to be rewritten", func() bool {
			again, _ := os.ReadFile(path)
			return bytes.Equal(again, kept)
		})
	}
	w.setStatus("cached", "archived")
	eventually(t, 20*time.Second, "the retired actor's module to leave the cache", func() bool {
		_, err := os.Stat(path)
		return errors.Is(err, fs.ErrNotExist)
	})
}
