package edge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// publishLog puts a line into ACTOR_LOGS as an actor-worker does.
func (w *world) publishLog(slug, msg, requestID string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.d.Topology.EnsureStreams(ctx, bus.StreamActorLogs); err != nil {
		w.t.Fatal(err)
	}
	data, _ := json.Marshal(actorapi.LogLine{Time: time.Now().UTC(), Level: "info", Message: msg, Stream: actorapi.LogStreamLog, Version: 1, RequestID: requestID})
	if _, err := w.d.JS.Publish(ctx, actorapi.LogSubject(slug), data); err != nil {
		w.t.Fatal(err)
	}
}

type logsReply struct {
	Slug  string `json:"slug"`
	Lines []struct {
		Seq       uint64 `json:"seq"`
		Message   string `json:"message"`
		Level     string `json:"level"`
		RequestID string `json:"request_id"`
	} `json:"lines"`
	Truncated bool `json:"truncated"`
}

func (r reply) logs(t *testing.T) logsReply {
	t.Helper()
	var out logsReply
	if r.status != http.StatusOK {
		t.Fatalf("logs: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("logs: %v: %s", err, r.body)
	}
	return out
}

func messages(l logsReply) string {
	var m []string
	for _, x := range l.Lines {
		m = append(m, x.Message)
	}
	return strings.Join(m, ",")
}

func TestActorLogsRoute(t *testing.T) {
	w := startWorld(t, nil)
	owner := w.developer("owner@example.com")
	stranger := w.developer("stranger@example.com")
	admin := w.admin("root@example.com")
	w.experiment("diary", "owner@example.com", "active", `{"slug":"diary","name":"Diary","status":"active"}`, map[string]string{"index.html": "x"})
	w.experiment("other", "stranger@example.com", "active", `{"slug":"other","name":"Other","status":"active"}`, map[string]string{"index.html": "x"})

	// Before any line: an empty list, not an error.
	if l := w.do("GET", "/api/experiments/diary/logs", owner, nil, "").logs(t); len(l.Lines) != 0 || l.Slug != "diary" {
		t.Fatalf("no lines yet: %+v", l)
	}
	w.publishLog("diary", "one", "r1")
	w.publishLog("other", "secret-of-other", "")
	w.publishLog("diary", "two", "")
	w.publishLog("diary", "three", "r3")

	l := w.do("GET", "/api/experiments/diary/logs", owner, nil, "").logs(t)
	if messages(l) != "one,two,three" || l.Truncated || l.Lines[0].RequestID != "r1" || l.Lines[0].Level != "info" {
		t.Fatalf("owner's list: %+v", l)
	}
	if l := w.do("GET", "/api/experiments/diary/logs?limit=2", owner, nil, "").logs(t); messages(l) != "two,three" || !l.Truncated {
		t.Fatalf("limit=2: %+v", l)
	}
	if l := w.do("GET", "/api/experiments/diary/logs?since=10m", admin, nil, "").logs(t); messages(l) != "one,two,three" {
		t.Fatalf("admin, since=10m: %+v", l)
	}
	if l := w.do("GET", "/api/experiments/other/logs", stranger, nil, "").logs(t); messages(l) != "secret-of-other" {
		t.Fatalf("other's owner: %+v", l)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if l := w.do("GET", "/api/experiments/diary/logs?since="+future, owner, nil, "").logs(t); len(l.Lines) != 0 {
		t.Fatalf("since the future: %+v", l)
	}

	w.run([]scenario{
		{name: "anonymous", path: "/api/experiments/diary/logs", status: 401, code: "unauthenticated"},
		{name: "another developer", path: "/api/experiments/diary/logs", token: stranger, status: 403, code: "forbidden"},
		{name: "a user", path: "/api/experiments/diary/logs", token: w.token("reader@example.com"), status: 403, code: "forbidden"},
		{name: "no such experiment", path: "/api/experiments/nope/logs", token: owner, status: 404, code: "not_found"},
		{name: "a slug with a wildcard", path: "/api/experiments/%2A/logs", token: admin, status: 404, code: "not_found"},
		{name: "a slug with a subject separator", path: "/api/experiments/diary.x/logs", token: admin, status: 404, code: "not_found"},
		{name: "since not a time", path: "/api/experiments/diary/logs?since=yesterday", token: owner, status: 422, code: "validation_failed", want: []string{"since"}},
		{name: "since negative", path: "/api/experiments/diary/logs?since=-5m", token: owner, status: 422, code: "validation_failed"},
		{name: "since long ago", path: "/api/experiments/diary/logs?since=2000000h", token: owner, status: 200, want: []string{`"one"`}},
		{name: "since past any duration", path: "/api/experiments/diary/logs?since=999999999h", token: owner, status: 422, code: "validation_failed"},
		{name: "since ancient", path: "/api/experiments/diary/logs?since=0001-01-01T00:00:00Z", token: owner, status: 200, want: []string{`"three"`}},
		{name: "limit zero", path: "/api/experiments/diary/logs?limit=0", token: owner, status: 422, code: "validation_failed", want: []string{"limit"}},
		{name: "limit over", path: "/api/experiments/diary/logs?limit=1001", token: owner, status: 422, code: "validation_failed"},
		{name: "limit huge", path: "/api/experiments/diary/logs?limit=99999999999999999999", token: owner, status: 422, code: "validation_failed"},
		{name: "limit words", path: "/api/experiments/diary/logs?limit=all", token: owner, status: 422, code: "validation_failed"},
		{name: "follow words", path: "/api/experiments/diary/logs?follow=forever", token: owner, status: 422, code: "validation_failed"},
		{name: "bad Last-Event-ID", path: "/api/experiments/diary/logs?follow=1", token: owner, header: map[string]string{"Last-Event-ID": "x"}, status: 422, code: "validation_failed"},
		{name: "another developer following", path: "/api/experiments/diary/logs?follow=1", token: stranger, status: 403, code: "forbidden"},
	})

	// Following: the backlog, then each new line of this experiment only.
	events, lastID, stop := w.followLogs(t, owner, "diary", "")
	for _, want := range []string{"one", "two", "three"} {
		if got := next(t, events); got != want {
			t.Fatalf("backlog: %q, want %q", got, want)
		}
	}
	w.publishLog("other", "other-live", "")
	w.publishLog("diary", "four", "")
	if got := next(t, events); got != "four" {
		t.Fatalf("followed: %q, want four (never another experiment's)", got)
	}
	id := lastID()
	stop()

	// Reconnecting with Last-Event-ID repeats nothing and misses nothing.
	w.publishLog("diary", "five", "")
	events, _, stop = w.followLogs(t, owner, "diary", id)
	defer stop()
	if got := next(t, events); got != "five" {
		t.Fatalf("after reconnecting: %q, want five", got)
	}
}

// followLogs opens the event stream; events carries each line's message.
func (w *world) followLogs(t *testing.T, token, slug, lastEventID string) (<-chan string, func() string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", w.base+"/api/experiments/"+slug+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	client := &http.Client{Transport: w.http.Transport}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("follow: %d %v", resp.StatusCode, resp.Header)
	}
	events := make(chan string, 16)
	ids := make(chan string, 16)
	var last string
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				ids <- id
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var l actorapi.LogLine
				if json.Unmarshal([]byte(data), &l) == nil {
					events <- l.Message
				}
			}
		}
		close(events)
	}()
	lastID := func() string {
		for {
			select {
			case id := <-ids:
				last = id
			default:
				return last
			}
		}
	}
	return events, lastID, cancel
}

func next(t *testing.T, events <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no line within 10 s")
	}
	return ""
}
