// Command echo is the actor of the actor benchmarks (gnome-bench actorcall,
// actorstart and failover): the cheapest answers an SDK actor gives, so that
// what is measured is the platform's path to it.
//
//	GET /ping        200 {"ok":true}
//	GET /instance    200 {"instance":"<when this instance started, ns>"}
//
// /instance tells instances apart: the failover benchmark waits for an
// answer from another instance than the one it stopped.
//
// The benchmark builds it for the sandbox with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o actor.wasm ./bench/actors/echo
//
// and it vets and builds natively too, where the SDK has no host.
package main

import (
	"strconv"
	"time"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

var (
	pong     = []byte(`{"ok":true}`)
	instance []byte
)

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		instance = []byte(`{"instance":"` + strconv.FormatInt(time.Now().UnixNano(), 10) + `"}`)
		return nil
	})
	actorsdk.Route("GET", "/ping", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.Bytes(200, "application/json", pong)
	})
	actorsdk.Route("GET", "/instance", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.Bytes(200, "application/json", instance)
	})
}

func main() {}
