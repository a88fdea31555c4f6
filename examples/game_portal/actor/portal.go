package main

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The portal: players in a lobby, paired two by two into matches of
// Connect Four, each match a room of live connections. It keeps everything
// in memory (a live game), does nothing itself but through Effects, and is
// driven by the connections' messages and closes and by forfeit timers, so
// that it runs and is tested outside the sandbox alike.
//
// Messages from a page (JSON text):
//
//	{"type": "hello"}                     after every (re)connection: the player's state again
//	{"type": "join", "name": "Ada"}       into the lobby, to be paired with the next player
//	{"type": "move", "column": 3}         drops a disc (columns 0 to 6)
//	{"type": "leave"}                     leaves the lobby, or the match (the other player wins)
//
// Messages to a page:
//
//	{"type": "welcome", "name", "match", "lobby"}  the answer to hello; "name" is "" for a new
//	                                      player, "match" the ID of the match they are in, or ""
//	{"type": "waiting"}                   in the lobby, waiting for an opponent
//	{"type": "match", "you", "state"}     the player's seat (1 or 2) in a match starting or resumed
//	{"type": "state", ...}                a match's state, to its room after every change
//	{"type": "lobby", "waiting", "playing"} to every connection, when the numbers change
//	{"type": "left"}                      out of the lobby
//	{"type": "replaced"}                  the player's game went on in another tab (then closed)
//	{"type": "error", "message"}          a message refused (not your turn, a full column, ...)

// Effects is what the portal asks of the platform.
type Effects interface {
	// Send sends v as JSON to one connection.
	Send(conn string, v any)
	// Publish sends v as JSON to every member of room.
	Publish(room string, v any)
	// Join makes conn a member of room; a publish after it reaches conn.
	Join(conn, room string) error
	// Leave takes conn out of room.
	Leave(conn, room string)
	// Close closes conn with a WebSocket close code and reason.
	Close(conn string, code int, reason string)
	// After hands f back to Portal.Forfeit after delay.
	After(delay time.Duration, f Forfeit)
	// Save stores a finished match.
	Save(r Record)
	// Now is the time.
	Now() time.Time
	// NewID is a new random match ID (letters and digits).
	NewID() string
}

// LobbyRoom is the room every connection joins, for the lobby's numbers.
const LobbyRoom = "lobby"

// MaxName bounds a player's name, in characters.
const MaxName = 24

// Results of a match.
const (
	StatusPlaying   = "playing"
	StatusWon       = "won"
	StatusDraw      = "draw"
	StatusAbandoned = "abandoned"
)

// Forfeit is the payload of the timer set when a player's connection drops
// in a match: if they are still away when it fires, the match ends.
type Forfeit struct {
	Match string `json:"match"`
	Seat  int    `json:"seat"`
	// Away counts the player's absences, so that the timer of an earlier
	// absence does nothing after the player came back.
	Away int `json:"away"`
}

// Record is a finished match as the portal stores it.
type Record struct {
	ID      string         `json:"_id"`
	Game    string         `json:"game"`
	Players []RecordPlayer `json:"players"`
	Moves   []int          `json:"moves"`
	// Status is StatusWon, StatusDraw or StatusAbandoned; Winner the
	// winning seat (0 for a draw); Reason says why an abandoned match
	// ended.
	Status    string    `json:"status"`
	Winner    int       `json:"winner"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
}

// RecordPlayer is a player of a stored match.
type RecordPlayer struct {
	Seat int    `json:"seat"`
	Name string `json:"name"`
	// Player is the caller's kind and ID, the same across visits.
	Player string `json:"player"`
}

// State is a match as the pages see it.
type State struct {
	Type  string `json:"type"` // "state"
	Match string `json:"match"`
	// Seq grows with every state of the match, so that a page keeps the
	// newest whatever order a private and a published copy arrive in.
	Seq     int           `json:"seq"`
	Players []StatePlayer `json:"players"`
	// Grid is the grid by column, then row from the bottom: 0 empty, or
	// the seat whose disc it is.
	Grid   [Cols][Rows]int `json:"grid"`
	Turn   int             `json:"turn"`
	Moves  int             `json:"moves"`
	Last   *Cell           `json:"last"`
	Status string          `json:"status"`
	Winner int             `json:"winner"`
	Line   []Cell          `json:"line"`
	Reason string          `json:"reason,omitempty"`
}

// StatePlayer is a player as the pages see them.
type StatePlayer struct {
	Seat int    `json:"seat"`
	Name string `json:"name"`
	// Away is true while the player's connection is gone and the match
	// waits for them to come back.
	Away bool `json:"away"`
}

// LobbyStats are the lobby's numbers.
type LobbyStats struct {
	Type    string `json:"type"` // "lobby"
	Waiting int    `json:"waiting"`
	Playing int    `json:"playing"`
}

// player is someone playing: a caller, known by kind and ID, with at most
// one connection at a time.
type player struct {
	key  string
	name string
	// conn is the player's connection, "" while away.
	conn  string
	match *match
	// room is the last match room the connection joined, left when the
	// player joins the lobby again.
	room    string
	waiting bool
}

// match is a game between two players.
type match struct {
	id      string
	room    string
	game    *Game
	players [2]*player
	away    [2]int // the seat's absences so far
	gone    [2]bool
	seq     int
	started time.Time
	last    *Cell
	status  string
	reason  string
}

// Portal is the lobby and the matches.
type Portal struct {
	fx Effects
	// grace is how long a match waits for a player whose connection
	// dropped.
	grace   time.Duration
	players map[string]*player // by caller
	conns   map[string]*player // by connection
	lobby   []*player
	matches map[string]*match
	stats   LobbyStats
}

// NewPortal is an empty portal acting through fx.
func NewPortal(fx Effects, grace time.Duration) *Portal {
	return &Portal{fx: fx, grace: grace, players: map[string]*player{}, conns: map[string]*player{}, matches: map[string]*match{},
		stats: LobbyStats{Type: "lobby"}}
}

// inbound is any message from a page.
type inbound struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Column *int   `json:"column"`
}

// Message handles a message of conn, whose caller is who (kind and ID).
func (p *Portal) Message(conn, who string, data []byte) {
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		p.fail(conn, `messages are JSON objects such as {"type": "hello"}`)
		return
	}
	pl := p.attach(conn, who)
	switch in.Type {
	case "hello":
		match := ""
		if pl.match != nil {
			match = pl.match.id
		}
		p.fx.Send(conn, map[string]any{"type": "welcome", "name": pl.name, "match": match, "lobby": p.stats})
		if m := pl.match; m != nil {
			p.fx.Send(conn, map[string]any{"type": "match", "you": m.seat(pl), "state": m.state()})
		} else if pl.waiting {
			p.fx.Send(conn, map[string]string{"type": "waiting"})
		}
	case "join":
		p.join(pl, in.Name)
	case "move":
		p.move(pl, in.Column)
	case "leave":
		p.leave(pl)
	default:
		p.fail(conn, "unknown message type "+strings.ToValidUTF8(in.Type, "?"))
	}
	p.publishStats()
}

// Closed handles the end of conn.
func (p *Portal) Closed(conn string) {
	pl := p.conns[conn]
	delete(p.conns, conn)
	if pl == nil || pl.conn != conn {
		return // never spoke, or replaced by another tab
	}
	pl.conn = ""
	switch {
	case pl.waiting:
		p.unwait(pl)
		delete(p.players, pl.key)
	case pl.match != nil:
		m := pl.match
		seat := m.seat(pl)
		m.gone[seat-1] = true
		m.away[seat-1]++
		p.publish(m)
		p.fx.After(p.grace, Forfeit{Match: m.id, Seat: seat, Away: m.away[seat-1]})
	default:
		delete(p.players, pl.key)
	}
	p.publishStats()
}

// Forfeit ends a match whose player did not come back in time.
func (p *Portal) Forfeit(f Forfeit) {
	m := p.matches[f.Match]
	if m == nil || f.Seat < 1 || f.Seat > 2 || !m.gone[f.Seat-1] || m.away[f.Seat-1] != f.Away {
		return // over already, or the player came back
	}
	pl := m.players[f.Seat-1]
	m.game.Resign(f.Seat)
	p.finish(m, StatusAbandoned, pl.name+" left the match")
	p.publishStats()
}

// Stats are the lobby's numbers now.
func (p *Portal) Stats() LobbyStats {
	return LobbyStats{Type: "lobby", Waiting: len(p.lobby), Playing: len(p.matches)}
}

// attach makes conn the connection of who's player: a new player, one
// coming back to a match (which goes on), or one whose other tab gives way.
func (p *Portal) attach(conn, who string) *player {
	if pl := p.conns[conn]; pl != nil {
		return pl
	}
	pl := p.players[who]
	if pl == nil {
		pl = &player{key: who}
		p.players[who] = pl
	}
	if old := pl.conn; old != "" {
		delete(p.conns, old)
		p.fx.Send(old, map[string]string{"type": "replaced"})
		// 1000, so that the other tab's helper does not reconnect and
		// take the game back.
		p.fx.Close(old, 1000, "the game went on in another tab")
	}
	pl.conn = conn
	p.conns[conn] = pl
	if err := p.fx.Join(conn, LobbyRoom); err != nil {
		return pl // gone already: its close follows
	}
	if m := pl.match; m != nil {
		seat := m.seat(pl)
		if err := p.fx.Join(conn, m.room); err != nil {
			return pl
		}
		pl.room = m.room
		if m.gone[seat-1] {
			m.gone[seat-1] = false
			p.publish(m)
		}
	}
	return pl
}

// join puts pl into the lobby and pairs the two first players there.
func (p *Portal) join(pl *player, name string) {
	if pl.match != nil {
		p.fail(pl.conn, "finish or leave your match first")
		return
	}
	name, ok := cleanName(name)
	if !ok {
		p.fail(pl.conn, "choose a name of 1 to 24 characters")
		return
	}
	pl.name = name
	if pl.room != "" {
		p.fx.Leave(pl.conn, pl.room)
		pl.room = ""
	}
	if !pl.waiting {
		pl.waiting = true
		p.lobby = append(p.lobby, pl)
	}
	if len(p.lobby) < 2 {
		p.fx.Send(pl.conn, map[string]string{"type": "waiting"})
		return
	}
	first, second := p.lobby[0], p.lobby[1]
	p.lobby = slices.Delete(p.lobby, 0, 2)
	first.waiting, second.waiting = false, false
	m := &match{id: p.fx.NewID(), game: NewGame(), players: [2]*player{first, second}, started: p.fx.Now(), status: StatusPlaying}
	m.room = "match-" + m.id
	p.matches[m.id] = m
	for seat, q := range m.players {
		q.match = m
		if err := p.fx.Join(q.conn, m.room); err != nil {
			continue // the connection is gone: its close marks the player away
		}
		q.room = m.room
		p.fx.Send(q.conn, map[string]any{"type": "match", "you": seat + 1, "state": m.state()})
	}
	p.publish(m)
}

// move plays pl's move in their match.
func (p *Portal) move(pl *player, col *int) {
	m := pl.match
	if m == nil {
		p.fail(pl.conn, "you are not in a match")
		return
	}
	if col == nil {
		p.fail(pl.conn, `a move names its column: {"type": "move", "column": 3}`)
		return
	}
	row, err := m.game.Play(m.seat(pl), *col)
	if err != nil {
		p.fail(pl.conn, err.Error())
		return
	}
	m.last = &Cell{*col, row}
	switch {
	case m.game.Winner != 0:
		p.finish(m, StatusWon, "")
	case m.game.Draw:
		p.finish(m, StatusDraw, "")
	default:
		p.publish(m)
	}
}

// leave takes pl out of the lobby, or out of their match, which the other
// player then wins.
func (p *Portal) leave(pl *player) {
	switch {
	case pl.waiting:
		p.unwait(pl)
		p.fx.Send(pl.conn, map[string]string{"type": "left"})
	case pl.match != nil:
		m := pl.match
		m.game.Resign(m.seat(pl))
		p.finish(m, StatusAbandoned, pl.name+" left the match")
	default:
		p.fx.Send(pl.conn, map[string]string{"type": "left"})
	}
}

// finish ends m: its last state to both players, the record stored, and
// the players free to join the lobby again. The connections stay in the
// match's room until they join again, so that the last state, published
// to the room, is not overtaken by their leaving it.
func (p *Portal) finish(m *match, status, reason string) {
	m.status, m.reason = status, reason
	p.publish(m)
	delete(p.matches, m.id)
	rec := Record{ID: m.id, Game: "connect-four", Moves: slices.Clone(m.game.Moves), Status: status, Winner: m.game.Winner,
		Reason: reason, StartedAt: m.started, EndedAt: p.fx.Now()}
	for i, q := range m.players {
		rec.Players = append(rec.Players, RecordPlayer{Seat: i + 1, Name: q.name, Player: q.key})
		q.match = nil
		if q.conn == "" {
			delete(p.players, q.key)
		}
	}
	p.fx.Save(rec)
}

// unwait takes pl out of the lobby.
func (p *Portal) unwait(pl *player) {
	pl.waiting = false
	p.lobby = slices.DeleteFunc(p.lobby, func(q *player) bool { return q == pl })
}

// publish sends m's state to its room.
func (p *Portal) publish(m *match) {
	m.seq++
	p.fx.Publish(m.room, m.state())
}

// publishStats tells every connection the lobby's numbers when they
// changed.
func (p *Portal) publishStats() {
	if s := p.Stats(); s != p.stats {
		p.stats = s
		p.fx.Publish(LobbyRoom, s)
	}
}

// fail tells conn why its message was refused.
func (p *Portal) fail(conn, why string) {
	p.fx.Send(conn, map[string]string{"type": "error", "message": why})
}

// seat is pl's seat in m, 1 or 2.
func (m *match) seat(pl *player) int {
	if m.players[1] == pl {
		return 2
	}
	return 1
}

// state is m as the pages see it.
func (m *match) state() State {
	s := State{Type: "state", Match: m.id, Seq: m.seq, Grid: m.game.Grid, Turn: m.game.Turn, Moves: len(m.game.Moves),
		Last: m.last, Status: m.status, Winner: m.game.Winner, Line: m.game.Line, Reason: m.reason}
	for i, q := range m.players {
		s.Players = append(s.Players, StatePlayer{Seat: i + 1, Name: q.name, Away: m.gone[i]})
	}
	if s.Line == nil {
		s.Line = []Cell{}
	}
	return s
}

// cleanName is name trimmed, if it is a name: 1 to MaxName characters, no
// control characters.
func cleanName(name string) (string, bool) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxName || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", false
	}
	return name, true
}
