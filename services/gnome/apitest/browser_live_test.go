package apitest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// Live channels in a browser: the game portal (examples/game_portal) played
// by two visitors, each in a browser context of their own and each on
// another edge, so that every move crosses from one edge to the other
// through the match's room; and the video call (examples/webrtc_demo),
// whose offer, answer and ICE candidates the actor relays between two
// pages on two edges until their RTCPeerConnection connects.

// startExample uploads examples/<name> as the admin and waits for its
// actor.
func startExample(t *testing.T, p *platform, name, slug string) {
	t.Helper()
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	r := admin.upload(zipOf(t, exampleFiles(t, name)))
	if r.status != 201 {
		t.Fatalf("upload %s: %d %s", name, r.status, r.body)
	}
	if w, _ := r.json(t)["warnings"].([]any); len(w) > 0 {
		t.Errorf("%s uploads with warnings: %v", name, w)
	}
	admin.running(slug)
}

// originOf is slug's origin on the given edge, without the final slash.
func originOf(p *platform, edge int, slug string) string {
	return strings.TrimSuffix(testenv.ExperimentURL(p.edges[edge].Addr, slug, ""), "/")
}

// cell is the JavaScript seat of a cell of the game's board, as a string.
func cell(col, row int) string {
	return fmt.Sprintf(`document.querySelector('.cell[data-col="%d"][data-row="%d"]')?.dataset.seat`, col, row)
}

// statusIs is a JavaScript condition: the game's status line reads s.
func statusIs(s string) string {
	return `document.getElementById("status")?.textContent === ` + jsString(s)
}

// Two visitors on two edges play Connect Four: paired in the lobby, each
// move shown on the other's page, one player's reload resuming the match,
// the other's dropped connection taken up again by the browser helper with
// the move made meanwhile, the game won and shown so on both, stored, and a
// second match ended by a player leaving; the same visitor connecting a
// second time takes the game over from the first connection. Along the
// way: the helper gives up on connections the actor refuses (WebSocket and
// event stream), follows the lobby's room as server-sent events, and the
// actor refuses messages a page should not send to the sender alone.
func TestBrowserGamePortal(t *testing.T) { testGamePortal(t, "game_portal", "game-portal") }

// testGamePortal plays examples/<name> served as slug: the Go actor, or its
// JavaScript port (jsexamples_test.go), which must play alike.
func testGamePortal(t *testing.T, name, slug string) {
	bin := chromiumPath(t)
	p := startPlatform(t, 2, nil)
	startExample(t, p, name, slug)
	chrome := startChromium(t, bin)
	ada, bo := chrome.tab(t, p), chrome.tab(t, p)
	page := "/experiments/" + slug + "/"
	value(ada, "open the game on edge 0", chromedp.NavigateResponse(originOf(p, 0, slug)+page))
	value(bo, "open the game on edge 1", chromedp.NavigateResponse(originOf(p, 1, slug)+page))
	for _, b := range []*tab{ada, bo} {
		b.waitFor("the connection", `document.getElementById("conn").textContent === "Connected" && !document.getElementById("lobby").hidden`)
	}

	// A refused connection: the helper gives up after a few tries and says
	// so, where the actor refuses an unknown path.
	// Sends meanwhile are kept, the oldest dropped beyond maxQueue.
	queued := value(ada, "open a refused connection", chromedp.Evaluate[string](`{
		window.refusal = null;
		const refused = gnome.live("nope", { minDelay: 50, maxQueue: 2 });
		refused.on("close", info => { window.refusal = info; });
		refused.send("one"); refused.send({ two: 2 }); refused.send("three");
		JSON.stringify(refused.queue);
	}`))
	if queued != `["{\"two\":2}","three"]` {
		t.Errorf("the sends kept while connecting: %s", queued)
	}
	ada.waitFor("the refusal", `window.refusal !== null && window.refusal.refused === true`)
	// The lobby's numbers as server-sent events, as a page that only
	// watches follows them; a room the actor does not offer is refused.
	ada.do("follow the lobby", chromedp.Evaluate[chromedp.Void](`
		window.lobby = []; window.lobbyOpen = false; window.sseRefusal = null;
		gnome.events("lobby", { json: true }).on("open", () => { window.lobbyOpen = true; }).on("message", m => window.lobby.push(m));
		gnome.events("nope", { minDelay: 50 }).on("close", info => { window.sseRefusal = info; });`))
	ada.waitFor("the lobby's stream", `window.lobbyOpen`)
	ada.waitFor("the refused stream", `window.sseRefusal !== null && window.sseRefusal.refused === true`)

	join := func(b *tab, name string) {
		t.Helper()
		b.do("join as "+name,
			chromedp.Clear(chromedp.ID("name")),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.Click(chromedp.ID("play")))
	}
	join(ada, "Ada")
	ada.waitFor("Ada to wait", `!document.getElementById("waiting").hidden`)
	join(bo, "Bo")
	ada.waitFor("Ada's first move", statusIs("Your turn"))
	bo.waitFor("Bo to wait for Ada", statusIs("Ada's turn"))
	if got := bo.text("#opponent"); got != "Ada" {
		t.Errorf("Bo plays against %q", got)
	}
	ada.waitFor("the lobby's numbers on the stream", `window.lobby.some(m => m.waiting === 1 && m.playing === 0) && window.lobby.some(m => m.waiting === 0 && m.playing === 1)`)

	// play drops a disc of who's into col, and waits for the other page to
	// show it at row.
	heights := map[int]int{}
	play := func(who, other *tab, seat, col int) {
		t.Helper()
		sel := fmt.Sprintf(`#board button[data-col="%d"]`, col)
		who.waitFor("a turn", `document.querySelector('`+sel+`')?.disabled === false`)
		who.do("drop a disc", chromedp.Click(chromedp.CSS(sel)))
		row := heights[col]
		heights[col]++
		other.waitFor(fmt.Sprintf("the disc in %d,%d on the other page", col, row), cell(col, row)+` === "`+strconv.Itoa(seat)+`"`)
	}
	play(ada, bo, 1, 0)
	play(bo, ada, 2, 1)
	play(ada, bo, 1, 0)

	// Bo reloads: the same participant, a new connection, the same match.
	bo.do("reload Bo's page", chromedp.Reload())
	bo.waitFor("Bo back in the match", cell(0, 1)+` === "1" && `+cell(1, 0)+` === "2" && `+statusIs("Your turn"))
	play(bo, ada, 2, 1)

	// Ada's connection drops as she moves: the helper keeps the move while
	// it reconnects, and sends it once connected again, to the same match.
	ada.waitFor("Ada's turn", statusIs("Your turn"))
	sent := value(ada, "drop the connection and move", chromedp.Evaluate[bool](`
		window.dropped = null;
		conn.on("reconnecting", info => { window.dropped = info; });
		conn.ws.close(4000, "dropped by the test");
		conn.send({ type: "move", column: 0 })`))
	if sent {
		t.Error("a move while the connection closed was sent on it, not kept")
	}
	ada.waitFor("the reconnection", `window.dropped !== null && window.dropped.code === 4000 && conn.state === "open"`)
	if d := value(ada, "read the delay", chromedp.Evaluate[int](`window.dropped.delay`)); d < 500 || d > 750 {
		t.Errorf("the first reconnection waited %d ms, want 500 to 750", d)
	}
	bo.waitFor("Ada's move after her reconnection", cell(0, 2)+` === "1"`)
	heights[0]++
	play(bo, ada, 2, 1)
	play(ada, bo, 1, 0)
	ada.waitFor("Ada's win", statusIs("You won!"))
	bo.waitFor("Bo's loss", statusIs("Ada won."))
	for _, b := range []*tab{ada, bo} {
		if n := value(b, "count the winning discs", chromedp.Evaluate[int](`document.querySelectorAll("#board .cell.win").length`)); n != 4 {
			t.Errorf("%d discs are shown winning", n)
		}
		b.waitFor("the stored match", `[...document.querySelectorAll("#recent li")].some(li => li.textContent === "Ada against Bo: Ada won in 7 moves")`)
	}

	// A second match, which Bo leaves.
	ada.do("play again", chromedp.Click(chromedp.ID("again")))
	ada.waitFor("Ada to wait", `!document.getElementById("waiting").hidden`)
	bo.do("play again", chromedp.Click(chromedp.ID("again")))
	ada.waitFor("the second match", statusIs("Your turn")+` && `+cell(0, 0)+` === "0"`)
	play(ada, bo, 1, 3)
	bo.waitFor("Bo's turn", statusIs("Your turn"))
	// Messages the page would not send are refused to the sender alone.
	for msg, says := range map[string]string{
		`{ type: "move", column: 2 }`: "it is not your turn",
		`new Uint8Array([1, 2, 3])`:   "messages are JSON text",
		`"not json"`:                  "messages are JSON objects such as ",
	} {
		ada.do("send "+msg, chromedp.Evaluate[chromedp.Void](`document.getElementById("message").textContent = ""; conn.send(`+msg+`)`))
		ada.waitFor("the refusal of "+msg, `document.getElementById("message").textContent.startsWith("`+says+`")`)
	}
	if got := bo.text("#status"); got != "Your turn" {
		t.Errorf("after Ada's refused messages Bo's page says %q", got)
	}
	bo.do("leave the match", chromedp.Click(chromedp.ID("leave")))
	ada.waitFor("Ada told", statusIs("Bo left the match. You win."))
	bo.waitFor("Bo out", statusIs("Bo left the match."))
	ada.waitFor("the second stored match", `[...document.querySelectorAll("#recent li")].some(li => li.textContent === "Ada against Bo: Ada won (Bo left the match) in 1 moves")`)

	// Ada opens the game again beside the first (as a second tab would):
	// the game goes on there, and the first connection is closed with 1000,
	// after which the helper does not reconnect.
	ada.do("connect a second time", chromedp.Evaluate[chromedp.Void](`{
		window.second = [];
		const again = gnome.live("play", { json: true });
		again.on("open", () => again.send({ type: "hello" }));
		again.on("message", m => window.second.push(m));
	}`))
	ada.waitFor("the second connection's welcome", `window.second.some(m => m.type === "welcome" && m.name === "Ada")`)
	ada.waitFor("the first connection closed for good", `conn.state === "closed" && document.getElementById("message").textContent === "The game went on in another tab." && document.getElementById("conn").textContent.startsWith("Disconnected: the game went on in another tab")`)
}

// Two visitors on two edges call each other: the actor relays the offer,
// the answer and the candidates until both RTCPeerConnections connect
// (host candidates only: no STUN server, the browsers are on one machine);
// a third visitor is turned away from the room, and hanging up tells the
// other.
func TestBrowserWebRTCDemo(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 2, nil)
	const slug = "webrtc-demo"
	startExample(t, p, "webrtc_demo", slug)
	chrome := startChromium(t, bin,
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true))
	page := "/experiments/" + slug + "/"
	var tabs []*tab
	for i := range 3 {
		b := chrome.tab(t, p)
		value(b, "open the call", chromedp.NavigateResponse(originOf(p, i%2, slug)+page))
		b.waitFor("the signalling", `[...document.querySelectorAll("#log li")].some(li => li.textContent.endsWith("signalling connected"))`)
		tabs = append(tabs, b)
	}
	a, b, c := tabs[0], tabs[1], tabs[2]
	joinRoom := func(v *tab) {
		t.Helper()
		v.do("join the room", chromedp.Clear(chromedp.ID("room")), chromedp.SendKeys(chromedp.ID("room"), "kitchen"), chromedp.Click(chromedp.ID("join-button")))
	}
	joinRoom(a)
	a.waitFor("a alone", `document.getElementById("status").textContent === "In room kitchen, waiting for someone to join."`)
	joinRoom(b)
	b.waitFor("the offer at b", `window.received.offer === 1`)
	a.waitFor("the answer at a", `window.received.answer === 1`)
	a.waitFor("candidates at a", `window.received.candidate > 0`)
	b.waitFor("candidates at b", `window.received.candidate > 0`)
	for _, v := range []*tab{a, b} {
		v.waitFor("the call to connect", `document.getElementById("pc-state").textContent === "connected"`)
	}
	b.waitFor("the other's video", `document.getElementById("remote").srcObject !== null && document.getElementById("remote").srcObject.getTracks().length === 2`)

	joinRoom(c)
	c.waitFor("c turned away", `document.getElementById("status").textContent.startsWith("Room kitchen already has two people in it")`)
	if got := value(c, "the third's call", chromedp.Evaluate[string](`document.getElementById("pc-state").textContent`)); got != "no call" {
		t.Errorf("the third visitor's call is %q", got)
	}

	b.do("hang up", chromedp.Click(chromedp.ID("hangup")))
	a.waitFor("a told", `document.getElementById("status").textContent.startsWith("The other person left.")`)
	if got := value(a, "a's call", chromedp.Evaluate[string](`document.getElementById("pc-state").textContent`)); got != "no call" {
		t.Errorf("after the other hung up, the call is %q", got)
	}
}
