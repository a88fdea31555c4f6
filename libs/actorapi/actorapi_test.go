package actorapi_test

import (
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// The edge waits for a call as long as the worker lets the actor run it:
// both read timeout_ms the same way.
func TestActorTimeoutIsTheHostsLimit(t *testing.T) {
	for _, ms := range []int{-5, 0, 1, 250, 2000, 60_000, 60_001, 3_600_000} {
		want := actorhost.Limits{Timeout: time.Duration(ms) * time.Millisecond}.Normalize().Timeout
		if got := actorapi.Timeout(&bundle.Actor{Module: "a.wasm", TimeoutMS: ms}); got != want {
			t.Errorf("timeout_ms %d: edge waits %v, host allows %v", ms, got, want)
		}
	}
	if got := actorapi.Timeout(nil); got != actorhost.DefaultTimeout {
		t.Errorf("no actor field: %v, want %v", got, actorhost.DefaultTimeout)
	}
}

func TestActorSubject(t *testing.T) {
	if got := actorapi.Subject("click-report_2"); got != "gnome.actor.click-report_2.call" {
		t.Errorf("subject = %q", got)
	}
}
