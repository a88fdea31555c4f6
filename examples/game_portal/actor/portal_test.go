package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// effects records what the portal asks of the platform, as the live
// connections' pages and the store would see it.
type effects struct {
	t     *testing.T
	sent  map[string][]map[string]any // by connection
	rooms map[string]map[string]bool  // members by room
	// gone connections: Join fails for them, as the edge answers for a
	// connection that closed.
	gone    map[string]bool
	closed  map[string]string // code and reason by connection
	timers  []Forfeit
	delays  []time.Duration
	saved   []Record
	ids     int
	now     time.Time
	publish int
}

func newEffects(t *testing.T) *effects {
	return &effects{t: t, sent: map[string][]map[string]any{}, rooms: map[string]map[string]bool{}, gone: map[string]bool{},
		closed: map[string]string{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// asJSON is v as a page decodes it.
func (e *effects) asJSON(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *effects) Send(conn string, v any) { e.sent[conn] = append(e.sent[conn], e.asJSON(v)) }

// Publish delivers to the room's members as the edges would.
func (e *effects) Publish(room string, v any) {
	e.publish++
	for conn := range e.rooms[room] {
		e.sent[conn] = append(e.sent[conn], e.asJSON(v))
	}
}

func (e *effects) Join(conn, room string) error {
	if e.gone[conn] {
		return errors.New("live_connection_gone")
	}
	if e.rooms[room] == nil {
		e.rooms[room] = map[string]bool{}
	}
	e.rooms[room][conn] = true
	return nil
}

func (e *effects) Leave(conn, room string) { delete(e.rooms[room], conn) }

func (e *effects) Close(conn string, code int, reason string) {
	e.closed[conn] = fmt.Sprint(code, " ", reason)
}

func (e *effects) After(delay time.Duration, f Forfeit) {
	e.timers = append(e.timers, f)
	e.delays = append(e.delays, delay)
}

func (e *effects) Save(r Record)    { e.saved = append(e.saved, r) }
func (e *effects) Now() time.Time   { return e.now }
func (e *effects) NewID() string    { e.ids++; return fmt.Sprintf("m%d", e.ids) }
func (e *effects) drop(conn string) { e.gone[conn] = true; e.removeEverywhere(conn) }

func (e *effects) removeEverywhere(conn string) {
	for _, members := range e.rooms {
		delete(members, conn)
	}
}

// take returns and forgets what conn received.
func (e *effects) take(conn string) []map[string]any {
	got := e.sent[conn]
	delete(e.sent, conn)
	return got
}

// last is the last message of type typ conn received, or nil.
func (e *effects) last(conn, typ string) map[string]any {
	msgs := e.sent[conn]
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i]["type"] == typ {
			return msgs[i]
		}
	}
	return nil
}

// say sends a page's message.
func say(p *Portal, conn, who string, msg string) { p.Message(conn, who, []byte(msg)) }

// startMatch has ada (on conn a) and bo (on conn b) join the lobby and be
// paired; ada, first, has seat 1.
func startMatch(t *testing.T, p *Portal, e *effects) {
	t.Helper()
	say(p, "a", "participant:ada", `{"type":"hello"}`)
	say(p, "a", "participant:ada", `{"type":"join","name":"  Ada "}`)
	if e.last("a", "waiting") == nil {
		t.Fatalf("ada alone in the lobby got %v", e.sent["a"])
	}
	say(p, "b", "participant:bo", `{"type":"join","name":"Bo"}`)
	for conn, seat := range map[string]float64{"a": 1, "b": 2} {
		m := e.last(conn, "match")
		if m == nil || m["you"] != seat {
			t.Fatalf("%s: no match message with seat %v in %v", conn, seat, e.sent[conn])
		}
		if st := e.last(conn, "state"); st == nil || st["status"] != StatusPlaying || st["turn"] != 1.0 || st["match"] != "m1" {
			t.Fatalf("%s: state %v", conn, st)
		}
		if !e.rooms["match-m1"][conn] || !e.rooms[LobbyRoom][conn] {
			t.Fatalf("%s is not in the rooms: %v", conn, e.rooms)
		}
	}
	st := e.last("b", "state")
	players := st["players"].([]any)
	if players[0].(map[string]any)["name"] != "Ada" || players[1].(map[string]any)["name"] != "Bo" {
		t.Fatalf("players %v", players)
	}
	if s := p.Stats(); s.Waiting != 0 || s.Playing != 1 {
		t.Fatalf("stats %+v", s)
	}
	e.take("a")
	e.take("b")
}

// move has who play col and returns the state the other connection got.
func move(t *testing.T, p *Portal, e *effects, conn, who string, col int, other string) map[string]any {
	t.Helper()
	say(p, conn, who, fmt.Sprintf(`{"type":"move","column":%d}`, col))
	if errMsg := e.last(conn, "error"); errMsg != nil {
		t.Fatalf("%s's move in %d refused: %v", who, col, errMsg["message"])
	}
	st := e.last(other, "state")
	if st == nil {
		t.Fatalf("%s got no state after the move", other)
	}
	e.take(conn)
	e.take(other)
	return st
}

func TestPortalMatchToAWin(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, time.Minute)
	startMatch(t, p, e)

	// Out of turn, a bad column: refused to the mover alone.
	say(p, "b", "participant:bo", `{"type":"move","column":3}`)
	if m := e.last("b", "error"); m == nil || m["message"] != ErrNotYourTurn.Error() || len(e.sent["a"]) != 0 {
		t.Fatalf("out of turn: b got %v, a got %v", e.sent["b"], e.sent["a"])
	}
	say(p, "a", "participant:ada", `{"type":"move","column":7}`)
	say(p, "a", "participant:ada", `{"type":"move"}`)
	say(p, "a", "participant:ada", `{"type":"move","column":"3"}`)
	if errs := e.take("a"); len(errs) != 3 || errs[0]["message"] != ErrNoColumn.Error() ||
		!strings.Contains(errs[1]["message"].(string), "names its column") || errs[2]["type"] != "error" {
		t.Fatalf("bad moves: %v", errs)
	}
	e.take("b")

	seq := 0.0
	for i, col := range []int{0, 1, 0, 1, 0, 1} {
		conn, who, other := "a", "participant:ada", "b"
		if i%2 == 1 {
			conn, who, other = "b", "participant:bo", "a"
		}
		st := move(t, p, e, conn, who, col, other)
		grid := st["grid"].([]any)
		if cell := grid[col].([]any)[i/2]; cell != float64(i%2+1) {
			t.Fatalf("move %d: cell %d,%d is %v", i+1, col, i/2, cell)
		}
		if st["seq"].(float64) <= seq || st["moves"] != float64(i+1) {
			t.Fatalf("move %d: seq %v after %v, moves %v", i+1, st["seq"], seq, st["moves"])
		}
		seq = st["seq"].(float64)
	}
	st := move(t, p, e, "a", "participant:ada", 0, "b")
	if st["status"] != StatusWon || st["winner"] != 1.0 || len(st["line"].([]any)) != 4 || st["turn"] != 0.0 {
		t.Fatalf("the winning state: %v", st)
	}
	if len(e.saved) != 1 {
		t.Fatalf("stored %d matches", len(e.saved))
	}
	r := e.saved[0]
	if r.ID != "m1" || r.Status != StatusWon || r.Winner != 1 || len(r.Moves) != 7 || r.Players[0].Player != "participant:ada" ||
		r.Players[1].Name != "Bo" || r.EndedAt.IsZero() || r.Game != "connect-four" {
		t.Fatalf("the stored match: %+v", r)
	}
	if s := p.Stats(); s.Playing != 0 {
		t.Fatalf("stats after the match: %+v", s)
	}
	// After the end, moves are refused, and joining again leaves the old
	// match's room.
	say(p, "b", "participant:bo", `{"type":"move","column":3}`)
	if m := e.last("b", "error"); m == nil || m["message"] != "you are not in a match" {
		t.Fatalf("a move after the end: %v", e.sent["b"])
	}
	say(p, "a", "participant:ada", `{"type":"join","name":"Ada"}`)
	if e.rooms["match-m1"]["a"] || e.last("a", "waiting") == nil {
		t.Fatalf("joining again: rooms %v, got %v", e.rooms, e.sent["a"])
	}
}

func TestPortalLeave(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, time.Minute)
	startMatch(t, p, e)
	move(t, p, e, "a", "participant:ada", 3, "b")
	say(p, "b", "participant:bo", `{"type":"leave"}`)
	st := e.last("a", "state")
	if st == nil || st["status"] != StatusAbandoned || st["winner"] != 1.0 || st["reason"] != "Bo left the match" {
		t.Fatalf("ada after bo left: %v", st)
	}
	if len(e.saved) != 1 || e.saved[0].Status != StatusAbandoned || e.saved[0].Reason != "Bo left the match" || e.saved[0].Winner != 1 {
		t.Fatalf("stored %+v", e.saved)
	}
	// Leaving the lobby.
	say(p, "c", "participant:cy", `{"type":"join","name":"Cy"}`)
	say(p, "c", "participant:cy", `{"type":"leave"}`)
	if e.last("c", "left") == nil || p.Stats().Waiting != 0 {
		t.Fatalf("cy leaving the lobby: %v, %+v", e.sent["c"], p.Stats())
	}
}

// A player whose connection drops is away: the other sees it, a timer is
// set, and coming back (a new connection, the same caller) resumes the
// match; a timer of an earlier absence does nothing then.
func TestPortalReconnect(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, 30*time.Second)
	startMatch(t, p, e)
	move(t, p, e, "a", "participant:ada", 3, "b")
	e.drop("b")
	p.Closed("b")
	st := e.last("a", "state")
	if st == nil || !st["players"].([]any)[1].(map[string]any)["away"].(bool) || st["status"] != StatusPlaying {
		t.Fatalf("ada after bo dropped: %v", st)
	}
	if len(e.timers) != 1 || e.timers[0] != (Forfeit{Match: "m1", Seat: 2, Away: 1}) || e.delays[0] != 30*time.Second {
		t.Fatalf("timers %v %v", e.timers, e.delays)
	}
	e.take("a")

	say(p, "b2", "participant:bo", `{"type":"hello"}`)
	m := e.last("b2", "match")
	if m == nil || m["you"] != 2.0 || m["state"].(map[string]any)["moves"] != 1.0 {
		t.Fatalf("bo back: %v", e.sent["b2"])
	}
	if w := e.last("b2", "welcome"); w == nil || w["name"] != "Bo" {
		t.Fatalf("bo's welcome: %v", w)
	}
	if st := e.last("a", "state"); st == nil || st["players"].([]any)[1].(map[string]any)["away"].(bool) {
		t.Fatalf("ada after bo came back: %v", st)
	}
	p.Forfeit(e.timers[0])
	if len(e.saved) != 0 {
		t.Fatalf("the forfeit timer of an absence that ended ended the match: %+v", e.saved)
	}
	move(t, p, e, "b2", "participant:bo", 3, "a")

	// Away again, not back in time.
	e.drop("b2")
	p.Closed("b2")
	p.Forfeit(e.timers[len(e.timers)-1])
	if st := e.last("a", "state"); st == nil || st["status"] != StatusAbandoned || st["reason"] != "Bo left the match" || st["winner"] != 1.0 {
		t.Fatalf("ada after bo's time ran out: %v", st)
	}
	if len(e.saved) != 1 {
		t.Fatalf("stored %d", len(e.saved))
	}
	// Bo, back after the end, is a new player in the lobby.
	say(p, "b3", "participant:bo", `{"type":"hello"}`)
	if got := e.take("b3"); len(got) != 1 || got[0]["type"] != "welcome" || got[0]["name"] != "" {
		t.Fatalf("bo after the forfeit: %v", got)
	}
}

// The same player in a second tab takes the game over; the first tab is
// told and closed with 1000, so that its helper does not take it back.
func TestPortalSecondTab(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, time.Minute)
	startMatch(t, p, e)
	say(p, "a2", "participant:ada", `{"type":"hello"}`)
	if e.last("a", "replaced") == nil || e.closed["a"] != "1000 the game went on in another tab" {
		t.Fatalf("the first tab: %v, closed %q", e.sent["a"], e.closed["a"])
	}
	if m := e.last("a2", "match"); m == nil || m["you"] != 1.0 {
		t.Fatalf("the second tab: %v", e.sent["a2"])
	}
	// The first tab's close comes later and changes nothing.
	e.removeEverywhere("a")
	p.Closed("a")
	if len(e.timers) != 0 {
		t.Fatalf("the replaced tab's close set a timer: %v", e.timers)
	}
	move(t, p, e, "a2", "participant:ada", 0, "b")
}

// Messages a page should not send are refused to it alone, and change
// nothing.
func TestPortalHostileMessages(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, time.Minute)
	for _, tc := range []struct{ msg, says string }{
		{`not json`, "JSON objects"},
		{`[1,2]`, "JSON objects"},
		{`{"type":"dance"}`, "unknown message type dance"},
		{`{"type":"move","column":1}`, "not in a match"},
		{`{"type":"join"}`, "1 to 24 characters"},
		{`{"type":"join","name":"   "}`, "1 to 24 characters"},
		{`{"type":"join","name":"` + strings.Repeat("x", 25) + `"}`, "1 to 24 characters"},
		{`{"type":"join","name":"a\u0007b"}`, "1 to 24 characters"},
	} {
		say(p, "x", "participant:x", tc.msg)
		got := e.take("x")
		last := got[len(got)-1]
		if last["type"] != "error" || !strings.Contains(last["message"].(string), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", tc.msg, got, tc.says)
		}
	}
	if s := p.Stats(); s.Waiting != 0 || s.Playing != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A name of 24 characters, not bytes, is fine.
	say(p, "x", "participant:x", `{"type":"join","name":"`+strings.Repeat("é", 24)+`"}`)
	if e.last("x", "waiting") == nil {
		t.Fatalf("a 24-character name: %v", e.sent["x"])
	}
	// Joining while in a match is refused.
	say(p, "y", "participant:y", `{"type":"join","name":"Y"}`)
	e.take("x")
	say(p, "x", "participant:x", `{"type":"join","name":"X"}`)
	if m := e.last("x", "error"); m == nil || m["message"] != "finish or leave your match first" {
		t.Fatalf("join in a match: %v", e.sent["x"])
	}
	// Closes of connections the portal never heard of, and forfeits of
	// matches it does not have, change nothing.
	p.Closed("nobody")
	p.Forfeit(Forfeit{Match: "nope", Seat: 1, Away: 1})
	p.Forfeit(Forfeit{Match: "m1", Seat: 7, Away: 1})
	p.Forfeit(Forfeit{Match: "m1", Seat: 1, Away: 0})
	if len(e.saved) != 0 || p.Stats().Playing != 1 {
		t.Fatalf("stray events ended a match: %+v %+v", e.saved, p.Stats())
	}
}

// A player who closes while waiting leaves the lobby, and the next two
// are paired; one whose connection is gone before the pairing is marked
// away by its close.
func TestPortalLobby(t *testing.T) {
	e := newEffects(t)
	p := NewPortal(e, time.Minute)
	say(p, "a", "participant:ada", `{"type":"join","name":"Ada"}`)
	p.Closed("a")
	if s := p.Stats(); s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
	say(p, "b", "participant:bo", `{"type":"join","name":"Bo"}`)
	say(p, "b", "participant:bo", `{"type":"join","name":"Bo"}`) // twice: still once in the lobby
	if s := p.Stats(); s.Waiting != 1 {
		t.Fatalf("stats %+v", s)
	}
	e.gone["b"] = true // closed, its close not told yet
	say(p, "c", "participant:cy", `{"type":"join","name":"Cy"}`)
	if m := e.last("c", "match"); m == nil || m["you"] != 2.0 {
		t.Fatalf("cy: %v", e.sent["c"])
	}
	p.Closed("b")
	if st := e.last("c", "state"); st == nil || !st["players"].([]any)[0].(map[string]any)["away"].(bool) {
		t.Fatalf("cy after bo's close: %v", st)
	}
	if l := e.last("c", "lobby"); l == nil || l["playing"] != 1.0 {
		t.Fatalf("cy's lobby numbers: %v", e.sent["c"])
	}
}
