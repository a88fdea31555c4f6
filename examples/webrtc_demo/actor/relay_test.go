package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// effects records what the relay sends and closes, by connection.
type effects struct {
	t      *testing.T
	sent   map[string][]string
	closed map[string]string
}

func newEffects(t *testing.T) *effects {
	return &effects{t: t, sent: map[string][]string{}, closed: map[string]string{}}
}

func (e *effects) Send(conn, text string) { e.sent[conn] = append(e.sent[conn], text) }

func (e *effects) Close(conn string, code int, reason string) {
	e.closed[conn] = fmt.Sprint(code, " ", reason)
}

// take returns and forgets what conn received, decoded.
func (e *effects) take(conn string) []map[string]any {
	var out []map[string]any
	for _, s := range e.sent[conn] {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			e.t.Fatalf("%s got %q, not JSON", conn, s)
		}
		out = append(out, m)
	}
	delete(e.sent, conn)
	return out
}

// one is the single message conn received, of type typ.
func (e *effects) one(conn, typ string) map[string]any {
	e.t.Helper()
	got := e.take(conn)
	if len(got) != 1 || got[0]["type"] != typ {
		e.t.Fatalf("%s got %v, want one %q", conn, got, typ)
	}
	return got[0]
}

func TestRelayCall(t *testing.T) {
	e := newEffects(t)
	r := NewRelay(e)
	r.Message("a", []byte(`{"type":"join","room":"kitchen"}`))
	if m := e.one("a", "joined"); m["peers"] != 1.0 || m["room"] != "kitchen" {
		t.Fatalf("a joined: %v", m)
	}
	r.Message("b", []byte(`{"type":"join","room":"kitchen"}`))
	if m := e.one("b", "joined"); m["peers"] != 2.0 {
		t.Fatalf("b joined: %v", m)
	}
	e.one("a", "peer-joined")

	// Offer, answer and candidates pass unchanged, to the other peer only.
	offer := `{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`
	r.Message("a", []byte(offer))
	if got := e.sent["b"]; len(got) != 1 || got[0] != offer || len(e.sent["a"]) != 0 {
		t.Fatalf("the offer reached b as %q, a got %v", got, e.sent["a"])
	}
	delete(e.sent, "b")
	answer := `{"type":"answer","sdp":"v=0\r\n"}`
	candidate := `{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2122260223 10.0.0.2 40000 typ host","sdpMid":"0","sdpMLineIndex":0}}`
	r.Message("b", []byte(answer))
	r.Message("b", []byte(candidate))
	if got := e.sent["a"]; len(got) != 2 || got[0] != answer || got[1] != candidate {
		t.Fatalf("a got %q", got)
	}
	delete(e.sent, "a")

	// A third is turned away, with a message, and closed with 1000.
	r.Message("c", []byte(`{"type":"join","room":"kitchen"}`))
	if m := e.one("c", "full"); !strings.Contains(m["message"].(string), "already has two people") {
		t.Fatalf("c: %v", m)
	}
	if e.closed["c"] != "1000 room kitchen is full" || r.Peers("kitchen") != 2 {
		t.Fatalf("c closed %q, peers %d", e.closed["c"], r.Peers("kitchen"))
	}
	r.Closed("c") // its close event: nothing changes
	if len(e.sent["a"])+len(e.sent["b"]) != 0 || r.Peers("kitchen") != 2 {
		t.Fatalf("c's close was told: %v %v", e.sent["a"], e.sent["b"])
	}

	// b leaves: a is told, and c may come in and call a.
	r.Closed("b")
	e.one("a", "peer-left")
	r.Message("c", []byte(`{"type":"join","room":"kitchen"}`))
	e.one("c", "joined")
	e.one("a", "peer-joined")
	r.Message("a", []byte(`{"type":"leave"}`))
	e.one("a", "left")
	e.one("c", "peer-left")
	r.Closed("c")
	if r.Peers("kitchen") != 0 || len(r.rooms) != 0 || len(r.peers) != 0 {
		t.Fatalf("left over: %v %v", r.rooms, r.peers)
	}
}

// Rooms are separate: a message never crosses into another room.
func TestRelayRoomsApart(t *testing.T) {
	e := newEffects(t)
	r := NewRelay(e)
	for _, p := range [][2]string{{"a", "one"}, {"b", "one"}, {"c", "two"}, {"d", "two"}} {
		r.Message(p[0], []byte(`{"type":"join","room":"`+p[1]+`"}`))
	}
	for _, c := range []string{"a", "b", "c", "d"} {
		e.take(c)
	}
	r.Message("a", []byte(`{"type":"offer","sdp":"x"}`))
	if len(e.sent["b"]) != 1 || len(e.sent["c"])+len(e.sent["d"]) != 0 {
		t.Fatalf("the offer went to %v", e.sent)
	}
}

// Messages a page should not send are refused to it alone.
func TestRelayHostileMessages(t *testing.T) {
	e := newEffects(t)
	r := NewRelay(e)
	for _, tc := range []struct{ conn, msg, says string }{
		{"a", `not json`, "JSON objects"},
		{"a", `{"type":"offer","sdp":"x"}`, "join a room first"},
		{"a", `{"type":"leave"}`, "in no room"},
		{"a", `{"type":"join"}`, "1 to 64"},
		{"a", `{"type":"join","room":"a b"}`, "1 to 64"},
		{"a", `{"type":"join","room":"../x"}`, "1 to 64"},
		{"a", `{"type":"join","room":"` + strings.Repeat("x", 65) + `"}`, "1 to 64"},
		{"a", `{"type":"peer-left"}`, `unknown message type "peer-left"`},
		{"a", `{"type":"join","room":"r"}`, ""},
		{"a", `{"type":"join","room":"s"}`, "in room r already"},
		{"a", `{"type":"answer","sdp":"x"}`, "nobody else"},
	} {
		r.Message(tc.conn, []byte(tc.msg))
		got := e.take(tc.conn)
		if tc.says == "" {
			continue
		}
		if len(got) != 1 || got[0]["type"] != "error" || !strings.Contains(got[0]["message"].(string), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", tc.msg, got, tc.says)
		}
	}
	if r.Peers("r") != 1 || r.Peers("s") != 0 {
		t.Fatalf("rooms %v", r.rooms)
	}
	r.Closed("nobody")
	r.Closed("a")
	r.Closed("a")
	if len(r.rooms) != 0 {
		t.Fatalf("rooms %v", r.rooms)
	}
}
