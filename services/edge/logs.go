package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// An experiment's actor log: GET /api/experiments/{slug}/logs reads the
// lines the actor-workers published into the ACTOR_LOGS stream on the
// experiment's own subject (actorapi.LogSubject), so that the filter, not
// a check of each line, keeps every other experiment's lines out. The
// answer is the last lines since a time; with ?follow=1 or Accept:
// text/event-stream it goes on as server-sent events, each with the
// stream sequence as its id, so a client that reconnects with
// Last-Event-ID misses and repeats nothing.

const (
	// logsDefaultLimit and logsMaxLimit bound the lines of one answer.
	logsDefaultLimit = 100
	logsMaxLimit     = 1000
	// logsDefaultSince is how far back an answer reaches without ?since.
	logsDefaultSince = time.Hour
	// logsRetention is how long the stream keeps a line: an older since
	// asks for nothing more.
	logsRetention = 24 * time.Hour
	// logsReadTimeout bounds reading the backlog.
	logsReadTimeout = 15 * time.Second
	// logsPoll is how long one wait for new lines lasts while following:
	// the stream notices a closed server this often.
	logsPoll = 2 * time.Second
)

// logsAPI serves actors' log lines.
type logsAPI struct {
	js       jetstream.JetStream
	topology bus.Topology
	id       *identity
	// access applies an experiment's rules (experimentsAPI.access).
	access func(experiments.Action) fiber.Handler

	mu      sync.Mutex
	ensured bool
}

func (x *logsAPI) routes(app *fiber.App) {
	app.Get("/api/experiments/:slug/logs", x.id.requireUser, x.access(experiments.Manage), x.logs)
}

// logLine is a stored line with its place in the stream.
type logLine struct {
	Seq uint64 `json:"seq"`
	actorapi.LogLine
}

// logsQuery is what the query string asks for.
type logsQuery struct {
	since    time.Time
	limit    int
	follow   bool
	afterSeq uint64 // from Last-Event-ID: lines after this one, whatever since says
}

func parseLogsQuery(c *fiber.Ctx, now time.Time) (logsQuery, error) {
	q := logsQuery{since: now.Add(-logsDefaultSince), limit: logsDefaultLimit}
	if s := c.Query("since"); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			q.since = t
		} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			q.since = now.Add(-min(d, logsRetention))
		} else {
			return q, apierr.New(apierr.CodeValidationFailed, "since %.40q is neither a time (RFC 3339, like 2026-12-07T09:00:00Z) nor a duration back from now (like 10m or 2h)", s).OnField("since")
		}
	}
	if oldest := now.Add(-logsRetention); q.since.Before(oldest) {
		q.since = oldest // older lines are gone; and the stream refuses times before its epoch
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > logsMaxLimit {
			return q, apierr.New(apierr.CodeValidationFailed, "limit must be a whole number from 1 to %d", logsMaxLimit).OnField("limit")
		}
		q.limit = n
	}
	switch f := c.Query("follow"); f {
	case "", "0", "false":
	case "1", "true":
		q.follow = true
	default:
		return q, apierr.New(apierr.CodeValidationFailed, "follow must be 1 or 0").OnField("follow")
	}
	if strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream") {
		q.follow = true
	}
	if s := c.Get("Last-Event-ID"); s != "" && q.follow {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, apierr.New(apierr.CodeValidationFailed, "Last-Event-ID must be the id of an event of this stream")
		}
		q.afterSeq = n
		// A reconnecting client wants what it missed, not the last few.
		q.limit = logsMaxLimit
	}
	return q, nil
}

// consumer is an ordered consumer of slug's lines from q's start.
func (x *logsAPI) consumer(ctx context.Context, slug string, q logsQuery) (jetstream.Consumer, error) {
	x.mu.Lock()
	if !x.ensured {
		// Created here if no worker has run yet, so that an experiment
		// without an actor answers an empty list, not an error.
		if err := x.topology.EnsureStreams(ctx, bus.StreamActorLogs); err != nil {
			x.mu.Unlock()
			return nil, err
		}
		x.ensured = true
	}
	x.mu.Unlock()
	// A reader that goes away without deleting its consumer (an edge
	// that stops) leaves it for the server to remove soon.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{actorapi.LogSubject(slug)}, InactiveThreshold: 30 * time.Second}
	if q.afterSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, q.afterSeq+1
	} else {
		since := q.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	return x.js.OrderedConsumer(ctx, bus.StreamActorLogs, cfg)
}

// backlog reads the lines there are now, keeping the last limit of them.
func backlog(ctx context.Context, cons jetstream.Consumer, limit int) ([]logLine, bool, error) {
	ring := make([]logLine, 0, limit)
	truncated := false
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, false, err
		}
		if info.NumPending == 0 {
			return ring, truncated, nil
		}
		batch, err := cons.FetchNoWait(min(int(info.NumPending), 500))
		if err != nil {
			return nil, false, err
		}
		for m := range batch.Messages() {
			l, ok := lineOf(m)
			if !ok {
				continue
			}
			if len(ring) == limit {
				ring, truncated = append(ring[:0], ring[1:]...), true
			}
			ring = append(ring, l)
		}
		if err := batch.Error(); err != nil {
			return nil, false, err
		}
	}
}

func lineOf(m jetstream.Msg) (logLine, bool) {
	var l logLine
	if json.Unmarshal(m.Data(), &l.LogLine) != nil {
		return l, false
	}
	if md, err := m.Metadata(); err == nil {
		l.Seq = md.Sequence.Stream
	}
	return l, true
}

// logs answers {"slug", "lines": [...] (oldest first), "truncated"}, or
// streams them.
func (x *logsAPI) logs(c *fiber.Ctx) error {
	slug := entryOf(c).cfg.Slug
	q, err := parseLogsQuery(c, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), logsReadTimeout)
	defer cancel()
	cons, err := x.consumer(ctx, slug, q)
	if err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "actor logs are unavailable right now")
	}
	release := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = x.js.DeleteConsumer(dctx, bus.StreamActorLogs, cons.CachedInfo().Name)
	}
	lines, truncated, err := backlog(ctx, cons, q.limit)
	if err != nil {
		release()
		return apierr.Wrap(apierr.CodeUnavailable, err, "actor logs are unavailable right now")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if !q.follow {
		release()
		return c.JSON(fiber.Map{"slug": slug, "lines": lines, "truncated": truncated})
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set("X-Accel-Buffering", "no")
	fctx := c.Context()
	fctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		st := &logStream{fctx: fctx, w: w, cons: cons}
		st.run(lines)
	})
	return nil
}

// logStream is one client's following of a log.
type logStream struct {
	fctx streamConn
	w    *bufio.Writer
	cons jetstream.Consumer
}

func (st *logStream) run(first []logLine) {
	if st.write([]byte("retry: 3000\n\n")) != nil {
		return
	}
	for _, l := range first {
		if st.send(l) != nil {
			return
		}
	}
	end := time.Now().Add(sseMax)
	lastWrite := time.Now()
	for time.Now().Before(end) {
		select {
		case <-st.fctx.Done():
			return // the server is shutting down
		default:
		}
		batch, err := st.cons.Fetch(100, jetstream.FetchMaxWait(logsPoll))
		if err != nil {
			return
		}
		for m := range batch.Messages() {
			l, ok := lineOf(m)
			if !ok {
				continue
			}
			if st.send(l) != nil {
				return
			}
			lastWrite = time.Now()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return // the bus went away: the client reconnects with Last-Event-ID
		}
		if time.Since(lastWrite) >= sseKeepalive {
			// A comment keeps proxies from closing an idle stream, and
			// finds a client that has gone.
			if st.write([]byte(": keepalive\n\n")) != nil {
				return
			}
			lastWrite = time.Now()
		}
	}
}

func (st *logStream) send(l logLine) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	msg := make([]byte, 0, len(data)+48)
	msg = append(msg, "id: "...)
	msg = strconv.AppendUint(msg, l.Seq, 10)
	msg = append(msg, "\nevent: log\ndata: "...)
	msg = append(msg, data...)
	msg = append(msg, "\n\n"...)
	return st.write(msg)
}

// write sends b at once; an error means the client has gone.
func (st *logStream) write(b []byte) error {
	_ = st.fctx.SetWriteDeadline(time.Now().Add(writeStall))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.w.Flush()
}
