// The click-report actor reads the clicks experiment's data, which its
// manifest's data_scope lists, and reports on it. It can only read there
// (DBFrom has no write methods, and the platform refuses writes to another
// slug); it writes only to its own collection "views".
//
//	GET /summary   clicks per button and in all, the latest click, the top
//	               clickers, and how often this report was viewed
package main

import (
	"errors"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// source is the experiment whose data this one reports on.
const source = "clicks"

func init() {
	actorsdk.Route("GET", "/summary", summary)
}

type group struct {
	Key string `json:"_id"`
	N   int64  `json:"n"`
}

func summary(req *actorsdk.Request) *actorsdk.Response {
	clicks := actorsdk.DBFrom(source, "clicks")

	total, err := clicks.Count(nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	byButton, err := groups(clicks, "$button", 0)
	if err != nil {
		return actorsdk.Fail(err)
	}
	top, err := groups(clicks, "$by", 3)
	if err != nil {
		return actorsdk.Fail(err)
	}
	var latest any
	doc, err := clicks.FindOne(nil, actorsdk.Sort(actorsdk.D{{Key: "at", Value: -1}}), actorsdk.Projection(actorsdk.M{"_id": 0, "experiment_id": 0}))
	switch {
	case err == nil:
		latest = doc.Plain() // dates as RFC 3339 text, for the page
	case !errors.Is(err, actorsdk.ErrNoDocuments):
		return actorsdk.Fail(err)
	}

	views := actorsdk.DB("views")
	if _, err := views.InsertOne(actorsdk.M{"at": actorsdk.Now(), "by": req.Caller.Email}); err != nil {
		return actorsdk.Fail(err)
	}
	viewed, err := views.Count(nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(200, actorsdk.M{
		"source":      source,
		"total":       total,
		"by_button":   byButton,
		"top_clicker": top,
		"latest":      latest,
		"views":       viewed,
	})
}

// groups counts the clicks by the field path key, most first; at most limit
// groups when limit > 0.
func groups(r *actorsdk.Reader, key string, limit int) ([]group, error) {
	pipeline := actorsdk.A{
		actorsdk.M{"$group": actorsdk.M{"_id": key, "n": actorsdk.M{"$sum": 1}}},
		actorsdk.M{"$sort": actorsdk.D{{Key: "n", Value: -1}, {Key: "_id", Value: 1}}},
	}
	if limit > 0 {
		pipeline = append(pipeline, actorsdk.M{"$limit": limit})
	}
	docs, err := r.Aggregate(pipeline)
	if err != nil {
		return nil, err
	}
	out := []group{}
	return out, docs.Decode(&out)
}

func main() {}
