// The game portal's actor: Connect Four for two players over WebSocket.
// Players open /experiments/game-portal/ws/play from the page; the lobby
// pairs them two by two, each match is a room that the actor publishes its
// state to after every move, and the actor checks every move (turn,
// column, win, draw). A player whose connection drops has
// reconnect_grace_seconds (actor.config, 60 by default) to come back to the
// match, as the same caller (the manifest's sub_auth anonymous_session
// gives every visitor an ID); a player who leaves ends the match, which the
// other wins. Matches live in the actor's memory while played; finished
// ones are stored in the collection "matches".
//
//	WS   /ws/play          the game (portal.go lists its messages)
//	SSE  /events/lobby     the lobby's numbers, for a page that only watches
//	GET  /matches?n=10     the last finished matches, newest first
package main

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// config is the manifest's actor.config.
type config struct {
	ReconnectGraceSeconds int `json:"reconnect_grace_seconds"`
}

// forfeitTimer names the timers that end a match whose player left.
const forfeitTimer = "forfeit"

var portal *Portal

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		var c config
		if err := actorsdk.DecodeConfig(&c); err != nil {
			return err
		}
		grace := 60 * time.Second
		if c.ReconnectGraceSeconds > 0 {
			// Timers take 1 s at least.
			grace = time.Duration(max(c.ReconnectGraceSeconds, 1)) * time.Second
		}
		portal = NewPortal(sdkEffects{}, grace)
		return nil
	})
	actorsdk.OnOpen(func(c actorsdk.Conn) error {
		if c.Kind == actorsdk.ConnSSE {
			// An event stream may follow the lobby's numbers (the
			// platform joins it to the room); it sends nothing.
			if c.Room != LobbyRoom {
				return actorsdk.Refuse(actorsdk.CodeNotFound, "the only room to follow is "+LobbyRoom)
			}
			return nil
		}
		if c.Path != "/play" {
			return actorsdk.Refuse(actorsdk.CodeNotFound, "the game is at ws/play")
		}
		if c.Caller.ID == "" {
			// Anonymous sessions give every visitor an ID: only a client
			// that kept no cookie comes here without one.
			return actorsdk.Refuse(actorsdk.CodeUnauthenticated, "open the game's page first: it gives you a player ID")
		}
		return nil
	})
	actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error {
		if m.Binary {
			portal.fail(c.ID, "messages are JSON text")
			return nil
		}
		portal.Message(c.ID, playerKey(c.Caller), m.Data)
		return nil
	})
	actorsdk.OnClose(func(c actorsdk.Conn, _ actorsdk.Close) error {
		portal.Closed(c.ID)
		return nil
	})
	actorsdk.OnTimer(func(t actorsdk.Timer) error {
		if t.Name != forfeitTimer {
			return nil
		}
		var f Forfeit
		if err := t.Decode(&f); err != nil {
			return err
		}
		portal.Forfeit(f)
		return nil
	})
	actorsdk.Route("GET", "/matches", matches)
}

// playerKey is who a caller is across visits and connections.
func playerKey(c actorsdk.Caller) string { return c.Kind + ":" + c.ID }

// sdkEffects carries the portal's effects out through the SDK. A failure
// is logged: a message to a connection that closed meanwhile is none (its
// close event is on its way), and the portal goes on either way.
type sdkEffects struct{}

func (sdkEffects) Send(conn string, v any) {
	if err := actorsdk.SendJSON(conn, v); err != nil {
		actorsdk.Log.Warn("send failed", "conn", conn, "error", err.Error())
	}
}

func (sdkEffects) Publish(room string, v any) {
	if err := actorsdk.PublishJSON(room, v); err != nil {
		actorsdk.Log.Warn("publish failed", "room", room, "error", err.Error())
	}
}

func (sdkEffects) Join(conn, room string) error {
	err := actorsdk.Join(conn, room)
	if err != nil {
		actorsdk.Log.Info("join failed", "conn", conn, "room", room, "error", err.Error())
	}
	return err
}

func (sdkEffects) Leave(conn, room string) {
	if err := actorsdk.Leave(conn, room); err != nil {
		actorsdk.Log.Info("leave failed", "conn", conn, "room", room, "error", err.Error())
	}
}

func (sdkEffects) Close(conn string, code int, reason string) {
	if err := actorsdk.CloseConn(conn, code, reason); err != nil {
		actorsdk.Log.Info("close failed", "conn", conn, "error", err.Error())
	}
}

func (sdkEffects) After(delay time.Duration, f Forfeit) {
	if _, err := actorsdk.After(delay, forfeitTimer, f); err != nil {
		// Without the timer the match waits until the other player
		// leaves it.
		actorsdk.Log.Warn("cannot set the forfeit timer", "match", f.Match, "error", err.Error())
	}
}

// storedMatch is a Record as stored, its times as dates.
type storedMatch struct {
	Record
	StartedAt actorsdk.DateTime `json:"started_at"`
	EndedAt   actorsdk.DateTime `json:"ended_at"`
}

func (sdkEffects) Save(r Record) {
	doc := storedMatch{Record: r, StartedAt: actorsdk.DateTime(r.StartedAt.UTC()), EndedAt: actorsdk.DateTime(r.EndedAt.UTC())}
	if _, err := actorsdk.DB("matches").InsertOne(doc); err != nil {
		actorsdk.Log.Error("cannot store a finished match", "match", r.ID, "error", err.Error())
	}
}

func (sdkEffects) Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func (sdkEffects) NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

// matches answers the last finished matches, newest first, without the
// players' IDs: {"matches": [{"id", "players": [{"seat", "name"}],
// "status", "winner", "reason", "moves", "ended_at"}]}.
func matches(req *actorsdk.Request) *actorsdk.Response {
	n, err := strconv.Atoi(req.Query.Get("n"))
	if err != nil || n < 1 || n > 50 {
		n = 10
	}
	docs, err := actorsdk.DB("matches").Find(nil,
		actorsdk.Sort(actorsdk.D{{Key: "ended_at", Value: -1}}),
		actorsdk.Limit(int64(n)))
	if err != nil {
		return actorsdk.Fail(err)
	}
	var found []struct {
		ID      string `json:"_id"`
		Players []struct {
			Seat int    `json:"seat"`
			Name string `json:"name"`
		} `json:"players"`
		Status  string    `json:"status"`
		Winner  int       `json:"winner"`
		Reason  string    `json:"reason"`
		Moves   []int     `json:"moves"`
		EndedAt time.Time `json:"ended_at"`
	}
	if err := docs.Decode(&found); err != nil {
		return actorsdk.Fail(err)
	}
	out := make([]actorsdk.M, 0, len(found))
	for _, m := range found {
		out = append(out, actorsdk.M{"id": m.ID, "players": m.Players, "status": m.Status, "winner": m.Winner,
			"reason": m.Reason, "moves": len(m.Moves), "ended_at": m.EndedAt})
	}
	return actorsdk.JSON(200, actorsdk.M{"matches": out})
}

func main() {}
