// Command events is a test guest of the gnome_event export, built with the
// SDK: a timer named "refuse" is refused, "panic" panics inside the
// handler (the SDK turns it into a refusal), "exit" ends the instance,
// "sleep" never returns; any other is counted. GET /count answers
// {"count": n}.
package main

import (
	"errors"
	"os"
	"time"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

var count int

func init() {
	actorsdk.OnTimer(func(t actorsdk.Timer) error {
		switch t.Name {
		case "refuse":
			return errors.New("not now")
		case "panic":
			panic("in the handler")
		case "exit":
			os.Exit(3)
		case "sleep":
			for {
				time.Sleep(time.Second)
			}
		}
		count++
		return nil
	})
	actorsdk.Route("GET", "/count", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, map[string]int{"count": count})
	})
}

func main() {}
