package apitest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost/hostilewasm"
)

// Hostile modules through the HTTP API: an actor that can never load, one
// whose start never ends, and one growing its table by 2^32-16 entries.
// Their callers get the documented answers (503 with Retry-After, never a
// timeout), and another experiment's actor answers, and counts, throughout.
func TestActorsThatCannotServe(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(probeZip(t, "calm", nil, nil)); r.status != 201 {
		t.Fatalf("upload calm: %d %s", r.status, r.body)
	}
	admin.running("calm")

	stopCalm := admin.on(p, 0).keepCounting("calm")

	upload := func(slug string, files map[string]string) {
		t.Helper()
		if r := admin.upload(zipOf(t, files)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", slug, r.status, r.body)
		}
	}
	retryAfter := func(r response) int {
		n, _ := strconv.Atoi(r.header.Get("Retry-After"))
		return n
	}

	// A module importing what the platform lacks fails at once, for good.
	upload("noimport", map[string]string{"manifest.json": manifest("noimport", map[string]any{"actor": map[string]any{"module": "actor.wasm"}}),
		"index.html": "<p>noimport</p>", "actor.wasm": string(hostilewasm.UnknownImport())})
	eventually(t, 30*time.Second, "noimport to fail", func() bool { return admin.health("noimport").State == actorapi.StateFailed })
	r := admin.do("GET", "/experiments/noimport/api/x", nil, nil)
	if r.status != 503 || r.errorCode() != "unavailable" || retryAfter(r) != 30 || !strings.Contains(string(r.body), "open_socket") {
		t.Errorf("a call to an actor that cannot load: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if st := admin.health("noimport"); st.Restarts != 0 || st.RetryAt != nil {
		t.Errorf("noimport's health: %+v", st)
	}

	// A start that sleeps for an hour: callers are answered 503 with
	// Retry-After before the edge's own timeout, during the first start and
	// after it failed.
	upload("stuck", map[string]string{"manifest.json": manifest("stuck", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 1000,
		"config": map[string]any{"sleep_init": 3600000}}}), "index.html": "<p>stuck</p>", "actor.wasm": string(probeWasm(t))})
	eventually(t, 30*time.Second, "stuck to answer 503 with Retry-After", func() bool {
		r := admin.do("GET", "/experiments/stuck/api/count", nil, nil)
		if r.status == 504 {
			t.Errorf("a call to a hanging start: 504 %s", r.body)
		}
		return r.status == 503 && retryAfter(r) >= 1
	})
	eventually(t, 30*time.Second, "stuck to fail", func() bool { return admin.health("stuck").State == actorapi.StateFailed })
	for range 3 {
		r := admin.do("GET", "/experiments/stuck/api/count", nil, nil)
		if r.status != 503 || retryAfter(r) < 1 || !strings.Contains(string(r.body), "failed to start") {
			t.Errorf("a call while the start keeps failing: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
	}

	// table.grow by 2^32-16: refused inside the sandbox, and the actor
	// answers.
	upload("tables", map[string]string{"manifest.json": manifest("tables", map[string]any{"actor": map[string]any{"module": "actor.wasm"}}),
		"index.html": "<p>tables</p>", "actor.wasm": string(hostilewasm.TableGrower())})
	admin.running("tables")
	for range 3 {
		if r := admin.do("GET", "/experiments/tables/api/", nil, nil); r.status != 200 || string(r.body) != "refused" {
			t.Errorf("growing a table by 2^32-16: %d %s", r.status, r.body)
		}
	}

	if failures := stopCalm(); len(failures) > 0 {
		t.Errorf("calm failed meanwhile: %v", failures)
	}
	if st := admin.health("calm"); st.Restarts != 0 {
		t.Errorf("calm's health: %+v", st)
	}
}
