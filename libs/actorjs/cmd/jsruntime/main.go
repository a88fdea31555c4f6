// Command jsruntime is the platform's JavaScript runtime: a WebAssembly
// actor that runs the script named by a manifest's actor.script
// (docs/actors.md, section 9). make build builds it for wasip1 into
// services/actorworker/jsruntime/dist, from where the platform embeds it.
package main

import (
	"runtime/debug"

	"github.com/gnome-platform/gnome/libs/actorjs"
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// rt is the script's runtime, made when the instance starts.
var rt *actorjs.Runtime

func init() {
	// A JavaScript runtime allocates much per call, and the collector of
	// a wasm program runs on the call's own thread: collecting half as
	// often makes calls cheaper (about 10% on an echo) for a heap at most
	// 3 times the live data instead of 2, well within memory_mb for the
	// runtime's few MB.
	debug.SetGCPercent(200)
	actorsdk.OnInit(func(in actorsdk.Init) error {
		r, err := actorjs.New(in, actorjs.Options{Bind: bind})
		if err != nil {
			return err
		}
		rt = r
		return nil
	})
	actorsdk.Handle(func(req *actorsdk.Request) *actorsdk.Response {
		if rt == nil {
			// The platform sends no request to an instance whose start
			// failed; this is for one that does anyway.
			return actorsdk.Error(503, actorsdk.CodeUnavailable, "the script did not start")
		}
		return rt.Serve(req)
	})
}

// bind registers the SDK's hook of an event kind when the script first
// takes a handler for it: an actor without live handlers takes no
// connections, one without onTimer no timer events.
func bind(kind string) {
	switch kind {
	case "open":
		actorsdk.OnOpen(func(c actorsdk.Conn) error { return rt.Open(c) })
	case "message":
		actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error { return rt.Message(c, m) })
	case "close":
		actorsdk.OnClose(func(c actorsdk.Conn, cl actorsdk.Close) error { return rt.Close(c, cl) })
	case "timer":
		actorsdk.OnTimer(func(t actorsdk.Timer) error { return rt.Timer(t) })
	}
}

func main() {}
