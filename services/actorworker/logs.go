package actorworker

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Actors' log lines reach their owners as well as the process's log: every
// line an actor writes (gnome.log, stdout, stderr, and so the JavaScript
// console) is also published on actorapi.LogSubject(slug) into the
// ACTOR_LOGS stream, which the edge reads for GET
// /api/experiments/{slug}/logs. Publishing never holds up a call: the line
// goes into a bounded queue that one goroutine publishes from, and a line
// that finds the queue full is dropped and counted
// (gnome_actor_log_lines_dropped_total). The output budgets of
// libs/actorhost bound how fast one actor can fill it.

// logQueue is the bound on lines waiting for the bus.
const logQueue = 4096

// logPublisher hands actors' log lines to the bus.
type logPublisher struct {
	nc        *nats.Conn
	lines     chan logItem
	published prometheus.Counter
	dropped   prometheus.Counter
}

type logItem struct {
	subject string
	line    actorapi.LogLine
}

func newLogPublisher(nc *nats.Conn, reg prometheus.Registerer) *logPublisher {
	return &logPublisher{
		nc:    nc,
		lines: make(chan logItem, logQueue),
		published: telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gnome_actor_log_lines_published_total", Help: "Actors' log lines published to the ACTOR_LOGS stream.",
		})),
		dropped: telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gnome_actor_log_lines_dropped_total", Help: "Actors' log lines not published because the bus was slower than the actors (they are still in the process's log).",
		})),
	}
}

// offer queues a line without waiting.
func (p *logPublisher) offer(slug string, line actorapi.LogLine) {
	select {
	case p.lines <- logItem{actorapi.LogSubject(slug), line}:
	default:
		p.dropped.Inc()
	}
}

// run publishes queued lines until ctx ends. A core-NATS publish into the
// stream's subject needs no acknowledgement: the stream stores what it
// receives, and a line lost on a broken connection is a log line lost.
func (p *logPublisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-p.lines:
			data, err := json.Marshal(it.line)
			if err != nil {
				p.dropped.Inc()
				continue
			}
			if err := p.nc.Publish(it.subject, data); err != nil {
				p.dropped.Inc()
				continue
			}
			p.published.Inc()
		}
	}
}

// logTee is the slog handler of one actor's logger: it passes every record
// on, and offers the actor's own lines (and the worker's word that some
// were dropped) to the publisher. The slug, instance and version come from
// the logger's attributes (newActor) and withLogVersion.
type logTee struct {
	next     slog.Handler
	pub      *logPublisher
	slug     string
	instance int
	version  int
}

func (h *logTee) Enabled(ctx context.Context, l slog.Level) bool {
	// Every actor line is published, whatever LOG_LEVEL keeps in the
	// process's own log.
	return true
}

func (h *logTee) Handle(ctx context.Context, r slog.Record) error {
	if h.slug != "" {
		if line, ok := h.lineOf(ctx, r); ok {
			h.pub.offer(h.slug, line)
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// lineOf is the published line of r, when r is one of the actor's.
func (h *logTee) lineOf(ctx context.Context, r slog.Record) (actorapi.LogLine, bool) {
	line := actorapi.LogLine{Time: r.Time.UTC(), Level: levelName(r.Level), Instance: h.instance, Version: h.version, RequestID: telemetry.RequestID(ctx)}
	switch {
	case r.Message == "actor log": // gnome.log (hostops.go)
		line.Stream = actorapi.LogStreamLog
	case r.Message == "actor output": // stdout and stderr (libs/actorhost)
	case strings.HasPrefix(r.Message, "actor output over its budget"), strings.HasPrefix(r.Message, "actor log lines dropped"):
		line.Stream, line.Message = actorapi.LogStreamPlatform, r.Message
	default:
		return line, false
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "text":
			line.Message = a.Value.String()
		case "stream":
			if line.Stream == "" {
				line.Stream = a.Value.String()
			}
		case "cut_at":
			line.Cut = true
		case "version":
			line.Version = int(a.Value.Int64())
		}
		return true
	})
	if line.Stream == "" {
		line.Stream = actorapi.LogStreamStdout
	}
	if line.Time.IsZero() {
		line.Time = time.Now().UTC()
	}
	return line, true
}

// withLogVersion is log with the published lines saying they come from
// version (the process's own lines stay as they were).
func withLogVersion(log *slog.Logger, version int) *slog.Logger {
	h, ok := log.Handler().(*logTee)
	if !ok {
		return log
	}
	c := *h
	c.version = version
	return slog.New(&c)
}

func (h *logTee) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	for _, a := range as {
		switch a.Key {
		case "slug":
			c.slug = a.Value.String()
		case "instance":
			c.instance = int(a.Value.Int64())
		}
	}
	return &c
}

func (h *logTee) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.slug = "" // attributes in a group are no longer the actor's
	return &c
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
