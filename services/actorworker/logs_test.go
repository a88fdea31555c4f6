package actorworker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bus"
)

// storedLogs reads every line the ACTOR_LOGS stream holds for slug.
func storedLogs(t *testing.T, js jetstream.JetStream, slug string) []actorapi.LogLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, bus.StreamActorLogs, jetstream.OrderedConsumerConfig{FilterSubjects: []string{actorapi.LogSubject(slug)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []actorapi.LogLine
	for {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && len(out) >= int(info.Delivered.Stream) {
			return out
		}
		batch, err := c.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if m.Subject() != actorapi.LogSubject(slug) {
				t.Fatalf("line of %s read on %s", slug, m.Subject())
			}
			var l actorapi.LogLine
			if err := json.Unmarshal(m.Data(), &l); err != nil {
				t.Fatalf("stored line %q: %v", m.Data(), err)
			}
			out = append(out, l)
		}
		if n == 0 && info.NumPending == 0 {
			return out
		}
	}
}

// An actor's gnome.log line and its stdout reach the ACTOR_LOGS stream on
// its own subject, with level, version and the request's ID; a flood of
// stdout is held to the output budget.
func TestActorLogsArePublished(t *testing.T) {
	w := newWorld(t)
	w.worker()
	w.deploy("talky", nil, probe(t))
	w.deploy("quiet", nil, probe(t))
	w.serving("talky", 30*time.Second)
	w.serving("quiet", 30*time.Second)

	if r := w.call("talky", "GET", "/log", "", nil); r.err != nil || r.status != 200 {
		t.Fatalf("GET /log: %v", r)
	}
	var got actorapi.LogLine
	eventually(t, 10*time.Second, "the log line to be stored", func() bool {
		for _, l := range storedLogs(t, w.d.JS, "talky") {
			if l.Stream == actorapi.LogStreamLog {
				got = l
				return true
			}
		}
		return false
	})
	if got.Message != "hello from the probe" || got.Level != "info" || got.RequestID != "req-/log" || got.Version != 1 || got.Instance != 0 || time.Since(got.Time) > time.Minute {
		t.Fatalf("stored line %+v", got)
	}

	// A flood: 1 MiB of 100-byte lines (10,485 of them) in one call.
	start := time.Now()
	if r := w.callAsEdge(40*time.Second, "talky", "GET", "/print?mb=1&line=0"); r.err != nil || r.status != 200 {
		t.Fatalf("GET /print: %v", r)
	}
	budget := actorhost.OutputBurstLines + int(time.Since(start).Seconds()+1)*actorhost.OutputBurstLines
	var stdout, platform int
	eventually(t, 10*time.Second, "the flood's lines and the word that some were dropped", func() bool {
		stdout, platform = 0, 0
		for _, l := range storedLogs(t, w.d.JS, "talky") {
			switch l.Stream {
			case actorapi.LogStreamStdout:
				stdout++
				if l.RequestID != "req-/print" || !strings.HasPrefix(l.Message, "xxx") {
					t.Fatalf("stdout line %+v", l)
				}
			case actorapi.LogStreamPlatform:
				platform++
			}
		}
		return stdout >= actorhost.OutputBurstLines && platform > 0
	})
	if stdout > budget {
		t.Fatalf("%d stdout lines stored, over the budget of %d", stdout, budget)
	}
	t.Logf("flood: %d of 10485 lines stored (budget %d)", stdout, budget)

	// The other experiment's subject holds nothing of talky's.
	for _, l := range storedLogs(t, w.d.JS, "quiet") {
		t.Fatalf("quiet holds a line it never wrote: %+v", l)
	}
}

// A bus slower than the actors costs lines, counted, never a wait: with
// no publisher draining the queue, the line past its bound is dropped at
// once.
func TestActorLogQueueDropsWhenFull(t *testing.T) {
	p := newLogPublisher(nil, prometheus.NewRegistry())
	start := time.Now()
	for range logQueue + 5 {
		p.offer("busy", actorapi.LogLine{Message: "x"})
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("queuing took %v", took)
	}
	if got := testutil.ToFloat64(p.dropped); got != 5 {
		t.Fatalf("dropped %v lines, want 5", got)
	}
}
