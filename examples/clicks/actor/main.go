// The clicks actor records every click on its page's buttons in its
// collection "clicks" and answers the page's questions about them.
//
//	POST /click    {"button": "red"}  records a click: 201 with the new counts
//	GET  /counts                      the clicks per button and in all
//	GET  /recent?n=10                 the last clicks, newest first:
//	                                  {"clicks": [{"button", "by", "at"}]}, "at"
//	                                  in RFC 3339
//
// The buttons come from the manifest's actor.config; the time of the last
// click is kept in the key-value store.
//
// The counts are kept, not computed: the collection "counts" holds one
// document per button, {"_id": button, "n": clicks}, which a click raises
// with $inc. Answering /counts reads those few documents, so its cost stays
// the same however many clicks are stored; a $group over "clicks" would
// read every click on every request, which on the embedded store grows with
// the data (docs/actors.md, "Queries that stay fast").
package main

import (
	"slices"
	"strconv"
	"time"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// config is the manifest's actor.config.
type config struct {
	Buttons []string `json:"buttons"`
}

var buttons []string

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		var c config
		if err := actorsdk.DecodeConfig(&c); err != nil {
			return err
		}
		buttons = c.Buttons
		if len(buttons) == 0 {
			buttons = []string{"red", "green", "blue"}
		}
		actorsdk.Log.Info("clicks started", "version", actorsdk.Version(), "buttons", len(buttons))
		return nil
	})
	actorsdk.Route("POST", "/click", click)
	actorsdk.Route("GET", "/counts", counts)
	actorsdk.Route("GET", "/recent", recent)
}

// Click is one stored click.
type Click struct {
	Button string            `json:"button"`
	By     string            `json:"by"`
	At     actorsdk.DateTime `json:"at"`
}

func click(req *actorsdk.Request) *actorsdk.Response {
	var in struct {
		Button string `json:"button"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return actorsdk.Error(400, actorsdk.CodeInvalidJSON, `send {"button": "<name>"}`)
	}
	if !slices.Contains(buttons, in.Button) {
		return actorsdk.Error(422, actorsdk.CodeValidationFailed, "no such button: "+strconv.Quote(in.Button))
	}
	by := req.Caller.Email
	if req.Caller.Anonymous {
		by = "anonymous"
	}
	c := Click{Button: in.Button, By: by, At: actorsdk.Now()}
	if _, err := actorsdk.DB("clicks").InsertOne(c); err != nil {
		return actorsdk.Fail(err)
	}
	if err := count(in.Button); err != nil {
		return actorsdk.Fail(err)
	}
	if _, err := actorsdk.KV().Put("last_click", []byte(c.At.Time().Format(time.RFC3339Nano))); err != nil {
		actorsdk.Log.Warn("cannot keep the time of the last click", "error", err.Error())
	}
	return countsWith(201)
}

func counts(*actorsdk.Request) *actorsdk.Response { return countsWith(200) }

// count adds one to button's counter, making it at the button's first
// click. Two first clicks at once may both try to make it: the store
// refuses the second as a duplicate _id, and the retry finds it made.
func count(button string) error {
	filter, inc := actorsdk.M{"_id": button}, actorsdk.M{"$inc": actorsdk.M{"n": 1}}
	_, err := actorsdk.DB("counts").UpdateOne(filter, inc, actorsdk.Upsert())
	if err != nil {
		_, err = actorsdk.DB("counts").UpdateOne(filter, inc, actorsdk.Upsert())
	}
	return err
}

// countsWith answers with {"counts": {button: n}, "total": n, "last_click"}
// from the counters, one small document per button.
func countsWith(status int) *actorsdk.Response {
	docs, err := actorsdk.DB("counts").Find(nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	var counters []struct {
		Button string `json:"_id"`
		N      int64  `json:"n"`
	}
	if err := docs.Decode(&counters); err != nil {
		return actorsdk.Fail(err)
	}
	out := map[string]int64{}
	for _, b := range buttons {
		out[b] = 0
	}
	var total int64
	for _, c := range counters {
		out[c.Button] = c.N
		total += c.N
	}
	last, _, err := actorsdk.KV().Get("last_click")
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(status, actorsdk.M{"buttons": buttons, "counts": out, "total": total, "last_click": string(last)})
}

func recent(req *actorsdk.Request) *actorsdk.Response {
	n, err := strconv.Atoi(req.Query.Get("n"))
	if err != nil || n < 1 || n > 100 {
		n = 10
	}
	docs, err := actorsdk.DB("clicks").Find(nil,
		actorsdk.Sort(actorsdk.D{{Key: "at", Value: -1}}),
		actorsdk.Projection(actorsdk.M{"_id": 0, "experiment_id": 0}),
		actorsdk.Limit(int64(n)))
	if err != nil {
		return actorsdk.Fail(err)
	}
	// Decode hands over native values: the stored date comes as a
	// time.Time, which the page gets as an RFC 3339 string.
	var clicks []struct {
		Button string    `json:"button"`
		By     string    `json:"by"`
		At     time.Time `json:"at"`
	}
	if err := docs.Decode(&clicks); err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(200, actorsdk.M{"clicks": clicks})
}

func main() {}
