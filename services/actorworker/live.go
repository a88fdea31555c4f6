package actorworker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Live channels (docs/actors.md, section 8): the edges hold the browsers'
// WebSockets and event streams; the actor hears of each connection's open,
// message and close as events on actorapi.LiveSubject, and acts on
// connections and rooms through the host operations live.send, live.close,
// room.join, room.leave and room.publish.
//
// Only the instance holding the actor subscribes to its live subject, into
// the same mailbox as calls: a connection's events reach the actor in the
// order the edge sent them, interleaved with calls, never at the same time
// as one. Since every open and close of the experiment passes through this
// one place, the worker counts the experiment's connections here, cluster
// wide: an open over LIVE_MAX_CONNECTIONS or LIVE_MAX_CONNECTIONS_PER_CLIENT
// is refused before the actor hears of it. When the worker takes the actor
// (start, failover, waking from idle) it does not know which connections
// are open: it asks the edges (a census), and asks again every CensusEvery
// while there are any, so that connections whose close was lost (an edge
// killed) stop counting.

// liveTuning bounds live channels; tests shorten the timings and set small
// bounds. A zero bound takes the configuration's (config.LiveLimits).
type liveTuning struct {
	// MaxConnections, MaxPerClient and MaxMessage override LIVE_MAX_*
	// when positive.
	MaxConnections, MaxPerClient, MaxMessage int
	// CensusEvery is how often the connections are counted again while
	// there are any.
	CensusEvery time.Duration
	// CensusQuiet ends a census once no edge answered for that long;
	// CensusMax ends it in any case.
	CensusQuiet, CensusMax time.Duration
	// Join bounds a join or leave request to an edge.
	Join time.Duration
}

var liveDefaults = liveTuning{
	CensusEvery: time.Minute,
	CensusQuiet: 250 * time.Millisecond,
	CensusMax:   time.Second,
	Join:        2 * time.Second,
}

// Fallbacks of the bounds when neither the tuning nor the configuration
// gives one (the configuration's own defaults).
const (
	liveMaxMessage     = 64 << 10
	liveMaxConnections = 10000
	liveMaxPerClient   = 16
	// maxClientKey bounds the client key of a connection, in bytes.
	maxClientKey = 256
)

// liveLimits are the bounds in force.
func (s *Service) liveLimits() config.LiveLimits {
	l := s.d.Config.Live
	pick := func(tuned, configured, fallback int) int {
		switch {
		case tuned > 0:
			return tuned
		case configured > 0:
			return configured
		}
		return fallback
	}
	l.MaxConnections = pick(s.tune.Live.MaxConnections, l.MaxConnections, liveMaxConnections)
	l.MaxPerClient = pick(s.tune.Live.MaxPerClient, l.MaxPerClient, liveMaxPerClient)
	l.MaxMessage = pick(s.tune.Live.MaxMessage, l.MaxMessage, liveMaxMessage)
	return l
}

// liveMetrics are the worker's metrics of live channels.
type liveMetrics struct {
	events      *prometheus.CounterVec
	connections *prometheus.GaugeVec
	messages    *prometheus.CounterVec
	censuses    *prometheus.CounterVec
}

func newLiveMetrics(reg prometheus.Registerer) *liveMetrics {
	return &liveMetrics{
		events: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_live_events_total", Help: "Live events (open, message, close) handed to actors, by experiment, type and outcome (ok; refused: by the actor; too_many: over a bound of connections; no_events: the module takes none; failed: the instance broke or was not serving).",
		}, []string{"slug", "type", "outcome"})),
		connections: telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gnome_actor_live_connections", Help: "Open live connections of an experiment over every edge, as the worker holding its actor counts them.",
		}, []string{"slug"})),
		messages: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_live_messages_total", Help: "Messages actors sent to live connections, by experiment and how (send: to one connection; publish: to a room).",
		}, []string{"slug", "how"})),
		censuses: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_live_censuses_total", Help: "Censuses of an experiment's live connections asked of the edges, by experiment.",
		}, []string{"slug"})),
	}
}

// liveState is one actor's live connections on the worker holding it: the
// open ones, each with its client key, for the bounds. The loop adds and
// removes; the census goroutine replaces the whole, hence the lock.
type liveState struct {
	mu      sync.Mutex
	conns   map[string]string // connection ID -> client key
	clients map[string]int    // client key -> connections
	// While a census runs, the changes made since it began, applied on
	// top of its result: an open accepted after an edge answered would
	// otherwise be lost.
	censusing bool
	added     map[string]string
	removed   map[string]bool
	// ready is closed when the first census has ended: until then the
	// counts are unknown and opens wait.
	ready     chan struct{}
	readyOnce sync.Once
	sub       *nats.Subscription
	subject   string
}

func newLiveState(slug string) *liveState {
	return &liveState{
		conns: map[string]string{}, clients: map[string]int{},
		ready: make(chan struct{}), subject: actorapi.LiveSubject(slug),
	}
}

// count is the number of open connections.
func (l *liveState) count() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// admits reports whether conn of client may open under lim: why is "" when
// it may, or which bound it would pass. counted is true for a connection
// counted already (an edge asking again after losing the reply).
func (l *liveState) admits(conn, client string, lim config.LiveLimits) (counted bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[conn]; ok {
		return true, ""
	}
	if len(l.conns) >= lim.MaxConnections {
		return false, fmt.Sprintf("the experiment has %d live connections, the most it may have (LIVE_MAX_CONNECTIONS)", len(l.conns))
	}
	if n := l.clients[client]; n >= lim.MaxPerClient {
		return false, fmt.Sprintf("this client has %d live connections to the experiment, the most one may have (LIVE_MAX_CONNECTIONS_PER_CLIENT)", n)
	}
	return false, ""
}

func (l *liveState) addLocked(conn, client string) {
	if old, ok := l.conns[conn]; ok {
		l.dropClientLocked(old)
	}
	l.conns[conn] = client
	l.clients[client]++
}

func (l *liveState) removeLocked(conn string) {
	if client, ok := l.conns[conn]; ok {
		delete(l.conns, conn)
		l.dropClientLocked(client)
	}
}

func (l *liveState) dropClientLocked(client string) {
	if l.clients[client] <= 1 {
		delete(l.clients, client)
	} else {
		l.clients[client]--
	}
}

// add counts an accepted connection.
func (l *liveState) add(conn, client string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(conn, client)
	if l.censusing {
		l.added[conn] = client
		delete(l.removed, conn)
	}
	return len(l.conns)
}

// remove stops counting a closed connection.
func (l *liveState) remove(conn string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removeLocked(conn)
	if l.censusing {
		l.removed[conn] = true
		delete(l.added, conn)
	}
	return len(l.conns)
}

// beginCensus starts recording changes for a census.
func (l *liveState) beginCensus() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.censusing, l.added, l.removed = true, map[string]string{}, map[string]bool{}
}

// endCensus replaces the connections by the census's, with the changes
// made while it ran on top; found is nil when the census failed (the
// counts stay as they were).
func (l *liveState) endCensus(found map[string]string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if found != nil {
		l.conns, l.clients = map[string]string{}, map[string]int{}
		for conn, client := range found {
			l.addLocked(conn, client)
		}
		for conn, client := range l.added {
			l.addLocked(conn, client)
		}
		for conn := range l.removed {
			l.removeLocked(conn)
		}
	}
	l.censusing, l.added, l.removed = false, nil, nil
	l.readyOnce.Do(func() { close(l.ready) })
	return len(l.conns)
}

// waitReady waits, at most within, for the first census to end.
func (l *liveState) waitReady(within time.Duration) {
	select {
	case <-l.ready:
		return
	default:
	}
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-l.ready:
	case <-t.C:
	}
}

// subscribeLive subscribes the actor to its live subject, into the
// mailbox, and starts counting its connections: a census now, then every
// CensusEvery while there are connections. The caller flushes.
func (a *actor) subscribeLive() error {
	if a.live == nil {
		a.live = newLiveState(a.slug)
	}
	sub, err := a.s.d.NC.QueueSubscribe(a.live.subject, actorapi.QueueGroup, a.enqueue)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", a.live.subject, err)
	}
	a.live.sub = sub
	go a.censusLoop()
	return nil
}

// stopLive ends the actor's live subscription; the connections stay open
// on the edges, whose events wait for the next holder.
func (a *actor) stopLive() {
	if a.live != nil && a.live.sub != nil {
		_ = a.live.sub.Unsubscribe()
		a.s.live.connections.DeleteLabelValues(a.slug)
	}
}

// drainLive removes the interest in the live subject, as drain does for
// calls, before an idle actor unloads (it has no connections then).
func (a *actor) drainLive() {
	if a.live != nil && a.live.sub != nil {
		_ = a.live.sub.Drain()
	}
}

// isLive reports whether m is a live event rather than a call.
func (a *actor) isLive(m *nats.Msg) bool { return a.live != nil && m.Subject == a.live.subject }

// censusLoop counts the connections when the actor is taken, then every
// CensusEvery while it has any, until the actor's loop ends.
func (a *actor) censusLoop() {
	tn := a.s.tune.Live
	every := tn.CensusEvery
	if every <= 0 {
		every = liveDefaults.CensusEvery
	}
	a.runCensus()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
			if a.live.count() > 0 {
				a.runCensus()
			}
		}
	}
}

// runCensus asks the edges for the connections they hold and makes them
// the actor's.
func (a *actor) runCensus() {
	l := a.live
	l.beginCensus()
	found, err := a.census()
	if err != nil {
		a.log.Warn("live census failed; the counts stay as they were", "err", err)
		found = nil
	}
	n := l.endCensus(found)
	a.s.live.censuses.WithLabelValues(a.slug).Inc()
	a.s.live.connections.WithLabelValues(a.slug).Set(float64(n))
}

// census gathers every edge's answer on LiveCensusSubject until none came
// for CensusQuiet, or CensusMax has passed. An edge that does not answer
// holds none of the connections any more (it is gone).
func (a *actor) census() (map[string]string, error) {
	tn := a.s.tune.Live
	quiet, most := tn.CensusQuiet, tn.CensusMax
	if quiet <= 0 {
		quiet = liveDefaults.CensusQuiet
	}
	if most <= 0 {
		most = liveDefaults.CensusMax
	}
	nc := a.s.d.NC
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe for the census: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx, span := otel.Tracer(tracerName).Start(context.Background(), "actor live census", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gnome.slug", a.slug), attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", actorapi.LiveCensusSubject(a.slug))))
	defer span.End()
	req := nats.NewMsg(actorapi.LiveCensusSubject(a.slug))
	req.Reply = inbox
	bus.Inject(ctx, req.Header, "")
	if err := nc.PublishMsg(req); err != nil {
		span.SetStatus(codes.Error, "publish")
		return nil, fmt.Errorf("ask for the census: %w", err)
	}
	found := map[string]string{}
	deadline := time.Now().Add(most)
	edges := 0
	for wait := most; ; wait = quiet {
		wait = min(wait, time.Until(deadline))
		if wait <= 0 {
			break
		}
		m, err := sub.NextMsg(wait)
		if err != nil {
			break
		}
		var c actorapi.LiveCensus
		if json.Unmarshal(m.Data, &c) != nil || !actorapi.ValidEdgeID(c.Edge) {
			continue
		}
		edges++
		for _, cc := range c.Conns {
			if actorapi.EdgeOfConn(cc.ID) != c.Edge || len(cc.Client) > maxClientKey {
				continue // not this edge's, or not a connection
			}
			found[cc.ID] = cc.Client
		}
	}
	span.SetAttributes(attribute.Int("gnome.live.edges", edges), attribute.Int("gnome.live.connections", len(found)))
	return found, nil
}

// serveLive hands one live event to the instance, in the loop, and
// answers the edge: an empty reply when taken, an error reply otherwise.
func (a *actor) serveLive(m *nats.Msg) {
	typ := m.Header.Get(actorapi.HeaderLive)
	conn := m.Header.Get(actorapi.HeaderLiveConn)
	client := m.Header.Get(actorapi.HeaderLiveClient)
	switch {
	case typ != actorapi.LiveOpen && typ != actorapi.LiveMessage && typ != actorapi.LiveClose:
		replyError(m, apierr.New(apierr.CodeBadRequest, "%s %q is not a live event type", actorapi.HeaderLive, typ))
		return
	case actorapi.EdgeOfConn(conn) == "":
		replyError(m, apierr.New(apierr.CodeBadRequest, "%s %q is not a connection ID", actorapi.HeaderLiveConn, conn))
		return
	case len(client) > maxClientKey:
		replyError(m, apierr.New(apierr.CodeBadRequest, "%s is over %d bytes", actorapi.HeaderLiveClient, maxClientKey))
		return
	}
	metrics := a.s.live
	if typ == actorapi.LiveClose {
		// Whatever the actor makes of it, and even if the edge stopped
		// waiting, the connection no longer counts.
		metrics.connections.WithLabelValues(a.slug).Set(float64(a.live.remove(conn)))
	}
	if d := callDeadline(m); !d.IsZero() && time.Now().After(d) {
		return // the edge stopped waiting; it asks again
	}
	if typ == actorapi.LiveOpen {
		a.live.waitReady(max(a.s.tune.Live.CensusMax, liveDefaults.CensusMax))
		counted, why := a.live.admits(conn, client, a.s.liveLimits())
		if why != "" {
			metrics.events.WithLabelValues(a.slug, typ, "too_many").Inc()
			replyError(m, apierr.New(apierr.CodeLiveTooMany, "%s", why))
			return
		}
		if counted {
			// The edge asks again, having lost the reply: the actor
			// accepted the connection already and hears of it once.
			_ = m.Respond(nil)
			return
		}
	}
	if a.inst == nil && a.startErr == nil && (a.stopStart != nil || time.Until(a.restartAt) <= time.Second) {
		a.hold(m)
		return
	}
	ctx, rid := bus.Extract(context.Background(), m.Header)
	ctx = telemetry.WithRequestID(ctx, rid)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "actor event live."+typ, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("gnome.slug", a.slug), attribute.Int("gnome.version", a.spec.version),
			attribute.String("gnome.live.conn", conn), attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject)))
	defer span.End()
	fail := func(outcome string, ae *apierr.Error) {
		metrics.events.WithLabelValues(a.slug, typ, outcome).Inc()
		span.SetStatus(codes.Error, string(ae.Code))
		replyError(m, ae)
	}
	if a.inst == nil {
		fail("failed", a.notServing())
		return
	}
	if !a.module.HasEvents() {
		fail("no_events", apierr.New(apierr.CodeNotFound, "the actor takes no live connections: its module does not export %s", actorhost.EventExport))
		return
	}
	a.host.beginCall()
	t := time.Now()
	err := a.inst.Event(ctx, m.Data)
	a.s.metrics.calls.WithLabelValues(a.slug).Observe(time.Since(t).Seconds())
	var refused *actorhost.EventError
	switch {
	case errors.As(err, &refused):
		code := apierr.Code(refused.Code)
		if !code.Known() || code.Status() < 400 || code.Status() >= 500 {
			code = apierr.CodeForbidden
		}
		if typ != actorapi.LiveOpen {
			// Refusing an open is the actor's answer; refusing a message
			// or a close is a failure of its own worth seeing.
			a.log.WarnContext(ctx, "actor refused a live event", "type", typ, "conn", conn, "code", refused.Code, "message", refused.Message)
		}
		fail("refused", apierr.New(code, "%s", refused.Message))
		return
	case err != nil:
		ae := callError(a.slug, a.spec.limits.Timeout, err)
		span.RecordError(err)
		a.log.WarnContext(ctx, "actor live event failed", "type", typ, "err", err)
		a.broke(err, false)
		fail("failed", ae)
		return
	}
	a.backoff = 0
	if typ == actorapi.LiveOpen {
		metrics.connections.WithLabelValues(a.slug).Set(float64(a.live.add(conn, client)))
	}
	metrics.events.WithLabelValues(a.slug, typ, "ok").Inc()
	if err := m.Respond(nil); err != nil {
		a.log.WarnContext(ctx, "live event reply failed", "err", err)
	}
}

// The host operations of live channels (docs/actors.md, sections 5 and 8).

// liveText is a JSON string of a request that remembers whether its bytes
// were UTF-8: encoding/json would quietly replace what is not.
type liveText struct {
	s     string
	valid bool
}

func (t *liveText) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &t.s); err != nil {
		return err
	}
	t.valid = utf8.Valid(b)
	return nil
}

// liveData checks a message's data, text or base64 bytes, against the
// limit, and returns it as it goes on the wire.
func (h *host) liveData(data *liveText, binary bool) (string, error) {
	if data == nil {
		return "", apierr.New(apierr.CodeBadRequest, "data is required").OnField("/data")
	}
	limit := h.s.liveLimits().MaxMessage
	if binary {
		if base64.StdEncoding.DecodedLen(len(data.s)) > limit+3 {
			return "", apierr.New(apierr.CodePayloadTooLarge, "the message is over %d bytes (LIVE_MAX_MESSAGE_BYTES)", limit).OnField("/data")
		}
		b, err := base64.StdEncoding.Strict().DecodeString(data.s)
		if err != nil {
			return "", apierr.New(apierr.CodeBadRequest, "data is not base64, as binary data must be").OnField("/data")
		}
		if len(b) > limit {
			return "", apierr.New(apierr.CodePayloadTooLarge, "the message is %d bytes, over the limit of %d (LIVE_MAX_MESSAGE_BYTES)", len(b), limit).OnField("/data")
		}
		return data.s, nil
	}
	if !data.valid {
		return "", apierr.New(apierr.CodeBadRequest, "data is not UTF-8 text: send bytes as binary").OnField("/data")
	}
	if len(data.s) > limit {
		return "", apierr.New(apierr.CodePayloadTooLarge, "the message is %d bytes, over the limit of %d (LIVE_MAX_MESSAGE_BYTES)", len(data.s), limit).OnField("/data")
	}
	return data.s, nil
}

// checkConn returns the edge holding conn, or bad_request on field.
func checkConn(conn, field string) (string, error) {
	edge := actorapi.EdgeOfConn(conn)
	if edge == "" {
		return "", apierr.New(apierr.CodeBadRequest, "%s %q is not a connection ID as live events give them", field, conn).OnField("/" + field)
	}
	return edge, nil
}

func checkRoom(room string) error {
	if !actorapi.ValidRoom(room) {
		return apierr.New(apierr.CodeBadRequest, "room %q is not a room name: 1 to 64 letters, digits, '_' or '-'", room).OnField("/room")
	}
	return nil
}

// publishLive publishes v on subject with the trace context of ctx.
func (h *host) publishLive(ctx context.Context, subject string, v any) error {
	m := nats.NewMsg(subject)
	m.Data, _ = json.Marshal(v)
	bus.Inject(ctx, m.Header, telemetry.RequestID(ctx))
	if err := h.s.d.NC.PublishMsg(m); err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the bus did not take the message")
	}
	return nil
}

func (h *host) liveSend(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Conn   string    `json:"conn"`
		Data   *liveText `json:"data"`
		Binary bool      `json:"binary"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	edge, err := checkConn(r.Conn, "conn")
	if err != nil {
		return nil, err
	}
	data, err := h.liveData(r.Data, r.Binary)
	if err != nil {
		return nil, err
	}
	cmd := actorapi.LiveCommand{Op: actorapi.LiveSend, Conn: r.Conn, Data: data, Binary: r.Binary}
	if err := h.publishLive(ctx, actorapi.LiveEdgeSubject(h.slug, edge), cmd); err != nil {
		return nil, err
	}
	h.s.live.messages.WithLabelValues(h.slug, "send").Inc()
	return json.RawMessage(`{}`), nil
}

func (h *host) liveClose(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Conn   string   `json:"conn"`
		Code   int      `json:"code"`
		Reason liveText `json:"reason"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	edge, err := checkConn(r.Conn, "conn")
	if err != nil {
		return nil, err
	}
	if r.Code == 0 {
		r.Code = actorapi.CloseNormal
	}
	if !actorapi.ValidActorCloseCode(r.Code) {
		return nil, apierr.New(apierr.CodeBadRequest, "code %d is not one an actor may close with: 1000, or 3000 to 4899", r.Code).OnField("/code")
	}
	if len(r.Reason.s) > actorapi.MaxCloseReason || (r.Reason.s != "" && !r.Reason.valid) {
		return nil, apierr.New(apierr.CodeBadRequest, "reason must be UTF-8 text of at most %d bytes", actorapi.MaxCloseReason).OnField("/reason")
	}
	cmd := actorapi.LiveCommand{Op: actorapi.LiveCloseConn, Conn: r.Conn, Code: r.Code, Reason: r.Reason.s}
	if err := h.publishLive(ctx, actorapi.LiveEdgeSubject(h.slug, edge), cmd); err != nil {
		return nil, err
	}
	return json.RawMessage(`{}`), nil
}

func (h *host) roomJoin(ctx context.Context, req []byte) (any, error) {
	return h.roomMembership(ctx, actorapi.LiveJoin, req)
}

func (h *host) roomLeave(ctx context.Context, req []byte) (any, error) {
	return h.roomMembership(ctx, actorapi.LiveLeave, req)
}

// roomMembership asks the edge holding the connection to join it to a
// room or take it out. It is a request, not a publish: the edge replies
// once it subscribed to the room and flushed, so that a publish right
// after reaches the new member.
func (h *host) roomMembership(ctx context.Context, op string, req []byte) (any, error) {
	var r struct {
		Conn string `json:"conn"`
		Room string `json:"room"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	edge, err := checkConn(r.Conn, "conn")
	if err != nil {
		return nil, err
	}
	if err := checkRoom(r.Room); err != nil {
		return nil, err
	}
	wait := h.s.tune.Live.Join
	if wait <= 0 {
		wait = liveDefaults.Join
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m := nats.NewMsg(actorapi.LiveEdgeSubject(h.slug, edge))
	m.Data, _ = json.Marshal(actorapi.LiveCommand{Op: op, Conn: r.Conn, Room: r.Room})
	bus.Inject(ctx, m.Header, telemetry.RequestID(ctx))
	res, err := h.s.d.NC.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		// No edge of that name holds the experiment's connections.
		return nil, apierr.New(apierr.CodeLiveConnectionGone, "the connection %s is gone: its edge is not there", r.Conn)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, apierr.Wrap(apierr.CodeTimeout, err, fmt.Sprintf("the edge holding %s did not answer within %v", r.Conn, wait))
	case err != nil:
		return nil, apierr.Wrap(apierr.CodeUnavailable, err, "the edge holding the connection could not be asked")
	}
	if code := apierr.Code(res.Header.Get(bus.HeaderErrorCode)); code != "" {
		if !code.Known() {
			code = apierr.CodeUnavailable
		}
		msg := res.Header.Get(bus.HeaderError)
		if msg == "" {
			msg = "the edge refused the " + op
		}
		return nil, apierr.New(code, "%s", msg)
	}
	return json.RawMessage(`{}`), nil
}

func (h *host) roomPublish(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Room   string    `json:"room"`
		Data   *liveText `json:"data"`
		Binary bool      `json:"binary"`
		Except string    `json:"except"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	if err := checkRoom(r.Room); err != nil {
		return nil, err
	}
	if r.Except != "" {
		if _, err := checkConn(r.Except, "except"); err != nil {
			return nil, err
		}
	}
	data, err := h.liveData(r.Data, r.Binary)
	if err != nil {
		return nil, err
	}
	msg := actorapi.LiveRoomMessage{Data: data, Binary: r.Binary, Except: r.Except}
	if err := h.publishLive(ctx, actorapi.LiveRoomSubject(h.slug, r.Room), msg); err != nil {
		return nil, err
	}
	h.s.live.messages.WithLabelValues(h.slug, "publish").Inc()
	return json.RawMessage(`{}`), nil
}
