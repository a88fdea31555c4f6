package apitest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// An actor left without calls for ACTOR_IDLE_UNLOAD_SECONDS is unloaded:
// its health and the experiment's view say idle. Users' next calls, on any
// edge and at the same time, are served without an error: the edges start
// the actor and hold the calls until it answers, from one fresh instance.
func TestIdleActorServesTheNextCall(t *testing.T) {
	p := startPlatform(t, 2, map[string]string{"ACTOR_IDLE_UNLOAD_SECONDS": "1"})
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(probeZip(t, "dozy", nil, map[string]any{"status": "active"})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("dozy")
	count := func(c *client) response {
		return c.do("POST", "/experiments/dozy/api/count", nil, nil)
	}
	if r := count(admin); r.status != 200 || r.json(t)["n"] != float64(1) {
		t.Fatalf("first count: %d %s", r.status, r.body)
	}

	for edge := range 2 {
		c := admin.on(p, edge)
		eventually(t, 15*time.Second, fmt.Sprintf("the actor to show idle on edge %d", edge), func() bool {
			return c.health("dozy").State == actorapi.StateIdle
		})
		var view struct {
			Actor struct{ State string } `json:"actor"`
		}
		eventually(t, 5*time.Second, "the experiment's view to show idle", func() bool {
			return json.Unmarshal(c.do("GET", "/api/experiments/dozy", nil, nil).body, &view) == nil && view.Actor.State == actorapi.StateIdle
		})
	}

	// The next calls, from users on both edges at once, are served: no
	// 503, one fresh instance counting them all.
	const users = 4
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]response, users)
	for i := range users {
		user := p.client(t, i%2)
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = count(user) }()
	}
	wg.Wait()
	t.Logf("the calls that woke the actor took %v", time.Since(start).Round(time.Millisecond))
	var seen []float64
	for _, r := range results {
		if r.status != 200 {
			t.Fatalf("a call after unloading: %d %s, want 200", r.status, r.body)
		}
		seen = append(seen, r.json(t)["n"].(float64))
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []float64{1, 2, 3, 4}) {
		t.Errorf("counts %v: want 1 to 4 from one fresh instance", seen)
	}
	if st := admin.health("dozy"); st.State != actorapi.StateRunning || st.StartedAt == nil {
		t.Errorf("health after waking: %+v", st)
	}
	if r := count(admin); r.status != 200 || r.json(t)["n"] != float64(users+1) {
		t.Errorf("the next count: %d %s", r.status, r.body)
	}
}
