package edge_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/edge"
)

// The edge's side of live channels, with the test in the actor's place: it
// answers the events on actorapi.LiveSubject as a worker would, and sends
// the commands and room messages an actor's host operations send. The
// worker's side has its own tests (services/actorworker/live_test.go), and
// the whole path runs in the platform's tests with real actors.

// liveEvent is one event the stand-in actor received, with its headers.
type liveEvent struct {
	actorapi.LiveEvent
	header nats.Header
}

// liveActor stands in for an experiment's actor on the bus.
type liveActor struct {
	t      *testing.T
	w      *world
	slug   string
	events chan liveEvent
	sub    *nats.Subscription
	// answer, when set, decides the reply to an event: nil takes it.
	answer atomic.Pointer[func(liveEvent) *apierr.Error]
}

func (w *world) liveActor(slug string) *liveActor {
	w.t.Helper()
	a := &liveActor{t: w.t, w: w, slug: slug, events: make(chan liveEvent, 10000)}
	sub, err := w.d.NC.QueueSubscribe(actorapi.LiveSubject(slug), actorapi.QueueGroup, func(m *nats.Msg) {
		var ev liveEvent
		if err := json.Unmarshal(m.Data, &ev.LiveEvent); err != nil {
			a.t.Errorf("a malformed live event: %v: %s", err, m.Data)
			return
		}
		ev.header = m.Header
		if f := a.answer.Load(); f != nil {
			if ae := (*f)(ev); ae != nil {
				replyLiveError(m, ae)
				if ev.Type != actorapi.LiveOpen {
					a.events <- ev
				}
				return
			}
		}
		a.events <- ev
		_ = m.Respond(nil)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.d.NC.Flush(); err != nil {
		w.t.Fatal(err)
	}
	a.sub = sub
	w.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

func (a *liveActor) setAnswer(f func(liveEvent) *apierr.Error) { a.answer.Store(&f) }

func replyLiveError(m *nats.Msg, ae *apierr.Error) {
	r := nats.NewMsg(m.Reply)
	r.Header.Set(bus.HeaderErrorCode, string(ae.Code))
	r.Header.Set(bus.HeaderError, ae.Message)
	if ae.RetryAfter > 0 {
		r.Header.Set(actorapi.HeaderRetryAfter, fmt.Sprint(ae.RetryAfter))
	}
	r.Data, _ = json.Marshal(ae.ToBody("").Error)
	_ = m.RespondMsg(r)
}

// next is the next event, which must be of type typ.
func (a *liveActor) next(typ string) liveEvent {
	a.t.Helper()
	select {
	case ev := <-a.events:
		if ev.Type != typ {
			a.t.Fatalf("the actor got a %s event (%+v), want %s", ev.Type, ev.LiveEvent, typ)
		}
		return ev
	case <-time.After(time.Minute):
		a.t.Fatalf("the actor got no %s event", typ)
	}
	return liveEvent{}
}

// none checks that no event is waiting.
func (a *liveActor) none() {
	a.t.Helper()
	select {
	case ev := <-a.events:
		a.t.Fatalf("the actor got an unexpected %s event: %+v", ev.Type, ev.LiveEvent)
	default:
	}
}

// command sends cmd to the edge holding its connection, as the host
// operations do: join and leave are requests.
func (a *liveActor) command(cmd actorapi.LiveCommand) error {
	return a.commandAs(a.slug, cmd)
}

func (a *liveActor) commandAs(slug string, cmd actorapi.LiveCommand) error {
	a.t.Helper()
	data, _ := json.Marshal(cmd)
	subject := actorapi.LiveEdgeSubject(slug, actorapi.EdgeOfConn(cmd.Conn))
	if cmd.Op == actorapi.LiveJoin || cmd.Op == actorapi.LiveLeave || strings.HasPrefix(cmd.Op, "ask:") {
		cmd.Op = strings.TrimPrefix(cmd.Op, "ask:")
		data, _ = json.Marshal(cmd)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := bus.CallRaw(ctx, a.w.d.NC, subject, data)
		return err
	}
	if err := a.w.d.NC.Publish(subject, data); err != nil {
		a.t.Fatal(err)
	}
	return a.w.d.NC.Flush()
}

func (a *liveActor) send(conn, text string) {
	a.t.Helper()
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveSend, Conn: conn, Data: text}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *liveActor) publish(room string, m actorapi.LiveRoomMessage) {
	a.t.Helper()
	data, _ := json.Marshal(m)
	if err := a.w.d.NC.Publish(actorapi.LiveRoomSubject(a.slug, room), data); err != nil {
		a.t.Fatal(err)
	}
}

// liveExperiment is an active experiment with an actor, as the edge sees it.
func (w *world) liveExperiment(slug string) {
	w.t.Helper()
	w.experiment(slug, "dev@example.com", "active", `{"slug":"`+slug+`","name":"Live","status":"active","actor":{"module":"actor.wasm"}}`,
		map[string]string{"index.html": "live", "actor.wasm": "\x00asm"})
}

// dial opens a WebSocket to path on slug's origin at the edge at addr.
func (w *world) dial(addr, slug, path string, header http.Header) (*websocket.Conn, *http.Response, error) {
	w.t.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		},
	}
	if header == nil {
		header = http.Header{}
	}
	if header.Get("X-Forwarded-For") == "" {
		n := ipSeq.Add(1)
		header.Set("X-Forwarded-For", fmt.Sprintf("203.0.%d.%d", 113+n/250, n%250+1))
	}
	_, port, _ := net.SplitHostPort(addr)
	c, resp, err := d.Dial("ws://"+slug+".localhost:"+port+path, header)
	if err == nil {
		w.t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func (w *world) mustDial(addr, slug, path string) *websocket.Conn {
	w.t.Helper()
	c, resp, err := w.dial(addr, slug, path, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		w.t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	return c
}

// secondEdge starts another edge on the same bus and store, connected as
// the edge's own bus user (with its permissions only), and is its address.
func (w *world) secondEdge() string {
	w.t.Helper()
	cfg := w.env.Config(w.t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	d := w.env.DepsAs(w.t, w.env.Deps(w.t, cfg), "edge")
	e := edge.New(d)
	testenv.Run(w.t, d, e)
	return e.Addr
}

// read is the next message on c.
func read(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	typ, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(data)
}

// closeOf is the close c ends with.
func closeOf(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("the connection ended without a close frame: %v", err)
			}
			return ce
		}
	}
}

func TestLiveWebSocket(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	a := w.liveActor("game")

	c := w.mustDial(w.addr, "game", "/experiments/game/ws/table/7?seat=north")
	open := a.next(actorapi.LiveOpen)
	conn := open.Conn.ID
	if open.Conn.Kind != actorapi.ConnWebSocket || open.Conn.Path != "/table/7" || open.Conn.Query != "seat=north" ||
		open.Conn.Caller.Kind != actorapi.CallerAnonymous || open.Conn.RequestID == "" {
		t.Fatalf("open event: %+v", open.LiveEvent)
	}
	if actorapi.EdgeOfConn(conn) == "" || open.header.Get(actorapi.HeaderLiveConn) != conn ||
		!strings.HasPrefix(open.header.Get(actorapi.HeaderLiveClient), "ip:") || open.header.Get(actorapi.HeaderLive) != actorapi.LiveOpen {
		t.Fatalf("open headers: %v (conn %q)", open.header, conn)
	}

	// Messages both ways, text and bytes, in order.
	for i := range 3 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("move %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if m := a.next(actorapi.LiveMessage); m.Data != fmt.Sprintf("move %d", i) || m.Binary || m.Conn.ID != conn {
			t.Fatalf("message %d: %+v", i, m.LiveEvent)
		}
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 0xff}); err != nil {
		t.Fatal(err)
	}
	if m := a.next(actorapi.LiveMessage); !m.Binary || m.Data != base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}) {
		t.Fatalf("binary message: %+v", m.LiveEvent)
	}
	a.send(conn, "your turn")
	if typ, text := read(t, c); typ != websocket.TextMessage || text != "your turn" {
		t.Fatalf("got %d %q", typ, text)
	}
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveSend, Conn: conn, Data: base64.StdEncoding.EncodeToString([]byte{9, 8}), Binary: true}); err != nil {
		t.Fatal(err)
	}
	if typ, text := read(t, c); typ != websocket.BinaryMessage || text != "\x09\x08" {
		t.Fatalf("got %d %q", typ, text)
	}

	// The actor closes: what it sent before arrives first, then its close
	// frame; it is told of the close as of any other.
	a.send(conn, "game over")
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveCloseConn, Conn: conn, Code: 4000, Reason: "bye"}); err != nil {
		t.Fatal(err)
	}
	if _, text := read(t, c); text != "game over" {
		t.Fatalf("got %q before the close", text)
	}
	if ce := closeOf(t, c); ce.Code != 4000 || ce.Text != "bye" {
		t.Fatalf("close: %v", ce)
	}
	if cl := a.next(actorapi.LiveClose); cl.Code != 4000 || cl.By != actorapi.LiveByActor || cl.Conn.ID != conn {
		t.Fatalf("close event: %+v", cl.LiveEvent)
	}

	// The client closes.
	c2 := w.mustDial(w.addr, "game", "/experiments/game/ws")
	open2 := a.next(actorapi.LiveOpen)
	if open2.Conn.Path != "/" || open2.Conn.ID == conn {
		t.Fatalf("second open: %+v", open2.LiveEvent)
	}
	_ = c2.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"), time.Now().Add(time.Minute))
	if cl := a.next(actorapi.LiveClose); cl.Code != 1000 || cl.Reason != "done" || cl.By != actorapi.LiveByClient {
		t.Fatalf("client close event: %+v", cl.LiveEvent)
	}
	// Commands about a connection that is gone change nothing.
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveJoin, Conn: open2.Conn.ID, Room: "lobby"}); codeOf(err) != apierr.CodeLiveConnectionGone {
		t.Fatalf("join of a closed connection: %v", err)
	}
	a.none()
}

func TestLiveOpenRefusals(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	w.experiment("static", "dev@example.com", "active", `{"slug":"static","name":"Static","status":"active"}`, map[string]string{"index.html": "x"})
	a := w.liveActor("game")
	a.setAnswer(func(ev liveEvent) *apierr.Error {
		switch ev.Conn.Query {
		case "who=stranger":
			return apierr.New(apierr.CodeForbidden, "strangers may not play")
		case "who=crowd":
			return apierr.New(apierr.CodeLiveTooMany, "the experiment has 2 connections, the most it may have")
		case "who=odd":
			return apierr.New("my_own_code", "the actor's own reason")
		}
		return nil
	})
	for _, tc := range []struct {
		query  string
		status int
		code   string
		want   string
	}{
		{"who=stranger", 403, "forbidden", "strangers may not play"},
		{"who=crowd", 429, "live_too_many", "2 connections"},
		// The worker makes an actor's own codes forbidden; a code no one
		// knows from the worker is a malformed answer.
		{"who=odd", 502, "bad_gateway", "the actor's own reason"},
	} {
		_, resp, err := w.dial(w.addr, "game", "/experiments/game/ws?"+tc.query, nil)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s: err %v, resp %+v", tc.query, err, resp)
		}
		var body apierr.Body
		if json.NewDecoder(resp.Body).Decode(&body) != nil || string(body.Error.Code) != tc.code || !strings.Contains(body.Error.Message, tc.want) {
			t.Fatalf("%s: body %+v", tc.query, body)
		}
	}
	a.none() // refused opens have no close

	// Refused by the edge before the actor hears of it.
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
	}{
		{"another origin's page", "/experiments/game/ws", http.Header{"Origin": {"http://evil.localhost"}}, 403},
		{"a sibling experiment's page", "/experiments/game/ws", http.Header{"Origin": {testenv.ExperimentURL(w.addr, "static", "")}}, 403},
		{"a cross-site fetch", "/experiments/game/ws", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same-site", "/experiments/game/ws", http.Header{"Sec-Fetch-Site": {"same-site"}}, 403},
		{"an experiment without an actor", "/experiments/static/ws", nil, 503},
	} {
		slug := "game"
		if strings.Contains(tc.path, "static") {
			slug = "static"
		}
		_, resp, err := w.dial(w.addr, slug, tc.path, tc.header)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s: err %v, resp %+v", tc.name, err, resp)
		}
	}
	// Its own origin is fine.
	w.mustDial(w.addr, "game", "/experiments/game/ws")
	a.next(actorapi.LiveOpen)

	// Not a WebSocket handshake: a plain GET, a wrong version.
	if r := w.do("GET", "/experiments/game/ws", "", nil, ""); r.status != 400 || r.code() != "bad_request" {
		t.Fatalf("a plain GET: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/experiments/game/ws", "", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, ""); r.status != 400 {
		t.Fatalf("version 8: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/experiments/game/ws", "", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"}, ""); r.status != 400 {
		t.Fatalf("a bad key: %d %s", r.status, r.body)
	}
	// Room names of event streams.
	for _, room := range []string{"a.b", "%2A", strings.Repeat("r", 65)} {
		if r := w.do("GET", "/experiments/game/events/"+room, "", nil, ""); r.status != 404 {
			t.Fatalf("room %q: %d %s", room, r.status, r.body)
		}
	}
	a.none()
}

func TestLiveRoomsAcrossEdges(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	a := w.liveActor("game")
	second := w.secondEdge()

	c1 := w.mustDial(w.addr, "game", "/experiments/game/ws")
	id1 := a.next(actorapi.LiveOpen).Conn.ID
	c2 := w.mustDial(second, "game", "/experiments/game/ws")
	id2 := a.next(actorapi.LiveOpen).Conn.ID
	if actorapi.EdgeOfConn(id1) == actorapi.EdgeOfConn(id2) {
		t.Fatalf("two edges share an ID: %s %s", id1, id2)
	}
	for _, id := range []string{id1, id2} {
		if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveJoin, Conn: id, Room: "table-1"}); err != nil {
			t.Fatal(err)
		}
	}
	// A join is answered once the edge follows the room: a message right
	// after it reaches both players.
	a.publish("table-1", actorapi.LiveRoomMessage{Data: `{"turn":"north"}`})
	for _, c := range []*websocket.Conn{c1, c2} {
		if _, text := read(t, c); text != `{"turn":"north"}` {
			t.Fatalf("got %q", text)
		}
	}
	a.publish("table-1", actorapi.LiveRoomMessage{Data: "not to the sender", Except: id1})
	a.publish("table-1", actorapi.LiveRoomMessage{Data: base64.StdEncoding.EncodeToString([]byte{7}), Binary: true})
	if _, text := read(t, c2); text != "not to the sender" {
		t.Fatalf("got %q", text)
	}
	for _, c := range []*websocket.Conn{c1, c2} {
		if typ, text := read(t, c); typ != websocket.BinaryMessage || text != "\x07" {
			t.Fatalf("got %d %q", typ, text)
		}
	}
	// Left the room: the next message reaches the other only.
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveLeave, Conn: id2, Room: "table-1"}); err != nil {
		t.Fatal(err)
	}
	a.publish("table-1", actorapi.LiveRoomMessage{Data: "only north"})
	a.send(id2, "direct to south")
	if _, text := read(t, c1); text != "only north" {
		t.Fatalf("got %q", text)
	}
	if _, text := read(t, c2); text != "direct to south" {
		t.Fatalf("south got %q: the room's message after leaving?", text)
	}

	// A census finds each edge's connections.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inbox := nats.NewInbox()
	replies, err := w.d.NC.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.d.NC.PublishRequest(actorapi.LiveCensusSubject("game"), inbox, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for len(seen) < 2 {
		m, err := replies.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("census: %v (seen %v)", err, seen)
		}
		var c actorapi.LiveCensus
		if err := json.Unmarshal(m.Data, &c); err != nil || len(c.Conns) != 1 {
			t.Fatalf("census reply %s", m.Data)
		}
		seen[c.Conns[0].ID] = c.Conns[0].Client
	}
	if seen[id1] == "" || seen[id2] == "" {
		t.Fatalf("census: %v", seen)
	}
}

func TestLiveCommandsAreChecked(t *testing.T) {
	w := startWorld(t, map[string]string{"LIVE_MAX_ROOMS_PER_CONNECTION": "2", "LIVE_MAX_MESSAGE_BYTES": "1024"})
	w.liveExperiment("game")
	w.liveExperiment("other")
	a := w.liveActor("game")
	c := w.mustDial(w.addr, "game", "/experiments/game/ws")
	id := a.next(actorapi.LiveOpen).Conn.ID
	edgeID := actorapi.EdgeOfConn(id)

	ask := func(slug string, cmd actorapi.LiveCommand) apierr.Code {
		cmd.Op = "ask:" + cmd.Op
		return codeOf(a.commandAs(slug, cmd))
	}
	for _, tc := range []struct {
		name string
		slug string
		cmd  actorapi.LiveCommand
		want apierr.Code
	}{
		{"another experiment's actor", "other", actorapi.LiveCommand{Op: "send", Conn: id, Data: "hijack"}, apierr.CodeLiveConnectionGone},
		{"another experiment's actor joins", "other", actorapi.LiveCommand{Op: "join", Conn: id, Room: "r"}, apierr.CodeLiveConnectionGone},
		{"an unknown connection", "game", actorapi.LiveCommand{Op: "send", Conn: edgeID + "-nope", Data: "x"}, apierr.CodeLiveConnectionGone},
		{"bad base64", "game", actorapi.LiveCommand{Op: "send", Conn: id, Data: "%%%", Binary: true}, apierr.CodeBadRequest},
		{"a message over the limit", "game", actorapi.LiveCommand{Op: "send", Conn: id, Data: strings.Repeat("x", 1025)}, apierr.CodeBadRequest},
		{"a close code of the platform's", "game", actorapi.LiveCommand{Op: "close", Conn: id, Code: 4901}, apierr.CodeBadRequest},
		{"a reserved close code", "game", actorapi.LiveCommand{Op: "close", Conn: id, Code: 1001}, apierr.CodeBadRequest},
		{"a close reason too long", "game", actorapi.LiveCommand{Op: "close", Conn: id, Code: 4000, Reason: strings.Repeat("r", 124)}, apierr.CodeBadRequest},
		{"a room with a dot", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: "a.b"}, apierr.CodeBadRequest},
		{"a wildcard room", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: ">"}, apierr.CodeBadRequest},
		{"an unknown operation", "game", actorapi.LiveCommand{Op: "teleport", Conn: id}, apierr.CodeBadRequest},
		{"first room", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: "r1"}, ""},
		{"the same room again", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: "r1"}, ""},
		{"second room", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: "r2"}, ""},
		{"a third room, over the bound", "game", actorapi.LiveCommand{Op: "join", Conn: id, Room: "r3"}, apierr.CodeLiveTooMany},
		{"leaving a room never joined", "game", actorapi.LiveCommand{Op: "leave", Conn: id, Room: "r9"}, ""},
	} {
		if got := ask(tc.slug, tc.cmd); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// Malformed JSON.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.CallRaw(ctx, w.d.NC, actorapi.LiveEdgeSubject("game", edgeID), []byte("{")); codeOf(err) != apierr.CodeBadRequest {
		t.Errorf("malformed command: %v", err)
	}
	// None of it reached the client, which is still connected.
	a.send(id, "still here")
	if _, text := read(t, c); text != "still here" {
		t.Fatalf("got %q", text)
	}

	// A client's message over LIVE_MAX_MESSAGE_BYTES closes it with 1009.
	if err := c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("y", 1025))); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, c); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("close: %v", ce)
	}
	if cl := a.next(actorapi.LiveClose); cl.Code != actorapi.CloseTooBig || cl.By != actorapi.LiveByPlatform {
		t.Fatalf("close event: %+v", cl.LiveEvent)
	}
}

func TestLiveSlowReaderIsClosed(t *testing.T) {
	w := startWorld(t, map[string]string{"LIVE_SEND_QUEUE": "4"})
	w.liveExperiment("game")
	a := w.liveActor("game")
	// A client that never reads, with a small receive window.
	c, _, err := (&websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			conn, err := nd.DialContext(ctx, network, w.addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return conn, err
		},
	}).Dial(strings.Replace(testenv.ExperimentURL(w.addr, "game", "/experiments/game/ws"), "http:", "ws:", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := a.next(actorapi.LiveOpen).Conn.ID
	// 400 messages of 60 KiB (24 MiB) are more than the socket buffers
	// between the edge and a client that reads nothing (at most 4 MiB to
	// send here, 4 KiB to receive) and the queue of 4 can hold, and less
	// than a subscription's pending limit (64 MiB), so that the edge gets
	// every one of them however fast they come: it must close the
	// connection once it has taken enough of them.
	chunk := strings.Repeat("z", 60<<10)
	for range 400 {
		if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveSend, Conn: id, Data: chunk}); err != nil {
			t.Fatal(err)
		}
	}
	if ev := a.next(actorapi.LiveClose); ev.Code != actorapi.CloseSlowReader || ev.By != actorapi.LiveByPlatform {
		t.Fatalf("event: %+v", ev.LiveEvent)
	}
}

func TestLiveEventsWaitForTheActor(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	a := w.liveActor("game")
	c := w.mustDial(w.addr, "game", "/experiments/game/ws")
	id := a.next(actorapi.LiveOpen).Conn.ID

	// The actor restarts: the first tries of a message are refused as
	// unavailable, the edge tries again, and the message arrives once.
	var refused atomic.Int32
	a.setAnswer(func(ev liveEvent) *apierr.Error {
		if ev.Type == actorapi.LiveMessage && refused.Add(1) <= 2 {
			ae := apierr.New(apierr.CodeUnavailable, "the actor of \"game\" is restarting")
			ae.RetryAfter = 1
			return ae
		}
		return nil
	})
	if err := c.WriteMessage(websocket.TextMessage, []byte("during a restart")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := a.next(actorapi.LiveMessage)
		if m.Data != "during a restart" {
			t.Fatalf("try %d: %+v", i, m.LiveEvent)
		}
	}
	a.send(id, "still connected")
	if _, text := read(t, c); text != "still connected" {
		t.Fatalf("got %q", text)
	}

	// The actor is gone for longer than the hold: the connection closes
	// with 1013, which the browser helper reconnects on.
	_ = a.sub.Unsubscribe()
	if err := c.WriteMessage(websocket.TextMessage, []byte("into the void")); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, c); ce.Code != actorapi.CloseTryLater {
		t.Fatalf("close: %v", ce)
	}
}

func TestLiveEventStream(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	a := w.liveActor("game")

	req, err := http.NewRequest("GET", testenv.ExperimentURL(w.addr, "game", "/experiments/game/events/scores?since=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Forwarded-For", "203.0.113.250")
	resp, err := (&http.Client{Transport: testenv.LocalhostTransport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	open := a.next(actorapi.LiveOpen)
	if open.Conn.Kind != actorapi.ConnSSE || open.Conn.Room != "scores" || open.Conn.Query != "since=0" {
		t.Fatalf("open: %+v", open.LiveEvent)
	}
	r := bufio.NewReader(resp.Body)
	event := func() (name, data string) {
		t.Helper()
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read the stream: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && (name != "" || lines != nil):
				return name, strings.Join(lines, "\n")
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				lines = append(lines, strings.TrimPrefix(line, "data: "))
			}
		}
	}
	// The edge joined the stream to its room.
	a.publish("scores", actorapi.LiveRoomMessage{Data: "north 3\nsouth 2"})
	if name, data := event(); name != "" || data != "north 3\nsouth 2" {
		t.Fatalf("event %q %q", name, data)
	}
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveSend, Conn: open.Conn.ID, Data: base64.StdEncoding.EncodeToString([]byte("\x00b")), Binary: true}); err != nil {
		t.Fatal(err)
	}
	if name, data := event(); name != "binary" || data != base64.StdEncoding.EncodeToString([]byte("\x00b")) {
		t.Fatalf("event %q %q", name, data)
	}
	if err := a.command(actorapi.LiveCommand{Op: actorapi.LiveCloseConn, Conn: open.Conn.ID, Code: 4001, Reason: "season over"}); err != nil {
		t.Fatal(err)
	}
	if name, data := event(); name != "close" || data != `{"code":4001,"reason":"season over"}` {
		t.Fatalf("event %q %q", name, data)
	}
	if cl := a.next(actorapi.LiveClose); cl.Code != 4001 || cl.By != actorapi.LiveByActor {
		t.Fatalf("close event: %+v", cl.LiveEvent)
	}

	// A client that leaves is a close by the client.
	resp2, err := (&http.Client{Transport: testenv.LocalhostTransport()}).Do(req.Clone(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	a.next(actorapi.LiveOpen)
	_ = resp2.Body.Close()
	if cl := a.next(actorapi.LiveClose); cl.By != actorapi.LiveByClient {
		t.Fatalf("close event: %+v", cl.LiveEvent)
	}
}

func TestLiveScriptIsServed(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	r := w.do("GET", "/experiments/game/", "", nil, "")
	if r.status != 200 {
		t.Fatalf("page: %d", r.status)
	}
	r = w.send("GET", testenv.ExperimentURL(w.addr, "game", "/_gnome/live.js"), "", nil, "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") || len(r.body) == 0 {
		t.Fatalf("live.js: %d %v", r.status, r.header)
	}
	// Not on the platform's origin.
	if r := w.onPlatform("GET", "/_gnome/live.js", "", nil, ""); r.status != 404 {
		t.Fatalf("live.js on the platform: %d", r.status)
	}
}

// codeOf is err's contract code, "" for nil.
func codeOf(err error) apierr.Code {
	if err == nil {
		return ""
	}
	return apierr.From(err).Code
}

func TestLiveConnectionsEndWithExperimentAndSession(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	w.liveExperiment("quiz")
	game := w.liveActor("game")
	quiz := w.liveActor("quiz")

	// A script's connection with a platform token, whose session ends.
	tok, claims, err := w.signer.Mint(authn.Subject{ID: "u-player@example.com", Email: "player@example.com", Roles: []string{"user"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c1, _, err := w.dial(w.addr, "game", "/experiments/game/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	if open := game.next(actorapi.LiveOpen); open.Conn.Caller.Email != "player@example.com" ||
		open.header.Get(actorapi.HeaderLiveClient) != actorapi.CallerUser+":u-player@example.com" {
		t.Fatalf("open: %+v %v", open.LiveEvent, open.header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	revoked, err := w.d.JS.KeyValue(ctx, bus.BucketRevokedTokens)
	if err != nil {
		t.Fatal(err)
	}
	if err := authn.Revoke(ctx, revoked, claims.ID, claims.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, c1); ce.Code != actorapi.CloseSessionEnds {
		t.Fatalf("close: %v", ce)
	}
	if cl := game.next(actorapi.LiveClose); cl.Code != actorapi.CloseSessionEnds || cl.By != actorapi.LiveByPlatform {
		t.Fatalf("close event: %+v", cl.LiveEvent)
	}

	// The experiment is deleted: its connections close with 4900; another
	// experiment's stay.
	c2 := w.mustDial(w.addr, "game", "/experiments/game/ws")
	game.next(actorapi.LiveOpen)
	c3 := w.mustDial(w.addr, "quiz", "/experiments/quiz/ws")
	quizConn := quiz.next(actorapi.LiveOpen).Conn.ID
	if _, err := w.d.Store.Collection(store.ExperimentsConfig).DeleteOne(ctx, map[string]any{"slug": "game"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, w.d.JS, events.ExperimentDeleted, "live-test-delete-game", events.Experiment{Slug: "game", Reason: "delete", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, c2); ce.Code != actorapi.CloseStopped {
		t.Fatalf("close: %v", ce)
	}
	quiz.send(quizConn, "still on")
	if _, text := read(t, c3); text != "still on" {
		t.Fatalf("got %q", text)
	}
}
