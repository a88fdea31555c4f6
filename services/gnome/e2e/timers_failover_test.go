package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A timer an actor set, due while the actor-worker process holding the
// actor is dead (SIGKILL: its lease is not released but expires), fires
// exactly once, late, on the process that takes the actor over. Every
// service runs as its own process; the actor is the actor-worker tests'
// timers guest.
func TestTimerFiresOnceAfterItsWorkerIsKilled(t *testing.T) {
	wasm := buildTimersGuest(t)
	c := startCluster(t, "timers-admin@example.com", "a-timers-admin-passphrase", nil)
	c.start("auth", nil)
	c.start("upload", nil)
	workers := []*proc{c.start("actorworker", nil), c.start("actorworker", nil)}
	c.startEdge()
	admin := c.admin()

	manifest, _ := json.Marshal(map[string]any{
		"schema_version": "2.0", "slug": "alarm", "name": "Alarm", "status": "active",
		"actor": map[string]any{"module": "actor.wasm"},
	})
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for name, data := range map[string][]byte{"manifest.json": manifest, "actor.wasm": wasm, "static/index.html": []byte("<!doctype html><title>Alarm</title>")} {
		w, _ := zw.Create(name)
		_, _ = w.Write(data)
	}
	_ = zw.Close()
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "alarm.zip")
	_, _ = fw.Write(zipped.Bytes())
	_ = mw.Close()
	if r := admin.send("POST", "/api/experiments", mw.FormDataContentType(), form.String()); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var holder string
	waitFor(t, 60*time.Second, "the actor to run", func() bool {
		st := admin.health("alarm")
		holder = st.Worker
		return st.State == "running"
	})
	var victim, survivor *proc
	for i, w := range workers {
		if strings.Contains(holder, "-"+strconv.Itoa(w.cmd.Process.Pid)+"-") {
			victim, survivor = w, workers[1-i]
		}
	}
	if victim == nil {
		t.Fatalf("the holder %q is none of the worker processes", holder)
	}

	r := admin.send("POST", "/experiments/alarm/api/after?ms=1000&name=wake", "application/json", `{"k":1}`)
	var set struct{ ID string }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &set) != nil || set.ID == "" {
		t.Fatalf("timer.set: %d %s", r.status, r.body)
	}
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	type fired struct {
		ID          string          `json:"id"`
		Name        string          `json:"name"`
		Payload     json.RawMessage `json:"payload"`
		ScheduledAt time.Time       `json:"scheduled_at"`
		FiredAt     time.Time       `json:"fired_at"`
	}
	events := func() []fired {
		var body struct{ Events []fired }
		r := admin.send("GET", "/experiments/alarm/api/events", "", "")
		if r.status != 200 || json.Unmarshal([]byte(r.body), &body) != nil {
			return nil
		}
		return body.Events
	}
	waitFor(t, 30*time.Second, "the timer to fire on the surviving worker", func() bool { return len(events()) > 0 })
	t.Logf("fired %v after the kill", time.Since(killed).Round(time.Millisecond))
	// A second timer firing shows the time went by in which the first
	// could have fired again.
	if r := admin.send("POST", "/experiments/alarm/api/after?ms=1000&name=later", "", ""); r.status != 200 {
		t.Fatalf("second timer.set: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the second timer to fire", func() bool { return len(events()) >= 2 })
	got := events()
	if len(got) != 2 || got[0].ID != set.ID || got[0].Name != "wake" || string(got[0].Payload) != `{"k":1}` || got[1].Name != "later" {
		t.Fatalf("events on the new worker: %+v, want wake once, then later", got)
	}
	if got[0].FiredAt.Sub(got[0].ScheduledAt) <= 0 || got[0].ScheduledAt.After(killed.Add(2*time.Second)) {
		t.Errorf("wake was due %v and fired %v: want it due during the failover and fired after", got[0].ScheduledAt, got[0].FiredAt)
	}
	if st := admin.health("alarm"); !strings.Contains(st.Worker, "-"+strconv.Itoa(survivor.cmd.Process.Pid)+"-") {
		t.Errorf("after the failover the actor runs on %q, want pid %d", st.Worker, survivor.cmd.Process.Pid)
	}
}

// buildTimersGuest builds the actor-worker tests' timers guest.
func buildTimersGuest(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "timers.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/timers")
	cmd.Dir = "../../actorworker"
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the timers guest: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
