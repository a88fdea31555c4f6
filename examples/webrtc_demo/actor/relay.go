package main

import (
	"encoding/json"
	"regexp"
	"strconv"
)

// The relay: rooms of at most two peers, and the messages that let two
// browsers set up a call between them (WebRTC's offer, answer and ICE
// candidates), passed from one peer to the other unchanged. The media
// never come here: the browsers send them to each other. It keeps its
// rooms in memory, acts only through Effects, and is driven by the
// connections' messages and closes, so that it runs and is tested outside
// the sandbox alike.
//
// Messages from a page (JSON text):
//
//	{"type": "join", "room": "kitchen"}      into a room (1 to 64 letters, digits, '_' or '-')
//	{"type": "offer", "sdp": "..."}          relayed to the other peer as is, as are
//	{"type": "answer", "sdp": "..."}         these two
//	{"type": "candidate", "candidate": {...}}
//	{"type": "leave"}                        out of the room
//
// Messages to a page:
//
//	{"type": "joined", "room", "peers"}      in the room, with peers people in it (1 or 2)
//	{"type": "peer-joined"}                  someone joined: make the offer
//	{"type": "peer-left"}                    the other peer left or lost the connection
//	{"type": "full", "message"}              the room has two peers already; the connection then closes (1000)
//	{"type": "error", "message"}             a message refused
//	plus the other peer's offer, answer and candidates

// Effects is what the relay asks of the platform.
type Effects interface {
	// Send sends text to one connection.
	Send(conn, text string)
	// Close closes conn with a WebSocket close code and reason.
	Close(conn string, code int, reason string)
}

// MaxPeers is how many peers a room holds: a call is between two.
const MaxPeers = 2

var roomName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// relayed are the message types passed on to the other peer.
var relayed = map[string]bool{"offer": true, "answer": true, "candidate": true}

// Relay is the rooms and their peers.
type Relay struct {
	fx    Effects
	rooms map[string][]string // the peers' connections by room, first in first
	peers map[string]string   // the room of each connection
}

// NewRelay is a relay without rooms acting through fx.
func NewRelay(fx Effects) *Relay {
	return &Relay{fx: fx, rooms: map[string][]string{}, peers: map[string]string{}}
}

// Message handles a message of conn.
func (r *Relay) Message(conn string, data []byte) {
	var in struct {
		Type string `json:"type"`
		Room string `json:"room"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		r.fail(conn, `messages are JSON objects such as {"type": "join", "room": "kitchen"}`)
		return
	}
	switch {
	case in.Type == "join":
		r.join(conn, in.Room)
	case in.Type == "leave":
		r.leave(conn)
	case relayed[in.Type]:
		room, ok := r.peers[conn]
		if !ok {
			r.fail(conn, "join a room first")
			return
		}
		other := r.other(room, conn)
		if other == "" {
			r.fail(conn, "nobody else is in the room yet")
			return
		}
		r.fx.Send(other, string(data))
	default:
		r.fail(conn, "unknown message type "+strconv.Quote(in.Type))
	}
}

// Closed handles the end of conn: the other peer is told.
func (r *Relay) Closed(conn string) { r.remove(conn) }

// Peers is how many peers room has.
func (r *Relay) Peers(room string) int { return len(r.rooms[room]) }

func (r *Relay) join(conn, room string) {
	if !roomName.MatchString(room) {
		r.fail(conn, "a room's name is 1 to 64 letters, digits, '_' or '-'")
		return
	}
	if cur, ok := r.peers[conn]; ok {
		r.fail(conn, "you are in room "+cur+" already: leave it first")
		return
	}
	peers := r.rooms[room]
	if len(peers) >= MaxPeers {
		r.send(conn, map[string]string{"type": "full", "message": "Room " + room + " already has two people in it: a call is between two. Choose another room."})
		// 1000: the browser helper does not reconnect into a full room.
		r.fx.Close(conn, 1000, "room "+room+" is full")
		return
	}
	peers = append(peers, conn)
	r.rooms[room] = peers
	r.peers[conn] = room
	r.send(conn, map[string]any{"type": "joined", "room": room, "peers": len(peers)})
	if len(peers) == MaxPeers {
		// The peer who waited makes the offer.
		r.send(peers[0], map[string]string{"type": "peer-joined"})
	}
}

func (r *Relay) leave(conn string) {
	if _, ok := r.peers[conn]; !ok {
		r.fail(conn, "you are in no room")
		return
	}
	r.remove(conn)
	r.send(conn, map[string]string{"type": "left"})
}

// remove takes conn out of its room and tells the other peer.
func (r *Relay) remove(conn string) {
	room, ok := r.peers[conn]
	if !ok {
		return
	}
	delete(r.peers, conn)
	var rest []string
	for _, c := range r.rooms[room] {
		if c != conn {
			rest = append(rest, c)
		}
	}
	if len(rest) == 0 {
		delete(r.rooms, room)
		return
	}
	r.rooms[room] = rest
	for _, c := range rest {
		r.send(c, map[string]string{"type": "peer-left"})
	}
}

// other is the peer of room who is not conn, or "".
func (r *Relay) other(room, conn string) string {
	for _, c := range r.rooms[room] {
		if c != conn {
			return c
		}
	}
	return ""
}

func (r *Relay) send(conn string, v any) {
	b, _ := json.Marshal(v)
	r.fx.Send(conn, string(b))
}

func (r *Relay) fail(conn, why string) {
	r.send(conn, map[string]string{"type": "error", "message": why})
}
