package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// The JavaScript examples (examples/clicks-js, examples/game_portal-js)
// through the whole platform, as their Go originals are tested: uploaded as
// make examples packs them (actor.js and its modules, no WebAssembly),
// started by the platform's JavaScript runtime, and used over HTTP, in
// Chromium and over their live channel.

// The click tracker in JavaScript beside the one in Go, in one platform:
// the same clicks through both edges give the same answers and store the
// same documents (fields, types, the date as a date), and the JavaScript
// actor's refusals are the platform's error shape.
func TestJSClicksMatchesGo(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	for _, name := range []string{"clicks", "clicks-js"} {
		r := admin.upload(zipOf(t, exampleFiles(t, name)))
		if r.status != 201 {
			t.Fatalf("upload %s: %d %s", name, r.status, r.body)
		}
		if w, _ := r.json(t)["warnings"].([]any); len(w) > 0 {
			t.Errorf("%s uploads with warnings: %v", name, w)
		}
	}
	admin.running("clicks")
	admin.running("clicks-js")
	if files := exampleFiles(t, "clicks-js"); files["actor.wasm"] != "" || files["actor.js"] == "" || files["lib/counts.js"] == "" {
		t.Fatalf("clicks-js is packed with %d files, actor.wasm %d bytes", len(files), len(files["actor.wasm"]))
	}

	visitor := p.client(t, 1) // anonymous
	answers := map[string][]string{}
	for _, slug := range []string{"clicks", "clicks-js"} {
		api := "/experiments/" + slug + "/api/"
		var got []string
		for i, c := range []struct {
			who    *client
			button string
		}{{visitor, "red"}, {admin, "blue"}, {visitor.on(p, 0), "red"}} {
			r := c.who.do("POST", api+"click", map[string]string{"button": c.button}, nil)
			body := r.json(t)
			if r.status != 201 || body["total"] != float64(i+1) {
				t.Fatalf("%s: click %d: %d %s", slug, i+1, r.status, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.header.Get("X-Request-ID") == "" {
				t.Errorf("%s: response headers %v", slug, r.header)
			}
		}
		counts := visitor.on(p, 0).do("GET", api+"counts", nil, nil).json(t)
		last, _ := counts["last_click"].(string)
		if _, err := time.Parse(time.RFC3339Nano, last); err != nil {
			t.Errorf("%s: last_click %q: %v", slug, last, err)
		}
		delete(counts, "last_click")
		got = append(got, fmt.Sprint(counts))

		recent := admin.do("GET", api+"recent?n=2", nil, nil).json(t)["clicks"].([]any)
		for _, c := range recent {
			c := c.(map[string]any)
			at, _ := c["at"].(string)
			if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
				t.Errorf("%s: a recent click's time %q: %v", slug, at, err)
			}
			got = append(got, fmt.Sprint(c["button"], " by ", c["by"]))
		}
		for _, bad := range []struct {
			body   any
			status int
			code   string
		}{
			{map[string]string{"button": "mauve"}, 422, "validation_failed"},
			{"not json", 400, "invalid_json"},
			{[]int{1}, 400, "invalid_json"},
			{map[string]int{"button": 3}, 400, "invalid_json"},
		} {
			r := visitor.do("POST", api+"click", bad.body, nil)
			got = append(got, fmt.Sprintf("%v: %d %s %s", bad.body, r.status, r.errorCode(), errorMessage(r)))
			if r.status != bad.status || r.errorCode() != bad.code {
				t.Errorf("%s: POST click %v: %d %s", slug, bad.body, r.status, r.body)
			}
		}
		if r := visitor.do("GET", api+"nowhere", nil, nil); r.status != 404 {
			t.Errorf("%s: an unknown route: %d %s", slug, r.status, r.body)
		}
		answers[slug] = got
	}
	if g, js := strings.Join(answers["clicks"], "\n"), strings.Join(answers["clicks-js"], "\n"); g != js {
		t.Errorf("the two actors answer differently:\nGo:\n%s\nJavaScript:\n%s", g, js)
	}

	// The same documents in the store: the same fields with the same BSON
	// types, the click's time a date.
	shapes := map[string]string{}
	ctx := context.Background()
	for _, slug := range []string{"clicks", "clicks-js"} {
		cur, err := p.deps.Store.DB.Collection(scoped.CollectionName(slug, "clicks")).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "at", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, d := range docs {
			elems, _ := d.Elements()
			var fields []string
			for _, e := range elems {
				v := e.Value()
				s := e.Key() + ":" + v.Type.String()
				if e.Key() == "button" || e.Key() == "by" {
					s += "=" + v.StringValue()
				}
				fields = append(fields, s)
			}
			sort.Strings(fields)
			lines = append(lines, strings.Join(fields, " "))
		}
		shapes[slug] = strings.Join(lines, "\n")
		if len(docs) != 3 || !strings.Contains(shapes[slug], "at:UTC datetime") {
			t.Errorf("%s stored:\n%s", slug, shapes[slug])
		}
	}
	if shapes["clicks"] != shapes["clicks-js"] {
		t.Errorf("the two actors store different documents:\nGo:\n%s\nJavaScript:\n%s", shapes["clicks"], shapes["clicks-js"])
	}
	st := admin.health("clicks-js")
	if st.State != actorapi.StateRunning || st.Restarts != 0 {
		t.Errorf("clicks-js's health: %+v", st)
	}
}

// The JavaScript click tracker's page in Chromium: its buttons round-trip
// through the actor and the page shows the counts and recent clicks, as the
// Go one's does (TestBrowserExperimentExportAdmin).
func TestBrowserJSClicks(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	startExample(t, p, "clicks-js", "clicks-js")
	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	value(b, "open the page", chromedp.NavigateResponse(originOf(p, 0, "clicks-js")+"/experiments/clicks-js/"))
	if got := b.text("h1"); got != "Click tracker" {
		t.Fatalf("the page's title: %q", got)
	}
	b.do("wait for the buttons", chromedp.WaitVisible(chromedp.CSS("#b-blue")))
	b.waitFor("no clicks yet", `document.getElementById("status").textContent === "No clicks yet" && document.getElementById("total").textContent === "0"`)
	counts := `["red","green","blue"].map(n => document.querySelector("#b-" + n + " .count").textContent).join(",") + " total " + document.getElementById("total").textContent`
	for i, c := range []struct{ button, want string }{
		{"red", "1,0,0 total 1"}, {"green", "1,1,0 total 2"}, {"red", "2,1,0 total 3"},
	} {
		b.do(fmt.Sprintf("click %d on %s", i+1, c.button), chromedp.Click(chromedp.ID("b-"+c.button), chromedp.NodeVisible))
		b.waitFor(c.button+" counted: "+c.want, counts+" === "+jsString(c.want))
	}
	if got := b.text("#status"); !strings.HasPrefix(got, "Last click ") || strings.Contains(got, "Invalid") {
		t.Errorf("status line after clicks: %q", got)
	}
	b.waitFor("the recent clicks", `document.querySelectorAll("#recent li").length === 3`)
	if got := b.text("#recent li"); !strings.HasPrefix(got, "red by anonymous at ") || strings.Contains(got, "Invalid") {
		t.Errorf("the newest recent click: %q", got)
	}
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.do("GET", "/experiments/clicks-js/api/counts", nil, nil); r.status != 200 || r.json(t)["total"] != float64(3) {
		t.Errorf("the actor's counts: %d %s", r.status, r.body)
	}
}

// The game portal in JavaScript played in Chromium by two visitors on two
// edges, exactly as the Go one is (TestBrowserGamePortal): lobby, moves
// across edges through the match's room, reloads and dropped connections,
// the lobby's event stream, refusals, stored matches, a second tab.
func TestBrowserJSGamePortal(t *testing.T) { testGamePortal(t, "game_portal-js", "game-portal-js") }

// errorMessage is the message of the platform's error shape in r's body.
func errorMessage(r response) string {
	var b struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Message
}
