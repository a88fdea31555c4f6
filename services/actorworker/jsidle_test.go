package actorworker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// jsSleepyScript keeps what it is told in the store and the key-value
// bucket, and counts the calls of its instance in memory: a count that
// starts again shows a fresh instance, the stored notes that the data
// outlived it.
const jsSleepyScript = `'use strict';
let served = 0;
gnome.route('GET', '/init', () => 'ok');
gnome.route('POST', '/note', (req) => {
  served++;
  gnome.db('notes').insertOne({ n: served, text: req.text() });
  gnome.kv.put('last', req.text());
  return { json: { served } };
});
gnome.route('GET', '/notes', () => {
  const last = gnome.kv.get('last');
  return { json: { served, last: last ? last.value : null,
    notes: gnome.db('notes').find({}, { sort: { n: 1 }, projection: { _id: 0, n: 1, text: 1 } }) } };
});
`

// sharedRuntimes is the worker's compiled JavaScript runtimes, and
// whether each can still be shared: a closed one refuses, and the next
// JavaScript actor would compile the runtime again.
func sharedRuntimes(t *testing.T, s *Service) (n int, usable bool) {
	t.Helper()
	s.js.mu.Lock()
	mods := make([]*actorhost.Module, 0, len(s.js.mods))
	for _, m := range s.js.mods {
		mods = append(mods, m)
	}
	s.js.mu.Unlock()
	usable = len(mods) > 0
	for _, m := range mods {
		h, err := m.Share(m.Limits())
		if err != nil {
			t.Logf("the compiled runtime cannot be shared: %v", err)
			usable = false
			continue
		}
		_ = h.Close(ctxT(t))
	}
	return len(mods), usable
}

// A JavaScript actor without calls for the idle time is unloaded like a
// Go one: idle, no lease, its instance closed, the worker forgets it. The
// worker's compiled runtime stays compiled meanwhile, so the next call's
// on-demand start instantiates it again without compiling: a fresh
// instance (its memory starts over) that finds its notes and its key-value
// entries as it left them.
func TestJavaScriptActorIdleUnloadAndWake(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 500 * time.Millisecond
	s := w.jsWorker(nil, nil)
	w.deployJS("jssleepy", "actor.js", map[string]string{"actor.js": jsSleepyScript}, nil, nil)
	w.serving("jssleepy", jsWait)
	states := w.states("jssleepy")
	a := s.local("jssleepy")
	if a == nil {
		t.Fatal("the worker does not run the actor")
	}
	for i, text := range []string{"first", "second"} {
		if got := w.call("jssleepy", "POST", "/note", "", []byte(text)).json(t)["served"]; got != float64(i+1) {
			t.Fatalf("note %q: served %v, want %d", text, got, i+1)
		}
	}

	eventually(t, 10*time.Second, "the JavaScript actor to be unloaded", func() bool {
		st := w.state("jssleepy")
		return st != nil && st.State == actorapi.StateIdle && w.lease("jssleepy") == nil && s.local("jssleepy") == nil
	})
	<-a.done
	if a.inst != nil || a.host != nil || a.exit != stopIdle {
		t.Errorf("after unloading: instance %v, host %v, exit %v: want both released, stopIdle", a.inst, a.host, a.exit)
	}
	if got := sinceRunning(states()); !slices.Equal(got, []string{actorapi.StateIdle}) {
		t.Errorf("states while unloading: %v, want [idle]", got)
	}
	// Unloading released the actor's handle on the runtime, not the
	// runtime: it is still compiled, once, and can be shared.
	if n, usable := sharedRuntimes(t, s); n != 1 || !usable || s.jsCompiles() != 1 {
		t.Errorf("while the actor is unloaded: %d compiled runtimes (usable %v), %d compilations: want 1, true, 1", n, usable, s.jsCompiles())
	}

	if r := w.call("jssleepy", "GET", "/notes", "", nil); r.err == nil || !strings.Contains(r.err.Message, "no responders") {
		t.Fatalf("a call to the unloaded actor: %v, want no responders", r)
	}
	w.wake("jssleepy")
	took := eventually(t, 20*time.Second, "the woken JavaScript actor to serve", func() bool {
		r := w.callWithin(2*time.Second, "jssleepy", "GET", "/init", "", nil)
		return r.err == nil && r.status == 200
	})
	t.Logf("the woken actor served after %v", took.Round(time.Millisecond))
	got := w.call("jssleepy", "GET", "/notes", "", nil).json(t)
	if want := `{"last":"second","notes":[{"n":1,"text":"first"},{"n":2,"text":"second"}],"served":0}`; asJSON(got) != want {
		t.Errorf("after waking: %s, want %s (a fresh instance, the data kept)", asJSON(got), want)
	}
	if got := w.call("jssleepy", "POST", "/note", "", []byte("third")).json(t)["served"]; got != 1.0 {
		t.Errorf("the first note after waking: served %v, want 1", got)
	}
	if n, err := w.d.Store.Collection(scoped.CollectionName("jssleepy", "notes")).CountDocuments(ctxT(t), bson.D{}); err != nil || n != 3 {
		t.Errorf("stored notes: %d (%v), want 3", n, err)
	}
	if n := s.jsCompiles(); n != 1 {
		t.Errorf("the runtime compiled %d times: waking compiled it again", n)
	}
	if st := w.state("jssleepy"); st == nil || st.State != actorapi.StateRunning || w.lease("jssleepy") == nil {
		t.Errorf("after waking: state %+v, lease %+v", st, w.lease("jssleepy"))
	}
	eventually(t, 10*time.Second, "the recorder to see the actor start again", func() bool {
		got := sinceRunning(states())
		return len(got) >= 3
	})
	if got := sinceRunning(states()); !slices.Equal(got[:3], []string{actorapi.StateIdle, actorapi.StateStarting, actorapi.StateRunning}) {
		t.Errorf("states: %v, want idle, starting, running", got)
	}
}

// A script whose top level never ends is stopped at the start limit: the
// start fails with a reason that says so, the actor shows failed (and
// tries again after its back-off), and the worker serves its other
// actors throughout.
func TestJavaScriptActorEndlessTopLevel(t *testing.T) {
	w := newWorld(t)
	s := w.jsWorker(nil, nil)
	// The runtime is compiled before the clock starts: the start limit
	// bounds the script, not the worker's first compilation.
	w.deployJS("jscalm", "actor.js", map[string]string{"actor.js": "gnome.route('GET', '/init', () => 'calm');"}, nil, nil)
	w.serving("jscalm", jsWait)

	begin := time.Now()
	spin := "'use strict';\ngnome.route('GET', '/init', () => 'never');\nwhile (true) {}\n"
	w.deployJS("jsspin", "actor.js", map[string]string{"actor.js": spin}, nil, nil)
	eventually(t, 10*time.Second, "the endless start to begin", func() bool {
		st := w.state("jsspin")
		return st != nil && st.State == actorapi.StateStarting
	})
	// While the script spins, the other actor serves and a call to this
	// one is told it is still starting. The worker listens for its calls
	// once the module is compiled, which on a busy machine may be a while
	// after the state says starting; until then a call finds no responder
	// (which the edge holds) and is sent again.
	calm := 0
	answered := false
	for w.state("jsspin").State == actorapi.StateStarting && time.Since(begin) < actorhost.DefaultStartTimeout-2*time.Second {
		if r := w.callWithin(2*time.Second, "jscalm", "GET", "/init", "", nil); r.err != nil || string(r.body) != "calm" {
			t.Fatalf("the other actor, during the endless start: %v", r)
		}
		calm++
		if !answered {
			r := w.callAsEdge(time.Second, "jsspin", "GET", "/init")
			if r.err == nil || !strings.Contains(r.err.Message, "no responders") {
				answered = true
				if r.err == nil || r.err.Code != apierr.CodeUnavailable || !strings.Contains(r.err.Message, "still starting") || r.retryAfter == "" {
					t.Errorf("a call during the endless start: %v (Retry-After %q), want unavailable, still starting", r, r.retryAfter)
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // pace the calls; the loop ends on the state
	}
	if !answered {
		t.Error("no call to the starting actor was answered during its endless start")
	}
	var st *actorapi.State
	eventually(t, 20*time.Second, "the endless start to fail", func() bool {
		st = w.state("jsspin")
		return st != nil && st.State == actorapi.StateFailed
	})
	took := time.Since(begin)
	t.Logf("the endless start failed after %v (%d calls to the other actor meanwhile): %s", took.Round(time.Millisecond), calm, st.LastError)
	if calm == 0 {
		t.Error("the other actor was not called during the endless start")
	}
	limit := actorhost.Limits{}.Normalize().StartTimeout
	if took < limit || took > limit+10*time.Second {
		t.Errorf("the endless start failed after %v, want the start limit %v", took, limit)
	}
	if !strings.Contains(st.LastError, "start limit") || !strings.Contains(st.LastError, limit.String()) {
		t.Errorf("last error %q: want it to name the start limit of %v", st.LastError, limit)
	}
	if st.Restarts < 1 || st.RetryAt == nil {
		t.Errorf("state %+v: want a restart counted and a retry planned", st)
	}
	if r := w.call("jsspin", "GET", "/init", "", nil); r.err == nil || r.err.Code != apierr.CodeUnavailable || !strings.Contains(r.err.Message, "start limit") {
		t.Errorf("a call after the failed start: %v, want unavailable naming the start limit", r)
	}
	if r := w.call("jscalm", "GET", "/init", "", nil); r.err != nil || string(r.body) != "calm" {
		t.Errorf("the other actor after the endless start: %v", r)
	}
	if n := s.jsCompiles(); n != 1 {
		t.Errorf("the runtime compiled %d times on one worker", n)
	}
}
