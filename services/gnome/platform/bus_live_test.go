package platform_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// exerciseLive uploads an experiment whose actor is the live test guest
// (services/actorworker/testdata/live), opens a WebSocket and an event
// stream through the edge, and has the actor use every live operation, so
// that live events, commands, room messages and their replies cross the
// bus; the experiment's deletion comes last.
func exerciseLive(ctx context.Context, t *testing.T, d *svc.Deps, edgeAddr string) {
	t.Helper()
	const slug = "bus-live"
	admin := uploadActorExperiment(ctx, t, d, slug, "up-live", "live")
	_, port, _ := net.SplitHostPort(edgeAddr)
	dialer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, edgeAddr)
		},
	}
	dial := func(path string) (*websocket.Conn, error) {
		c, _, err := dialer.Dial("ws://"+slug+".localhost:"+port+"/experiments/"+slug+"/ws"+path, nil)
		return c, err
	}
	var ws *websocket.Conn
	waitFor(t, 30*time.Second, "the live actor to take a connection", func() bool {
		c, err := dial("/play?join=lobby")
		if err != nil {
			return false
		}
		ws = c
		return true
	})
	defer ws.Close()
	say := func(c *websocket.Conn, msg string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	hear := func(c *websocket.Conn, want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil || string(data) != want {
			t.Fatalf("heard %q (%v), want %q", data, err, want)
		}
	}
	say(ws, `{"do":"send","text":"hello"}`)
	hear(ws, "hello")
	say(ws, `{"do":"send_binary","b64":"AAE="}`)
	hear(ws, "\x00\x01")
	say(ws, `{"do":"publish","room":"lobby","text":"to the lobby"}`)
	hear(ws, "to the lobby")

	// An event stream of the lobby hears what is published there.
	req, _ := http.NewRequestWithContext(ctx, "GET", testenv.ExperimentURL(edgeAddr, slug, "/experiments/"+slug+"/events/lobby"), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: testenv.LocalhostTransport()}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %v %v", resp, err)
	}
	say(ws, `{"do":"publish_binary","room":"lobby","b64":"Ag==","except":true}`)
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read the event stream: %v", err)
		}
		if line == "data: Ag==\n" {
			break
		}
	}
	resp.Body.Close()

	say(ws, `{"do":"leave","room":"lobby"}`)
	say(ws, `{"do":"join","room":"table"}`)
	say(ws, `{"do":"send","text":"joined"}`)
	hear(ws, "joined")
	say(ws, `{"do":"close","code":4000,"reason":"bye"}`)
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 {
		t.Fatalf("close: %v", err)
	}
	// A connection its client closes.
	other, err := dial("/")
	if err != nil {
		t.Fatal(err)
	}
	_ = other.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, strings.Repeat("x", 3)), time.Now().Add(10*time.Second))
	_ = other.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _, _ = other.ReadMessage()
	other.Close()

	admin.RequestID = "live-delete"
	if _, err := call(ctx, d.NC, "live-delete", uploadapi.EndpointDelete,
		uploadapi.Delete{Slug: slug, Confirm: slug, Caller: admin}); err != nil {
		t.Fatalf("delete the live experiment: %v", err)
	}
}
