// Command timers is a test actor of timer events, built with the SDK
// (actorsdk.OnTimer, actorsdk.After, actorsdk.CancelTimer):
//
//	GET  /init                    the actor is serving
//	POST /after?ms=N&name=X       actorsdk.After with the body (JSON) as the
//	                              payload: {"id"}; a refusal is the host
//	                              error's status and envelope
//	POST /cancel?id=ID            actorsdk.CancelTimer: {"cancelled"}
//	GET  /events                  the timer events this instance received,
//	                              oldest first
//
// A timer whose payload is {"fail": true} is refused by the handler.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o timers.wasm
package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

var received []actorsdk.Timer

func init() {
	actorsdk.OnTimer(func(t actorsdk.Timer) error {
		received = append(received, t)
		var p struct{ Fail bool }
		if t.Decode(&p) == nil && p.Fail {
			return errors.New("refused as the payload asks")
		}
		return nil
	})
	actorsdk.Route("GET", "/init", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, map[string]any{"slug": actorsdk.Slug()})
	})
	actorsdk.Route("POST", "/after", func(req *actorsdk.Request) *actorsdk.Response {
		ms, _ := strconv.ParseInt(req.Query.Get("ms"), 10, 64)
		var payload any
		if len(req.Body) > 0 {
			payload = json.RawMessage(req.Body)
		}
		id, err := actorsdk.After(time.Duration(ms)*time.Millisecond, req.Query.Get("name"), payload)
		if err != nil {
			return actorsdk.Fail(err)
		}
		return actorsdk.JSON(200, map[string]any{"id": id})
	})
	actorsdk.Route("POST", "/cancel", func(req *actorsdk.Request) *actorsdk.Response {
		ok, err := actorsdk.CancelTimer(req.Query.Get("id"))
		if err != nil {
			return actorsdk.Fail(err)
		}
		return actorsdk.JSON(200, map[string]any{"cancelled": ok})
	})
	actorsdk.Route("GET", "/events", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, map[string]any{"events": received})
	})
}

func main() {}
