package actorworker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// jsAPIScript uses every API of gnome.d.ts; each route answers what it
// saw, for the test to compare with what the platform holds.
const jsAPIScript = `'use strict';
const util = require('./lib/util.js');
const data = require('./data.json');
const events = [];
let ticks = 0, lastTick = null;
function record(e) { events.push(e); }

gnome.route('GET', '/init', () => 'ok');
gnome.route('GET', '/meta', () => ({ json: { slug: gnome.slug, version: gnome.version, config: gnome.config, twice: util.twice(21), data: data.name } }));

gnome.route('*', '/echo/{id}', (req) => ({ json: {
  method: req.method, path: req.path, rawQuery: req.rawQuery, query: req.query, params: req.params,
  header: req.header('x-test'), headerAnyCase: req.header('X-TEST'), noHeader: req.header('x-none') === undefined,
  headers: req.headers['X-Test'], cookie: req.cookie('flavour'), noCookie: req.cookie('none') === undefined,
  caller: { kind: req.caller.kind, id: req.caller.id, email: req.caller.email, roles: req.caller.roles, anonymous: req.caller.anonymous,
            user: req.caller.hasRole('user'), admin: req.caller.hasRole('admin'), link: req.caller.link || null },
  requestId: req.requestId, text: req.text() } }));
gnome.route('POST', '/body/json', (req) => ({ json: { got: req.json() } }));
gnome.route('POST', '/body/bytes', (req) => { const b = req.bytes(); return { json: { len: b.length, first: b[0], last: b[b.length - 1], u8: b instanceof Uint8Array } }; });
gnome.route('GET', '/files/{path...}', (req) => req.params.path);
gnome.route('GET', '/respond/{kind}', (req) => {
  switch (req.params.kind) {
    case 'full': return { status: 201, headers: { 'X-One': 'a', 'X-Many': ['b', 'c'] }, json: { ok: true },
      cookies: [{ name: 'seen', value: 'yes', maxAge: 60, sameSite: 'Strict', secure: true }, { name: 'js', value: '1', script: true }] };
    case 'bytes': return { headers: { 'Content-Type': 'application/octet-stream' }, body: new Uint8Array([0, 1, 2, 255]) };
    case 'buffer': return { body: new Uint8Array([9, 8]).buffer };
    case 'text': return 'plain words';
    case 'none': return undefined;
    case 'json': return gnome.json(202, { a: 1 });
    case 'teapot': return gnome.text(418, 'short and stout');
    case 'error': return gnome.error(409, 'conflict', 'already there');
    case 'redirect': return gnome.redirect('/elsewhere');
    case 'promise': return Promise.resolve({ json: { promised: true } });
  }
});
gnome.route('GET', '/async', async () => { const x = await Promise.resolve(41); return { json: { v: x + 1 } }; });
gnome.notFound((req) => gnome.json(404, { custom: true, path: req.path }));

gnome.route('POST', '/db', () => {
  const c = gnome.db('notes');
  const at = new Date('2026-01-02T03:04:05.678Z');
  c.insertOne({ n: 1, tag: 'a', at });
  const ids = c.insertMany([{ n: 2, tag: 'b' }, { n: 3, tag: 'b' }, { n: 4, tag: 'c' }]);
  const one = c.findOne({ n: 1 });
  const sorted = c.find({}, { sort: { n: -1 }, limit: 2, skip: 1, projection: { _id: 0, n: 1 } });
  const count = c.count({ tag: 'b' });
  const agg = c.aggregate([{ $group: { _id: '$tag', total: { $sum: '$n' } } }, { $sort: { _id: 1 } }]);
  const u1 = c.updateOne({ n: 1 }, { $set: { tag: 'z' } });
  const u2 = c.updateMany({ tag: 'b' }, { $inc: { n: 10 } });
  const up = c.updateOne({ n: 99 }, { $set: { tag: 'new' } }, { upsert: true });
  const d1 = c.deleteOne({ n: 4 });
  const dn = c.deleteMany({ tag: 'b' });
  const left = c.find({}, { sort: { n: 1 }, projection: { _id: 0, n: 1, tag: 1 } });
  return { json: { ids: ids.length, oneN: one.n, isDate: one.at instanceof Date, ms: one.at.getTime(), sorted, count, agg,
    u1: [u1.matched, u1.modified], u2: [u2.matched, u2.modified], upserted: up.upsertedId != null, d1, dn,
    none: c.findOne({ n: 12345 }), left, name: c.name, slug: c.slug } };
});
gnome.route('GET', '/from', (req) => ({ json: gnome.dbFrom(req.query.slug[0], 'notes').find({}, { sort: { n: 1 }, projection: { _id: 0, n: 1 } }) }));

gnome.route('POST', '/kv', () => {
  const r1 = gnome.kv.put('greeting', 'hello');
  const g = gnome.kv.get('greeting');
  const r2 = gnome.kv.putJSON('obj', { a: [1, 2] });
  const gj = gnome.kv.getJSON('obj');
  gnome.kv.put('bytes', new Uint8Array([104, 105]));
  const gb = gnome.kv.get('bytes').value;
  gnome.kv.delete('greeting');
  let bad = null;
  try { gnome.kv.put('bad key!', 'x'); } catch (e) { bad = { code: e.code, status: e.status, host: e instanceof gnome.HostError }; }
  return { json: { r1, g, r2, gj, gb, gone: gnome.kv.get('greeting'), goneJSON: gnome.kv.getJSON('nothing'), bad } };
});

gnome.route('GET', '/log', () => {
  gnome.log.info('js-info-marker', { a: 1 });
  gnome.log.warn('js-warn-marker');
  gnome.log.error('js-error-marker');
  gnome.log.debug('js-debug-marker');
  console.log('js-console-marker', 42);
  console.error('js-console-error');
  return 'logged';
});

gnome.route('GET', '/secret/{name}', (req) => ({ json: { value: gnome.secret(req.params.name) } }));

gnome.route('POST', '/fetch', async (req) => {
  const { url } = req.json();
  try {
    const r = await gnome.fetch(url, { method: 'POST', headers: { 'Authorization': 'Bearer js-key' }, body: { prompt: 'hi' } });
    return { json: { status: r.status, ok: r.ok, remote: r.header('x-remote'), body: r.status === 200 ? await r.json() : await r.text() } };
  } catch (e) {
    return { json: { error: { code: e.code, host: e instanceof gnome.HostError } } };
  }
});

gnome.route('POST', '/finish', (req) => {
  try { return { json: gnome.finishRun(req) }; } catch (e) { return gnome.json(e.status, { code: e.code }); }
});

gnome.onTimer((t) => {
  if (t.schedule) { ticks++; lastTick = { name: t.name, payload: t.payload, id: t.id }; return; }
  record({ type: 'timer', id: t.id, name: t.name, payload: t.payload, dates: t.scheduledAt instanceof Date && t.firedAt instanceof Date && t.firedAt >= t.scheduledAt });
});
gnome.route('POST', '/after', (req) => ({ json: { id: gnome.after(Number(req.query.ms[0]), req.query.name[0], req.text() ? req.json() : undefined) } }));
gnome.route('POST', '/cancel', (req) => ({ json: { cancelled: gnome.cancelTimer(req.query.id[0]) } }));
gnome.route('GET', '/events', () => ({ json: { events, ticks, lastTick } }));

gnome.onOpen((conn) => {
  if (conn.query.includes('deny')) throw gnome.refuse('forbidden', 'not you');
  record({ type: 'open', conn: conn.id, kind: conn.kind, path: conn.path, query: conn.query, caller: conn.caller.kind + ':' + conn.caller.id });
});
gnome.onMessage((conn, msg) => {
  if (msg.binary) { record({ type: 'message', conn: conn.id, bytes: Array.from(msg.data) }); return; }
  let cmd;
  try { cmd = msg.json(); } catch (e) { record({ type: 'message', conn: conn.id, text: msg.text() }); return; }
  switch (cmd.do) {
    case 'send': conn.send(cmd.text); break;
    case 'send_json': conn.send(cmd.v); break;
    case 'send_bytes': conn.send(new Uint8Array([0, 1, 2])); break;
    case 'send_by_id': gnome.send(conn.id, 'by id'); break;
    case 'join': conn.join(cmd.room); break;
    case 'join_by_id': gnome.join(conn.id, cmd.room); break;
    case 'leave': conn.leave(cmd.room); break;
    case 'leave_by_id': gnome.leave(conn.id, cmd.room); break;
    case 'publish': gnome.publish(cmd.room, cmd.text, cmd.except ? { except: [conn.id] } : undefined); break;
    case 'publish_json': gnome.publish(cmd.room, cmd.v); break;
    case 'close': conn.close(4000, 'bye'); break;
    case 'close_by_id': gnome.closeConn(conn.id, 4001, 'by id'); break;
  }
});
gnome.onClose((conn, c) => record({ type: 'close', conn: conn.id, code: c.code, reason: c.reason, by: c.by }));

gnome.route('GET', '/throw', () => {
  throw new Error('boom from js');
});
gnome.route('GET', '/throw-host', () => { throw new gnome.HostError('conflict', 'taken by someone'); });
gnome.route('GET', '/throw-async', async () => { await null; throw new TypeError('async boom'); });
gnome.route('GET', '/host-errors', () => {
  const out = {};
  const tries = {
    badCollection: () => gnome.db('bad name!').count(),
    notInScope: () => gnome.dbFrom('stranger', 'notes').find(),
    badSecret: () => gnome.secret('lower case'),
    tooSoon: () => gnome.after(-5, 'x'),
    badSend: () => gnome.send('', 'x'),
    badFetch: () => gnome.fetch('ftp://example.com/'),
  };
  for (const k of Object.keys(tries)) {
    try { const v = tries[k](); out[k] = v && typeof v.then === 'function' ? 'promise' : 'no error'; }
    catch (e) { out[k] = { code: e.code, status: e.status, host: e instanceof gnome.HostError, error: e instanceof Error }; }
  }
  return { json: out };
});
`

// jsAPIFiles is the API actor's bundle: its scripts in api/, beside files
// of the page that the runtime must not receive.
func jsAPIFiles() map[string]string {
	return map[string]string{
		"api/main.js":      jsAPIScript,
		"api/lib/util.js":  "exports.twice = (n) => n * 2;",
		"api/data.json":    `{"name": "from json"}`,
		"static/app.js":    "this is the page's script, not the actor's (",
		"static/page.json": "{",
	}
}

// lineOf is the 1-based line of the first line of src holding s.
func lineOf(src, s string) int {
	i := strings.Index(src, s)
	if i < 0 {
		return -1
	}
	return strings.Count(src[:i], "\n") + 1
}

// jsCall calls the API actor and decodes its JSON answer into out.
func (w *world) jsCall(t *testing.T, slug, method, path, query string, body []byte, out any) reply {
	t.Helper()
	r := w.call(slug, method, path, query, body)
	if out != nil {
		if r.err != nil {
			t.Fatalf("%s %s: %v", method, path, r)
		}
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.body)
		}
	}
	return r
}

// asJSON is v as canonical JSON, for comparisons.
func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// Every API of gnome.d.ts, from a JavaScript actor started by a worker
// from an uploaded bundle, against the real host: NATS, the store, the
// key-value bucket, secrets, outbound HTTP, timers and live channels.
func TestJavaScriptActorAPI(t *testing.T) {
	remote := newRemote(t)
	w := newWorld(t)
	w.tune.Timers.MinDelay = 10 * time.Millisecond
	w.tune.Timers.EveryDivisor = 200 // every 10s: every 50 ms
	w.tune.Live.CensusQuiet = 50 * time.Millisecond
	w.tune.Live.CensusMax = 300 * time.Millisecond
	edge := w.edge("jsapi", "e1")
	logs := &syncBuffer{}
	s := w.jsWorkerWith(nil, logs, func(s *Service) { remote.hooks(&s.fetch) })

	start := time.Now()
	w.deployJS("jsapi", "api/main.js", jsAPIFiles(), map[string]any{
		"config":   map[string]any{"greeting": "hello", "n": 3},
		"http":     map[string]any{"allow": []string{"api.test"}},
		"schedule": []any{map[string]any{"name": "tick", "every": "10s", "payload": map[string]any{"n": 1}}},
	}, map[string]any{"data_scope": []string{"self", "jsowner"}})
	w.serving("jsapi", jsWait)
	first := time.Since(start)
	start = time.Now()
	w.deployJS("jsowner", "api/main.js", jsAPIFiles(), nil, nil)
	w.serving("jsowner", jsWait)
	t.Logf("first JavaScript actor served after %v (the runtime compiled), the second after %v", first, time.Since(start))
	if n := s.jsCompiles(); n != 1 {
		t.Fatalf("the runtime was compiled %d times for two actors, want once", n)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "JavaScript runtime compiled") || strings.Contains(line, `msg="actor running"`) {
			t.Log(line)
		}
	}

	t.Run("meta", func(t *testing.T) {
		var got map[string]any
		w.jsCall(t, "jsapi", "GET", "/meta", "", nil, &got)
		want := `{"config":{"greeting":"hello","n":3},"data":"from json","slug":"jsapi","twice":42,"version":1}`
		if asJSON(got) != want {
			t.Fatalf("meta %s, want %s", asJSON(got), want)
		}
	})

	t.Run("request", func(t *testing.T) {
		r := w.jsRequest("jsapi", actorapi.Request{
			Method: "PATCH", Path: "/echo/42", Query: "a=1&a=2&b=x%20y",
			Headers:   map[string][]string{"X-Test": {"one", "two"}, "Cookie": {"flavour=lemon; other=x"}},
			Body:      []byte("the body"),
			Caller:    actorapi.Caller{Kind: "user", ID: "u1", Email: "ada@example.com", Roles: []string{"user"}},
			RequestID: "req-echo",
		})
		var got map[string]any
		if r.err != nil || r.status != 200 || json.Unmarshal(r.body, &got) != nil {
			t.Fatalf("echo: %v", r)
		}
		want := map[string]any{
			"method": "PATCH", "path": "/echo/42", "rawQuery": "a=1&a=2&b=x%20y",
			"query": map[string]any{"a": []any{"1", "2"}, "b": []any{"x y"}}, "params": map[string]any{"id": "42"},
			"header": "one", "headerAnyCase": "one", "noHeader": true, "headers": []any{"one", "two"},
			"cookie": "lemon", "noCookie": true,
			"caller": map[string]any{"kind": "user", "id": "u1", "email": "ada@example.com", "roles": []any{"user"}, "anonymous": false,
				"user": true, "admin": false, "link": nil},
			"requestId": "req-echo", "text": "the body",
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("echo\n got %s\nwant %s", asJSON(got), asJSON(want))
		}
		var j map[string]any
		w.jsCall(t, "jsapi", "POST", "/body/json", "", []byte(`{"x":[1,"two",null]}`), &j)
		if asJSON(j) != `{"got":{"x":[1,"two",null]}}` {
			t.Errorf("json body: %s", asJSON(j))
		}
		if r := w.call("jsapi", "POST", "/body/json", "", []byte(`{not json`)); r.status != 400 || !strings.Contains(string(r.body), "invalid_json") {
			t.Errorf("invalid JSON body: %v", r)
		}
		j = nil
		w.jsCall(t, "jsapi", "POST", "/body/bytes", "", []byte{7, 0, 255}, &j)
		if asJSON(j) != `{"first":7,"last":255,"len":3,"u8":true}` {
			t.Errorf("bytes body: %s", asJSON(j))
		}
		if r := w.call("jsapi", "GET", "/files/a/b/c.txt", "", nil); r.status != 200 || string(r.body) != "a/b/c.txt" {
			t.Errorf("wildcard route: %v", r)
		}
		if r := w.call("jsapi", "GET", "/nowhere", "", nil); r.status != 404 || asJSON(r.json(t)) != `{"custom":true,"path":"/nowhere"}` {
			t.Errorf("notFound: %v", r)
		}
	})

	t.Run("responses", func(t *testing.T) {
		r := w.call("jsapi", "GET", "/respond/full", "", nil)
		if r.status != 201 || asJSON(r.json(t)) != `{"ok":true}` || asJSON(r.headers["X-One"]) != `["a"]` || asJSON(r.headers["X-Many"]) != `["b","c"]` {
			t.Fatalf("full: %v %v", r, r.headers)
		}
		cookies := strings.Join(r.headers["Set-Cookie"], "\n")
		for _, want := range []string{"seen=yes", "Max-Age=60", "SameSite=Strict", "Secure", "HttpOnly", "js=1"} {
			if !strings.Contains(cookies, want) {
				t.Errorf("cookies %q lack %q", cookies, want)
			}
		}
		if len(r.headers["Set-Cookie"]) != 2 || strings.Contains(r.headers["Set-Cookie"][1], "HttpOnly") {
			t.Errorf("the script cookie: %q", r.headers["Set-Cookie"])
		}
		for _, c := range []struct {
			kind   string
			status int
			body   string
			ctype  string
		}{
			{"bytes", 200, "\x00\x01\x02\xff", "application/octet-stream"},
			{"buffer", 200, "\x09\x08", ""},
			{"text", 200, "plain words", "text/plain"},
			{"none", 204, "", ""},
			{"json", 202, `{"a":1}`, "application/json"},
			{"teapot", 418, "short and stout", "text/plain"},
			{"redirect", 303, "", ""},
			{"promise", 200, `{"promised":true}`, "application/json"},
		} {
			r := w.call("jsapi", "GET", "/respond/"+c.kind, "", nil)
			if r.err != nil || r.status != c.status || strings.TrimSuffix(string(r.body), "\n") != c.body {
				t.Errorf("%s: %v, want %d %q", c.kind, r, c.status, c.body)
			}
			if ct := strings.Join(r.headers["Content-Type"], ","); c.ctype != "" && !strings.HasPrefix(ct, c.ctype) {
				t.Errorf("%s: Content-Type %q, want %s", c.kind, ct, c.ctype)
			}
		}
		if r := w.call("jsapi", "GET", "/respond/redirect", "", nil); asJSON(r.headers["Location"]) != `["/elsewhere"]` {
			t.Errorf("redirect: %v", r.headers)
		}
		if r := w.call("jsapi", "GET", "/respond/error", "", nil); r.status != 409 || r.errorCode(t) != "conflict" {
			t.Errorf("gnome.error: %v", r)
		}
		var v map[string]any
		w.jsCall(t, "jsapi", "GET", "/async", "", nil, &v)
		if v["v"] != 42.0 {
			t.Errorf("async handler: %v", v)
		}
	})

	t.Run("db", func(t *testing.T) {
		var got map[string]any
		w.jsCall(t, "jsapi", "POST", "/db", "", nil, &got)
		want := map[string]any{
			"ids": 3.0, "oneN": 1.0, "isDate": true, "ms": float64(time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC).UnixMilli()),
			"sorted": []any{map[string]any{"n": 3.0}, map[string]any{"n": 2.0}}, "count": 2.0,
			"agg": []any{map[string]any{"_id": "a", "total": 1.0}, map[string]any{"_id": "b", "total": 5.0}, map[string]any{"_id": "c", "total": 4.0}},
			"u1":  []any{1.0, 1.0}, "u2": []any{2.0, 2.0}, "upserted": true, "d1": 1.0, "dn": 2.0, "none": nil,
			"left": []any{map[string]any{"n": 1.0, "tag": "z"}, map[string]any{"n": 99.0, "tag": "new"}},
			"name": "notes", "slug": "jsapi", // the own collection's slug is gnome.slug
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("db\n got %s\nwant %s", asJSON(got), asJSON(want))
		}
		// The date is a date in the store, not a string.
		var doc struct {
			At time.Time `bson:"at"`
		}
		coll := w.d.Store.Collection(scoped.CollectionName("jsapi", "notes"))
		if err := coll.FindOne(ctxT(t), map[string]any{"n": 1}).Decode(&doc); err != nil || doc.At.UnixMilli() != int64(want["ms"].(float64)) {
			t.Fatalf("the stored date: %v %v", doc.At, err)
		}
	})

	t.Run("dbFrom", func(t *testing.T) {
		w.jsCall(t, "jsowner", "POST", "/db", "", nil, &map[string]any{})
		if r := w.call("jsapi", "GET", "/from", "slug=jsowner", nil); r.status != 403 || r.errorCode(t) != "scope_forbidden" {
			t.Fatalf("a read before the grant: %v", r)
		}
		w.grant("jsapi", "jsowner")
		var got []any
		eventually(t, 5*time.Second, "the grant to reach the actor", func() bool {
			return w.call("jsapi", "GET", "/from", "slug=jsowner", nil).status == 200
		})
		w.jsCall(t, "jsapi", "GET", "/from", "slug=jsowner", nil, &got)
		if asJSON(got) != `[{"n":1},{"n":99}]` {
			t.Fatalf("dbFrom: %s", asJSON(got))
		}
	})

	t.Run("kv", func(t *testing.T) {
		var got map[string]any
		w.jsCall(t, "jsapi", "POST", "/kv", "", nil, &got)
		r1, _ := got["r1"].(float64)
		if r1 < 1 || asJSON(got["g"]) != fmt.Sprintf(`{"revision":%v,"value":"hello"}`, r1) || asJSON(got["gj"]) != `{"a":[1,2]}` ||
			got["gb"] != "hi" || got["gone"] != nil || got["goneJSON"] != nil || asJSON(got["bad"]) != `{"code":"validation_failed","host":true,"status":422}` {
			t.Fatalf("kv: %s", asJSON(got))
		}
	})

	t.Run("logs", func(t *testing.T) {
		if r := w.call("jsapi", "GET", "/log", "", nil); r.status != 200 {
			t.Fatalf("log: %v", r)
		}
		for _, want := range []string{
			`level=INFO msg="actor log" slug=jsapi text="js-info-marker {\"a\":1}"`,
			`level=WARN msg="actor log" slug=jsapi text=js-warn-marker`,
			`level=ERROR msg="actor log" slug=jsapi text=js-error-marker`,
			`level=DEBUG msg="actor log" slug=jsapi text=js-debug-marker`,
			`level=INFO msg="actor log" slug=jsapi text="js-console-marker 42"`,
			`level=ERROR msg="actor log" slug=jsapi text=js-console-error`,
		} {
			eventually(t, 5*time.Second, "log line "+want, func() bool { return strings.Contains(logs.String(), want) })
		}
	})

	t.Run("secret", func(t *testing.T) {
		ctx := ctxT(t)
		if err := w.d.Store.EnsureIndexes(ctx, store.ExperimentSecrets); err != nil {
			t.Fatal(err)
		}
		sl, err := store.NewSealer(testenv.SecretKey, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.d.Store.Secrets(sl).Put(ctx, "jsapi", "API_KEY", "sk-js-123", "ann@example.com", uploadapi.MaxSecrets); err != nil {
			t.Fatal(err)
		}
		if r := w.call("jsapi", "GET", "/secret/API_KEY", "", nil); r.status != 200 || r.json(t)["value"] != "sk-js-123" {
			t.Fatalf("secret: %v", r)
		}
		// A HostError a handler lets through keeps its code and status.
		if r := w.call("jsapi", "GET", "/secret/UNSET", "", nil); r.status != 404 || r.errorCode(t) != "not_found" {
			t.Fatalf("an unset secret: %v", r)
		}
		if strings.Contains(logs.String(), "sk-js-123") {
			t.Fatal("the secret's value reached the logs")
		}
	})

	t.Run("fetch", func(t *testing.T) {
		var got map[string]any
		b, _ := json.Marshal(map[string]string{"url": remote.url("api.test", "/echo")})
		w.jsCall(t, "jsapi", "POST", "/fetch", "", b, &got)
		body, _ := got["body"].(map[string]any)
		if got["status"] != 200.0 || got["ok"] != true || got["remote"] != "yes" || body["method"] != "POST" ||
			body["body"] != `{"prompt":"hi"}` || body["authorization"] != "Bearer js-key" {
			t.Fatalf("fetch: %s", asJSON(got))
		}
		b, _ = json.Marshal(map[string]string{"url": remote.url("api.test", "/status?code=503")})
		w.jsCall(t, "jsapi", "POST", "/fetch", "", b, &got)
		if got["status"] != 503.0 || got["ok"] != false {
			t.Fatalf("a 503 resolves: %s", asJSON(got))
		}
		for _, c := range []struct{ url, code string }{
			{"http://example.com/", "http_forbidden_host"},
			{remote.internalURL("api.test"), "http_forbidden_address"},
		} {
			b, _ = json.Marshal(map[string]string{"url": c.url})
			got = nil
			w.jsCall(t, "jsapi", "POST", "/fetch", "", b, &got)
			if asJSON(got) != `{"error":{"code":"`+c.code+`","host":true}}` {
				t.Errorf("fetch %s: %s, want %s", c.url, asJSON(got), c.code)
			}
		}
		if remote.hits.Load() != 0 {
			t.Error("the internal server was reached")
		}
	})

	t.Run("finishRun", func(t *testing.T) {
		// A run of a real study link needs the links of the auth service;
		// the operation's refusals show the call reaches the host.
		if r := w.call("jsapi", "POST", "/finish", "", nil); r.status != 400 || asJSON(r.json(t)) != `{"code":"bad_request"}` {
			t.Errorf("finishRun without a link: %v", r)
		}
		r := w.jsRequest("jsapi", actorapi.Request{Method: "POST", Path: "/finish",
			Caller: actorapi.Caller{Kind: "participant", ID: "p1", Anonymous: true, Link: &actorapi.CallerLink{ID: "l1", Kind: "multi", Run: "no-such-run"}}})
		if r.status != 404 || asJSON(r.json(t)) != `{"code":"not_found"}` {
			t.Errorf("finishRun of an unknown run: %v", r)
		}
	})

	t.Run("timers", func(t *testing.T) {
		var set map[string]any
		w.jsCall(t, "jsapi", "POST", "/after", "ms=50&name=ping", []byte(`{"x":"y"}`), &set)
		id, _ := set["id"].(string)
		var never map[string]any
		w.jsCall(t, "jsapi", "POST", "/after", "ms=400&name=never", nil, &never)
		var c map[string]any
		w.jsCall(t, "jsapi", "POST", "/cancel", "id="+never["id"].(string), nil, &c)
		if c["cancelled"] != true {
			t.Fatalf("cancel: %v", c)
		}
		w.jsCall(t, "jsapi", "POST", "/cancel", "id="+never["id"].(string), nil, &c)
		if c["cancelled"] != false {
			t.Fatalf("cancel again: %v", c)
		}
		var ev struct {
			Events   []map[string]any
			Ticks    int
			LastTick map[string]any
		}
		eventually(t, 10*time.Second, "the timer and the schedule to fire", func() bool {
			w.jsCall(t, "jsapi", "GET", "/events", "", nil, &ev)
			return ev.Ticks >= 2 && len(timersNamed(ev.Events, "ping")) == 1
		})
		w.jsCall(t, "jsapi", "POST", "/after", "ms=500&name=later", nil, &set)
		eventually(t, 10*time.Second, "the later timer to fire", func() bool {
			w.jsCall(t, "jsapi", "GET", "/events", "", nil, &ev)
			return len(timersNamed(ev.Events, "later")) == 1
		})
		ping := timersNamed(ev.Events, "ping")
		if asJSON(ping) != fmt.Sprintf(`[{"dates":true,"id":%q,"name":"ping","payload":{"x":"y"},"type":"timer"}]`, id) || len(timersNamed(ev.Events, "never")) != 0 {
			t.Errorf("timers fired: %s", asJSON(ev.Events))
		}
		if asJSON(ev.LastTick) != `{"id":"","name":"tick","payload":{"n":1}}` {
			t.Errorf("schedule fired as %s", asJSON(ev.LastTick))
		}
	})

	t.Run("live", func(t *testing.T) {
		rooms, err := w.d.NC.SubscribeSync(actorapi.LiveRoomSubject("jsapi", "lobby"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rooms.Unsubscribe() }()
		_ = w.d.NC.Flush()
		taken(t, "open", w.open("jsapi", "user:u1", "e1-aaaa", "x=1"))
		refused(t, "refused open", w.open("jsapi", "user:u1", "e1-nope", "deny=1"), apierr.CodeForbidden)
		taken(t, "text", w.message("jsapi", "e1-aaaa", "hello"))
		taken(t, "binary", w.liveEvent("jsapi", "user:u1", actorapi.LiveEvent{Type: actorapi.LiveMessage, Conn: liveConn("e1-aaaa", ""), Data: "AAEC", Binary: true}))
		for _, c := range []struct{ msg, want string }{
			{`{"do":"send","text":"hi <you>"}`, `{"op":"send","conn":"e1-aaaa","data":"hi \u003cyou\u003e"}`},
			{`{"do":"send_json","v":{"a":1}}`, `{"op":"send","conn":"e1-aaaa","data":"{\"a\":1}"}`},
			{`{"do":"send_bytes"}`, `{"op":"send","conn":"e1-aaaa","data":"AAEC","binary":true}`},
			{`{"do":"send_by_id"}`, `{"op":"send","conn":"e1-aaaa","data":"by id"}`},
			{`{"do":"join","room":"lobby"}`, `{"op":"join","conn":"e1-aaaa","room":"lobby"}`},
			{`{"do":"join_by_id","room":"hall"}`, `{"op":"join","conn":"e1-aaaa","room":"hall"}`},
			{`{"do":"leave","room":"hall"}`, `{"op":"leave","conn":"e1-aaaa","room":"hall"}`},
			{`{"do":"leave_by_id","room":"hall"}`, `{"op":"leave","conn":"e1-aaaa","room":"hall"}`},
			{`{"do":"close"}`, `{"op":"close","conn":"e1-aaaa","code":4000,"reason":"bye"}`},
			{`{"do":"close_by_id"}`, `{"op":"close","conn":"e1-aaaa","code":4001,"reason":"by id"}`},
		} {
			taken(t, c.msg, w.message("jsapi", "e1-aaaa", c.msg))
			if m := edge.next(); string(m.Data) != c.want || m.Subject != actorapi.LiveEdgeSubject("jsapi", "e1") {
				t.Errorf("%s: %s %s, want %s", c.msg, m.Subject, m.Data, c.want)
			}
		}
		for _, c := range []struct{ msg, want string }{
			{`{"do":"publish","room":"lobby","text":"all"}`, `{"data":"all"}`},
			{`{"do":"publish","room":"lobby","text":"others","except":true}`, `{"data":"others","except":"e1-aaaa"}`},
			{`{"do":"publish_json","room":"lobby","v":[1,2]}`, `{"data":"[1,2]"}`},
		} {
			taken(t, c.msg, w.message("jsapi", "e1-aaaa", c.msg))
			m, err := rooms.NextMsg(time.Minute)
			if err != nil || string(m.Data) != c.want {
				t.Errorf("%s: room got %v %v, want %s", c.msg, msgData(m), err, c.want)
			}
		}
		taken(t, "close", w.liveEvent("jsapi", "user:u1", actorapi.LiveEvent{Type: actorapi.LiveClose, Conn: liveConn("e1-aaaa", ""), Code: 4002, Reason: "done", By: actorapi.LiveByClient}))
		var ev struct{ Events []map[string]any }
		w.jsCall(t, "jsapi", "GET", "/events", "", nil, &ev)
		var lives []map[string]any
		for _, e := range ev.Events {
			if e["type"] != "timer" {
				lives = append(lives, e)
			}
		}
		want := `[{"caller":"user:u1","conn":"e1-aaaa","kind":"websocket","path":"/chat","query":"x=1","type":"open"},` +
			`{"conn":"e1-aaaa","text":"hello","type":"message"},{"bytes":[0,1,2],"conn":"e1-aaaa","type":"message"},` +
			`{"by":"client","code":4002,"conn":"e1-aaaa","reason":"done","type":"close"}]`
		if asJSON(lives) != want {
			t.Errorf("live events\n got %s\nwant %s", asJSON(lives), want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		r := w.call("jsapi", "GET", "/throw", "", nil)
		where := fmt.Sprintf("api/main.js:%d", lineOf(jsAPIScript, "throw new Error('boom from js')"))
		if r.status != 500 || r.errorCode(t) != "internal" || !strings.Contains(string(r.body), where) || !strings.Contains(string(r.body), "boom from js") {
			t.Fatalf("a thrown error: %v, want 500 naming %s", r, where)
		}
		eventually(t, 5*time.Second, "the thrown error in the logs", func() bool {
			return strings.Contains(logs.String(), "boom from js") && strings.Contains(logs.String(), where)
		})
		if r := w.call("jsapi", "GET", "/throw-host", "", nil); r.status != 409 || r.errorCode(t) != "conflict" || !strings.Contains(string(r.body), "taken by someone") {
			t.Errorf("a thrown HostError: %v", r)
		}
		if r := w.call("jsapi", "GET", "/throw-async", "", nil); r.status != 500 || !strings.Contains(string(r.body), "async boom") {
			t.Errorf("a rejected handler: %v", r)
		}
		var got map[string]any
		w.jsCall(t, "jsapi", "GET", "/host-errors", "", nil, &got)
		for k, code := range map[string]string{"badCollection": "scope_invalid_collection", "notInScope": "scope_forbidden", "badSecret": "validation_failed", "badSend": "bad_request"} {
			e, _ := got[k].(map[string]any)
			if e["code"] != code || e["host"] != true || e["error"] != true {
				t.Errorf("%s: %v, want HostError %s", k, got[k], code)
			}
		}
		// A bad argument is the script's own TypeError; fetch rejects
		// its promise rather than throwing.
		if e, _ := got["tooSoon"].(map[string]any); e["error"] != true || got["badFetch"] != "promise" {
			t.Errorf("after and fetch refusals: %s", asJSON(got))
		}
		// The instance served on: no restart.
		if st := w.state("jsapi"); st.Restarts != 0 {
			t.Errorf("restarts: %d", st.Restarts)
		}
	})
}

func timersNamed(events []map[string]any, name string) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		if e["type"] == "timer" && e["name"] == name {
			out = append(out, e)
		}
	}
	return out
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return "<none>"
	}
	return string(m.Data)
}
