package actorworker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
)

// liveWait bounds the waits for an actor to serve: compiling a guest under
// the race detector on a busy machine takes long.
const liveWait = 2 * time.Minute

// liveGuest is testdata/live (actorsdk.OnOpen, OnMessage, OnClose and the
// sending operations) built for the sandbox.
func liveGuest(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/live") }

// fakeEdge plays an edge on the bus: it takes the commands about its
// connections, answers joins and leaves, and answers censuses with the
// connections it says it holds.
type fakeEdge struct {
	t    *testing.T
	id   string
	cmds chan *nats.Msg
	// refuse, when set, is the error code joins and leaves are answered
	// with.
	refuse   atomic.Pointer[string]
	censuses atomic.Int32
	mu       sync.Mutex
	conns    map[string]string // connection ID -> client, for censuses
}

// edge starts a fake edge named id for slug's experiment.
func (w *world) edge(slug, id string) *fakeEdge {
	w.t.Helper()
	e := &fakeEdge{t: w.t, id: id, cmds: make(chan *nats.Msg, 256), conns: map[string]string{}}
	nc := w.d.NC
	sub, err := nc.Subscribe(actorapi.LiveEdgeSubject(slug, id), func(m *nats.Msg) {
		e.cmds <- m
		if m.Reply == "" {
			return
		}
		r := nats.NewMsg(m.Reply)
		if code := e.refuse.Load(); code != nil {
			r.Header.Set(bus.HeaderErrorCode, *code)
			r.Header.Set(bus.HeaderError, "refused by the fake edge")
			r.Data, _ = json.Marshal(apierr.BodyError{Code: apierr.Code(*code), Message: "refused by the fake edge"})
		}
		_ = m.RespondMsg(r)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	census, err := nc.Subscribe(actorapi.LiveCensusSubject(slug), func(m *nats.Msg) {
		e.censuses.Add(1)
		e.mu.Lock()
		c := actorapi.LiveCensus{Edge: id, Conns: []actorapi.LiveCensusConn{}}
		for conn, client := range e.conns {
			c.Conns = append(c.Conns, actorapi.LiveCensusConn{ID: conn, Client: client})
		}
		e.mu.Unlock()
		b, _ := json.Marshal(c)
		_ = m.Respond(b)
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = sub.Unsubscribe(); _ = census.Unsubscribe() })
	return e
}

// holds sets the connections the edge names in censuses.
func (e *fakeEdge) holds(conns map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conns = conns
}

// next is the next command the edge received, as its subject and body.
func (e *fakeEdge) next() *nats.Msg {
	e.t.Helper()
	select {
	case m := <-e.cmds:
		return m
	case <-time.After(time.Minute):
		e.t.Fatalf("edge %s received no command", e.id)
		return nil
	}
}

// expect takes the next command and checks its body.
func (e *fakeEdge) expect(body string) {
	e.t.Helper()
	if m := e.next(); string(m.Data) != body {
		e.t.Errorf("edge %s: command %s, want %s", e.id, m.Data, body)
	}
}

// none checks that no command is waiting.
func (e *fakeEdge) none() {
	e.t.Helper()
	select {
	case m := <-e.cmds:
		e.t.Errorf("edge %s: unexpected command %s", e.id, m.Data)
	default:
	}
}

// caller of the live events the tests send.
var liveCaller = actorapi.Caller{Kind: "user", ID: "u1", Email: "ada@example.com", Roles: []string{"user"}}

func liveConn(id, query string) actorapi.LiveConn {
	return actorapi.LiveConn{ID: id, Kind: actorapi.ConnWebSocket, Path: "/chat", Query: query, Caller: liveCaller, RequestID: "req-" + id}
}

// liveEvent sends ev of client to slug's actor as an edge does, and
// returns the reply: no error when the actor took it.
func (w *world) liveEvent(slug, client string, ev actorapi.LiveEvent) reply {
	w.t.Helper()
	return w.liveEventRaw(actorapi.LiveSubject(slug), ev.Type, ev.Conn.ID, client, ev)
}

func (w *world) liveEventRaw(subject, typ, conn, client string, ev actorapi.LiveEvent) reply {
	w.t.Helper()
	data, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msg := nats.NewMsg(subject)
	msg.Data = data
	bus.Inject(ctx, msg.Header, ev.Conn.RequestID)
	msg.Header.Set(actorapi.HeaderLive, typ)
	msg.Header.Set(actorapi.HeaderLiveConn, conn)
	msg.Header.Set(actorapi.HeaderLiveClient, client)
	deadline, _ := ctx.Deadline()
	msg.Header.Set(actorapi.HeaderDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	m, err := w.d.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return reply{err: apierr.Wrap(apierr.CodeUnavailable, err, err.Error())}
	}
	if code := m.Header.Get(bus.HeaderErrorCode); code != "" {
		var be apierr.BodyError
		_ = json.Unmarshal(m.Data, &be)
		return reply{err: apierr.FromBody(be)}
	}
	if len(m.Data) != 0 {
		w.t.Errorf("a live event's reply has a body: %s", m.Data)
	}
	return reply{status: 200}
}

func (w *world) open(slug, client, conn, query string) reply {
	w.t.Helper()
	return w.liveEvent(slug, client, actorapi.LiveEvent{Type: actorapi.LiveOpen, Conn: liveConn(conn, query)})
}

func (w *world) message(slug, conn, text string) reply {
	w.t.Helper()
	return w.liveEvent(slug, "c", actorapi.LiveEvent{Type: actorapi.LiveMessage, Conn: liveConn(conn, ""), Data: text})
}

func (w *world) closeConn(slug, conn string) reply {
	w.t.Helper()
	return w.liveEvent(slug, "c", actorapi.LiveEvent{Type: actorapi.LiveClose, Conn: liveConn(conn, ""), Code: 1000, By: actorapi.LiveByClient})
}

// taken fails the test unless r is an accepted event.
func taken(t *testing.T, what string, r reply) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v", what, r)
	}
}

// refused fails the test unless r is an error with code.
func refused(t *testing.T, what string, r reply, code apierr.Code) *apierr.Error {
	t.Helper()
	if r.err == nil || r.err.Code != code {
		t.Fatalf("%s: %v, want %s", what, r, code)
	}
	return r.err
}

// seenEvent is a live event or call as the guest recorded it.
type seenEvent struct {
	Type   string `json:"type"`
	Conn   string `json:"conn"`
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	Caller string `json:"caller"`
	Data   string `json:"data"`
	Binary bool   `json:"binary"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

func (w *world) seen(slug string) []seenEvent {
	w.t.Helper()
	r := w.call(slug, "GET", "/events", "", nil)
	var body struct{ Events []seenEvent }
	if r.err != nil || json.Unmarshal(r.body, &body) != nil {
		w.t.Fatalf("GET /events: %v", r)
	}
	return body.Events
}

// hostCall runs the host operation op with the raw request req through
// the guest and returns its result or error.
func (w *world) hostCall(slug, op, req string) (json.RawMessage, *apierr.Error) {
	w.t.Helper()
	r := w.call(slug, "POST", "/call", "op="+op, []byte(req))
	var body struct {
		OK    json.RawMessage
		Error *apierr.BodyError
	}
	if r.err != nil || json.Unmarshal(r.body, &body) != nil {
		w.t.Fatalf("POST /call?op=%s: %v", op, r)
	}
	if body.Error != nil {
		return nil, apierr.FromBody(*body.Error)
	}
	return body.OK, nil
}

// liveWorld is a world with short censuses, one worker and the live
// guest deployed as slug.
func liveWorld(t *testing.T, slug string, tune func(*liveTuning)) (*world, *fakeEdge, *Service) {
	w := newWorld(t)
	w.tune.Live.CensusQuiet = 50 * time.Millisecond
	w.tune.Live.CensusMax = 300 * time.Millisecond
	if tune != nil {
		tune(&w.tune.Live)
	}
	e := w.edge(slug, "e1")
	s := w.worker()
	w.deploy(slug, nil, liveGuest(t))
	w.serving(slug, liveWait)
	return w, e, s
}

// Events reach the actor in order with calls, with the connection as the
// edge gave it; what the actor sends reaches the edge holding the
// connection, or the room, as the exact commands of the contract.
func TestLiveEventsAndCommands(t *testing.T) {
	w, e, s := liveWorld(t, "chat", nil)
	rooms, err := w.d.NC.SubscribeSync(actorapi.LiveRoomSubject("chat", "lobby"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rooms.Unsubscribe() }()
	_ = w.d.NC.Flush()

	taken(t, "open", w.open("chat", "user:u1", "e1-aaaa", "x=1"))
	taken(t, "text", w.message("chat", "e1-aaaa", "hello"))
	taken(t, "binary", w.liveEvent("chat", "user:u1", actorapi.LiveEvent{Type: actorapi.LiveMessage, Conn: liveConn("e1-aaaa", ""), Data: "AAEC", Binary: true}))
	mid := w.seen("chat")
	taken(t, "close", w.liveEvent("chat", "user:u1", actorapi.LiveEvent{Type: actorapi.LiveClose, Conn: liveConn("e1-aaaa", ""), Code: 4001, Reason: "done", By: actorapi.LiveByClient}))
	got := w.seen("chat")
	want := []seenEvent{
		{Type: "open", Conn: "e1-aaaa", Kind: "websocket", Path: "/chat", Query: "x=1", Caller: "user:u1"},
		{Type: "message", Conn: "e1-aaaa", Data: "hello"},
		{Type: "message", Conn: "e1-aaaa", Data: "AAEC", Binary: true},
		{Type: "call"},
		{Type: "close", Conn: "e1-aaaa", Code: 4001, Reason: "done", By: "client"},
		{Type: "call"},
	}
	if len(mid) != 4 || len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// Commands, each published before the message's reply.
	taken(t, "open b", w.open("chat", "user:u1", "e1-bbbb", ""))
	cmds := []struct{ msg, want string }{
		{`{"do":"send","text":"hi <you>"}`, `{"op":"send","conn":"e1-bbbb","data":"hi \u003cyou\u003e"}`},
		{`{"do":"send_binary","b64":"AAEC"}`, `{"op":"send","conn":"e1-bbbb","data":"AAEC","binary":true}`},
		{`{"do":"send_json","v":{"a":1}}`, `{"op":"send","conn":"e1-bbbb","data":"{\"a\":1}"}`},
		{`{"do":"close","code":4000,"reason":"bye"}`, `{"op":"close","conn":"e1-bbbb","code":4000,"reason":"bye"}`},
		{`{"do":"close"}`, `{"op":"close","conn":"e1-bbbb","code":1000}`},
		{`{"do":"join","room":"lobby"}`, `{"op":"join","conn":"e1-bbbb","room":"lobby"}`},
		{`{"do":"leave","room":"lobby"}`, `{"op":"leave","conn":"e1-bbbb","room":"lobby"}`},
	}
	for _, c := range cmds {
		taken(t, c.msg, w.message("chat", "e1-bbbb", c.msg))
		m := e.next()
		if string(m.Data) != c.want || m.Subject != actorapi.LiveEdgeSubject("chat", "e1") {
			t.Errorf("%s: %s %s, want %s", c.msg, m.Subject, m.Data, c.want)
		}
		if strings.Contains(c.want, `"join"`) || strings.Contains(c.want, `"leave"`) {
			if m.Reply == "" {
				t.Errorf("%s: sent without a reply subject: joins are requests", c.msg)
			}
		} else if m.Reply != "" {
			t.Errorf("%s: sent as a request", c.msg)
		}
	}
	// Room messages, with and without the sender.
	for _, c := range []struct{ msg, want string }{
		{`{"do":"publish","room":"lobby","text":"all"}`, `{"data":"all"}`},
		{`{"do":"publish","room":"lobby","text":"others","except":true}`, `{"data":"others","except":"e1-bbbb"}`},
		{`{"do":"publish_binary","room":"lobby","b64":"/w=="}`, `{"data":"/w==","binary":true}`},
		{`{"do":"publish_json","room":"lobby","v":[1,2]}`, `{"data":"[1,2]"}`},
	} {
		taken(t, c.msg, w.message("chat", "e1-bbbb", c.msg))
		m, err := rooms.NextMsg(time.Minute)
		if err != nil || string(m.Data) != c.want {
			t.Errorf("%s: room got %v %v, want %s", c.msg, m, err, c.want)
		}
	}
	// The trace context and request ID go with the commands.
	taken(t, "send", w.message("chat", "e1-bbbb", `{"do":"send","text":"x"}`))
	if m := e.next(); m.Header.Get("traceparent") == "" {
		t.Errorf("command without trace context: %v", m.Header)
	}
	e.none()
	if n := testutil.ToFloat64(s.live.messages.WithLabelValues("chat", "send")); n != 4 {
		t.Errorf("%v messages sent counted, want 4", n)
	}
	if n := testutil.ToFloat64(s.live.messages.WithLabelValues("chat", "publish")); n != 4 {
		t.Errorf("%v messages published counted, want 4", n)
	}
}

// When the instance is replaced, the connections stay open: the events
// sent meanwhile wait for the new instance and reach it in order; the new
// instance hears of no open again.
func TestLiveEventsWaitForANewInstance(t *testing.T) {
	w, e, s := liveWorld(t, "phoenix", nil)
	taken(t, "open", w.open("phoenix", "c", "e1-p1", ""))
	if r := w.call("phoenix", "POST", "/exit", "", nil); r.err == nil || r.err.Code != apierr.CodeBadGateway {
		t.Fatalf("exit: %v", r)
	}
	// At once, while the next instance starts.
	taken(t, "message while restarting", w.message("phoenix", "e1-p1", "first"))
	taken(t, "second message", w.message("phoenix", "e1-p1", `{"do":"send","text":"back"}`))
	e.expect(`{"op":"send","conn":"e1-p1","data":"back"}`)
	got := w.seen("phoenix")
	if len(got) != 3 || got[0].Type != "message" || got[0].Data != "first" || got[1].Type != "message" || got[2].Type != "call" {
		t.Errorf("the new instance saw %+v", got)
	}
	// The connection still counts, until its close.
	if n := s.local("phoenix").live.count(); n != 1 {
		t.Errorf("%d connections counted after the restart, want 1", n)
	}
	taken(t, "close", w.closeConn("phoenix", "e1-p1"))
	if n := s.local("phoenix").live.count(); n != 0 {
		t.Errorf("%d connections counted after the close, want 0", n)
	}
}

// An actor with an open connection is not unloaded for idleness; once the
// connection closes, it is.
func TestLiveConnectionKeepsActorLoaded(t *testing.T) {
	w := newWorld(t)
	w.tune.IdleUnload = 100 * time.Millisecond
	w.tune.Live.CensusQuiet, w.tune.Live.CensusMax = 30*time.Millisecond, 200*time.Millisecond
	w.edge("awake", "e1")
	w.worker()
	w.deploy("awake", nil, liveGuest(t))
	w.serving("awake", liveWait)
	// The actor may have gone idle already on a slow machine: an edge
	// would wake it, as the test does.
	eventually(t, liveWait, "the connection opened", func() bool {
		if w.open("awake", "c", "e1-k1", "").err == nil {
			return true
		}
		if st := w.state("awake"); st != nil && st.State == actorapi.StateIdle {
			w.wake("awake")
		}
		return false
	})
	opened := time.Now()
	// Well past the idle time, with no call, the actor is still running.
	eventually(t, 10*time.Second, "ten idle times", func() bool { return time.Since(opened) > 10*w.tune.IdleUnload })
	if st := w.state("awake"); st == nil || st.State != actorapi.StateRunning {
		t.Fatalf("state %+v: an actor with a connection was unloaded", st)
	}
	taken(t, "message after the idle time", w.message("awake", "e1-k1", "still here"))
	taken(t, "close", w.closeConn("awake", "e1-k1"))
	eventually(t, 10*time.Second, "the actor unloaded once the connection closed", func() bool {
		st := w.state("awake")
		return st != nil && st.State == actorapi.StateIdle
	})
}

// The actor's refusal of an open reaches the edge with the actor's code
// when it is a client error, as forbidden otherwise; a module without
// gnome_event, or an SDK actor without live handlers, takes no
// connections; malformed events are refused before the actor hears of
// them.
func TestLiveRefusals(t *testing.T) {
	w, _, _ := liveWorld(t, "refuse", nil)
	refused(t, "refuse=conflict", w.open("refuse", "c", "e1-r1", "refuse=conflict"), apierr.CodeConflict)
	if err := refused(t, "refuse=internal", w.open("refuse", "c", "e1-r2", "refuse=internal"), apierr.CodeForbidden); err.Message != "refused by the test actor" {
		t.Errorf("refusal message %q", err.Message)
	}
	refused(t, "refuse=no_such_code", w.open("refuse", "c", "e1-r3", "refuse=no_such_code"), apierr.CodeForbidden)
	if err := refused(t, "fail=1", w.open("refuse", "c", "e1-r4", "fail=1"), apierr.CodeForbidden); !strings.Contains(err.Message, "a plain failure") {
		t.Errorf("plain failure message %q", err.Message)
	}

	for _, conn := range []string{"../x", "edge.x-y", "", "e1-", "E1-abc", "e1-a.b", "e1-*", strings.Repeat("e", 33) + "-x"} {
		r := w.liveEventRaw(actorapi.LiveSubject("refuse"), actorapi.LiveOpen, conn, "c", actorapi.LiveEvent{Type: actorapi.LiveOpen, Conn: liveConn(conn, "")})
		refused(t, "conn "+conn, r, apierr.CodeBadRequest)
	}
	refused(t, "unknown type", w.liveEventRaw(actorapi.LiveSubject("refuse"), "upgrade", "e1-x", "c", actorapi.LiveEvent{Type: "upgrade", Conn: liveConn("e1-x", "")}), apierr.CodeBadRequest)
	refused(t, "long client", w.liveEventRaw(actorapi.LiveSubject("refuse"), actorapi.LiveOpen, "e1-x", strings.Repeat("c", 300), actorapi.LiveEvent{Type: actorapi.LiveOpen, Conn: liveConn("e1-x", "")}), apierr.CodeBadRequest)
	// Another experiment's subject has no one behind it.
	refused(t, "other slug", w.open("nobody", "c", "e1-x", ""), apierr.CodeUnavailable)
	// None of the refused reached the actor but the actor's own refusals.
	opens := 0
	for _, ev := range w.seen("refuse") {
		if ev.Type == "open" {
			opens++
		}
	}
	if opens != 4 {
		t.Errorf("the actor saw %d opens, want the 4 it refused", opens)
	}

	w.deploy("raw", nil, probe(t))
	w.serving("raw", liveWait)
	if err := refused(t, "no gnome_event", w.open("raw", "c", "e1-x", ""), apierr.CodeNotFound); !strings.Contains(err.Message, "takes no live connections") {
		t.Errorf("no gnome_event: %q", err.Message)
	}
	w.deploy("timersonly", nil, timersGuest(t))
	w.serving("timersonly", liveWait)
	if err := refused(t, "no live handlers", w.open("timersonly", "c", "e1-x", ""), apierr.CodeNotFound); !strings.Contains(err.Message, "no live handlers") {
		t.Errorf("no live handlers: %q", err.Message)
	}
}

// A join is a request to the edge holding the connection: its success, its
// refusal with live_connection_gone and an edge that is not there all
// reach the actor, whose handler returns the code.
func TestLiveJoin(t *testing.T) {
	w, e, s := liveWorld(t, "rooms", nil)
	taken(t, "open with a join", w.open("rooms", "c", "e1-j1", "join=table-1"))
	e.expect(`{"op":"join","conn":"e1-j1","room":"table-1"}`)

	gone := string(apierr.CodeLiveConnectionGone)
	e.refuse.Store(&gone)
	refused(t, "join of a gone connection", w.message("rooms", "e1-j1", `{"do":"join","room":"table-2"}`), apierr.CodeLiveConnectionGone)
	e.expect(`{"op":"join","conn":"e1-j1","room":"table-2"}`)
	refused(t, "open with a join refused", w.open("rooms", "c", "e1-j2", "join=t"), apierr.CodeLiveConnectionGone)
	e.expect(`{"op":"join","conn":"e1-j2","room":"t"}`)
	tooMany := string(apierr.CodeLiveTooMany)
	e.refuse.Store(&tooMany)
	refused(t, "join over the rooms bound", w.message("rooms", "e1-j1", `{"do":"join","room":"t3"}`), apierr.CodeLiveTooMany)
	e.expect(`{"op":"join","conn":"e1-j1","room":"t3"}`)
	e.refuse.Store(nil)
	taken(t, "leave", w.message("rooms", "e1-j1", `{"do":"leave","room":"t3"}`))
	e.expect(`{"op":"leave","conn":"e1-j1","room":"t3"}`)
	// No edge e9: the connection is gone.
	refused(t, "join on an edge not there", w.message("rooms", "e1-j1", `{"do":"join","to":"e9-zz","room":"t"}`), apierr.CodeLiveConnectionGone)
	// A refused join left the connection uncounted.
	if n := s.local("rooms").live.count(); n != 1 {
		t.Errorf("%d connections counted, want 1", n)
	}
}

// Connections are counted over the experiment and per client: an open
// over a bound is refused with live_too_many before the actor hears of
// it, and a close frees its place.
func TestLiveBounds(t *testing.T) {
	w := newWorld(t)
	w.tune.Live = liveTuning{MaxConnections: 3, MaxPerClient: 2, CensusQuiet: 50 * time.Millisecond, CensusMax: 300 * time.Millisecond}
	w.edge("bounds", "e1")
	s := w.worker()
	w.deploy("bounds", nil, liveGuest(t))
	w.serving("bounds", liveWait)

	taken(t, "a1", w.open("bounds", "A", "e1-a1", ""))
	taken(t, "a2", w.open("bounds", "A", "e1-a2", ""))
	taken(t, "a2 again", w.open("bounds", "A", "e1-a2", "")) // an edge asking again
	err := refused(t, "a3", w.open("bounds", "A", "e1-a3", ""), apierr.CodeLiveTooMany)
	if !strings.Contains(err.Message, "LIVE_MAX_CONNECTIONS_PER_CLIENT") {
		t.Errorf("per client: %q", err.Message)
	}
	refused(t, "refused by the actor", w.open("bounds", "B", "e1-b0", "refuse=forbidden"), apierr.CodeForbidden)
	taken(t, "b1", w.open("bounds", "B", "e1-b1", ""))
	err = refused(t, "c1", w.open("bounds", "C", "e1-c1", ""), apierr.CodeLiveTooMany)
	if !strings.Contains(err.Message, "LIVE_MAX_CONNECTIONS)") {
		t.Errorf("per experiment: %q", err.Message)
	}
	taken(t, "close a1", w.closeConn("bounds", "e1-a1"))
	taken(t, "c1 after a close", w.open("bounds", "C", "e1-c1", ""))
	taken(t, "close a2", w.closeConn("bounds", "e1-a2"))
	taken(t, "a3 after a close", w.open("bounds", "A", "e1-a3", ""))
	// The actor heard of none of the opens refused for a bound.
	var opens []string
	for _, ev := range w.seen("bounds") {
		if ev.Type == "open" {
			opens = append(opens, ev.Conn)
		}
	}
	// The open asked again was acknowledged without the actor.
	if fmt.Sprint(opens) != "[e1-a1 e1-a2 e1-b0 e1-b1 e1-c1 e1-a3]" {
		t.Errorf("the actor saw opens %v", opens)
	}
	m := s.live
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"connections", testutil.ToFloat64(m.connections.WithLabelValues("bounds")), 3},
		{"opens refused for a bound", testutil.ToFloat64(m.events.WithLabelValues("bounds", "open", "too_many")), 2},
		{"opens refused by the actor", testutil.ToFloat64(m.events.WithLabelValues("bounds", "open", "refused")), 1},
		{"opens taken", testutil.ToFloat64(m.events.WithLabelValues("bounds", "open", "ok")), 5},
		{"closes taken", testutil.ToFloat64(m.events.WithLabelValues("bounds", "close", "ok")), 2},
	} {
		if c.got != c.want {
			t.Errorf("metric of %s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

// A worker that takes the actor over counts the connections the edges
// hold (a census), and counts again while there are any: connections an
// edge no longer names stop counting.
func TestLiveCensusOnTakeover(t *testing.T) {
	w := newWorld(t)
	w.tune.Live = liveTuning{MaxConnections: 2, CensusEvery: time.Hour, CensusQuiet: 50 * time.Millisecond, CensusMax: 300 * time.Millisecond}
	e := w.edge("census", "e1")
	a, b := w.worker(), w.worker()
	w.deploy("census", nil, liveGuest(t))
	w.serving("census", liveWait)
	taken(t, "x1", w.open("census", "X", "e1-x1", ""))
	taken(t, "y1", w.open("census", "Y", "e1-y1", ""))
	refused(t, "z1", w.open("census", "Z", "e1-z1", ""), apierr.CodeLiveTooMany)
	e.holds(map[string]string{"e1-x1": "X", "e1-y1": "Y", "e2-other": "Q", "bad": "Q"})

	from, to := w.holder("census", a, b)
	before := e.censuses.Load()
	if err := from.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	w.serving("census", liveWait)
	if e.censuses.Load() == before {
		t.Fatal("the new holder took no census")
	}
	// e2-other is not e1's and bad is no connection: two count.
	act := to.local("census")
	eventually(t, 10*time.Second, "the census's two connections counted", func() bool { return act.live.count() == 2 })
	refused(t, "z1 after the takeover", w.open("census", "Z", "e1-z1", ""), apierr.CodeLiveTooMany)
	taken(t, "close x1", w.closeConn("census", "e1-x1"))
	e.holds(map[string]string{"e1-y1": "Y"})
	taken(t, "z1 after a close", w.open("census", "Z", "e1-z1", ""))
	e.holds(map[string]string{"e1-y1": "Y", "e1-z1": "Z"})

	// An edge that lost a connection without a close (killed): the next
	// census forgets it.
	e.holds(map[string]string{"e1-z1": "Z"})
	act.runCensus()
	if n := act.live.count(); n != 1 {
		t.Errorf("%d connections after the census, want 1", n)
	}
	taken(t, "w1 after the census", w.open("census", "W", "e1-w1", ""))
}

// The census repeats while connections are open, and a connection an
// edge stopped naming (its edge was killed) stops counting.
func TestLivePeriodicCensus(t *testing.T) {
	w := newWorld(t)
	w.tune.Live = liveTuning{MaxConnections: 1, CensusEvery: 100 * time.Millisecond, CensusQuiet: 30 * time.Millisecond, CensusMax: 200 * time.Millisecond}
	e := w.edge("tick", "e1")
	w.worker()
	w.deploy("tick", nil, liveGuest(t))
	w.serving("tick", liveWait)
	taken(t, "k1", w.open("tick", "K", "e1-k1", ""))
	e.holds(map[string]string{"e1-k1": "K"})
	n := e.censuses.Load()
	eventually(t, 10*time.Second, "censuses while a connection is open", func() bool { return e.censuses.Load() >= n+2 })
	refused(t, "k2", w.open("tick", "K", "e1-k2", ""), apierr.CodeLiveTooMany)
	e.holds(map[string]string{})
	eventually(t, 10*time.Second, "a connection no edge names forgotten", func() bool {
		return w.open("tick", "K", "e1-k2", "").err == nil
	})
}

// Host operations refuse what is malformed: connection IDs, rooms, close
// codes and reasons, data over the limit, bad base64, text that is not
// UTF-8; nothing reaches the edges.
func TestLiveHostileInputs(t *testing.T) {
	w, e, _ := liveWorld(t, "hostile", func(l *liveTuning) { l.MaxMessage = 1000 })
	rooms, err := w.d.NC.SubscribeSync(actorapi.LiveRoomSubject("hostile", ">"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rooms.Unsubscribe() }()
	long := strings.Repeat("a", 1001)
	b64 := func(n int) string { return strings.Repeat("AAAA", n/3) }
	cases := []struct {
		op, req string
		code    apierr.Code
		field   string
	}{
		{"live.send", `{"conn":"../x","data":"x"}`, apierr.CodeBadRequest, "/conn"},
		{"live.send", `{"conn":"edge.x-y","data":"x"}`, apierr.CodeBadRequest, "/conn"},
		{"live.send", `{"conn":"","data":"x"}`, apierr.CodeBadRequest, "/conn"},
		{"live.send", `{"conn":"e1-a>","data":"x"}`, apierr.CodeBadRequest, "/conn"},
		{"live.send", `{"conn":"e1-a"}`, apierr.CodeBadRequest, "/data"},
		{"live.send", `{"conn":"e1-a","data":"` + long + `"}`, apierr.CodePayloadTooLarge, "/data"},
		{"live.send", `{"conn":"e1-a","data":"` + b64(1002) + `","binary":true}`, apierr.CodePayloadTooLarge, "/data"},
		{"live.send", `{"conn":"e1-a","data":"***","binary":true}`, apierr.CodeBadRequest, "/data"},
		{"live.send", `{"conn":"e1-a","data":"AAE","binary":true}`, apierr.CodeBadRequest, "/data"},
		{"live.send", "{\"conn\":\"e1-a\",\"data\":\"a\xff\xfeb\"}", apierr.CodeBadRequest, "/data"},
		{"live.send", `{"conn":"e1-a","data":"x","extra":1}`, apierr.CodeBadRequest, "/extra"},
		{"live.send", `{"conn":"e1-a","data":7}`, apierr.CodeBadRequest, "/data"},
		{"live.close", `{"conn":"e1-a","code":1001}`, apierr.CodeBadRequest, "/code"},
		{"live.close", `{"conn":"e1-a","code":999}`, apierr.CodeBadRequest, "/code"},
		{"live.close", `{"conn":"e1-a","code":5000}`, apierr.CodeBadRequest, "/code"},
		{"live.close", `{"conn":"e1-a","code":4900}`, apierr.CodeBadRequest, "/code"},
		{"live.close", `{"conn":"e1-a","code":4000,"reason":"` + strings.Repeat("r", 124) + `"}`, apierr.CodeBadRequest, "/reason"},
		{"live.close", "{\"conn\":\"e1-a\",\"reason\":\"\xff\"}", apierr.CodeBadRequest, "/reason"},
		{"live.close", `{"conn":"e1.a-b"}`, apierr.CodeBadRequest, "/conn"},
		{"room.join", `{"conn":"e1-a","room":"a.b"}`, apierr.CodeBadRequest, "/room"},
		{"room.join", `{"conn":"e1-a","room":"*"}`, apierr.CodeBadRequest, "/room"},
		{"room.join", `{"conn":"e1-a","room":">"}`, apierr.CodeBadRequest, "/room"},
		{"room.join", `{"conn":"e1-a","room":""}`, apierr.CodeBadRequest, "/room"},
		{"room.join", `{"conn":"e1-a","room":"` + strings.Repeat("r", 65) + `"}`, apierr.CodeBadRequest, "/room"},
		{"room.join", `{"conn":"../x","room":"r"}`, apierr.CodeBadRequest, "/conn"},
		{"room.leave", `{"conn":"e1-a","room":"a b"}`, apierr.CodeBadRequest, "/room"},
		{"room.leave", `{"conn":"","room":"r"}`, apierr.CodeBadRequest, "/conn"},
		{"room.publish", `{"room":"a.b","data":"x"}`, apierr.CodeBadRequest, "/room"},
		{"room.publish", `{"room":">","data":"x"}`, apierr.CodeBadRequest, "/room"},
		{"room.publish", `{"room":"r","data":"x","except":"../x"}`, apierr.CodeBadRequest, "/except"},
		{"room.publish", `{"room":"r","data":"` + long + `"}`, apierr.CodePayloadTooLarge, "/data"},
		{"room.publish", `{"room":"r","data":"%%%%","binary":true}`, apierr.CodeBadRequest, "/data"},
		{"room.publish", "{\"room\":\"r\",\"data\":\"\xc3\"}", apierr.CodeBadRequest, "/data"},
	}
	for _, c := range cases {
		_, err := w.hostCall("hostile", c.op, c.req)
		if err == nil || err.Code != c.code || err.Field != c.field {
			t.Errorf("%s %.80s: %v, want %s at %s", c.op, c.req, err, c.code, c.field)
		}
	}
	// At the bounds, they pass.
	for _, c := range []struct{ op, req string }{
		{"live.send", `{"conn":"e1-a","data":"` + strings.Repeat("a", 1000) + `"}`},
		{"live.send", `{"conn":"e1-a","data":"` + b64(999) + `","binary":true}`},
		{"live.close", `{"conn":"e1-a","code":4899,"reason":"` + strings.Repeat("r", 123) + `"}`},
		{"live.close", `{"conn":"e1-a","code":3000}`},
		{"room.publish", `{"room":"` + strings.Repeat("r", 64) + `","data":"é"}`},
	} {
		if _, err := w.hostCall("hostile", c.op, c.req); err != nil {
			t.Errorf("%s %.80s: %v", c.op, c.req, err)
		}
	}
	for range 4 {
		e.next()
	}
	if m, err := rooms.NextMsg(time.Minute); err != nil || m.Subject != actorapi.LiveRoomSubject("hostile", strings.Repeat("r", 64)) {
		t.Errorf("room message %v %v", m, err)
	}
	e.none()
	if m, err := rooms.NextMsg(10 * time.Millisecond); err == nil {
		t.Errorf("unexpected room message on %s: %s", m.Subject, m.Data)
	}
}
