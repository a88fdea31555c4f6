// Command room is the actor of the live-channel benchmarks (gnome-bench
// livebroadcast and liveidle): it takes every connection, puts those opened
// on /ws/room into the room "all", and hands each message a member sends to
// the whole room, as it is, so that what is measured is the platform's path
// from one browser to many.
//
//	/experiments/{slug}/ws/room   joins "all"; a message is published to "all"
//	/experiments/{slug}/ws/idle   joins nothing; messages are dropped
//
// The benchmark builds it for the sandbox with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o actor.wasm ./bench/actors/room
package main

import (
	"github.com/gnome-platform/gnome/libs/actorsdk"
)

func init() {
	actorsdk.OnOpen(func(c actorsdk.Conn) error {
		if c.Path == "/room" {
			return c.Join("all")
		}
		return nil
	})
	actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error {
		if c.Path != "/room" {
			return nil
		}
		return actorsdk.Publish("all", m.Text())
	})
}

func main() {}
