package actorsdk

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// resetLive clears the live handlers (and the other event handlers) for a
// test.
func resetLive(t *testing.T) {
	resetEvents(t)
	o, m, c := openHooks, messageHooks, closeHooks
	openHooks, messageHooks, closeHooks = nil, nil, nil
	t.Cleanup(func() { openHooks, messageHooks, closeHooks = o, m, c })
}

const liveConnJSON = `{"id":"e1-abc","kind":"websocket","path":"/table/3","query":"seat=north&x=%20","caller":{"kind":"participant","id":"p1","email":"","roles":["user"],"anonymous":true,"link":{"id":"l1","kind":"multi","label":"","run":"r1","params":{"PROLIFIC_PID":"pp"}}},"request_id":"req-1","later":{"x":[1,2]}}`

var wantConn = Conn{
	ID: "e1-abc", Kind: ConnWebSocket, Path: "/table/3", Query: "seat=north&x=%20", RequestID: "req-1",
	Caller: Caller{Kind: KindParticipant, ID: "p1", Roles: []string{"user"}, Anonymous: true,
		Link: &Link{ID: "l1", Kind: LinkMulti, Run: "r1", Params: map[string]string{"PROLIFIC_PID": "pp"}}},
}

// The live envelopes decode by hand into what encoding/json would make of
// them: fields in any order and case, unknown ones skipped, null leaving a
// field empty.
func TestDecodeLive(t *testing.T) {
	cases := []struct {
		env  string
		want liveEnvelope
	}{
		{`{"type":"open","conn":` + liveConnJSON + `}`, liveEnvelope{typ: "open", conn: wantConn}},
		{`{"conn":` + liveConnJSON + `,"Type":"message","data":"h\u00e9\n","binary":null,"extra":[{"a":null}]}`, liveEnvelope{typ: "message", conn: wantConn, data: "hé\n"}},
		{`{"type":"message","conn":` + liveConnJSON + `,"data":"AAEC","binary":true}`, liveEnvelope{typ: "message", conn: wantConn, data: "AAEC", binary: true}},
		{` {"type":"close","conn":` + liveConnJSON + `,"code":4001,"reason":"bye","by":"client"} `, liveEnvelope{typ: "close", conn: wantConn, code: 4001, reason: "bye", by: "client"}},
		{`{"type":"close","conn":null,"code":null}`, liveEnvelope{typ: "close"}},
	}
	for _, c := range cases {
		got, err := decodeLive([]byte(c.env))
		if err != nil {
			t.Errorf("%s: %v", c.env, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.env, *got, c.want)
		}
	}
	for _, bad := range []string{
		``, `[]`, `{"type":"open"`, `{"type":"open","type":"close"}`, `{"conn":{"id":"a","ID":"b"}}`,
		`{"code":1.5}`, `{"code":"1000"}`, `{"code":1e3}`, `{"binary":"yes"}`, `{"type":"open"} x`, `{"conn":[]}`,
	} {
		if _, err := decodeLive([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// Each live event reaches its handlers with the connection; a Conn kept
// after the event does not point into the envelope.
func TestLiveDispatch(t *testing.T) {
	resetLive(t)
	var conns []Conn
	var msgs []Message
	var closes []Close
	var types []string
	OnOpen(func(c Conn) error { conns = append(conns, c); return nil })
	OnMessage(func(c Conn, m Message) error { conns = append(conns, c); msgs = append(msgs, m); return nil })
	OnClose(func(c Conn, cl Close) error { conns = append(conns, c); closes = append(closes, cl); return nil })
	OnEvent(func(e Event) error { types = append(types, e.Type); return nil })

	env := []byte(`{"type":"open","conn":` + liveConnJSON + `}`)
	if out := event(env); out != nil {
		t.Fatalf("open refused: %s", out)
	}
	for i := range env {
		env[i] = 'x' // the host reuses the buffer
	}
	for _, e := range []string{
		`{"type":"message","conn":` + liveConnJSON + `,"data":"{\"play\":\"7H\"}"}`,
		`{"type":"message","conn":` + liveConnJSON + `,"data":"AAEC/w==","binary":true}`,
		`{"type":"close","conn":` + liveConnJSON + `,"code":1001,"reason":"going","by":"platform"}`,
	} {
		if out := event([]byte(e)); out != nil {
			t.Fatalf("%s refused: %s", e, out)
		}
	}
	if len(conns) != 4 || !reflect.DeepEqual(conns[0], wantConn) || !reflect.DeepEqual(conns[3], wantConn) {
		t.Fatalf("conns %+v", conns)
	}
	var play struct{ Play string }
	if err := msgs[0].Decode(&play); err != nil || play.Play != "7H" || msgs[0].Binary || msgs[0].Text() != `{"play":"7H"}` {
		t.Errorf("text message %+v %v", msgs[0], err)
	}
	if !msgs[1].Binary || string(msgs[1].Data) != "\x00\x01\x02\xff" {
		t.Errorf("binary message %+v", msgs[1])
	}
	if closes[0] != (Close{Code: 1001, Reason: "going", By: ByPlatform}) {
		t.Errorf("close %+v", closes[0])
	}
	if strings.Join(types, ",") != "open,message,message,close" {
		t.Errorf("OnEvent saw %v", types)
	}
}

// An open is refused with the handler's code (Refuse), internal for a
// plain error or a panic; an actor with no live handler takes none; one
// with only OnMessage takes them.
func TestLiveRefusals(t *testing.T) {
	resetLive(t)
	open := []byte(`{"type":"open","conn":` + liveConnJSON + `}`)
	if code, msg := eventError(t, event(open)); code != CodeNotFound || !strings.Contains(msg, "no live handlers") {
		t.Errorf("no handlers: %s %s", code, msg)
	}
	// OnEvent alone does not take connections.
	OnEvent(func(Event) error { return nil })
	if code, _ := eventError(t, event(open)); code != CodeNotFound {
		t.Errorf("OnEvent only: %s", code)
	}
	OnMessage(func(Conn, Message) error { return nil })
	if out := event(open); out != nil {
		t.Errorf("open without OnOpen refused: %s", out)
	}
	if out := event([]byte(`{"type":"close","conn":` + liveConnJSON + `,"by":"client"}`)); out != nil {
		t.Errorf("close without OnClose refused: %s", out)
	}
	if code, _ := eventError(t, event([]byte(`{"type":"message","conn":`+liveConnJSON+`,"data":"***","binary":true}`))); code != CodeBadRequest {
		t.Errorf("bad base64: %s", code)
	}
	if code, _ := eventError(t, event([]byte(`{"type":"message","data":"x"}`))); code != CodeBadRequest {
		t.Errorf("no connection: %s", code)
	}
	for _, bad := range []string{`{"type":"open","conn":{"id":1}}`, `{"type":"close","code":"1000"}`, `{"type":"message","type":"message"}`} {
		if code, msg := eventError(t, event([]byte(bad))); code != CodeBadRequest || !strings.Contains(msg, "live event envelope is malformed") {
			t.Errorf("%s: %s %s", bad, code, msg)
		}
	}
	OnOpen(func(c Conn) error {
		switch c.Query {
		case "refuse":
			return Refuse(CodeConflict, "the table is full")
		case "panic":
			panic("boom")
		}
		return errors.New("plain")
	})
	withQuery := func(q string) []byte {
		return []byte(`{"type":"open","conn":{"id":"e1-a","kind":"sse","path":"/","query":"` + q + `","room":"r"}}`)
	}
	if code, msg := eventError(t, event(withQuery("refuse"))); code != CodeConflict || msg != "the table is full" {
		t.Errorf("Refuse: %s %q", code, msg)
	}
	if code, msg := eventError(t, event(withQuery("panic"))); code != CodeInternal || !strings.Contains(msg, "panic: boom") {
		t.Errorf("panic: %s %q", code, msg)
	}
	if code, msg := eventError(t, event(withQuery("x"))); code != CodeInternal || msg != "plain" {
		t.Errorf("plain error: %s %q", code, msg)
	}
	// A host error from an operation the handler called keeps its code.
	useFakeHost(t, func(op, req string) string {
		return `{"error":{"code":"live_connection_gone","message":"gone"}}`
	})
	OnClose(func(c Conn, _ Close) error { return c.Join("lobby") })
	if code, msg := eventError(t, event([]byte(`{"type":"close","conn":{"id":"e1-a"}}`))); code != CodeLiveConnectionGone || !strings.Contains(msg, "room.join") {
		t.Errorf("host error: %s %q", code, msg)
	}
	// A timer still takes the timer path (to OnEvent, here).
	if out := event([]byte(`{"type":"timer","timer":{"name":"t"}}`)); out != nil {
		t.Errorf("timer: %s", out)
	}
}

// The sending functions write their operation's request exactly; text
// that is not UTF-8 never leaves the actor; refusals are *HostError.
func TestLiveSending(t *testing.T) {
	host := useFakeHost(t, func(op, req string) string { return `{"ok":{}}` })
	c := Conn{ID: "e1-abc"}
	calls := []struct {
		do     func() error
		op     string
		req    string
		decode bool
	}{
		{func() error { return Send("e1-abc", "hi <b> \"q\"") }, "live.send", `{"conn":"e1-abc","data":"hi \u003cb\u003e \"q\""}`, false},
		{func() error { return c.Send("x") }, "live.send", `{"conn":"e1-abc","data":"x"}`, false},
		{func() error { return SendBinary("e1-abc", []byte{0, 1, 2, 0xff}) }, "live.send", `{"conn":"e1-abc","data":"AAEC/w==","binary":true}`, false},
		{func() error { return c.SendJSON(M{"a": 1}) }, "live.send", `{"conn":"e1-abc","data":"{\"a\":1}"}`, false},
		{func() error { return CloseConn("e1-abc", 0, "") }, "live.close", `{"conn":"e1-abc"}`, false},
		{func() error { return c.Close(4000, "game over") }, "live.close", `{"conn":"e1-abc","code":4000,"reason":"game over"}`, false},
		{func() error { return c.Join("t-1") }, "room.join", `{"conn":"e1-abc","room":"t-1"}`, false},
		{func() error { return c.Leave("t-1") }, "room.leave", `{"conn":"e1-abc","room":"t-1"}`, false},
		{func() error { return Publish("t-1", "all") }, "room.publish", `{"room":"t-1","data":"all"}`, false},
		{func() error { return Publish("t-1", "others", c.ID) }, "room.publish", `{"room":"t-1","data":"others","except":"e1-abc"}`, false},
		{func() error { return PublishBinary("t-1", []byte{7}) }, "room.publish", `{"room":"t-1","data":"Bw==","binary":true}`, false},
		{func() error { return PublishJSON("t-1", []int{1, 2}, c.ID) }, "room.publish", `{"room":"t-1","data":"[1,2]","except":"e1-abc"}`, false},
	}
	for i, cl := range calls {
		if err := cl.do(); err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if host.ops[len(host.ops)-1] != cl.op || host.reqs[len(host.reqs)-1] != cl.req {
			t.Errorf("%d: %s %s, want %s %s", i, host.ops[len(host.ops)-1], host.reqs[len(host.reqs)-1], cl.op, cl.req)
		}
		var v any
		if json.Unmarshal([]byte(host.reqs[len(host.reqs)-1]), &v) != nil {
			t.Errorf("%d: not JSON", i)
		}
	}
	n := len(host.ops)
	for _, err := range []error{Send("e1-abc", "a\xffb"), Publish("r", "\xc3")} {
		if !IsCode(err, CodeBadRequest) {
			t.Errorf("invalid UTF-8: %v", err)
		}
	}
	if len(host.ops) != n {
		t.Errorf("invalid UTF-8 reached the host")
	}
	if err := SendJSON("e1-abc", func() {}); err == nil {
		t.Error("SendJSON of a func")
	}

	useFakeHost(t, func(op, req string) string {
		return `{"error":{"code":"live_too_many","message":"the connection is in 32 rooms","field":""}}`
	})
	err := Join("e1-abc", "r")
	var he *HostError
	if !errors.As(err, &he) || he.Code != CodeLiveTooMany || he.Op != "room.join" || StatusOf(CodeLiveTooMany) != 429 || StatusOf(CodeLiveConnectionGone) != 410 {
		t.Errorf("refusal: %v", err)
	}
}

// liveJSON is a live envelope as encoding/json reads it, for
// FuzzDecodeLive.
type liveJSON struct {
	Type string `json:"type"`
	Conn *struct {
		ID        string `json:"id"`
		Kind      string `json:"kind"`
		Path      string `json:"path"`
		Query     string `json:"query"`
		Room      string `json:"room"`
		Caller    Caller `json:"caller"`
		RequestID string `json:"request_id"`
	} `json:"conn"`
	Data   string `json:"data"`
	Binary bool   `json:"binary"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// The hand-written reader of live envelopes reads what encoding/json
// reads, and refuses what it refuses (but repeated fields, refused on
// purpose, and a top-level null).
func FuzzDecodeLive(f *testing.F) {
	for _, s := range []string{
		`{"type":"open","conn":` + liveConnJSON + `}`,
		`{"type":"message","conn":{"id":"e1-a"},"data":"h\u00e9\ud800","binary":false}`,
		`{"type":"close","conn":{"id":"e1-a","caller":null},"code":-0,"reason":"\"","by":"client"}`,
		`{"TYPE":"close","Code":99999999999999999999}`,
		`{"code":1.0}`,
		`{"conn":{"caller":{"roles":[null,"a"],"link":{"params":{"a":null}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		if strings.TrimSpace(string(env)) == "null" {
			return
		}
		got, err := decodeLive(env)
		var want liveJSON
		werr := json.Unmarshal(env, &want)
		if errors.Is(err, errDuplicateField) {
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: codec error %v, encoding/json error %v", env, err, werr)
		}
		if err != nil {
			return
		}
		if got.typ != want.Type || got.data != want.Data || got.binary != want.Binary || got.code != want.Code || got.reason != want.Reason || got.by != want.By {
			t.Fatalf("%q: got %+v, want %+v", env, *got, want)
		}
		if want.Conn != nil {
			w := want.Conn
			c := got.conn
			if c.ID != w.ID || c.Kind != w.Kind || c.Path != w.Path || c.Query != w.Query || c.Room != w.Room || c.RequestID != w.RequestID ||
				!reflect.DeepEqual(c.Caller, w.Caller) {
				t.Fatalf("%q: conn %+v, want %+v", env, c, *w)
			}
		}
	})
}
