package edge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
)

func TestActors(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("plain", "dev@example.com", "active", `{"slug":"plain","name":"Plain","status":"active"}`, map[string]string{"index.html": "plain"})
	w.experiment("clicks", "dev@example.com", "active", `{"slug":"clicks","name":"Clicks","status":"active","actor":{"module":"actor.wasm"}}`, map[string]string{"index.html": "clicks", "actor.wasm": "\x00asm"})
	w.run([]scenario{
		{name: "health without an actor", path: "/experiments/plain/health", status: 200, want: []string{`"slug":"plain"`, `"state":"none"`, `"version":1`}},
		{name: "a call without an actor", method: "POST", path: "/experiments/plain/api/click", status: 503, code: "unavailable", want: []string{"no actor running"}},
		{name: "health, no worker yet", path: "/experiments/clicks/health", status: 200, want: []string{`"slug":"clicks"`, `"state":"starting"`}},
		{name: "its view", path: "/api/experiments/clicks", status: 200, want: []string{`"actor":{"state":"starting"}`}},
		// Nothing answers: the edge asks for a start and says when to retry.
		{name: "a call, no worker yet", method: "POST", path: "/experiments/clicks/api/click", header: jsonType, body: `{}`, status: 503, code: "unavailable",
			wantHeader: map[string]string{"Retry-After": "1"}},
		{name: "a body over the actor limit", method: "POST", path: "/experiments/clicks/api/click", header: jsonType, body: `"` + strings.Repeat("x", 1<<20) + `"`, status: 413, code: "payload_too_large"},
		{name: "unknown experiment", path: "/experiments/nope/api/x", status: 404, code: "not_found"},
	})
	// The refused call queued a start job for a worker to take.
	eventually(t, 10*time.Second, "a start job on the actor jobs stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := w.d.JS.Stream(ctx, bus.StreamActorJobs)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs >= 1
	})
}
