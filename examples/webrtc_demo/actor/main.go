// The WebRTC demo's actor: signalling for two-party video calls. Two
// browsers open /experiments/webrtc-demo/ws/signal, join a room by its
// name, and the actor passes their offer, answer and ICE candidates from
// one to the other (relay.go lists the messages); a third in a room is
// turned away, and a peer is told when the other leaves. The call's audio
// and video go from browser to browser, never through the platform.
//
//	WS   /ws/signal       signalling (relay.go lists the messages)
//	GET  /ice-servers     {"ice_servers": [...]}: actor.config's, for RTCPeerConnection
//
// With no ICE servers, browsers connect over the addresses they have
// themselves: on one machine or one network. Across the internet they need
// a STUN server, and behind strict NATs a TURN server, which the operator
// chooses and puts in actor.config (a TURN server's credentials there are
// seen by every visitor, as any page using it would show them).
package main

import (
	"encoding/json"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

var relay = NewRelay(sdkEffects{})

// config is the manifest's actor.config.
type config struct {
	// ICEServers are RTCIceServer objects ({"urls", "username",
	// "credential"}), handed to the page as they are.
	ICEServers []json.RawMessage `json:"ice_servers"`
}

var iceServers = []json.RawMessage{}

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		var c config
		if err := actorsdk.DecodeConfig(&c); err != nil {
			return err
		}
		if c.ICEServers != nil {
			iceServers = c.ICEServers
		}
		return nil
	})
	actorsdk.Route("GET", "/ice-servers", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, actorsdk.M{"ice_servers": iceServers})
	})
	actorsdk.OnOpen(func(c actorsdk.Conn) error {
		if c.Kind != actorsdk.ConnWebSocket || c.Path != "/signal" {
			return actorsdk.Refuse(actorsdk.CodeNotFound, "signalling is at ws/signal")
		}
		return nil
	})
	actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error {
		if m.Binary {
			relay.fail(c.ID, "messages are JSON text")
			return nil
		}
		relay.Message(c.ID, m.Data)
		return nil
	})
	actorsdk.OnClose(func(c actorsdk.Conn, _ actorsdk.Close) error {
		relay.Closed(c.ID)
		return nil
	})
}

// sdkEffects carries the relay's effects out through the SDK. A failure is
// logged: a message to a connection that closed meanwhile is none (its
// close event is on its way).
type sdkEffects struct{}

func (sdkEffects) Send(conn, text string) {
	if err := actorsdk.Send(conn, text); err != nil {
		actorsdk.Log.Warn("send failed", "conn", conn, "error", err.Error())
	}
}

func (sdkEffects) Close(conn string, code int, reason string) {
	if err := actorsdk.CloseConn(conn, code, reason); err != nil {
		actorsdk.Log.Info("close failed", "conn", conn, "error", err.Error())
	}
}

func main() {}
