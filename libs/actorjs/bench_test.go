package actorjs

import (
	"testing"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

const benchScript = `
gnome.route("GET", "/ping", () => ({json: {ok: true}}));
gnome.route("POST", "/echo", req => ({json: req.json()}));
gnome.route("POST", "/echo-text", req => req.text());
`

const echoBody = `{"a":[1,2,{"b":"c"}],"n":12345,"s":"hello world"}`

func benchServe(b *testing.B, method, path, want string) {
	rt, _ := start(b, map[string]string{"actor.js": benchScript})
	req := func() *actorsdk.Request {
		return &actorsdk.Request{Method: method, Path: path, Body: []byte(echoBody),
			Header: actorsdk.Header{"Content-Type": {"application/json"}}, RequestID: "r"}
	}
	if r := rt.Serve(req()); string(r.Body) != want {
		b.Fatalf("body %s, want %s", r.Body, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		rt.Serve(req())
	}
}

// BenchmarkEcho is the runtime's share of an echo call: request object,
// the handler, req.json() and the response's JSON.
func BenchmarkEcho(b *testing.B) { benchServe(b, "POST", "/echo", echoBody) }

func BenchmarkEchoText(b *testing.B) { benchServe(b, "POST", "/echo-text", echoBody) }

func BenchmarkPing(b *testing.B) { benchServe(b, "GET", "/ping", `{"ok":true}`) }

// BenchmarkStart is New: goja, the globals and the script's top level.
func BenchmarkStart(b *testing.B) {
	files := map[string]string{"actor.js": benchScript}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tryStart(files); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingConst is bench/actors/echo-js's /ping: a constant response
// object with a header and a text body.
func BenchmarkPingConst(b *testing.B) {
	rt, _ := start(b, map[string]string{"actor.js": `
		const pong = { headers: { "Content-Type": "application/json" }, body: '{"ok":true}' };
		gnome.route("GET", "/ping", () => pong);`})
	req := &actorsdk.Request{Method: "GET", Path: "/ping", Header: actorsdk.Header{}, RequestID: "r"}
	if r := rt.Serve(req); string(r.Body) != `{"ok":true}` || r.Header.Get("Content-Type") != "application/json" {
		b.Fatalf("%d %s %v", r.Status, r.Body, r.Header)
	}
	b.ReportAllocs()
	for b.Loop() {
		rt.Serve(req)
	}
}
