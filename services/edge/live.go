package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// Live channels (docs/actors.md, section 8): the edge holds browsers'
// WebSockets and event streams, tells the experiment's actor of each
// connection's open, messages and close (one request per event, in order,
// on actorapi.LiveSubject), and carries out what the actor asks through its
// host operations: a message to one connection, a close, a room joined or
// left (commands on this edge's subject), a message to a room (on the
// room's subject, which every edge holding a member follows). The actor
// holds no connection, so connections stay open while it restarts or moves
// to another worker; their events wait for it (liveHold) and are refused
// after that with a close code the browser helper reconnects on.
//
// Connections a hub holds are bounded by the worker that counts them for
// the whole cluster (LIVE_MAX_CONNECTIONS, LIVE_MAX_CONNECTIONS_PER_CLIENT);
// the hub bounds what is per connection: message size, rooms, and the send
// queue, whose reader is closed (CloseSlowReader) rather than buffered
// without limit.

// liveHold bounds how long an event waits for an actor that is restarting,
// waking or moving to another worker.
const liveHold = 10 * time.Second

// Timing of a connection's upkeep.
const (
	// livePing is how often a WebSocket is pinged; a client that answers
	// nothing (no pong, no message) for livePongWait is gone.
	livePing     = 30 * time.Second
	livePongWait = 75 * time.Second
	// liveWriteWait bounds one write to a client: a reader that takes
	// longer is as slow as one whose queue filled.
	liveWriteWait = 10 * time.Second
	// liveCloseWait is how long a close handshake may take.
	liveCloseWait = 2 * time.Second
	// liveSweep is how often connections are checked against their
	// experiment (still running an actor) and session (not ended).
	liveSweep = 5 * time.Second
	// liveEventPing is the comment an event stream gets when idle, so that
	// proxies keep it.
	liveEventPing = 25 * time.Second
)

// liveMaxMessage caps LIVE_MAX_MESSAGE_BYTES below what the bus carries
// once base64 and the envelope are added.
const liveMaxMessage = 512 << 10

// liveHub is one edge's live connections.
type liveHub struct {
	nc      *nats.Conn
	log     *slog.Logger
	edge    string
	limits  config.LiveLimits
	actors  *actorsAPI
	catalog *catalog
	id      *identity
	origins *origins
	metrics *liveMetrics

	upgrader websocket.FastHTTPUpgrader

	mu      sync.Mutex
	conns   map[string]*liveConn
	rooms   map[string]*liveRoom // by slug + "/" + room
	stopped bool

	subs []*nats.Subscription
	wg   sync.WaitGroup
	quit chan struct{}
}

// liveRoom is a room with members on this edge, and the subscription that
// brings its messages while it has any.
type liveRoom struct {
	sub     *nats.Subscription
	members map[*liveConn]struct{}
}

// liveOut is one message waiting to be written to a connection; queues
// hold pointers (an idle connection's queue is 8 bytes a slot), and a
// room's message is one value for every member.
type liveOut struct {
	data   []byte
	binary bool
}

// liveConn is one connection: a WebSocket or an event stream.
type liveConn struct {
	hub    *liveHub
	id     string
	slug   string
	client string
	info   actorapi.LiveConn
	claims *authn.Claims
	// rooms is guarded by hub.mu.
	rooms map[string]bool

	out chan *liveOut
	// done is closed when the connection starts closing; code, reason and
	// by say how (set once, before done closes).
	done   chan struct{}
	once   sync.Once
	code   int
	reason string
	by     string
	// accepted is set once the actor took the open: only then is its
	// close an event.
	accepted atomic.Bool
}

// newLiveHub starts the hub of the edge: it follows the commands for its
// connections and the censuses, and sweeps connections whose experiment or
// session ended.
func newLiveHub(nc *nats.Conn, log *slog.Logger, limits config.LiveLimits, actors *actorsAPI, cat *catalog, id *identity, o *origins, reg prometheus.Registerer) (*liveHub, error) {
	if limits.MaxMessage <= 0 || limits.MaxMessage > liveMaxMessage {
		limits.MaxMessage = min(max(limits.MaxMessage, 64<<10), liveMaxMessage)
	}
	limits.SendQueue = max(limits.SendQueue, 1)
	limits.MaxRooms = max(limits.MaxRooms, 1)
	h := &liveHub{
		nc: nc, log: log, edge: newEdgeID(), limits: limits, actors: actors, catalog: cat, id: id, origins: o,
		metrics: newLiveMetrics(reg),
		conns:   map[string]*liveConn{}, rooms: map[string]*liveRoom{}, quit: make(chan struct{}),
		upgrader: websocket.FastHTTPUpgrader{
			ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{},
			// The origin was checked before the actor was asked (sameOrigin).
			CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
		},
	}
	for subject, handler := range map[string]nats.MsgHandler{
		"gnome.live.*.edge." + h.edge: h.command,
		"gnome.live.*.census":         h.census,
	} {
		sub, err := nc.Subscribe(subject, handler)
		if err != nil {
			h.unsubscribe()
			return nil, err
		}
		h.subs = append(h.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		h.unsubscribe()
		return nil, err
	}
	h.wg.Add(1)
	go h.sweep()
	return h, nil
}

func (h *liveHub) unsubscribe() {
	for _, s := range h.subs {
		_ = s.Unsubscribe()
	}
}

// newEdgeID names this edge in connection IDs and subjects.
func newEdgeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(hex.EncodeToString(b[:]))
}

// newConnID is a connection ID of this edge: unguessable, so that one
// experiment's actor cannot name another's connections by chance (and the
// edge checks the slug besides).
func (h *liveHub) newConnID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return h.edge + "-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// stop closes every connection (1001, going away) and waits for their
// close events within ctx.
func (h *liveHub) stop(ctx context.Context) {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.stopped = true
	for _, lc := range h.conns {
		lc.shutdown(actorapi.CloseGoingAway, "the server is restarting", actorapi.LiveByPlatform)
	}
	h.mu.Unlock()
	close(h.quit)
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	h.unsubscribe()
}

// --- The routes ---

// websocket answers GET /experiments/{slug}/ws/{path...}: the actor is
// asked first (an open it refuses is this request's error), then the
// connection is upgraded and served until either side closes it.
func (h *liveHub) websocket(c *fiber.Ctx) error {
	e := entryOf(c)
	ctx := c.Context()
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		c.Set(fiber.HeaderUpgrade, "websocket")
		return apierr.New(apierr.CodeBadRequest, "this route takes WebSocket connections only (GET with Connection: Upgrade and Upgrade: websocket)")
	}
	if v := c.Get("Sec-WebSocket-Version"); v != "13" {
		c.Set("Sec-WebSocket-Version", "13")
		return apierr.New(apierr.CodeBadRequest, "this server speaks WebSocket version 13, not %q", v)
	}
	if k, err := base64.StdEncoding.DecodeString(c.Get("Sec-WebSocket-Key")); err != nil || len(k) != 16 {
		return apierr.New(apierr.CodeBadRequest, "the Sec-WebSocket-Key header is missing or malformed")
	}
	if err := h.sameOrigin(c, e.cfg.Slug); err != nil {
		return err
	}
	path := strings.TrimPrefix(c.Path(), "/experiments/"+e.cfg.Slug+"/ws")
	if path == "" {
		path = "/"
	}
	lc, err := h.open(c, actorapi.ConnWebSocket, path, "")
	if err != nil {
		return err
	}
	if err := h.upgrader.Upgrade(ctx, func(ws *websocket.Conn) { lc.serveWS(ws) }); err != nil {
		lc.shutdown(actorapi.ClosePolicy, "the WebSocket handshake failed", actorapi.LiveByPlatform)
		go lc.finish()
		return apierr.Wrap(apierr.CodeBadRequest, err, "the WebSocket handshake failed")
	}
	return nil
}

// events answers GET /experiments/{slug}/events/{room}: an event stream of
// the room's messages (and of those the actor sends to the connection).
func (h *liveHub) events(c *fiber.Ctx) error {
	e := entryOf(c)
	room := c.Params("room")
	if !actorapi.ValidRoom(room) {
		return apierr.New(apierr.CodeNotFound, "no room %q: a room's name is 1 to 64 letters, digits, '_' or '-'", room)
	}
	if err := h.sameOrigin(c, e.cfg.Slug); err != nil {
		return err
	}
	lc, err := h.open(c, actorapi.ConnSSE, "/", room)
	if err != nil {
		return err
	}
	// The chain's headers (request ID, security headers) go out with the
	// stream's own; the response is written by hand after the hijack, as
	// a body that lasts until the connection closes.
	head := []byte("HTTP/1.1 200 OK\r\n")
	c.Response().Header.VisitAll(func(k, v []byte) {
		switch strings.ToLower(string(k)) {
		case "content-type", "content-length", "connection", "transfer-encoding", "date":
			return
		}
		head = append(append(append(append(head, k...), ": "...), v...), "\r\n"...)
	})
	head = append(head, "Content-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"...)
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(nc net.Conn) { lc.serveSSE(nc, head) })
	return nil
}

// sameOrigin refuses a connection a page of another origin opens: a
// browser sends Origin with every WebSocket handshake and cross-origin
// event stream, and Sec-Fetch-Site with both. Scripts outside browsers send
// neither and are told apart by their credentials alone.
func (h *liveHub) sameOrigin(c *fiber.Ctx, slug string) error {
	if o := c.Get(fiber.HeaderOrigin); o != "" && o != h.origins.experiment(slug) {
		return apierr.New(apierr.CodeForbidden, "a live connection to this experiment may only be opened by its own pages, not from %s", o)
	}
	if s := c.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return apierr.New(apierr.CodeForbidden, "a live connection to this experiment may only be opened by its own pages (Sec-Fetch-Site: %s)", s)
	}
	return nil
}

// open registers a connection and asks the actor to take it.
func (h *liveHub) open(c *fiber.Ctx, kind, path, room string) (*liveConn, error) {
	e := entryOf(c)
	if !runsActor(e) {
		return nil, apierr.New(apierr.CodeUnavailable, "experiment %q has no actor running", e.cfg.Slug)
	}
	caller := callerOf(c)
	lc := &liveConn{
		hub: h, id: h.newConnID(), slug: e.cfg.Slug, client: liveClient(c, caller), claims: claimsOf(c),
		rooms: map[string]bool{}, out: make(chan *liveOut, h.limits.SendQueue), done: make(chan struct{}),
	}
	lc.info = actorapi.LiveConn{
		ID: lc.id, Kind: kind, Path: path, Query: string(c.Request().URI().QueryString()), Room: room,
		Caller: caller, RequestID: httpx.GetRequestID(c),
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil, apierr.New(apierr.CodeUnavailable, "the server is restarting; connect again")
	}
	h.conns[lc.id] = lc
	h.mu.Unlock()
	if room != "" {
		// An event stream follows its room from the moment the actor
		// takes it; messages before that wait in its queue.
		if err := h.join(lc, room); err != nil {
			h.remove(lc)
			return nil, err
		}
	}
	if err := h.deliver(c.UserContext(), lc, actorapi.LiveEvent{Type: actorapi.LiveOpen, Conn: lc.info}); err != nil {
		h.remove(lc)
		ae := apierr.From(err)
		switch {
		case ae.Code == apierr.CodeUnavailable, ae.Code == apierr.CodeTimeout, ae.Code == apierr.CodeBadGateway:
		case ae.Code.Known() && ae.Code.Status() >= 400 && ae.Code.Status() < 500:
		default:
			// A code of the actor's own the catalogue does not know (or
			// one that is no refusal): the open is refused all the same.
			ae = apierr.New(apierr.CodeForbidden, "%s", ae.Message)
		}
		return nil, ae
	}
	lc.accepted.Store(true)
	h.metrics.conns.WithLabelValues(kind).Inc()
	h.metrics.opened.WithLabelValues(kind).Inc()
	h.wg.Add(1)
	return lc, nil
}

// liveClient is what the per-client bound counts by: the caller the
// platform knows, else a digest of the client's address.
func liveClient(c *fiber.Ctx, caller actorapi.Caller) string {
	if caller.ID != "" {
		return caller.Kind + ":" + caller.ID
	}
	sum := sha256.Sum256([]byte(httpx.ClientIP(c).String()))
	return "ip:" + hex.EncodeToString(sum[:12])
}

// --- Events to the actor ---

// deliver sends one event of lc to the actor and waits for its answer:
// nil when the actor took it, its refusal, or unavailable when it could
// not be reached within liveHold (an idle actor is woken meanwhile, one
// restarting or moving is waited for).
func (h *liveHub) deliver(ctx context.Context, lc *liveConn, ev actorapi.LiveEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	e, err := h.catalog.get(ctx, lc.slug)
	if err != nil || e == nil || !runsActor(e) {
		return apierr.New(apierr.CodeUnavailable, "experiment %q has no actor running", lc.slug)
	}
	timeout := actorapi.Timeout(e.manifest.Actor) + callSlack
	until := time.Now().Add(liveHold)
	wait := 50 * time.Millisecond
	for {
		err := h.request(ctx, e, lc, ev.Type, data, timeout)
		ae := apierr.From(err)
		if err == nil || (ae.Code != apierr.CodeUnavailable && ae.Code != apierr.CodeTimeout) {
			return err
		}
		pause := wait
		if ae.RetryAfter > 0 {
			pause = min(time.Duration(ae.RetryAfter)*time.Second, 2*time.Second)
		}
		if time.Now().Add(pause).After(until) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-h.quit:
			// The edge is stopping: each connection's close is tried once.
			t.Stop()
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

// request is one try of an event.
func (h *liveHub) request(ctx context.Context, e *entry, lc *liveConn, typ string, data []byte, timeout time.Duration) (err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	subject := actorapi.LiveSubject(lc.slug)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "live "+typ, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gnome.slug", lc.slug), attribute.String("gnome.live.conn", lc.id),
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	msg := nats.NewMsg(subject)
	msg.Data = data
	bus.Inject(ctx, msg.Header, lc.info.RequestID)
	deadline, _ := ctx.Deadline()
	msg.Header.Set(actorapi.HeaderDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	msg.Header.Set(actorapi.HeaderLive, typ)
	msg.Header.Set(actorapi.HeaderLiveConn, lc.id)
	msg.Header.Set(actorapi.HeaderLiveClient, lc.client)
	reply, err := h.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		reply, err = h.actors.wakeAndCall(ctx, e, msg, time.Until(deadline))
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		ae := apierr.New(apierr.CodeUnavailable, "the actor of %q is not running", lc.slug)
		ae.RetryAfter = 1
		return ae
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return apierr.Wrap(apierr.CodeTimeout, err, "the actor of "+lc.slug+" did not answer in time")
	case err != nil:
		return apierr.Wrap(apierr.CodeUnavailable, err, "the actor of "+lc.slug+" could not be reached")
	}
	if ae := replyError(reply); ae != nil {
		return ae
	}
	return nil
}

// --- Connections ---

// enqueue queues a message for lc's writer; a full queue closes lc as a
// slow reader.
func (lc *liveConn) enqueue(m *liveOut) {
	select {
	case <-lc.done:
		return
	default:
	}
	select {
	case lc.out <- m:
	default:
		lc.hub.metrics.slow.Inc()
		lc.shutdown(actorapi.CloseSlowReader, "too slow: the connection's send queue was full", actorapi.LiveByPlatform)
	}
}

// shutdown starts closing lc; the first reason stays.
func (lc *liveConn) shutdown(code int, reason, by string) {
	lc.once.Do(func() {
		lc.code, lc.reason, lc.by = code, reason, by
		close(lc.done)
	})
}

// finish runs once the connection's goroutines have ended: it leaves the
// hub and tells the actor.
func (lc *liveConn) finish() {
	h := lc.hub
	h.remove(lc)
	if !lc.accepted.Load() {
		return
	}
	defer h.wg.Done()
	h.metrics.conns.WithLabelValues(lc.info.Kind).Dec()
	h.metrics.closed.WithLabelValues(strconv.Itoa(lc.code)).Inc()
	ctx, cancel := context.WithTimeout(context.Background(), liveHold+callSlack)
	defer cancel()
	ev := actorapi.LiveEvent{Type: actorapi.LiveClose, Conn: lc.info, Code: lc.code, Reason: lc.reason, By: lc.by}
	if err := h.deliver(ctx, lc, ev); err != nil {
		h.log.Warn("live close not told to the actor", "slug", lc.slug, "conn", lc.id, "err", err)
	}
}

// remove takes lc out of the hub and its rooms.
func (h *liveHub) remove(lc *liveConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, lc.id)
	for room := range lc.rooms {
		h.leaveLocked(lc, room)
	}
}

// serveWS runs a WebSocket until it closes: this goroutine reads and hands
// messages to the actor one at a time (so a client cannot send faster than
// the actor takes them), another writes.
func (lc *liveConn) serveWS(ws *websocket.Conn) {
	h := lc.hub
	defer lc.finish()
	ws.SetReadLimit(int64(h.limits.MaxMessage))
	_ = ws.SetReadDeadline(time.Now().Add(livePongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(livePongWait)) })
	// The close frame is answered by the writer, with the code it ends on.
	ws.SetCloseHandler(func(code int, text string) error {
		lc.shutdown(code, text, actorapi.LiveByClient)
		return nil
	})
	written := make(chan struct{})
	go func() {
		defer close(written)
		lc.writeWS(ws)
	}()
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				lc.shutdown(actorapi.CloseTooBig, "a message over "+strconv.Itoa(h.limits.MaxMessage)+" bytes", actorapi.LiveByPlatform)
			default:
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					lc.shutdown(ce.Code, ce.Text, actorapi.LiveByClient)
				} else {
					lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
				}
			}
			break
		}
		_ = ws.SetReadDeadline(time.Now().Add(livePongWait))
		h.metrics.messages.WithLabelValues("in").Inc()
		ev := actorapi.LiveEvent{Type: actorapi.LiveMessage, Conn: lc.info}
		if typ == websocket.BinaryMessage {
			ev.Data, ev.Binary = base64.StdEncoding.EncodeToString(data), true
		} else {
			ev.Data = string(data)
		}
		if err := h.deliver(context.Background(), lc, ev); err != nil {
			if ae := apierr.From(err); ae.Code == apierr.CodeUnavailable || ae.Code == apierr.CodeTimeout {
				lc.shutdown(actorapi.CloseTryLater, "the experiment's actor is unavailable; connect again", actorapi.LiveByPlatform)
				break
			}
			// The actor refused the message (its handler failed): the
			// worker logged it; the connection goes on.
		}
		select {
		case <-lc.done:
		default:
			continue
		}
		break
	}
	lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
	// The writer sends the close frame; the client's answer (or the wait
	// for it) ends the handshake.
	<-written
	_ = ws.Close()
}

// writeWS writes lc's queue, pings, and at the end the close frame: after
// the messages already queued when the actor closes, at once when the
// platform does.
func (lc *liveConn) writeWS(ws *websocket.Conn) {
	h := lc.hub
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	write := func(m *liveOut) bool {
		_ = ws.SetWriteDeadline(time.Now().Add(liveWriteWait))
		typ := websocket.TextMessage
		if m.binary {
			typ = websocket.BinaryMessage
		}
		if err := ws.WriteMessage(typ, m.data); err != nil {
			lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
			return false
		}
		h.metrics.messages.WithLabelValues("out").Inc()
		return true
	}
	for {
		select {
		case m := <-lc.out:
			if !write(m) {
				_ = ws.NetConn().SetReadDeadline(time.Now())
				return
			}
		case <-ping.C:
			if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(liveWriteWait)); err != nil {
				lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
				_ = ws.NetConn().SetReadDeadline(time.Now())
				return
			}
		case <-lc.done:
			if lc.by == actorapi.LiveByActor {
				for drained := false; !drained; {
					select {
					case m := <-lc.out:
						drained = !write(m)
					default:
						drained = true
					}
				}
			}
			if lc.code != websocket.CloseAbnormalClosure && lc.code != websocket.CloseNoStatusReceived {
				msg := websocket.FormatCloseMessage(lc.code, lc.reason)
				_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(liveCloseWait))
			}
			// The reader ends on the client's close frame or at this
			// deadline.
			_ = ws.NetConn().SetReadDeadline(time.Now().Add(liveCloseWait))
			return
		}
	}
}

// serveSSE runs an event stream until it closes: one goroutine writes,
// another notices the client leaving (a read that ends).
func (lc *liveConn) serveSSE(conn net.Conn, head []byte) {
	h := lc.hub
	defer lc.finish()
	defer func() { _ = conn.Close() }()
	_ = conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
	// retry: how long EventSource waits before it connects again.
	if _, err := conn.Write(append(head, "retry: 2000\n: connected\n\n"...)); err != nil {
		lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
		return
	}
	go func() {
		var b [256]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				lc.shutdown(actorapi.CloseGoingAway, "the client left", actorapi.LiveByClient)
				return
			}
		}
	}()
	ping := time.NewTicker(liveEventPing)
	defer ping.Stop()
	var seq int64
	write := func(b []byte) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
		if _, err := conn.Write(b); err != nil {
			lc.shutdown(websocket.CloseAbnormalClosure, "", actorapi.LiveByClient)
			return false
		}
		return true
	}
	for {
		select {
		case m := <-lc.out:
			seq++
			if !write(sseEvent(seq, m)) {
				return
			}
			h.metrics.messages.WithLabelValues("out").Inc()
		case <-ping.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		case <-lc.done:
			if lc.by == actorapi.LiveByActor {
				for drained := false; !drained; {
					select {
					case m := <-lc.out:
						seq++
						drained = !write(sseEvent(seq, m))
					default:
						drained = true
					}
				}
			}
			if lc.by != actorapi.LiveByClient {
				body, _ := json.Marshal(map[string]any{"code": lc.code, "reason": lc.reason})
				write(append(append([]byte("event: close\ndata: "), body...), "\n\n"...))
			}
			return
		}
	}
}

// sseEvent is one message as an event: text as data lines (one per line
// of it), bytes as base64 in an event named binary.
func sseEvent(seq int64, m *liveOut) []byte {
	b := append([]byte("id: "), strconv.FormatInt(seq, 10)...)
	b = append(b, '\n')
	if m.binary {
		b = append(b, "event: binary\ndata: "...)
		b = append(b, base64.StdEncoding.EncodeToString(m.data)...)
		return append(b, "\n\n"...)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(m.data), "\r\n", "\n"), "\r", "\n")
	for _, line := range strings.Split(text, "\n") {
		b = append(append(append(b, "data: "...), line...), '\n')
	}
	return append(b, '\n')
}

// --- Rooms ---

// join puts lc into room, subscribing this edge to the room's messages if
// it is the first member here; the subscription has reached the server
// before join returns, so that a message published after the actor's
// join is answered reaches lc.
func (h *liveHub) join(lc *liveConn, room string) error {
	h.mu.Lock()
	select {
	case <-lc.done:
		h.mu.Unlock()
		return apierr.New(apierr.CodeLiveConnectionGone, "connection %s is closed", lc.id)
	default:
	}
	if lc.rooms[room] {
		h.mu.Unlock()
		return nil
	}
	if len(lc.rooms) >= h.limits.MaxRooms {
		h.mu.Unlock()
		return apierr.New(apierr.CodeLiveTooMany, "connection %s is in %d rooms already, the most one may be in (LIVE_MAX_ROOMS_PER_CONNECTION)", lc.id, h.limits.MaxRooms)
	}
	key := lc.slug + "/" + room
	r := h.rooms[key]
	if r == nil {
		r = &liveRoom{members: map[*liveConn]struct{}{}}
		sub, err := h.nc.Subscribe(actorapi.LiveRoomSubject(lc.slug, room), func(m *nats.Msg) { h.roomMessage(r, m) })
		if err != nil {
			h.mu.Unlock()
			return apierr.Wrap(apierr.CodeUnavailable, err, "the room could not be followed")
		}
		r.sub = sub
		h.rooms[key] = r
	}
	r.members[lc] = struct{}{}
	lc.rooms[room] = true
	h.mu.Unlock()
	if err := h.nc.FlushTimeout(2 * time.Second); err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the room could not be followed")
	}
	return nil
}

// leave takes lc out of room.
func (h *liveHub) leave(lc *liveConn, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leaveLocked(lc, room)
}

func (h *liveHub) leaveLocked(lc *liveConn, room string) {
	if !lc.rooms[room] {
		return
	}
	delete(lc.rooms, room)
	key := lc.slug + "/" + room
	r := h.rooms[key]
	if r == nil {
		return
	}
	delete(r.members, lc)
	if len(r.members) == 0 {
		_ = r.sub.Unsubscribe()
		delete(h.rooms, key)
	}
}

// roomMessage hands a room's message to its members on this edge.
func (h *liveHub) roomMessage(r *liveRoom, m *nats.Msg) {
	var rm actorapi.LiveRoomMessage
	if err := json.Unmarshal(m.Data, &rm); err != nil {
		h.log.Warn("live room message malformed", "subject", m.Subject, "err", err)
		return
	}
	out, ok := decodeLiveData(rm.Data, rm.Binary)
	if !ok {
		h.log.Warn("live room message malformed", "subject", m.Subject)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for lc := range r.members {
		if lc.id != rm.Except {
			lc.enqueue(out)
		}
	}
}

// decodeLiveData is a message of a command or a room: text as it is,
// bytes from base64. A room's message is shared by its members' queues.
func decodeLiveData(data string, binary bool) (*liveOut, bool) {
	if !binary {
		return &liveOut{data: []byte(data)}, utf8.ValidString(data)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	return &liveOut{data: b, binary: true}, err == nil
}

// --- Commands from actors ---

// command carries out an actor's command about one of this edge's
// connections. The subject's slug must be the connection's: an actor can
// only ever name its own experiment's connections.
func (h *liveHub) command(m *nats.Msg) {
	slug := subjectToken(m.Subject, 2)
	var cmd actorapi.LiveCommand
	if err := json.Unmarshal(m.Data, &cmd); err != nil {
		respondLiveError(m, apierr.New(apierr.CodeBadRequest, "the command is not valid JSON: %v", err))
		return
	}
	h.mu.Lock()
	lc := h.conns[cmd.Conn]
	h.mu.Unlock()
	if lc == nil || lc.slug != slug {
		respondLiveError(m, apierr.New(apierr.CodeLiveConnectionGone, "connection %q is closed or not one of %s's", cmd.Conn, slug))
		return
	}
	switch cmd.Op {
	case actorapi.LiveSend:
		out, ok := decodeLiveData(cmd.Data, cmd.Binary)
		if !ok || len(out.data) > h.limits.MaxMessage {
			respondLiveError(m, apierr.New(apierr.CodeBadRequest, "the message is malformed or over %d bytes", h.limits.MaxMessage))
			return
		}
		lc.enqueue(out)
	case actorapi.LiveCloseConn:
		code := cmd.Code
		if code == 0 {
			code = actorapi.CloseNormal
		}
		if !actorapi.ValidActorCloseCode(code) || len(cmd.Reason) > actorapi.MaxCloseReason || !utf8.ValidString(cmd.Reason) {
			respondLiveError(m, apierr.New(apierr.CodeBadRequest, "close code %d or its reason is not one an actor may send", cmd.Code))
			return
		}
		lc.shutdown(code, cmd.Reason, actorapi.LiveByActor)
	case actorapi.LiveJoin:
		if !actorapi.ValidRoom(cmd.Room) {
			respondLiveError(m, apierr.New(apierr.CodeBadRequest, "%q is not a room's name", cmd.Room))
			return
		}
		if err := h.join(lc, cmd.Room); err != nil {
			respondLiveError(m, apierr.From(err))
			return
		}
	case actorapi.LiveLeave:
		h.leave(lc, cmd.Room)
	default:
		respondLiveError(m, apierr.New(apierr.CodeBadRequest, "unknown command %q", cmd.Op))
		return
	}
	if m.Reply != "" {
		_ = m.Respond(nil) // an empty reply: done
	}
}

// census answers a worker that takes an actor over: this edge's
// connections of its experiment. An edge without any stays silent.
func (h *liveHub) census(m *nats.Msg) {
	slug := subjectToken(m.Subject, 2)
	res := actorapi.LiveCensus{Edge: h.edge, Conns: []actorapi.LiveCensusConn{}}
	h.mu.Lock()
	for _, lc := range h.conns {
		if lc.slug == slug && lc.accepted.Load() {
			select {
			case <-lc.done:
				continue
			default:
			}
			res.Conns = append(res.Conns, actorapi.LiveCensusConn{ID: lc.id, Client: lc.client})
		}
	}
	h.mu.Unlock()
	if len(res.Conns) == 0 || m.Reply == "" {
		return
	}
	data, _ := json.Marshal(res)
	_ = m.Respond(data)
}

// sweep closes connections whose experiment stopped running an actor
// (4900) or whose session ended (4902).
func (h *liveHub) sweep() {
	defer h.wg.Done()
	t := time.NewTicker(liveSweep)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		h.mu.Lock()
		conns := make([]*liveConn, 0, len(h.conns))
		for _, lc := range h.conns {
			if lc.accepted.Load() {
				conns = append(conns, lc)
			}
		}
		h.mu.Unlock()
		now := time.Now()
		running := map[string]bool{}
		for _, lc := range conns {
			run, seen := running[lc.slug]
			if !seen {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				e, err := h.catalog.get(ctx, lc.slug)
				cancel()
				run = err != nil || (e != nil && runsActor(e)) // a failed read closes nothing
				running[lc.slug] = run
			}
			switch {
			case !run:
				lc.shutdown(actorapi.CloseStopped, "the experiment no longer takes live connections", actorapi.LiveByPlatform)
			case lc.claims != nil && !h.id.verifier.StillValid(lc.claims, now):
				lc.shutdown(actorapi.CloseSessionEnds, "the session ended", actorapi.LiveByPlatform)
			}
		}
	}
}

// respondLiveError answers a command with the error reply bus services
// use, when it was a request.
func respondLiveError(m *nats.Msg, ae *apierr.Error) {
	if m.Reply == "" {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(bus.HeaderErrorCode, string(ae.Code))
	r.Header.Set(bus.HeaderError, ae.Message)
	r.Data, _ = json.Marshal(ae.ToBody("").Error)
	_ = m.RespondMsg(r)
}

// subjectToken is the i-th dot-separated token of subject.
func subjectToken(subject string, i int) string {
	parts := strings.Split(subject, ".")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

// script serves the browser helper, /_gnome/live.js.
func (h *liveHub) script(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(liveScript)
}

// liveMetrics are the hub's Prometheus metrics.
type liveMetrics struct {
	conns    *prometheus.GaugeVec
	opened   *prometheus.CounterVec
	closed   *prometheus.CounterVec
	messages *prometheus.CounterVec
	slow     prometheus.Counter
}

func newLiveMetrics(reg prometheus.Registerer) *liveMetrics {
	m := &liveMetrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gnome_edge_live_connections",
			Help: "Live connections this edge holds, by kind (websocket, sse)."}, []string{"kind"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gnome_edge_live_opened_total",
			Help: "Live connections opened (taken by the actor), by kind."}, []string{"kind"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gnome_edge_live_closed_total",
			Help: "Live connections closed, by close code."}, []string{"code"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gnome_edge_live_messages_total",
			Help: "Live messages, in (from clients) and out (to clients)."}, []string{"direction"}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{Name: "gnome_edge_live_slow_readers_total",
			Help: "Live connections closed because their send queue was full."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.opened, m.closed, m.messages, m.slow} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err)
				}
			}
		}
	}
	return m
}

// liveScript is the browser helper (pages/live.js): connecting,
// reconnecting and rooms, in plain JavaScript.
//
//go:embed pages/live.js
var liveScript []byte
