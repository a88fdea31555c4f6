package actorapi

import (
	"regexp"
	"strings"
)

// Live channels (docs/actors.md, section 8): browsers hold WebSockets
// (/experiments/{slug}/ws/{path...}) and server-sent event streams
// (/experiments/{slug}/events/{room}) on an edge; the actor hears of them
// as events and acts on them through host operations.
//
//	edge -> actor   LiveSubject(slug), a request per event (open, message,
//	                close) of one connection, in order; the reply is empty
//	                (taken) or an error reply (an open refused, say)
//	actor -> edge   LiveEdgeSubject(slug, edge): commands about one
//	                connection (send and close published; join and leave
//	                requested, so that a publish after a join reaches the
//	                new member)
//	actor -> room   LiveRoomSubject(slug, room): a message for every member
//	                on every edge (each edge subscribes while it has one)
//	actor -> edges  LiveCensusSubject(slug): which connections each edge
//	                holds, for the worker that takes the actor over
//
// Every body is JSON (schemas/messages/live-*.json and actor-event.json).

// LiveSubject is where an experiment's live events go: only the actor's
// first instance subscribes, so one instance sees a connection's whole life.
func LiveSubject(slug string) string { return "gnome.actor." + slug + ".live" }

// LiveEdgeSubject is where commands about the connections edge holds for
// slug's experiment go.
func LiveEdgeSubject(slug, edge string) string { return "gnome.live." + slug + ".edge." + edge }

// LiveRoomSubject is where messages to room's members go.
func LiveRoomSubject(slug, room string) string { return "gnome.live." + slug + ".room." + room }

// LiveCensusSubject is where the worker asks the edges which of slug's
// connections they hold.
func LiveCensusSubject(slug string) string { return "gnome.live." + slug + ".census" }

// Headers of a live event besides the trace context and request ID, so
// that the worker counts connections without decoding the envelope.
const (
	// HeaderLive is the event's type: LiveOpen, LiveMessage or LiveClose.
	HeaderLive = "Gnome-Live"
	// HeaderLiveConn is the connection's ID.
	HeaderLiveConn = "Gnome-Live-Conn"
	// HeaderLiveClient is who holds the connection, for the per-client
	// bound: the caller's kind and ID, or a digest of the client's address
	// for a caller the platform does not know.
	HeaderLiveClient = "Gnome-Live-Client"
)

// Event types of live channels.
const (
	LiveOpen    = "open"
	LiveMessage = "message"
	LiveClose   = "close"
)

// Kinds of connection.
const (
	ConnWebSocket = "websocket"
	ConnSSE       = "sse"
)

// LiveEvent is the event envelope of a connection's open, message or
// close, as the actor's gnome_event receives it.
type LiveEvent struct {
	Type string   `json:"type"`
	Conn LiveConn `json:"conn"`
	// Data is a message's text, or base64 of its bytes when Binary.
	Data   string `json:"data,omitempty"`
	Binary bool   `json:"binary,omitempty"`
	// Code and Reason are a close's; By says who closed: LiveByClient,
	// LiveByActor or LiveByPlatform.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// Who closed a connection.
const (
	LiveByClient   = "client"
	LiveByActor    = "actor"
	LiveByPlatform = "platform"
)

// LiveConn is a connection as the actor sees it, in every event.
type LiveConn struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Path is the WebSocket's path below /experiments/{slug}/ws, from "/";
	// "/" for an event stream.
	Path  string `json:"path"`
	Query string `json:"query"`
	// Room is the room an event stream follows (the edge joins it there).
	Room      string `json:"room,omitempty"`
	Caller    Caller `json:"caller"`
	RequestID string `json:"request_id"`
}

// LiveCommand is a command about one connection, on LiveEdgeSubject.
type LiveCommand struct {
	// Op is LiveSend, LiveCloseConn, LiveJoin or LiveLeave.
	Op   string `json:"op"`
	Conn string `json:"conn"`
	// Data and Binary are a send's message (base64 when Binary).
	Data   string `json:"data,omitempty"`
	Binary bool   `json:"binary,omitempty"`
	// Room is a join's or leave's.
	Room string `json:"room,omitempty"`
	// Code and Reason are a close's.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Operations of a LiveCommand.
const (
	LiveSend      = "send"
	LiveCloseConn = "close"
	LiveJoin      = "join"
	LiveLeave     = "leave"
)

// LiveRoomMessage is a message to a room's members, on LiveRoomSubject.
type LiveRoomMessage struct {
	Data   string `json:"data"`
	Binary bool   `json:"binary,omitempty"`
	// Except is a connection that does not receive it (the sender, say).
	Except string `json:"except,omitempty"`
}

// LiveCensus is an edge's answer to a census: its connections of the
// experiment.
type LiveCensus struct {
	Edge  string           `json:"edge"`
	Conns []LiveCensusConn `json:"conns"`
}

// LiveCensusConn is one connection in a census.
type LiveCensusConn struct {
	ID     string `json:"id"`
	Client string `json:"client"`
}

// Close codes of live connections (docs/actors.md, section 8). An actor
// closes with CloseNormal or a code from 3000 to 4899; the platform's own
// are the standard ones below and 4900 to 4999.
const (
	CloseNormal      = 1000
	CloseGoingAway   = 1001 // the edge is shutting down
	ClosePolicy      = 1008 // a message the platform refuses (rate, kind)
	CloseTooBig      = 1009 // a message over LIVE_MAX_MESSAGE_BYTES
	CloseInternal    = 1011
	CloseTryLater    = 1013 // the actor was unreachable longer than the hold
	CloseStopped     = 4900 // the experiment no longer serves live channels
	CloseSlowReader  = 4901 // the connection's send queue was full
	CloseSessionEnds = 4902 // the caller's session ended (signed out)
)

// ValidActorCloseCode reports whether an actor may close with code.
func ValidActorCloseCode(code int) bool {
	return code == CloseNormal || (code >= 3000 && code <= 4899)
}

// MaxCloseReason bounds a close reason in bytes (a close frame holds 123).
const MaxCloseReason = 123

var (
	roomSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	edgeSyntax = regexp.MustCompile(`^[a-z0-9]{1,32}$`)
	connSyntax = regexp.MustCompile(`^[a-z0-9]{1,32}-[A-Za-z0-9_-]{1,43}$`)
)

// ValidRoom reports whether room is a room name: 1 to 64 letters, digits,
// '_' or '-'.
func ValidRoom(room string) bool { return roomSyntax.MatchString(room) }

// ValidEdgeID reports whether id may name an edge in subjects.
func ValidEdgeID(id string) bool { return edgeSyntax.MatchString(id) }

// EdgeOfConn is the edge holding the connection id ("{edge}-{random}"),
// or "" when id is not a connection ID.
func EdgeOfConn(id string) string {
	if !connSyntax.MatchString(id) {
		return ""
	}
	edge, _, _ := strings.Cut(id, "-")
	return edge
}
