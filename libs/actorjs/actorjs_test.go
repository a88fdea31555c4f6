package actorjs

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/dop251/goja"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

type logLine struct {
	level int
	msg   string
}

// start runs files (entry actor.js unless a file is named entry) and fails
// the test when the start fails.
func start(t testing.TB, files map[string]string) (*Runtime, *[]logLine) {
	t.Helper()
	rt, logs, err := tryStart(files)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return rt, logs
}

func tryStart(files map[string]string) (*Runtime, *[]logLine, error) {
	logs := &[]logLine{}
	in := actorsdk.Init{Slug: "demo", Version: 3, Config: json.RawMessage(`{"buttons":["red","blue"],"n":{"deep":1}}`),
		Script: &actorsdk.Script{Entry: "actor.js", Files: files}}
	rt, err := New(in, Options{Log: func(level int, msg string) { *logs = append(*logs, logLine{level, msg}) }})
	return rt, logs, err
}

func startErr(t *testing.T, files map[string]string) string {
	t.Helper()
	_, _, err := tryStart(files)
	if err == nil {
		t.Fatal("the start succeeded; want an error")
	}
	return err.Error()
}

func serve(rt *Runtime, method, path string, body string, header actorsdk.Header) *actorsdk.Response {
	if header == nil {
		header = actorsdk.Header{}
	}
	return rt.Serve(&actorsdk.Request{Method: method, Path: path, Body: []byte(body), Header: header, RequestID: "req-1"})
}

type errBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Field     string `json:"field"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func decodeErr(t *testing.T, r *actorsdk.Response) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("the body %q is not the error shape: %v", r.Body, err)
	}
	return e
}

func wantStatus(t *testing.T, r *actorsdk.Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
}

func TestPing(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `gnome.route("GET", "/ping", () => ({json: {ok: true}}))`})
	r := serve(rt, "GET", "/ping", "", nil)
	wantStatus(t, r, 200)
	if string(r.Body) != `{"ok":true}` || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %s, header %v", r.Body, r.Header)
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax", map[string]string{"actor.js": "const a = 1;\n\nlet x = ;\n"}, []string{"actor.js:3:9: SyntaxError: "}},
		{"syntax first line", map[string]string{"actor.js": "const = 5"}, []string{"actor.js:1:", "SyntaxError"}},
		{"throw", map[string]string{"actor.js": "\n\n  throw new Error('no config');"}, []string{"actor.js:3:", "Error: no config"}},
		{"type error", map[string]string{"actor.js": "const x = undefined;\nx.y = 1;"}, []string{"actor.js:2:", "TypeError"}},
		{"in a module", map[string]string{"actor.js": "require('./lib/a.js');", "lib/a.js": "const o = null;\no.f();"}, []string{"lib/a.js:2:", "TypeError"}},
		{"syntax in a module", map[string]string{"actor.js": "require('./lib/a');", "lib/a.js": "\n\nfunction ("}, []string{"lib/a.js:3:", "SyntaxError"}},
		{"import", map[string]string{"actor.js": "import x from './x.js';\n"}, []string{"actor.js:1:", "SyntaxError", "require"}},
		{"missing module", map[string]string{"actor.js": "require('./nope.js');"}, []string{"actor.js:1:", `require("./nope.js")`, "cannot find module"}},
		{"escape", map[string]string{"actor.js": "require('../../etc/passwd');"}, []string{"out of the bundle"}},
		{"npm", map[string]string{"actor.js": "require('fs');"}, []string{"no Node.js"}},
		{"bad json module", map[string]string{"actor.js": "require('./d.json');", "d.json": "{nope"}, []string{"d.json", "SyntaxError"}},
		{"throw a string", map[string]string{"actor.js": "throw 'boom';"}, []string{"actor.js:1:", "uncaught boom"}},
		{"recursion", map[string]string{"actor.js": "function f(n) { return f(n + 1) + 1; }\nf(0);"}, []string{"RangeError: Maximum call stack size exceeded", "actor.js:1:"}},
		{"bad route", map[string]string{"actor.js": "gnome.route('GET', 'nope', () => 1);"}, []string{"actor.js:1:", "TypeError", "does not start with /"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := startErr(t, tc.files)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestNoScript(t *testing.T) {
	if _, err := New(actorsdk.Init{Slug: "x"}, Options{}); err == nil || !strings.Contains(err.Error(), "no script") {
		t.Fatalf("err %v", err)
	}
	_, err := New(actorsdk.Init{Script: &actorsdk.Script{Entry: "a.js", Files: map[string]string{"b.js": ""}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "a.js is not in the bundle") {
		t.Fatalf("err %v", err)
	}
}

func TestRequire(t *testing.T) {
	rt, _ := start(t, map[string]string{
		"actor.js": `
			const a = require("./lib/a.js");
			const a2 = require("./lib/a");
			const data = require("./data.json");
			const idx = require("./lib");
			gnome.route("GET", "/", () => ({json: {same: a === a2, hello: a.hello(), count: a.count(), data, idx, dir: a.dir, b: a.fromB}}));
		`,
		"lib/a.js": `
			let n = 0;
			exports.count = () => ++n;
			exports.hello = () => require("../util/u.js").greet("x");
			exports.dir = __dirname + "|" + __filename;
			const b = require("./b.js");
			exports.fromB = b.seenA;
		`,
		"lib/b.js": `
			// A cycle: a is half done when b loads it.
			const a = require("./a.js");
			module.exports = { seenA: typeof a.count };
		`,
		"lib/index.js": `module.exports = "index";`,
		"util/u.js":    `module.exports.greet = (s) => "hi " + s;`,
		"data.json":    `{"k": [1, 2]}`,
	})
	r := serve(rt, "GET", "/", "", nil)
	wantStatus(t, r, 200)
	want := `{"same":true,"hello":"hi x","count":1,"data":{"k":[1,2]},"idx":"index","dir":"lib|lib/a.js","b":"function"}`
	if string(r.Body) != want {
		t.Fatalf("body %s\nwant %s", r.Body, want)
	}
	// The module cache keeps state between requests.
	if r := serve(rt, "GET", "/", "", nil); !strings.Contains(string(r.Body), `"count":2`) {
		t.Fatalf("body %s", r.Body)
	}
}

func TestRequireEscapes(t *testing.T) {
	files := map[string]string{
		"app/actor.js": `
			gnome.route("GET", "/{p...}", req => {
				try { require(req.query.p[0]); return "loaded"; } catch (e) { return {status: 400, body: String(e)}; }
			});`,
		"app/x.js":  `module.exports = 1;`,
		"secret.js": `module.exports = "outside the entry's folder";`,
	}
	in := actorsdk.Init{Script: &actorsdk.Script{Entry: "app/actor.js", Files: files}}
	rt, err := New(in, Options{Log: func(int, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"./x.js":              "loaded",
		"../secret.js":        "out of the bundle",
		"../../secret.js":     "out of the bundle",
		"./../../../etc/pass": "out of the bundle",
		"/etc/passwd":         "only the bundle's own files",
		"":                    "only the bundle's own files",
		"./nope":              "cannot find module",
	} {
		r := rt.Serve(&actorsdk.Request{Method: "GET", Path: "/", Query: map[string][]string{"p": {p}}})
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("require(%q): %d %s, want %q", p, r.Status, r.Body, want)
		}
	}
}

func TestRoutes(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/items/{id}", req => ({json: {id: req.params.id, m: req.method}}));
		gnome.route("GET", "/items/new", () => "literal wins");
		gnome.route("*", "/files/{path...}", req => req.params.path);
		gnome.route("post", "/items/{id}/tags/{tag}", req => ({status: 201, json: req.params}));
	`})
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/items/42", `{"id":"42","m":"GET"}`, 200},
		{"GET", "/items/new", "literal wins", 200},
		{"DELETE", "/files/a/b/c.txt", "a/b/c.txt", 200},
		{"POST", "/items/7/tags/x", `{"id":"7","tag":"x"}`, 201},
		{"GET", "/files", "", 200},
	}
	for _, c := range cases {
		r := serve(rt, c.method, c.path, "", nil)
		if r.Status != c.status || string(r.Body) != c.body {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	r := serve(rt, "PUT", "/items/42", "", nil)
	wantStatus(t, r, 405)
	if r.Header.Get("Allow") != "GET" || decodeErr(t, r).Error.Code != "method_not_allowed" {
		t.Fatalf("405: %v %s", r.Header, r.Body)
	}
	r = serve(rt, "GET", "/nope", "", nil)
	wantStatus(t, r, 404)
	if e := decodeErr(t, r); e.Error.Code != "not_found" || e.Error.RequestID != "req-1" {
		t.Fatalf("404: %s", r.Body)
	}
	rt2, _ := start(t, map[string]string{"actor.js": `gnome.notFound(req => gnome.text(404, "no " + req.path));`})
	if r := serve(rt2, "GET", "/x", "", nil); r.Status != 404 || string(r.Body) != "no /x" {
		t.Fatalf("notFound: %d %s", r.Status, r.Body)
	}
}

func TestRequest(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("POST", "/r", req => ({json: {
			method: req.method, path: req.path, rawQuery: req.rawQuery, query: req.query,
			ct: req.header("content-type"), none: req.header("x-none") === undefined,
			all: req.headers["X-Multi"], cookie: req.cookie("seen"), nocookie: req.cookie("x") === undefined,
			text: req.text(), json: req.json(), bytes: Array.from(req.bytes()), id: req.requestId,
			caller: req.caller, admin: req.caller.hasRole("admin"), user: req.caller.hasRole("user"),
			keys: Object.keys(req).length > 5,
		}}));
		gnome.route("POST", "/json", req => ({json: req.json()}));
	`})
	req := &actorsdk.Request{Method: "POST", Path: "/r", RawQuery: "a=1&a=2", Query: map[string][]string{"a": {"1", "2"}},
		Header: actorsdk.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "2"}, "Cookie": {"seen=yes; other=1"}},
		Body:   []byte(`{"x":1}`), RequestID: "rid",
		Caller: actorsdk.Caller{Kind: "participant", ID: "p1", Roles: []string{"admin"}, Anonymous: true,
			Link: &actorsdk.Link{ID: "l", Kind: "multi", Run: "run1", Params: map[string]string{"PROLIFIC_PID": "abc"}}}}
	r := rt.Serve(req)
	wantStatus(t, r, 200)
	var got map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"admin":true,"all":["1","2"],"bytes":[123,34,120,34,58,49,125],"caller":{"anonymous":true,"email":"","id":"p1","kind":"participant","link":{"id":"l","kind":"multi","label":"","params":{"PROLIFIC_PID":"abc"},"run":"run1"},"roles":["admin"]},"cookie":"yes","ct":"application/json","id":"rid","json":{"x":1},"keys":true,"method":"POST","nocookie":true,"none":true,"path":"/r","query":{"a":["1","2"]},"rawQuery":"a=1\u0026a=2","text":"{\"x\":1}","user":false}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	// A body that is not JSON: the HostError invalid_json, 400.
	r = serve(rt, "POST", "/json", "{nope", nil)
	wantStatus(t, r, 400)
	if e := decodeErr(t, r); e.Error.Code != "invalid_json" || !strings.Contains(e.Error.Message, "not JSON") {
		t.Fatalf("%s", r.Body)
	}
	if r := serve(rt, "POST", "/json", "", nil); r.Status != 400 {
		t.Fatalf("empty body: %d %s", r.Status, r.Body)
	}
}

func TestResponses(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		const R = {
			"/text": () => "hello",
			"/none": () => undefined,
			"/null": () => null,
			"/json": () => gnome.json(201, {a: [1, "x", null, undefined, () => 1], b: undefined, d: new Date(0), n: NaN, big: 1e21, f: 1.5}),
			"/gtext": () => gnome.text(202, "t"),
			"/error": () => gnome.error(409, "conflict", "taken"),
			"/redirect": () => gnome.redirect("/elsewhere"),
			"/bytes": () => ({body: new Uint8Array([1, 2, 3])}),
			"/buffer": () => ({body: new Uint8Array([4, 5]).buffer, headers: {"Content-Type": "image/png"}}),
			"/headers": () => ({status: 200, headers: {"X-A": "1", "X-B": ["2", "3"]}, body: "h"}),
			"/cookies": () => ({cookies: [{name: "seen", value: "1", maxAge: 3600}, {name: "js", value: "v", script: true, sameSite: "Strict"}]}),
			"/async": async () => { await null; return {json: {async: true}}; },
			"/tojson": () => ({json: {toJSON() { return "custom"; }}}),
			"/both": () => ({json: 1, body: "x"}),
			"/status": () => ({status: 99}),
			"/array": () => [1, 2],
			"/number": () => 5,
			"/badheader": () => ({headers: {"X-A": "a\r\nInjected: 1"}}),
			"/badcookie": () => ({cookies: [{name: "a", value: "x; Domain=evil"}]}),
		};
		gnome.route("GET", "/{p...}", req => R["/" + req.params.p]());
	`})
	for _, c := range []struct {
		path, body, ct string
		status         int
	}{
		{"/text", "hello", "text/plain; charset=utf-8", 200},
		{"/none", "", "", 204},
		{"/null", "", "", 204},
		{"/json", `{"a":[1,"x",null,null,null],"d":"1970-01-01T00:00:00.000Z","n":null,"big":1e+21,"f":1.5}`, "application/json", 201},
		{"/gtext", "t", "text/plain; charset=utf-8", 202},
		{"/error", `{"error":{"code":"conflict","message":"taken","request_id":"req-1"}}`, "application/json", 409},
		{"/redirect", "", "", 303},
		{"/bytes", "\x01\x02\x03", "application/octet-stream", 200},
		{"/buffer", "\x04\x05", "image/png", 200},
		{"/async", `{"async":true}`, "application/json", 200},
		{"/tojson", `"custom"`, "application/json", 200},
	} {
		r := serve(rt, "GET", c.path, "", nil)
		if r.Status != c.status || string(r.Body) != c.body || r.Header.Get("Content-Type") != c.ct {
			t.Errorf("%s: %d %q %q", c.path, r.Status, r.Body, r.Header.Get("Content-Type"))
		}
	}
	if r := serve(rt, "GET", "/redirect", "", nil); r.Header.Get("Location") != "/elsewhere" {
		t.Errorf("redirect: %v", r.Header)
	}
	if r := serve(rt, "GET", "/headers", "", nil); r.Header.Get("X-A") != "1" || strings.Join(r.Header.Values("X-B"), ",") != "2,3" {
		t.Errorf("headers: %v", r.Header)
	}
	r := serve(rt, "GET", "/cookies", "", nil)
	sc := r.Header.Values("Set-Cookie")
	if len(sc) != 2 || sc[0] != "seen=1; Path=/; Max-Age=3600; HttpOnly" || sc[1] != "js=v; Path=/; SameSite=Strict" || r.Header.Get(actorsdk.HeaderScriptCookies) != "js" {
		t.Errorf("cookies: %v", r.Header)
	}
	for _, p := range []string{"/both", "/status", "/array", "/number", "/badheader", "/badcookie"} {
		r := serve(rt, "GET", p, "", nil)
		if e := decodeErr(t, r); r.Status != 500 || e.Error.Code != "internal" || !strings.Contains(e.Error.Message, "TypeError") {
			t.Errorf("%s: %d %s", p, r.Status, r.Body)
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	rt, logs := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/throw", () => {
			const o = undefined;
			return o.field;
		});
		gnome.route("GET", "/host", () => { throw new gnome.HostError("conflict", "taken"); });
		gnome.route("GET", "/unknown", () => { throw new gnome.HostError("my_code", "mine"); });
		gnome.route("GET", "/string", () => { throw "plain string"; });
		gnome.route("GET", "/object", () => { throw {weird: true}; });
		gnome.route("GET", "/reject", async () => { throw new RangeError("late"); });
		gnome.route("GET", "/pending", () => new Promise(() => {}));
		gnome.route("GET", "/recurse", () => { const f = n => f(n + 1) + 1; return f(0); });
		gnome.route("GET", "/ok", () => "still serving");
		gnome.route("GET", "/refusal", () => gnome.kv.get("k"));
		gnome.route("GET", "/caught", () => { try { gnome.kv.get("k"); } catch (e) { return {json: {name: e.name, isHost: e instanceof gnome.HostError, code: e.code, status: e.status}}; } });
	`})
	r := serve(rt, "GET", "/throw", "", nil)
	wantStatus(t, r, 500)
	e := decodeErr(t, r)
	if e.Error.Code != "internal" || !strings.HasPrefix(e.Error.Message, "actor.js:4:") || !strings.Contains(e.Error.Message, "TypeError") || e.Error.RequestID != "req-1" {
		t.Fatalf("throw: %s", r.Body)
	}
	last := (*logs)[len(*logs)-1]
	if last.level != 3 || !strings.Contains(last.msg, "TypeError") || !strings.Contains(last.msg, "actor.js:4") {
		t.Fatalf("log %+v", last)
	}
	r = serve(rt, "GET", "/host", "", nil)
	wantStatus(t, r, 409)
	if e := decodeErr(t, r); e.Error.Code != "conflict" || e.Error.Message != "taken" {
		t.Fatalf("host: %s", r.Body)
	}
	if r := serve(rt, "GET", "/unknown", "", nil); r.Status != 500 || decodeErr(t, r).Error.Code != "my_code" {
		t.Fatalf("unknown code: %d %s", r.Status, r.Body)
	}
	for path, want := range map[string]string{
		"/string":  "actor.js:8:",
		"/object":  `uncaught {"weird":true}`,
		"/reject":  "RangeError: late",
		"/pending": "still pending",
		"/recurse": "RangeError: Maximum call stack size exceeded",
	} {
		r := serve(rt, "GET", path, "", nil)
		if e := decodeErr(t, r); r.Status != 500 || !strings.Contains(e.Error.Message, want) {
			t.Errorf("%s: %d %s, want %q", path, r.Status, r.Body, want)
		}
	}
	if r := serve(rt, "GET", "/reject", "", nil); !strings.Contains(decodeErr(t, r).Error.Message, "actor.js:10:") {
		t.Errorf("reject has no position: %s", r.Body)
	}
	if r := serve(rt, "GET", "/ok", "", nil); r.Status != 200 || string(r.Body) != "still serving" {
		t.Fatalf("after the errors: %d %s", r.Status, r.Body)
	}
	// Natively there is no host: the failure is a HostError, not a crash.
	r = serve(rt, "GET", "/refusal", "", nil)
	if e := decodeErr(t, r); r.Status != 500 || e.Error.Code != "internal" || !strings.Contains(e.Error.Message, "kv.get") {
		t.Fatalf("refusal: %d %s", r.Status, r.Body)
	}
	r = serve(rt, "GET", "/caught", "", nil)
	if string(r.Body) != `{"name":"HostError","isHost":true,"code":"internal","status":500}` {
		t.Fatalf("caught: %s", r.Body)
	}
}

func TestFrozen(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		"use strict";
		const errs = [];
		for (const f of [
			() => { gnome.route = null; },
			() => { gnome.kv.get = null; },
			() => { gnome.log.info = null; },
			() => { gnome.config.buttons.push("x"); },
			() => { gnome.config.n.deep = 2; },
			() => { gnome.newThing = 1; },
			() => { gnome = {}; },
			() => { Object.getPrototypeOf(gnome.db("x")).find = null; },
		]) { try { f(); errs.push("no error"); } catch (e) { errs.push(e.name); } }
		// Pollution of the script's own prototypes does not break the runtime.
		Object.prototype.toJSON = function () { return "polluted"; };
		JSON.parse = () => { throw new Error("replaced"); };
		delete Object.prototype.toJSON;
		gnome.route("POST", "/", req => ({json: {errs, body: req.json(), slug: gnome.slug, version: gnome.version}}));
	`})
	r := serve(rt, "POST", "/", `{"a":1}`, nil)
	want := `{"errs":["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"],"body":{"a":1},"slug":"demo","version":3}`
	if string(r.Body) != want {
		t.Fatalf("got  %s\nwant %s", r.Body, want)
	}
}

// TestHostile passes odd values everywhere: each must be a JavaScript
// exception (or work), never a Go panic.
func TestHostile(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		const cyc = {}; cyc.self = cyc;
		const deep = []; let d = deep; for (let i = 0; i < 5000; i++) { const n = []; d.push(n); d = n; }
		const throwing = { get x() { throw new Error("getter"); } };
		const prox = new Proxy({}, { ownKeys() { throw new Error("ownKeys trap"); }, get() { throw new Error("get trap"); } });
		const revoked = Proxy.revocable({}, {}); revoked.revoke();
		const args = [Symbol("s"), cyc, deep, throwing, prox, revoked.proxy, 10n, undefined, null, NaN, {}, [], () => 1, new Date(NaN), "x".repeat(10)];
		const calls = {
			route: a => gnome.route(a, a, a),
			notFound: a => gnome.notFound(a),
			json: a => gnome.json(a, a),
			text: a => gnome.text(200, a),
			error: a => gnome.error(a, a, a),
			redirect: a => gnome.redirect(a),
			db: a => gnome.db(a),
			dbFrom: a => gnome.dbFrom(a, a),
			find: a => gnome.db("c").find(a, a),
			findOne: a => gnome.db("c").findOne(a),
			count: a => gnome.db("c").count(a),
			aggregate: a => gnome.db("c").aggregate(a),
			insertOne: a => gnome.db("c").insertOne(a),
			insertMany: a => gnome.db("c").insertMany([a]),
			updateOne: a => gnome.db("c").updateOne(a, a, a),
			deleteMany: a => gnome.db("c").deleteMany(a),
			unbound: a => gnome.db("c").find.call(a, {}),
			readonly: a => gnome.db.call(a, "x").insertOne.call(gnome.dbFrom("o", "c"), {}),
			kvget: a => gnome.kv.get(a),
			kvput: a => gnome.kv.put("k", a),
			kvputJSON: a => gnome.kv.putJSON("k", a),
			log: a => gnome.log.info(a, a),
			console: a => console.log("x", a),
			secret: a => gnome.secret(a),
			fetch: a => gnome.fetch(a, a),
			fetch2: a => gnome.fetch("https://x", {headers: a, body: a, method: a}),
			finishRun: a => gnome.finishRun(a),
			send: a => gnome.send(a, a),
			publish: a => gnome.publish("room", a, {except: a}),
			closeConn: a => gnome.closeConn("c", a, a),
			after: a => gnome.after(a, a, a),
			after2: a => gnome.after(1000, "n", a),
			cancelTimer: a => gnome.cancelTimer(a),
			onTimer: a => gnome.onTimer(a),
			refuse: a => gnome.refuse(a, a),
			require: a => require(a),
			hostError: a => new gnome.HostError(a, a),
		};
		gnome.route("GET", "/", () => {
			const out = {};
			for (const [name, f] of Object.entries(calls)) {
				for (const a of args) {
					try { f(a); } catch (e) {
						if (!(e instanceof Error)) { out[name] = "threw a non-Error: " + typeof e; }
					}
				}
			}
			return {json: out};
		});
		const responses = [{json: cyc}, {json: deep}, {json: throwing}, {json: prox}, {headers: prox}, {status: Symbol()}, {json: 10n}, {get status() { throw new Error("getter"); }}, prox, revoked.proxy, {body: Symbol()}, {cookies: [prox]}];
		gnome.route("GET", "/r/{i}", req => responses[Number(req.params.i)]);
		gnome.route("GET", "/n", () => responses.length);
	`})
	r := serve(rt, "GET", "/", "", nil)
	if r.Status != 200 || string(r.Body) != "{}" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	for i := 0; i < 12; i++ {
		r := serve(rt, "GET", "/r/"+strconv.Itoa(i), "", nil)
		if r.Status != 500 || !strings.Contains(string(r.Body), `"code":"internal"`) {
			t.Errorf("response %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := serve(rt, "GET", "/n", "", nil); r.Status != 500 {
		t.Errorf("a number: %d", r.Status)
	}
}

func TestConsoleAndLog(t *testing.T) {
	rt, logs := start(t, map[string]string{"actor.js": `
		console.log("a", 1, {b: [true, null]}, undefined, "c");
		console.debug("d"); console.warn("w"); console.error(new TypeError("bad"));
		gnome.log.info("i", "k", gnome.version);
		const cyc = {}; cyc.cyc = cyc;
		gnome.log.error(cyc, Symbol("s"), () => 1);
	`})
	_ = rt
	want := []logLine{{1, `a 1 {"b":[true,null]} undefined c`}, {0, "d"}, {2, "w"}, {3, "TypeError: bad"}, {1, "i k 3"}, {3, "[object Object] Symbol(s) [Function]"}}
	if len(*logs) != len(want) {
		t.Fatalf("logs %+v", *logs)
	}
	for i, w := range want {
		got := (*logs)[i]
		if got.level != w.level || !strings.HasPrefix(got.msg, w.msg) {
			t.Errorf("line %d: %+v, want %+v", i, got, w)
		}
	}
}

func TestConversions(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/", () => ({json: {}}));
	`})
	v, err := rt.vm.RunString(`({at: new Date(Date.UTC(2026, 11, 7, 10, 0, 0, 5)), id: {$oid: "0123456789abcdef01234567"}, bin: new Uint8Array([1, 2]), n: [1, 2.5, -0], s: "q\"\n\u2028<", nested: {when: [new Date(0)]}})`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rt.encode(v, true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"at":{"$date":"2026-12-07T10:00:00.005Z"},"id":{"$oid":"0123456789abcdef01234567"},"bin":{"$binary":{"base64":"AQI=","subType":"00"}},"n":[1,2.5,0],"s":"q\"\n\u2028<","nested":{"when":[{"$date":"1970-01-01T00:00:00.000Z"}]}}`
	if string(b) != want {
		t.Fatalf("ext\n got %s\nwant %s", b, want)
	}
	// The way back: dates become Dates, ObjectIds stay {"$oid"}.
	doc := `{"_id":{"$oid":"0123456789abcdef01234567"},"at":{"$date":"2026-12-07T10:00:00.005Z"},"old":{"$date":{"$numberLong":"-1000"}},"not":{"$date":"x","other":1}}`
	parsed, err := rt.parseJSON(doc, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = rt.vm.Set("doc", parsed)
	res, err := rt.vm.RunString(`[doc.at instanceof Date, doc.at.getTime(), doc.old instanceof Date, doc.old.getTime(), doc._id.$oid, doc.not instanceof Date].join(",")`)
	if err != nil {
		t.Fatal(err)
	}
	if res.String() != "true,1796637600005,true,-1000,0123456789abcdef01234567,false" {
		t.Fatalf("decoded: %s", res)
	}
	// Plain JSON (responses) as JSON.stringify writes it.
	if _, err := rt.vm.RunString(`const vals = [{a: 1, b: "x", c: [1, {d: null}], e: undefined, f: new Date(5), g: -1.25e-7, h: 123456789012, s: new String("w"), n: new Number(4), t: true, i: Infinity},
		"\u0001\u00e9", new Boolean(false), [undefined, function () {}, Symbol("x")], 0.1 + 0.2, -0, 1e300, {toJSON(k) { return {k}; }}, new Map([[1, 2]]), Object.create({inherited: 1}, {own: {value: 2, enumerable: true}})];
		const std = vals.map(v => JSON.stringify(v));`); err != nil {
		t.Fatal(err)
	}
	vals, std := rt.vm.Get("vals").(*goja.Object), rt.vm.Get("std").(*goja.Object)
	for i := int64(0); i < vals.Get("length").ToInteger(); i++ {
		k := strconv.FormatInt(i, 10)
		b, err := rt.encode(vals.Get(k), false)
		if err != nil || string(b) != std.Get(k).String() {
			t.Errorf("value %d: %s (%v), JSON.stringify %s", i, b, err, std.Get(k))
		}
	}
}

func TestLiveAndTimers(t *testing.T) {
	var bound []string
	in := actorsdk.Init{Script: &actorsdk.Script{Entry: "actor.js", Files: map[string]string{"actor.js": `
		const seen = [];
		gnome.onOpen(conn => { if (conn.caller.anonymous) throw gnome.refuse("forbidden", "sign in"); seen.push("open " + conn.id + " " + conn.kind); });
		gnome.onMessage(async (conn, msg) => {
			seen.push("msg " + msg.binary + " " + msg.text() + " " + JSON.stringify(msg.json()) + " " + msg.data.length);
			if (msg.json().send) conn.send({x: 1});
		});
		gnome.onClose((conn, c) => { seen.push("close " + c.code + " " + c.reason + " " + c.by); });
		gnome.onTimer(t => { seen.push("timer " + t.name + " " + JSON.stringify(t.payload) + " " + (t.scheduledAt instanceof Date) + " " + t.payload.at.getTime()); });
		gnome.route("GET", "/seen", () => ({json: seen}));
	`}}}
	rt, err := New(in, Options{Bind: func(k string) { bound = append(bound, k) }, Log: func(int, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bound, ",") != "open,message,close,timer" {
		t.Fatalf("bound %v", bound)
	}
	c := actorsdk.Conn{ID: "c1", Kind: "websocket", Caller: actorsdk.Caller{Kind: "user", ID: "u"}}
	if err := rt.Open(c); err != nil {
		t.Fatal(err)
	}
	err = rt.Open(actorsdk.Conn{ID: "c2", Caller: actorsdk.Caller{Anonymous: true}})
	if !actorsdk.IsCode(err, "forbidden") {
		t.Fatalf("refuse: %v", err)
	}
	if err := rt.Message(c, actorsdk.Message{Data: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	// conn.send has no host natively: the handler's HostError comes back.
	if err := rt.Message(c, actorsdk.Message{Data: []byte(`{"send":1}`)}); !actorsdk.IsCode(err, "internal") {
		t.Fatalf("send: %v", err)
	}
	if err := rt.Message(c, actorsdk.Message{Data: []byte(`nope`)}); err == nil || !strings.Contains(err.Error(), "SyntaxError") {
		t.Fatalf("bad json: %v", err)
	}
	if err := rt.Close(c, actorsdk.Close{Code: 1000, Reason: "bye", By: "client"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Timer(actorsdk.Timer{Name: "t", Payload: json.RawMessage(`{"at":{"$date":"1970-01-01T00:00:01Z"}}`)}); err != nil {
		t.Fatal(err)
	}
	r := serve(rt, "GET", "/seen", "", nil)
	want := `["open c1 websocket","msg false {\"a\":1} {\"a\":1} 7","msg false {\"send\":1} {\"send\":1} 10",`
	if !strings.HasPrefix(string(r.Body), want) || !strings.Contains(string(r.Body), `"close 1000 bye client","timer t {\"at\":\"1970-01-01T00:00:01.000Z\"} true 1000"]`) {
		t.Fatalf("seen %s", r.Body)
	}
}

func TestHostOperationsNatively(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/", async req => {
			const out = {};
			const ops = {
				find: () => gnome.db("c").find({at: {$gt: new Date(0)}}, {sort: {at: -1}, limit: 5}),
				insert: () => gnome.db("c").insertOne({a: 1}),
				from: () => gnome.dbFrom("other", "c").count(),
				kv: () => gnome.kv.putJSON("k", {a: 1}),
				secret: () => gnome.secret("KEY"),
				finish: () => gnome.finishRun(req),
				after: () => gnome.after(1000, "n", {p: 1}),
				publish: () => gnome.publish("room", {a: 1}, {except: "c1"}),
			};
			for (const [k, f] of Object.entries(ops)) {
				try { f(); out[k] = "no error"; } catch (e) { out[k] = e.name + " " + e.code; }
			}
			try { await gnome.fetch("https://example.com", {method: "POST", body: {x: 1}}); out.fetch = "no error"; }
			catch (e) { out.fetch = e.name + " " + e.code; }
			return {json: out};
		});
	`})
	r := serve(rt, "GET", "/", "", nil)
	want := `{"find":"HostError internal","insert":"HostError internal","from":"HostError internal","kv":"HostError internal","secret":"HostError internal","finish":"HostError bad_request","after":"HostError internal","publish":"HostError internal","fetch":"HostError internal"}`
	if string(r.Body) != want {
		t.Fatalf("got  %s\nwant %s", r.Body, want)
	}
}

// TestParse holds the fast JSON reader to goja's JSON.parse: same values,
// and JSON.parse's errors for what is not JSON.
func TestParse(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("POST", "/", req => ({json: {proto: Object.getPrototypeOf(req.json()) === Object.prototype, own: Object.keys(req.json())}}));
		gnome.route("POST", "/parse", req => { try { JSON.parse(req.text()); return "parsed"; } catch (e) { return String(e); } });
		gnome.route("POST", "/reviver", req => ({json: JSON.parse(req.text(), (k, v) => typeof v === "number" ? v * 2 : v)}));
	`})
	for _, in := range []string{
		`{"a":1}`, ` [1, -2, 3.5e3, -0, 0.1, 12345678901234567890, 9007199254740993, true, false, null] `, `"\u00e9\n\"\\\/\b\f\t\ud83d\ude00"`,
		`{"__proto__": {"polluted": 1}, "x": [{}, [], ""]}`, `{"a":1,"a":2}`, `"é😀"`, `{"b":1,"a":2,"1":3}`,
		`{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `+1`, `"\x"`, `"a`, `{"a" 1}`, `nul`, `[1] 2`, "\"\x01\"", `"\ud800"`, `"\udc00x"`, "",
		strings.Repeat("[", 400) + strings.Repeat("]", 400),
	} {
		mine, err1 := rt.parseJSON(in, false)
		theirs, err2 := rt.jsonParse(goja.Undefined(), rt.vm.ToValue(in))
		if (err1 == nil) != (err2 == nil) {
			t.Errorf("%.40q: fast %v, JSON.parse %v", in, err1, err2)
			continue
		}
		if err1 != nil {
			if a, b := exceptionValue(err1).String(), exceptionValue(err2).String(); a != b {
				t.Errorf("%.40q: fast %s, JSON.parse %s", in, a, b)
			}
			continue
		}
		a, _ := rt.encode(mine, false)
		b, _ := rt.encode(theirs, false)
		if string(a) != string(b) {
			t.Errorf("%.40q: fast %s, JSON.parse %s", in, a, b)
		}
	}
	if r := serve(rt, "POST", "/", `{"__proto__": {"polluted": 1}}`, nil); string(r.Body) != `{"proto":true,"own":["__proto__"]}` {
		t.Errorf("__proto__: %s", r.Body)
	}
	// Nesting past the bound is a SyntaxError, not a Go stack that grows
	// until the instance traps.
	deep := strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20)
	if r := serve(rt, "POST", "/", deep, nil); r.Status != 400 || !strings.Contains(string(r.Body), "nested deeper") {
		t.Errorf("deep req.json(): %d %.200s", r.Status, r.Body)
	}
	for _, p := range []string{"/parse", "/reviver"} {
		if r := serve(rt, "POST", p, deep, nil); !strings.Contains(string(r.Body), "SyntaxError: JSON is nested deeper") {
			t.Errorf("deep %s: %d %.200s", p, r.Status, r.Body)
		}
	}
	if r := serve(rt, "POST", "/reviver", `{"a":[1,{"b":2}]}`, nil); string(r.Body) != `{"a":[2,{"b":4}]}` {
		t.Errorf("reviver: %s", r.Body)
	}
	// Dates of Extended JSON, fast and slow alike.
	for _, in := range []string{`{"d":{"$date":"2026-12-07T10:00:00.005Z"}}`, `{"d":{"$date":{"$numberLong":"1796637600005"}},"s":"\ud800"}`} {
		v, err := rt.parseJSON(in, true)
		if err != nil {
			t.Fatal(err)
		}
		d := v.(*goja.Object).Get("d").(*goja.Object)
		if d.ClassName() != "Date" || d.Export().(interface{ UnixMilli() int64 }).UnixMilli() != 1796637600005 {
			t.Errorf("%s: %v", in, d)
		}
	}
}

// TestGoPanicIsTypeError holds guard to its word: a Go panic in a native
// function (a bug of the runtime's own) is a TypeError the script can
// catch, and the instance keeps serving.
func TestGoPanicIsTypeError(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/", () => { try { boom(); return "no error"; } catch (e) { return e.name + ": " + e.message; } });
		gnome.route("GET", "/uncaught", () => boom());
	`})
	if err := rt.vm.Set("boom", rt.fn("boom", func(goja.FunctionCall) goja.Value {
		var m map[string]int
		m["x"] = 1 // a nil map: a Go runtime panic
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	r := serve(rt, "GET", "/", "", nil)
	if !strings.HasPrefix(string(r.Body), "TypeError: boom: assignment to entry in nil map") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	r = serve(rt, "GET", "/uncaught", "", nil)
	if e := decodeErr(t, r); r.Status != 500 || !strings.Contains(e.Error.Message, "TypeError: boom") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestModuleThis(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		this.a = 1;
		const m = require("./m.js");
		gnome.route("GET", "/", () => ({json: {a: module.exports.a, m}}));`,
		"m.js": `this.x = 2;`})
	if r := serve(rt, "GET", "/", "", nil); string(r.Body) != `{"a":1,"m":{"x":2}}` {
		t.Fatalf("%s", r.Body)
	}
}

func TestTimerWithoutHandler(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `gnome.route("GET", "/", () => "x");`})
	if err := rt.Timer(actorsdk.Timer{Name: "t"}); !actorsdk.IsCode(err, "not_found") {
		t.Fatalf("err %v", err)
	}
	if err := rt.Open(actorsdk.Conn{ID: "c"}); err != nil {
		t.Fatalf("open without handlers: %v", err)
	}
}

// TestDeepValues: a value nested past the reader's bound, passed to any
// API that renders it as JSON, is a RangeError naming the bound, thrown
// before anything reaches the host; the instance serves on. Up to the
// bound, the value renders (natively the host then refuses: a HostError).
func TestDeepValues(t *testing.T) {
	rt, logs := start(t, map[string]string{"actor.js": `
		const obj = n => { let o = {}; for (let i = 1; i < n; i++) o = {o}; return o; };
		const arr = n => { let a = []; for (let i = 1; i < n; i++) a = [a]; return a; };
		const calls = {
			insertOne: v => gnome.db("c").insertOne({v}),
			insertMany: v => gnome.db("c").insertMany([{v}]),
			updateFilter: v => gnome.db("c").updateOne({v}, {$set: {a: 1}}),
			update: v => gnome.db("c").updateMany({}, {$set: {v}}),
			find: v => gnome.db("c").find({v}),
			findOne: v => gnome.db("c").findOne({v}),
			count: v => gnome.db("c").count({v}),
			aggregate: v => gnome.db("c").aggregate([{$match: {v}}]),
			deleteMany: v => gnome.db("c").deleteMany({v}),
			dbFrom: v => gnome.dbFrom("other", "c").find({v}),
			putJSON: v => gnome.kv.putJSON("k", v),
			send: v => gnome.send("c1", v),
			publish: v => gnome.publish("room", v),
			after: v => gnome.after(1000, "n", v),
			fetch: v => gnome.fetch("https://example.com", {method: "POST", body: v}),
		};
		let served = 0;
		gnome.route("GET", "/{depth}", req => {
			const n = Number(req.params.depth), out = {};
			for (const [name, f] of Object.entries(calls)) {
				for (const [kind, v] of [["object", obj(n)], ["array", arr(n)]]) {
					try { f(v); out[name + " " + kind] = "no error"; } catch (e) { out[name + " " + kind] = e.name + ": " + e.message; }
				}
			}
			console.log("deep", obj(n));
			return {json: {served: ++served, out}};
		});
		gnome.route("GET", "/respond/{how}", req => {
			const v = obj(20000);
			return req.params.how === "json" ? gnome.json(200, v) : {json: v};
		});
	`})
	r := serve(rt, "GET", "/20000", "", nil)
	var got struct {
		Served int               `json:"served"`
		Out    map[string]string `json:"out"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil || len(got.Out) != 30 {
		t.Fatalf("%d %s (%v)", r.Status, r.Body, err)
	}
	for k, v := range got.Out {
		if !strings.HasPrefix(v, "RangeError: ") || !strings.Contains(v, "nested deeper than 500 levels") {
			t.Errorf("%s: %s, want a RangeError naming the bound", k, v)
		}
	}
	if l := (*logs)[len(*logs)-1]; l.msg != "deep [object Object]" {
		t.Errorf("console.log of a deep object: %+v", l)
	}
	// 480 levels with the call's own few render: the host is reached.
	r = serve(rt, "GET", "/480", "", nil)
	if err := json.Unmarshal(r.Body, &got); err != nil || got.Served != 2 {
		t.Fatalf("%d %s (%v)", r.Status, r.Body, err)
	}
	for k, v := range got.Out {
		if strings.Contains(v, "RangeError") {
			t.Errorf("%s: %s, want it rendered", k, v)
		}
	}
	for _, how := range []string{"json", "object"} {
		r := serve(rt, "GET", "/respond/"+how, "", nil)
		if e := decodeErr(t, r); r.Status != 500 || !strings.Contains(e.Error.Message, "RangeError: the response's json: the value is nested deeper than 500 levels") {
			t.Errorf("%s: %d %s", how, r.Status, r.Body)
		}
	}
}

// TestDepthBound holds the encoder to the reader's bound exactly, Extended
// JSON's wrappers counted: what it writes, the reader reads back.
func TestDepthBound(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		globalThis.nest = (n, leaf, arr) => { let v = leaf; for (let i = 0; i < n; i++) v = arr ? [v] : {v}; return v; };`})
	for _, tc := range []struct {
		src  string
		ext  bool
		deep bool
	}{
		{"nest(499, {}, false)", false, false},
		{"nest(500, {}, false)", false, true},
		{"nest(499, [], true)", false, false},
		{"nest(500, [], true)", true, true},
		{"nest(499, new Date(0), false)", true, false},      // 499 + {"$date"}
		{"nest(500, new Date(0), false)", true, true},       // one more
		{"nest(500, new Date(0), false)", false, false},     // a string in plain JSON
		{"nest(498, new Uint8Array(1), true)", true, false}, // 498 + {"$binary": {...}}
		{"nest(499, new Uint8Array(1), true)", true, true},
	} {
		v, err := rt.vm.RunString(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.encode(v, tc.ext)
		if tc.deep {
			if err != errDeep {
				t.Errorf("%s ext=%v: %v, want errDeep", tc.src, tc.ext, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s ext=%v: %v", tc.src, tc.ext, err)
			continue
		}
		if _, err := rt.parseJSON(string(b), tc.ext); err != nil {
			t.Errorf("%s ext=%v: written, but not read back: %v", tc.src, tc.ext, err)
		}
	}
	// A toJSON returning a new object with the same toJSON is called once,
	// as JSON.stringify calls it, instead of without end.
	v, err := rt.vm.RunString(`const t = {toJSON() { return {toJSON: t.toJSON, n: 1}; }}; [t, JSON.stringify(t)]`)
	if err != nil {
		t.Fatal(err)
	}
	pair := v.(*goja.Object)
	b, err := rt.encode(pair.Get("0"), true)
	if err != nil || string(b) != pair.Get("1").String() || string(b) != `{"n":1}` {
		t.Errorf("toJSON: %s (%v), JSON.stringify %s", b, err, pair.Get("1"))
	}
}

// TestDeepHostResults: JSON a host hands back (a document, a fetch's body,
// a message, a timer's payload) nested past the bound is a SyntaxError or
// a rejected promise, never a walk without end; the instance serves on.
func TestDeepHostResults(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		const seen = [];
		gnome.onMessage((conn, msg) => { try { msg.json(); seen.push("parsed"); } catch (e) { seen.push(e.name + ": " + e.message); } });
		gnome.onTimer(t => { seen.push("timer " + JSON.stringify(t.payload)); });
		globalThis.settle = p => p.then(v => seen.push("fulfilled"), e => seen.push(e.name + ": " + e.message));
		gnome.route("GET", "/seen", () => ({json: seen}));
	`})
	deep := strings.Repeat(`{"a":`, 501) + "1" + strings.Repeat("}", 501)
	for _, dates := range []bool{false, true} {
		var caught goja.Value
		func() {
			defer func() { caught, _ = recover().(goja.Value) }()
			rt.mustParseJSON(deep, dates) // as documents(), findOne() and kv.getJSON read
		}()
		if o, ok := caught.(*goja.Object); !ok || !strings.Contains(o.String(), "SyntaxError: JSON is nested deeper than 500 levels") {
			t.Errorf("dates=%v: %v", dates, caught)
		}
	}
	res := rt.fetchResponse(&actorsdk.FetchResponse{Status: 200, Body: []byte(deep)})
	settle, _ := goja.AssertFunction(rt.vm.Get("settle"))
	jsonFn, _ := goja.AssertFunction(res.Get("json"))
	p, err := jsonFn(res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settle(goja.Undefined(), p); err != nil {
		t.Fatal(err)
	}
	c := actorsdk.Conn{ID: "c1"}
	if err := rt.Message(c, actorsdk.Message{Data: []byte(deep)}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Timer(actorsdk.Timer{Name: "t", Payload: json.RawMessage(deep)}); err != nil {
		t.Fatal(err)
	}
	r := serve(rt, "GET", "/seen", "", nil)
	want := `["SyntaxError: JSON is nested deeper than 500 levels","SyntaxError: JSON is nested deeper than 500 levels","timer null"]`
	if string(r.Body) != want {
		t.Fatalf("got  %s\nwant %s", r.Body, want)
	}
}

// TestCollectionSlug: a collection says whose it is, gnome.slug for the
// experiment's own.
func TestCollectionSlug(t *testing.T) {
	rt, _ := start(t, map[string]string{"actor.js": `
		gnome.route("GET", "/", () => {
			const own = gnome.db("c"), other = gnome.dbFrom("other", "c");
			let write;
			try { other.insertOne; write = typeof other.insertOne; } catch (e) { write = e.name; }
			return [own.slug, own.name, other.slug, other.name, own.slug === gnome.slug, write].join(",");
		});`})
	if r := serve(rt, "GET", "/", "", nil); string(r.Body) != "demo,c,other,c,true,undefined" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}
