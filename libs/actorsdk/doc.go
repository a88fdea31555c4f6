// Package actorsdk is the Go side of a g.nome actor: an experiment's backend,
// compiled to a WebAssembly reactor and run by the platform in a sandbox.
//
// An actor is a package main that registers its routes in init (a reactor
// never runs main) and answers requests through them:
//
//	func init() {
//		actorsdk.Route("POST", "/click", click)
//	}
//
//	func click(req *actorsdk.Request) *actorsdk.Response {
//		id, err := actorsdk.DB("clicks").InsertOne(actorsdk.M{"button": req.Query.Get("b")})
//		if err != nil {
//			return actorsdk.Fail(err)
//		}
//		return actorsdk.JSON(201, actorsdk.M{"id": id})
//	}
//
//	func main() {}
//
// built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o actor.wasm .
//
// The package implements the platform's ABI (docs/actors.md): it exports
// gnome_alloc, gnome_init and gnome_handle, keeps the buffers the host reads
// and writes alive as the ABI requires, and wraps the host's call, take and
// log imports in DB, DBFrom, KV, Config, Call and Log.
//
// Besides requests, an actor may take events through gnome_event: timers
// (OnTimer, After) and the WebSockets and event streams browsers hold with
// the experiment (OnOpen, OnMessage, OnClose; Send, Join, Publish,
// CloseConn: docs/actors.md, section 8).
//
// The platform calls an actor one request at a time, so handlers need no
// locking; goroutines they start run only while the platform is inside a
// call. A panic is not recovered: it traps the instance, the caller gets 502
// and the platform starts a fresh instance. Keep state that matters in DB or
// KV, since the platform replaces instances at will.
//
// Outside WebAssembly (GOOS other than wasip1) the package compiles so that
// vet and unit tests of an actor's own code work: Serve runs the routes, and
// every host operation fails with ErrNotWasm.
package actorsdk

// ABIVersion is the version of the platform's actor ABI this package speaks.
const ABIVersion = 1
