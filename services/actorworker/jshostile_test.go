package actorworker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// jsHostileScript misbehaves on request: it runs forever, eats memory,
// recurses without end, builds huge strings, and plays tricks on the host
// objects.
const jsHostileScript = `'use strict';
let served = 0;
gnome.route('GET', '/init', () => 'ok ' + (++served));
gnome.route('GET', '/loop', () => { for (;;) {} });
gnome.route('GET', '/grow', () => { const keep = []; for (let i = 0; ; i++) keep.push(new Array(1 << 16).fill(i)); });
gnome.route('GET', '/recurse', () => { function f(n) { return f(n + 1) + 1; } return String(f(0)); });
gnome.route('GET', '/string', () => { let s = 'x'; for (;;) s = s + s; });
gnome.route('GET', '/big-response', () => 'x'.repeat(3 << 20));
gnome.route('GET', '/big-log', () => { gnome.log.info('y'.repeat(8 << 20)); return 'logged'; });
// 5,000 levels: ten times the runtime's bound of 500, and a few MB (at
// about 500 bytes a level, 100,000 levels exhaust 64 MB as they are built).
const deepObj = () => { let o = {}; for (let i = 0; i < 5000; i++) o = { o }; return o; };
const deepArr = () => { let a = []; for (let i = 0; i < 5000; i++) a = [a]; return a; };
gnome.route('GET', '/deep-response', () => ({ json: deepObj() }));

// Each trick runs alone (POST /trick/{name}) and answers how it ended.
const notes = () => gnome.db('notes');
const tricks = {
  // Prototype pollution: the host must not see inherited properties.
  pollutedInsert: () => {
    Object.prototype.polluted = 'yes';
    Array.prototype.extra = 'yes';
    try { notes().insertOne({ kind: 'polluted', list: [1, 2] }); return 'inserted'; }
    finally { delete Object.prototype.polluted; delete Array.prototype.extra; }
  },
  toJSONInsert: () => {
    Object.prototype.toJSON = function () { return 'hijacked'; };
    try { notes().insertOne({ kind: 'tojson' }); return 'inserted'; }
    finally { delete Object.prototype.toJSON; }
  },
  // Redefining and replacing the host's functions.
  redefineDb: () => { gnome.db = () => 'fake'; return typeof gnome.db('x'); },
  defineProperty: () => { Object.defineProperty(gnome, 'kv', { value: 'fake' }); return typeof gnome.kv; },
  dbStillWorks: () => gnome.db('notes').count({}),
  // Host functions called with another this.
  detached: () => { const f = notes().insertOne; f({ kind: 'detached' }); return 'called'; },
  otherThis: () => { notes().insertOne.call({ name: 'notes', slug: 'jsvictim' }, { kind: 'evil' }); return 'called'; },
  applyNull: () => Reflect.apply(gnome.kv.get, null, ['k']),
  applyNumber: () => Reflect.apply(notes().find, 42, [{}]).length,
  // Documents that fight back.
  proxy: () => notes().insertOne(new Proxy({}, { ownKeys() { throw new Error('ownKeys trap'); }, get() { throw new Error('get trap'); } })),
  proxyLies: () => notes().insertOne(new Proxy({ a: 1 }, { ownKeys() { return ['a', 'b', 'b']; } })),
  getter: () => notes().insertOne({ get boom() { throw new Error('getter trap'); } }),
  cyclic: () => { const o = { kind: 'cyclic' }; o.self = o; return notes().insertOne(o); },
  cyclicArray: () => { const a = []; a.push(a); return notes().insertOne({ a }); },
  stringifyCyclic: () => { const o = {}; o.o = o; return JSON.stringify(o); },
  deep: () => notes().insertOne(deepObj()),
  deepArray: () => notes().insertOne({ kind: 'deep', a: deepArr() }),
  deepFilter: () => notes().find({ $and: [deepObj()] }),
  deepKV: () => gnome.kv.putJSON('deep', deepArr()),
  deepPublish: () => gnome.publish('room', deepObj()),
  deepAfter: () => gnome.after(60000, 'deep', deepObj()),
  deepFetch: () => gnome.fetch('https://example.com/', { method: 'POST', body: deepArr() }),
  // A collection's prototype with another experiment's slug: still this
  // experiment's collection (the other's stays empty).
  protoThis: () => notes().insertOne.call(Object.create(Object.getPrototypeOf(notes()), { name: { value: 'notes' }, slug: { value: 'jsvictim' } }), { kind: 'proto' }),
  symbolKey: () => notes().insertOne({ [Symbol('s')]: 1, kind: 'symbol' }),
  functionValue: () => notes().insertOne({ kind: 'fn', f() {} }),
  throwingToString: () => gnome.kv.put({ toString() { throw new Error('toString trap'); } }, 'x'),
  operatorFilter: () => notes().find({ $where: 'sleep(1000)' }),
  hugeKey: () => gnome.kv.put('k'.repeat(1 << 20), 'x'),
};
gnome.route('POST', '/trick/{name}', (req) => {
  try { const v = tricks[req.params.name](); return { json: { ok: true, v: v === undefined ? null : v } }; }
  catch (e) { return { json: { ok: false, err: String(e && e.message || e) } }; }
});
`

// The hostile actor stays inside its limits and the platform stays
// healthy: each misdeed ends the call (or the instance, which is replaced),
// the worker serves on, another actor is never affected.
func TestJavaScriptActorHostile(t *testing.T) {
	w := newWorld(t)
	w.tune.BackoffMax = 200 * time.Millisecond
	s := w.jsWorker(nil, nil)
	w.deployJS("jshostile", "actor.js", map[string]string{"actor.js": jsHostileScript}, map[string]any{"timeout_ms": 1500}, nil)
	w.deployJS("jsvictim", "actor.js", map[string]string{"actor.js": jsHostileScript}, nil, nil)
	w.serving("jshostile", jsWait)
	w.serving("jsvictim", jsWait)

	restarts := func() int { return w.state("jshostile").Restarts }
	for _, c := range []struct {
		path     string
		breaks   bool // the instance is replaced
		anyError bool // a 500, or the instance replaced: the runtime decides
	}{
		{"/loop", true, false},
		{"/grow", true, false},
		{"/recurse", false, true},
		{"/string", false, true},
		{"/big-response", true, false},
		{"/big-log", false, true},
	} {
		before := restarts()
		start := time.Now()
		r := w.callWithin(20*time.Second, "jshostile", "GET", c.path, "", nil)
		took := time.Since(start)
		if r.err == nil && r.status < 500 && c.path != "/big-log" {
			t.Errorf("%s answered %v", c.path, r)
		}
		if c.breaks {
			eventually(t, 10*time.Second, c.path+": the instance replaced", func() bool { return restarts() > before })
		}
		w.serving("jshostile", jsWait)
		w.serving("jsvictim", 10*time.Second)
		t.Logf("%s: %v after %v; restarts %d -> %d", c.path, r, took.Round(time.Millisecond), before, restarts())
	}
	if st := w.state("jshostile"); st.State != actorapi.StateRunning {
		t.Fatalf("state after the misdeeds: %+v", st)
	}

	names := []string{"pollutedInsert", "toJSONInsert", "redefineDb", "defineProperty", "dbStillWorks", "detached", "otherThis",
		"applyNull", "applyNumber", "proxy", "proxyLies", "getter", "cyclic", "cyclicArray", "stringifyCyclic", "deep",
		"deepArray", "deepFilter", "deepKV", "deepPublish", "deepAfter", "deepFetch", "protoThis",
		"symbolKey", "functionValue", "throwingToString", "operatorFilter", "hugeKey"}
	got := map[string]map[string]any{}
	// Every trick is answered by the instance that served /init: none
	// restarts it (its counter goes on, the restarts stay).
	first := w.call("jshostile", "GET", "/init", "", nil)
	before := restarts()
	for _, name := range names {
		r := w.call("jshostile", "POST", "/trick/"+name, "", nil)
		t.Logf("trick %s: %v", name, r)
		if r.err != nil || r.status != 200 {
			t.Errorf("trick %s broke the instance: %v", name, r)
			w.serving("jshostile", jsWait)
			continue
		}
		got[name] = r.json(t)
	}
	if r := w.call("jshostile", "GET", "/deep-response", "", nil); r.status != 500 || !strings.Contains(string(r.body), "RangeError: the response's json: the value is nested deeper than 500 levels") {
		t.Errorf("/deep-response: %v", r)
	}
	var n int
	if _, err := fmt.Sscanf(string(first.body), "ok %d", &n); err != nil {
		t.Fatalf("/init: %v", first)
	}
	if r := w.call("jshostile", "GET", "/init", "", nil); string(r.body) != fmt.Sprintf("ok %d", n+1) || restarts() != before {
		t.Errorf("after the tricks /init answered %v (before: %s), restarts %d -> %d: the instance was replaced", r, first.body, before, restarts())
	}
	for _, k := range []string{"proxy", "getter", "cyclic", "cyclicArray", "stringifyCyclic", "throwingToString", "hugeKey"} {
		if got[k] != nil && (got[k]["ok"] != false || got[k]["err"] == "") {
			t.Errorf("%s: %v, want an error", k, got[k])
		}
	}
	for _, k := range []string{"deep", "deepArray", "deepFilter", "deepKV", "deepPublish", "deepAfter", "deepFetch"} {
		if got[k]["ok"] != false || !strings.Contains(fmt.Sprint(got[k]["err"]), "nested deeper than 500 levels") {
			t.Errorf("%s: %v, want the bound named", k, got[k])
		}
	}
	// An inherited toJSON may refuse the document; it never replaces it.
	if got["toJSONInsert"]["ok"] != true && !strings.Contains(fmt.Sprint(got["toJSONInsert"]["err"]), "not a document") {
		t.Errorf("toJSONInsert: %v", got["toJSONInsert"])
	}
	for _, k := range []string{"redefineDb", "defineProperty", "detached", "otherThis", "applyNumber", "proxyLies", "operatorFilter"} {
		if got[k]["ok"] != false {
			t.Errorf("%s: %v, want a refusal", k, got[k])
		}
	}
	for _, k := range []string{"pollutedInsert", "dbStillWorks", "protoThis"} {
		if got[k] != nil && got[k]["ok"] != true {
			t.Errorf("%s: %v, want success", k, got[k])
		}
	}
	// No inherited property reached the store; the other experiment's
	// collection is untouched whatever this was.
	ctx := ctxT(t)
	var docs []bson.M
	cur, err := w.d.Store.Collection(scoped.CollectionName("jshostile", "notes")).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, ok := d["polluted"]; ok {
			t.Errorf("an inherited property was stored: %v", d)
		}
		if _, ok := d["extra"]; ok {
			t.Errorf("an inherited array property was stored: %v", d)
		}
		for _, v := range d {
			if v == "hijacked" {
				t.Errorf("toJSON changed a stored document: %v", d)
			}
		}
	}
	if n, err := w.d.Store.Collection(scoped.CollectionName("jsvictim", "notes")).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("the other experiment's notes: %d documents (%v)", n, err)
	}
	w.serving("jshostile", 10*time.Second)
	w.serving("jsvictim", 10*time.Second)
	if n := s.jsCompiles(); n != 1 {
		t.Errorf("the runtime compiled %d times on one worker", n)
	}
}

// A syntax error, or an exception at the top level, fails the start for
// good, with the runtime's message (file, line, column) in the actor's
// state; the worker and other actors go on.
func TestJavaScriptActorStartFailures(t *testing.T) {
	w := newWorld(t)
	s := w.jsWorker(nil, nil)
	syntax := "'use strict';\n// a comment\nconst ok = 1;\nconst broken = ;\n"
	w.deployJS("jssyntax", "api/main.js", map[string]string{"api/main.js": syntax}, nil, nil)
	top := "'use strict';\ngnome.route('GET', '/init', () => 'ok');\nconst lib = require('./lib.js');\n"
	lib := "'use strict';\n\nthrow new Error('top-level boom');\n"
	w.deployJS("jstop", "api/main.js", map[string]string{"api/main.js": top, "api/lib.js": lib}, nil, nil)
	missing := "require('./not-there.js');\n"
	w.deployJS("jsmissing", "main.js", map[string]string{"main.js": missing}, nil, nil)
	// Two instances of one actor on one worker share the runtime too.
	w.deployJS("jsfine", "main.js", map[string]string{"main.js": "gnome.route('GET', '/init', () => 'ok');"}, map[string]any{"instances": 2}, nil)

	for slug, wants := range map[string][]string{
		"jssyntax":  {"SyntaxError", "api/main.js:4:16"},
		"jstop":     {"api/lib.js:3", "top-level boom"},
		"jsmissing": {"not-there.js"},
	} {
		msg := w.failedWith(slug)
		for _, want := range wants {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: last error %q lacks %q", slug, msg, want)
			}
		}
		st := w.state(slug)
		if st.Restarts != 0 {
			t.Errorf("%s restarted %d times: a script error is permanent", slug, st.Restarts)
		}
		t.Logf("%s: %s", slug, msg)
	}
	w.serving("jsfine", jsWait)
	eventually(t, jsWait, "the second instance to run", func() bool {
		st := w.state(instanceKey("jsfine", 1))
		return st != nil && st.State == actorapi.StateRunning
	})
	if n := s.jsCompiles(); n != 1 {
		t.Errorf("the runtime compiled %d times on one worker", n)
	}
}
