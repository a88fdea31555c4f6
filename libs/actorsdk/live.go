package actorsdk

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Live channels (docs/actors.md, section 8): browsers open WebSockets at
// /experiments/{slug}/ws/{path...} and event streams at
// /experiments/{slug}/events/{room}; the platform holds them and hands the
// actor each connection's open, message and close, in order, between its
// calls. The actor answers through the connection's ID: Send to one
// connection, Join and Leave rooms, Publish to a room's members on every
// edge, CloseConn.
//
//	actorsdk.OnOpen(func(c actorsdk.Conn) error {
//		if c.Caller.Anonymous { return actorsdk.Refuse(actorsdk.CodeForbidden, "sign in first") }
//		return c.Join("lobby")
//	})
//	actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error {
//		return actorsdk.Publish("lobby", m.Text(), c.ID)
//	})

// Kinds of connection (Conn.Kind).
const (
	ConnWebSocket = "websocket"
	ConnSSE       = "sse"
)

// Who closed a connection (Close.By).
const (
	ByClient   = "client"
	ByActor    = "actor"
	ByPlatform = "platform"
)

// Close codes an actor may use (CloseConn) besides its own from 3000 to
// 4899, and the platform's (Close.Code); docs/actors.md, section 8, lists
// them all.
const (
	CloseNormal      = 1000
	CloseGoingAway   = 1001 // the edge is shutting down
	CloseTooBig      = 1009 // a message over LIVE_MAX_MESSAGE_BYTES
	CloseTryLater    = 1013 // the actor was unreachable for too long
	CloseStopped     = 4900 // the experiment no longer serves live channels
	CloseSlowReader  = 4901 // the connection's send queue was full
	CloseSessionEnds = 4902 // the caller's session ended
)

// Conn is a live connection, as every event of it gives it.
type Conn struct {
	// ID names the connection in Send, Join, CloseConn and the like.
	ID string
	// Kind is ConnWebSocket or ConnSSE.
	Kind string
	// Path is the WebSocket's path below /experiments/{slug}/ws, from "/"
	// ("/" for an event stream); Query its query string, still
	// percent-encoded.
	Path, Query string
	// Room is the room an event stream follows (the platform joined it).
	Room string
	// Caller is who opened it, as the platform verified them.
	Caller Caller
	// RequestID is the platform's ID of the request that opened it.
	RequestID string
}

// Message is a message a client sent on a WebSocket.
type Message struct {
	Data []byte
	// Binary is true for a binary frame, false for text.
	Binary bool
}

// Text is the message as text.
func (m Message) Text() string { return string(m.Data) }

// Decode reads the message as JSON into v.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Data, v) }

// Close is how a connection ended.
type Close struct {
	// Code is the close code (CloseNormal, the actor's own, or one of the
	// platform's); Reason its text.
	Code   int
	Reason string
	// By is ByClient, ByActor or ByPlatform.
	By string
}

var (
	openHooks    []func(Conn) error
	messageHooks []func(Conn, Message) error
	closeHooks   []func(Conn, Close) error
)

// OnOpen registers f to run when a connection opens. An error refuses the
// connection: the browser's upgrade or event stream request fails with the
// error's code when it is a *HostError with a client error code (Refuse
// makes one), with 403 otherwise. Without OnOpen, connections are accepted
// as long as the actor has an OnMessage or OnClose handler; an actor with
// none of the three takes no connections (404).
func OnOpen(f func(c Conn) error) { openHooks = append(openHooks, f) }

// OnMessage registers f to run for each message a client sends. Messages
// of one connection come in order, after its open and before its close.
func OnMessage(f func(c Conn, m Message) error) { messageHooks = append(messageHooks, f) }

// OnClose registers f to run once when a connection that opened ends,
// whoever ended it.
func OnClose(f func(c Conn, cl Close) error) { closeHooks = append(closeHooks, f) }

// Refuse is an error for OnOpen that refuses the connection with a code of
// the catalogue, such as CodeForbidden or CodeConflict, and a message the
// browser sees.
func Refuse(code, msg string) error { return &HostError{Code: code, Message: msg} }

// liveEnvelope is a live event envelope.
type liveEnvelope struct {
	typ    string
	conn   Conn
	data   string
	binary bool
	code   int
	reason string
	by     string
}

var (
	liveFields = []string{"type", "conn", "data", "binary", "code", "reason", "by"}
	connFields = []string{"id", "kind", "path", "query", "room", "caller", "request_id"}
)

// decodeLive reads an event envelope by hand, as the request envelope is
// read (codec.go): a message is the commonest event, and reflection would
// cost most of its handling. Strings point into env.
func decodeLive(env []byte) (*liveEnvelope, error) {
	d := &reader{s: unsafe.String(unsafe.SliceData(env), len(env)), what: "event envelope"}
	ev := &liveEnvelope{}
	var pool []string
	if err := d.open('{', "object"); err != nil {
		return nil, err
	}
	var mask uint32
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		f := field(k, liveFields)
		if f >= 0 {
			if err := d.seen(&mask, f); err != nil {
				return nil, err
			}
		}
		switch f {
		case 0:
			err = d.stringField(&ev.typ)
		case 1:
			err = d.conn(&ev.conn, &pool)
		case 2:
			err = d.stringField(&ev.data)
		case 3:
			err = d.boolField(&ev.binary)
		case 4:
			err = d.intField(&ev.code)
		case 5:
			err = d.stringField(&ev.reason)
		case 6:
			err = d.stringField(&ev.by)
		default:
			err = d.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	if !d.end() {
		return nil, d.fail("data after the envelope")
	}
	return ev, nil
}

// conn reads the connection object of a live event, or null.
func (d *reader) conn(c *Conn, pool *[]string) error {
	if n, err := d.null(); n || err != nil {
		return err
	}
	if err := d.open('{', "object"); err != nil {
		return err
	}
	var mask uint32
	for first := true; ; first = false {
		ok, err := d.more(first, '}')
		if err != nil || !ok {
			return err
		}
		k, err := d.key()
		if err != nil {
			return err
		}
		f := field(k, connFields)
		if f >= 0 {
			if err := d.seen(&mask, f); err != nil {
				return err
			}
		}
		switch f {
		case 0:
			err = d.stringField(&c.ID)
		case 1:
			err = d.stringField(&c.Kind)
		case 2:
			err = d.stringField(&c.Path)
		case 3:
			err = d.stringField(&c.Query)
		case 4:
			err = d.stringField(&c.Room)
		case 5:
			err = d.caller(&c.Caller, pool)
		case 6:
			err = d.stringField(&c.RequestID)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

// intField reads an integer or null.
func (d *reader) intField(dst *int) error {
	if n, err := d.null(); n || err != nil {
		return err
	}
	start := d.i
	if err := d.number(); err != nil {
		return err
	}
	v, err := strconv.Atoi(d.s[start:d.i])
	if err != nil {
		return &envelopeError{what: d.what, msg: "integer expected", off: start, err: err}
	}
	*dst = v
	return nil
}

// own copies the connection's strings out of the envelope: an actor may
// keep a Conn for as long as the connection lives, and should not keep the
// whole envelope (a message's data, say) alive with it.
func (c Conn) own() Conn {
	c.ID, c.Kind, c.Path, c.Query = strings.Clone(c.ID), strings.Clone(c.Kind), strings.Clone(c.Path), strings.Clone(c.Query)
	c.Room, c.RequestID = strings.Clone(c.Room), strings.Clone(c.RequestID)
	cl := &c.Caller
	cl.Kind, cl.ID, cl.Email = strings.Clone(cl.Kind), strings.Clone(cl.ID), strings.Clone(cl.Email)
	if cl.Roles != nil {
		roles := make([]string, len(cl.Roles))
		for i, r := range cl.Roles {
			roles[i] = strings.Clone(r)
		}
		cl.Roles = roles
	}
	if cl.Link != nil {
		l := *cl.Link
		l.ID, l.Kind, l.Label, l.Run = strings.Clone(l.ID), strings.Clone(l.Kind), strings.Clone(l.Label), strings.Clone(l.Run)
		if l.Params != nil {
			p := make(map[string]string, len(l.Params))
			for k, v := range l.Params {
				p[strings.Clone(k)] = strings.Clone(v)
			}
			l.Params = p
		}
		cl.Link = &l
	}
	return c
}

// isLiveType reports whether typ is a live event's type.
func isLiveType(typ string) bool { return typ == "open" || typ == "message" || typ == "close" }

// liveType is typ, a live event's type, as a constant: typ points into the
// envelope, which outlives no event.
func liveType(typ string) string {
	switch typ {
	case "open":
		return "open"
	case "message":
		return "message"
	}
	return "close"
}

// liveEvent hands a live event to its handlers; handled is false when the
// actor has no live handler at all.
func liveEvent(ev *liveEnvelope) (handled bool, err error) {
	if len(openHooks) == 0 && len(messageHooks) == 0 && len(closeHooks) == 0 {
		return false, nil
	}
	if ev.conn.ID == "" {
		return true, &HostError{Code: CodeBadRequest, Message: "the " + ev.typ + " event has no connection"}
	}
	c := ev.conn.own()
	switch ev.typ {
	case "open":
		for _, f := range openHooks {
			if err := run(func() error { return f(c) }); err != nil {
				return true, err
			}
		}
	case "message":
		m := Message{Binary: ev.binary}
		if ev.binary {
			b, err := base64.StdEncoding.DecodeString(ev.data)
			if err != nil {
				return true, &HostError{Code: CodeBadRequest, Message: "the message's data is not base64"}
			}
			m.Data = b
		} else {
			m.Data = []byte(ev.data)
		}
		for _, f := range messageHooks {
			if err := run(func() error { return f(c, m) }); err != nil {
				return true, err
			}
		}
	case "close":
		cl := Close{Code: ev.code, Reason: strings.Clone(ev.reason), By: strings.Clone(ev.by)}
		for _, f := range closeHooks {
			if err := run(func() error { return f(c, cl) }); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// Sending. Each is one host operation; a refusal is a *HostError
// (bad_request for a malformed connection ID or room, payload_too_large
// over LIVE_MAX_MESSAGE_BYTES). A message to a connection that has closed
// meanwhile is dropped without an error: its close event is on its way.

// liveRequest writes a request of live.send or room.publish without
// reflection: messages are what live actors send most.
func liveRequest(key, target, data string, binary bool, except string) []byte {
	b := make([]byte, 0, len(data)+len(target)+len(except)+48)
	b = append(b, '{', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	b = appendJSONString(b, target)
	b = append(b, `,"data":`...)
	b = appendJSONString(b, data)
	if binary {
		b = append(b, `,"binary":true`...)
	}
	if except != "" {
		b = append(b, `,"except":`...)
		b = appendJSONString(b, except)
	}
	return append(b, '}')
}

// notText is the error of text that is not UTF-8, which the platform
// would refuse (JSON would quietly replace its bad bytes).
func notText(op string) error {
	return &HostError{Op: op, Code: CodeBadRequest, Message: "the text is not UTF-8: send bytes as binary", Field: "/data"}
}

// Send sends text to the connection conn.
func Send(conn string, text string) error {
	if !utf8.ValidString(text) {
		return notText("live.send")
	}
	return Call("live.send", liveRequest("conn", conn, text, false, ""), nil)
}

// SendBinary sends b as a binary message to conn (on an event stream,
// which carries text only, the platform sends it as base64).
func SendBinary(conn string, b []byte) error {
	return Call("live.send", liveRequest("conn", conn, base64.StdEncoding.EncodeToString(b), true, ""), nil)
}

// SendJSON sends v, as encoding/json writes it, as text to conn.
func SendJSON(conn string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return Call("live.send", liveRequest("conn", conn, string(b), false, ""), nil)
}

// CloseConn closes conn with code (CloseNormal, or 3000 to 4899; 0 is
// CloseNormal) and reason (at most 123 bytes). Its close event follows,
// with By set to ByActor.
func CloseConn(conn string, code int, reason string) error {
	return Call("live.close", struct {
		Conn   string `json:"conn"`
		Code   int    `json:"code,omitempty"`
		Reason string `json:"reason,omitempty"`
	}{conn, code, reason}, nil)
}

// Join adds conn to room (1 to 64 letters, digits, '_' or '-'), on every
// edge: a Publish after Join returns reaches it. A connection that has
// closed is a *HostError with CodeLiveConnectionGone; one in too many rooms
// (LIVE_MAX_ROOMS_PER_CONNECTION) CodeLiveTooMany.
func Join(conn, room string) error {
	return Call("room.join", struct {
		Conn string `json:"conn"`
		Room string `json:"room"`
	}{conn, room}, nil)
}

// Leave takes conn out of room; leaving a room it is not in is no error.
func Leave(conn, room string) error {
	return Call("room.leave", struct {
		Conn string `json:"conn"`
		Room string `json:"room"`
	}{conn, room}, nil)
}

// Publish sends text to every member of room, on every edge, except the
// connection except names, if any (the sender, say).
func Publish(room, text string, except ...string) error {
	if !utf8.ValidString(text) {
		return notText("room.publish")
	}
	return Call("room.publish", liveRequest("room", room, text, false, first(except)), nil)
}

// PublishBinary sends b as a binary message to room's members, except the
// connection except names, if any.
func PublishBinary(room string, b []byte, except ...string) error {
	return Call("room.publish", liveRequest("room", room, base64.StdEncoding.EncodeToString(b), true, first(except)), nil)
}

// PublishJSON sends v, as encoding/json writes it, as text to room's
// members, except the connection except names, if any.
func PublishJSON(room string, v any, except ...string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return Call("room.publish", liveRequest("room", room, string(b), false, first(except)), nil)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// Send sends text to the connection.
func (c Conn) Send(text string) error { return Send(c.ID, text) }

// SendJSON sends v as JSON text to the connection.
func (c Conn) SendJSON(v any) error { return SendJSON(c.ID, v) }

// Join adds the connection to room.
func (c Conn) Join(room string) error { return Join(c.ID, room) }

// Leave takes the connection out of room.
func (c Conn) Leave(room string) error { return Leave(c.ID, room) }

// Close closes the connection with code and reason (CloseConn).
func (c Conn) Close(code int, reason string) error { return CloseConn(c.ID, code, reason) }
