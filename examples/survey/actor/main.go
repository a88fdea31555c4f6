// The survey actor serves a short questionnaire to participants who came
// through a study link, stores each run's answers once, marks the run
// finished and sends the participant on to the link's completion URL.
//
//	GET  /questions   the questions and who the participant is
//	POST /answers     the answers, as a form or JSON: 303 to the
//	                  completion URL (a form) or {"completion_url"} (JSON)
//	GET  /summary     answers so far per question, for the researcher
//
// The questions come from the manifest's actor.config. Only participants
// of a study link answer: the run's ID is the answers' key (a unique
// index), so answering twice changes nothing.
package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

// question is one of actor.config's questions: a scale of 1..Scale, or
// free text when Scale is 0.
type question struct {
	ID    string `json:"id"`
	Text  string `json:"text"`
	Scale int    `json:"scale,omitempty"`
}

var questions []question

const maxText = 2000

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		var c struct {
			Questions []question `json:"questions"`
		}
		if err := actorsdk.DecodeConfig(&c); err != nil {
			return err
		}
		questions = c.Questions
		return nil
	})
	actorsdk.Route("GET", "/questions", getQuestions)
	actorsdk.Route("POST", "/answers", postAnswers)
	actorsdk.Route("GET", "/summary", summary)
}

func getQuestions(req *actorsdk.Request) *actorsdk.Response {
	who := map[string]any{"kind": req.Caller.Kind}
	if l := req.Caller.Link; l != nil {
		who["participant"] = req.Caller.ID
		who["label"] = l.Label
		who["prolific_pid"] = l.Params["PROLIFIC_PID"]
	}
	return actorsdk.JSON(200, map[string]any{"questions": questions, "you": who})
}

// Answer is one run's stored answers.
type Answer struct {
	Run         string            `json:"run"`
	Link        string            `json:"link"`
	Participant string            `json:"participant"`
	Params      map[string]string `json:"params,omitempty"`
	Answers     map[string]any    `json:"answers"`
	At          actorsdk.DateTime `json:"at"`
}

func postAnswers(req *actorsdk.Request) *actorsdk.Response {
	link := req.Caller.Link
	if link == nil {
		return actorsdk.Error(403, actorsdk.CodeForbidden, "open the survey through your study link to answer it")
	}
	isForm := strings.HasPrefix(strings.ToLower(req.Header.Get("Content-Type")), "application/x-www-form-urlencoded")
	raw := map[string]string{}
	if isForm {
		form, err := url.ParseQuery(string(req.Body))
		if err != nil {
			return actorsdk.Error(400, actorsdk.CodeBadRequest, "the form cannot be read")
		}
		for k := range form {
			raw[k] = form.Get(k)
		}
	} else {
		var in map[string]any
		if err := req.DecodeJSON(&in); err != nil {
			return actorsdk.Error(400, actorsdk.CodeInvalidJSON, `send {"<question id>": <answer>, ...}`)
		}
		for k, v := range in {
			switch v := v.(type) {
			case string:
				raw[k] = v
			case float64:
				raw[k] = strconv.FormatFloat(v, 'f', -1, 64)
			default:
				return actorsdk.Error(422, actorsdk.CodeValidationFailed, "the answer to "+strconv.Quote(k)+" is not a number or text")
			}
		}
	}
	answers, msg := check(raw)
	if msg != "" {
		return actorsdk.Error(422, actorsdk.CodeValidationFailed, msg)
	}
	a := Answer{Run: link.Run, Link: link.ID, Participant: req.Caller.ID, Params: link.Params, Answers: answers, At: actorsdk.Now()}
	// Once per run: a second submission (a reload, a double click) keeps
	// the first answers.
	if _, err := actorsdk.DB("answers").UpdateOne(actorsdk.M{"run": link.Run}, actorsdk.M{"$setOnInsert": a}, actorsdk.Upsert()); err != nil {
		return actorsdk.Fail(err)
	}
	done, err := actorsdk.FinishRun(req)
	if err != nil {
		return actorsdk.Fail(err)
	}
	next := done.CompletionURL
	if next == "" {
		next = "/experiments/survey/thanks.html"
	}
	if isForm {
		return actorsdk.Redirect(next)
	}
	return actorsdk.JSON(200, map[string]any{"completion_url": next, "already": done.Already})
}

// check turns the submitted values into answers: every scale question
// answered within its range, free text up to maxText bytes, nothing else.
func check(raw map[string]string) (map[string]any, string) {
	out := map[string]any{}
	known := map[string]bool{}
	for _, q := range questions {
		known[q.ID] = true
		v := strings.TrimSpace(raw[q.ID])
		if q.Scale == 0 {
			if len(v) > maxText {
				return nil, "the answer to " + strconv.Quote(q.ID) + " is longer than " + strconv.Itoa(maxText) + " bytes"
			}
			out[q.ID] = v
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > q.Scale {
			return nil, "answer " + strconv.Quote(q.ID) + " with a whole number from 1 to " + strconv.Itoa(q.Scale)
		}
		out[q.ID] = n
	}
	for k := range raw {
		if !known[k] {
			return nil, "there is no question " + strconv.Quote(k)
		}
	}
	return out, ""
}

// summary is, for the researcher, how many runs answered and the mean of
// each scale question.
func summary(req *actorsdk.Request) *actorsdk.Response {
	if req.Caller.Kind != actorsdk.KindUser {
		return actorsdk.Error(403, actorsdk.CodeForbidden, "the summary is for the experiment's researchers")
	}
	docs, err := actorsdk.DB("answers").Find(actorsdk.M{}, actorsdk.Limit(10000))
	if err != nil {
		return actorsdk.Fail(err)
	}
	sums := map[string]float64{}
	for _, d := range docs {
		var a struct {
			Answers map[string]json.RawMessage `json:"answers"`
		}
		if err := d.Decode(&a); err != nil {
			return actorsdk.Fail(err)
		}
		for _, q := range questions {
			if q.Scale > 0 {
				n, _ := strconv.ParseFloat(string(a.Answers[q.ID]), 64)
				sums[q.ID] += n
			}
		}
	}
	means := map[string]float64{}
	for k, s := range sums {
		if len(docs) > 0 {
			means[k] = s / float64(len(docs))
		}
	}
	return actorsdk.JSON(200, map[string]any{"runs": len(docs), "means": means})
}

func main() {}
