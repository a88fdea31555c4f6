// Command live is a test actor of live channels, built with the SDK
// (actorsdk.OnOpen, OnMessage, OnClose and the sending operations):
//
//	GET  /init           the actor is serving
//	GET  /events         the live events this instance received, oldest
//	                     first, with the calls it served among them
//	POST /call?op=OP     the host operation OP with the body as its raw
//	                     request: {"ok": result} or {"error": host error}
//	POST /exit           exits: the instance is replaced
//
// An open whose query has refuse=CODE is refused with that code (Refuse);
// fail=1 refuses it with a plain error; join=ROOM joins the room first (a
// refusal of the join refuses the open). A message that is a JSON command
// {"do": ..., ...} acts on the connection (or on "to"): send, send_binary
// (b64), send_json (v), close (code, reason), join and leave (room),
// publish and publish_binary (room, text or b64, except: true leaves the
// sender out); the command's error, if any, refuses the message with its
// code.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o live.wasm
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// seen is one event or call as the actor saw it.
type seen struct {
	Type   string `json:"type"`
	Conn   string `json:"conn,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Path   string `json:"path,omitempty"`
	Query  string `json:"query,omitempty"`
	Room   string `json:"room,omitempty"`
	Caller string `json:"caller,omitempty"`
	Data   string `json:"data,omitempty"`
	Binary bool   `json:"binary,omitempty"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

var log []seen

// command is a message asking the actor to act.
type command struct {
	Do     string          `json:"do"`
	To     string          `json:"to"`
	Text   string          `json:"text"`
	B64    string          `json:"b64"`
	V      json.RawMessage `json:"v"`
	Code   int             `json:"code"`
	Reason string          `json:"reason"`
	Room   string          `json:"room"`
	Except bool            `json:"except"`
}

func (cmd command) run(c actorsdk.Conn) error {
	to := cmd.To
	if to == "" {
		to = c.ID
	}
	var except []string
	if cmd.Except {
		except = []string{c.ID}
	}
	bin, _ := base64.StdEncoding.DecodeString(cmd.B64)
	switch cmd.Do {
	case "send":
		return actorsdk.Send(to, cmd.Text)
	case "send_binary":
		return actorsdk.SendBinary(to, bin)
	case "send_json":
		return actorsdk.SendJSON(to, cmd.V)
	case "close":
		return actorsdk.CloseConn(to, cmd.Code, cmd.Reason)
	case "join":
		return actorsdk.Join(to, cmd.Room)
	case "leave":
		return actorsdk.Leave(to, cmd.Room)
	case "publish":
		return actorsdk.Publish(cmd.Room, cmd.Text, except...)
	case "publish_binary":
		return actorsdk.PublishBinary(cmd.Room, bin, except...)
	case "publish_json":
		return actorsdk.PublishJSON(cmd.Room, cmd.V, except...)
	}
	return actorsdk.Refuse(actorsdk.CodeBadRequest, "unknown command "+cmd.Do)
}

func init() {
	actorsdk.OnOpen(func(c actorsdk.Conn) error {
		log = append(log, seen{Type: "open", Conn: c.ID, Kind: c.Kind, Path: c.Path, Query: c.Query, Room: c.Room, Caller: c.Caller.Kind + ":" + c.Caller.ID})
		for _, kv := range strings.Split(c.Query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "refuse":
				return actorsdk.Refuse(v, "refused by the test actor")
			case "fail":
				return errors.New("a plain failure")
			case "join":
				if err := c.Join(v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	actorsdk.OnMessage(func(c actorsdk.Conn, m actorsdk.Message) error {
		data := m.Text()
		if m.Binary {
			data = base64.StdEncoding.EncodeToString(m.Data)
		}
		log = append(log, seen{Type: "message", Conn: c.ID, Data: data, Binary: m.Binary})
		var cmd command
		if m.Binary || m.Decode(&cmd) != nil || cmd.Do == "" {
			return nil
		}
		return cmd.run(c)
	})
	actorsdk.OnClose(func(c actorsdk.Conn, cl actorsdk.Close) error {
		log = append(log, seen{Type: "close", Conn: c.ID, Code: cl.Code, Reason: cl.Reason, By: cl.By})
		return nil
	})
	actorsdk.Route("GET", "/init", func(*actorsdk.Request) *actorsdk.Response {
		return actorsdk.JSON(200, map[string]any{"slug": actorsdk.Slug()})
	})
	actorsdk.Route("GET", "/events", func(*actorsdk.Request) *actorsdk.Response {
		log = append(log, seen{Type: "call"})
		return actorsdk.JSON(200, map[string]any{"events": log})
	})
	actorsdk.Route("POST", "/exit", func(*actorsdk.Request) *actorsdk.Response {
		os.Exit(3)
		return nil
	})
	actorsdk.Route("POST", "/call", func(req *actorsdk.Request) *actorsdk.Response {
		var res json.RawMessage
		err := actorsdk.Call(req.Query.Get("op"), req.Body, &res)
		var he *actorsdk.HostError
		switch {
		case errors.As(err, &he):
			return actorsdk.JSON(200, map[string]any{"error": he})
		case err != nil:
			return actorsdk.Fail(err)
		}
		return actorsdk.JSON(200, map[string]any{"ok": res})
	})
}

func main() {}
