// The imaging actor keeps short texts with their embeddings, which an
// outside embeddings API computes, and finds the stored texts most like a
// new one by cosine similarity.
//
//	GET  /status               {"configured", "secret", "model", "api", "stored", "max_scan", "max_text"}
//	POST /texts  {"text", "k"} embeds and stores the text: 201 {"id", "dim", "similar", "scanned"},
//	                           "similar" being the k stored before it that are most alike
//	POST /search {"text", "k"} the same without storing: 200 {"dim", "similar", "scanned"}
//	GET  /texts?n=20           the newest texts: {"texts": [{"id", "text", "at"}]}
//
// The API is called as POST {base_url}/embeddings with {"input": [text],
// "model": model} and answers {"data": [{"embedding": [...]}]}: the shape
// of Voyage AI's and OpenAI's embeddings APIs. Its host must be listed in
// the manifest's actor.http.allow; its key is the experiment's secret
// API_KEY, sent as "Authorization: Bearer <key>" and nowhere else: not in
// answers, log lines or documents.
//
// Errors: a bad request 400 (not JSON) or 422 (a field); no API_KEY 503,
// saying how the owner sets it; the API refusing or failing (401, 429,
// 5xx, an answer that is not an embedding) 502; the platform refusing the
// request (a host not allowed, an internal address) its own code.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

const (
	// secretName is the experiment's secret holding the API key.
	secretName = "API_KEY"
	// maxText bounds a text, in characters: embeddings of short texts are
	// what this example is about, and it bounds what a scan reads.
	maxText = 1000
	// maxK bounds how many similar texts an answer lists.
	maxK = 10
	// page is how many stored texts one read brings: 50 vectors of 4096
	// dimensions with their texts stay far under the platform's 4 MiB
	// result limit.
	page = 50
	// maxScanLimit bounds actor.config.max_scan.
	maxScanLimit = 5000
)

// config is the manifest's actor.config.
type config struct {
	// BaseURL is the API's base; {base_url}/embeddings is called.
	BaseURL string `json:"base_url"`
	Model   string `json:"model"`
	// MaxScan is how many stored texts, newest first, a search compares
	// at most: the cost of a search stays bounded however many are stored.
	MaxScan int `json:"max_scan"`
}

var (
	cfg      config
	endpoint string
	apiHost  string
)

func init() {
	actorsdk.OnInit(start)
	actorsdk.Route("GET", "/status", status)
	actorsdk.Route("POST", "/texts", store)
	actorsdk.Route("POST", "/search", search)
	actorsdk.Route("GET", "/texts", recent)
}

// start reads actor.config; a value that cannot work refuses to start, so
// that the owner sees the mistake as the actor's state rather than in
// every answer.
func start(actorsdk.Init) error {
	c := config{BaseURL: "https://api.voyageai.com/v1", Model: "voyage-3.5-lite", MaxScan: 500}
	if err := actorsdk.DecodeConfig(&c); err != nil {
		return fmt.Errorf("actor.config: %w", err)
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("actor.config.base_url %q is not an http(s) URL without user, query or fragment", c.BaseURL)
	}
	if c.Model == "" || len(c.Model) > 200 {
		return errors.New("actor.config.model must be 1 to 200 characters")
	}
	if c.MaxScan < 1 || c.MaxScan > maxScanLimit {
		return fmt.Errorf("actor.config.max_scan must be 1 to %d", maxScanLimit)
	}
	cfg, endpoint, apiHost = c, strings.TrimRight(c.BaseURL, "/")+"/embeddings", u.Host
	actorsdk.Log.Info("imaging started", "api", apiHost, "model", cfg.Model, "max_scan", cfg.MaxScan)
	return nil
}

func status(*actorsdk.Request) *actorsdk.Response {
	_, missing := apiKey()
	n, err := actorsdk.DB("texts").Count(actorsdk.M{"model": cfg.Model})
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(200, actorsdk.M{"configured": missing == nil, "secret": secretName, "model": cfg.Model,
		"api": apiHost, "stored": n, "max_scan": cfg.MaxScan, "max_text": maxText})
}

// text is one stored text.
type text struct {
	Text  string            `json:"text"`
	Model string            `json:"model"`
	Dim   int               `json:"dim"`
	Vec   packed            `json:"vector"`
	At    actorsdk.DateTime `json:"at"`
}

func store(req *actorsdk.Request) *actorsdk.Response {
	in, bad := readInput(req)
	if bad != nil {
		return bad
	}
	q, bad := embed(in.Text)
	if bad != nil {
		return bad
	}
	// The scan comes first, so that the text is not its own best match.
	similar, scanned, err := scan(q, in.K)
	if err != nil {
		return actorsdk.Fail(err)
	}
	raw, err := actorsdk.DB("texts").InsertOne(text{Text: in.Text, Model: cfg.Model, Dim: len(q), Vec: pack(q), At: actorsdk.Now()})
	if err != nil {
		return actorsdk.Fail(err)
	}
	var id actorsdk.ObjectID
	if err := json.Unmarshal(raw, &id); err != nil {
		return actorsdk.Fail(fmt.Errorf("read the new text's id: %w", err))
	}
	return actorsdk.JSON(201, actorsdk.M{"id": id.Hex(), "dim": len(q), "similar": similar, "scanned": scanned})
}

func search(req *actorsdk.Request) *actorsdk.Response {
	in, bad := readInput(req)
	if bad != nil {
		return bad
	}
	q, bad := embed(in.Text)
	if bad != nil {
		return bad
	}
	similar, scanned, err := scan(q, in.K)
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(200, actorsdk.M{"dim": len(q), "similar": similar, "scanned": scanned})
}

func recent(req *actorsdk.Request) *actorsdk.Response {
	n := 20
	if s := req.Query.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 50 {
			return actorsdk.Error(422, actorsdk.CodeValidationFailed, "n must be a whole number from 1 to 50")
		}
		n = v
	}
	docs, err := actorsdk.DB("texts").Find(actorsdk.M{},
		actorsdk.Sort(actorsdk.D{{Key: "_id", Value: -1}}),
		actorsdk.Projection(actorsdk.M{"text": 1, "at": 1}),
		actorsdk.Limit(int64(n)))
	if err != nil {
		return actorsdk.Fail(err)
	}
	var stored []struct {
		ID   actorsdk.ObjectID `json:"_id"`
		Text string            `json:"text"`
		At   time.Time         `json:"at"`
	}
	if err := docs.Decode(&stored); err != nil {
		return actorsdk.Fail(err)
	}
	out := make([]actorsdk.M, len(stored))
	for i, s := range stored {
		out[i] = actorsdk.M{"id": s.ID.Hex(), "text": s.Text, "at": s.At}
	}
	return actorsdk.JSON(200, actorsdk.M{"texts": out})
}

// input is the body of POST /texts and POST /search.
type input struct {
	Text string `json:"text"`
	K    int    `json:"k"`
}

// readInput decodes and checks the body; a refusal says which field is
// wrong and why.
func readInput(req *actorsdk.Request) (input, *actorsdk.Response) {
	const shape = `send {"text": "...", "k": 3}`
	var raw struct {
		Text *string `json:"text"`
		K    *int    `json:"k"`
	}
	if !json.Valid(req.Body) {
		return input{}, actorsdk.Error(400, actorsdk.CodeInvalidJSON, "the body is not JSON: "+shape)
	}
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var te *json.UnmarshalTypeError
		msg := "the body must be a JSON object: " + shape
		switch {
		case errors.As(err, &te) && te.Field == "text":
			msg = "text must be a string"
		case errors.As(err, &te) && te.Field == "k":
			msg = fmt.Sprintf("k must be a whole number from 1 to %d", maxK)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			msg = strings.TrimPrefix(err.Error(), "json: ") + ": " + shape
		}
		return input{}, actorsdk.Error(422, actorsdk.CodeValidationFailed, msg)
	}
	in := input{K: 3}
	if raw.K != nil {
		in.K = *raw.K
	}
	if in.K < 1 || in.K > maxK {
		return input{}, actorsdk.Error(422, actorsdk.CodeValidationFailed, fmt.Sprintf("k must be a whole number from 1 to %d", maxK))
	}
	if raw.Text == nil {
		return input{}, actorsdk.Error(422, actorsdk.CodeValidationFailed, "text is missing: "+shape)
	}
	in.Text = strings.TrimSpace(*raw.Text)
	switch n := utf8.RuneCountInString(in.Text); {
	case n == 0:
		return input{}, actorsdk.Error(422, actorsdk.CodeValidationFailed, "text is empty")
	case n > maxText:
		return input{}, actorsdk.Error(422, actorsdk.CodeValidationFailed, fmt.Sprintf("text is %d characters long, over the limit of %d", n, maxText))
	}
	return in, nil
}

// apiKey is the API key, or the answer to give when there is none that can
// be used. The answers tell the owner what to do and never show the value.
func apiKey() (string, *actorsdk.Response) {
	set := fmt.Sprintf(`its owner sets one with PUT /api/experiments/%s/secrets/%s {"value": "..."}`, actorsdk.Slug(), secretName)
	key, err := actorsdk.Secret(secretName)
	switch {
	case actorsdk.IsCode(err, actorsdk.CodeNotFound):
		return "", actorsdk.Error(503, actorsdk.CodeUnavailable, "this experiment has no API key yet: "+set)
	case actorsdk.IsCode(err, actorsdk.CodeGone):
		return "", actorsdk.Error(503, actorsdk.CodeUnavailable, "this experiment's API key was sealed with a key the platform no longer has: "+set)
	case err != nil:
		return "", actorsdk.Fail(err)
	}
	// A value pasted with its line end still works; one with a space or a
	// control character inside cannot be a bearer token (and the platform
	// would refuse the header).
	key = strings.TrimSpace(key)
	if key == "" || strings.IndexFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "", actorsdk.Error(503, actorsdk.CodeUnavailable, "this experiment's API key holds a space or a control character: "+set)
	}
	return key, nil
}

// embed has the API compute the unit embedding of s.
func embed(s string) ([]float32, *actorsdk.Response) {
	key, bad := apiKey()
	if bad != nil {
		return nil, bad
	}
	var out struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	in := struct {
		Input []string `json:"input"`
		Model string   `json:"model"`
	}{[]string{s}, cfg.Model}
	if _, err := actorsdk.FetchJSON("POST", endpoint, actorsdk.Header{"Authorization": {"Bearer " + key}}, in, &out); err != nil {
		return nil, apiFailure(err)
	}
	if len(out.Data) != 1 {
		actorsdk.Log.Warn("the embeddings API answered an unexpected count", "embeddings", len(out.Data))
		return nil, actorsdk.Error(502, actorsdk.CodeBadGateway, fmt.Sprintf("the embeddings API answered %d embeddings for one text", len(out.Data)))
	}
	v, err := unit(out.Data[0].Embedding)
	if err != nil {
		actorsdk.Log.Warn("the embeddings API answered an unusable embedding", "error", err.Error())
		return nil, actorsdk.Error(502, actorsdk.CodeBadGateway, "the embeddings API did not answer "+err.Error())
	}
	return v, nil
}

// apiFailure is the answer when the request to the API did not give an
// embedding. Neither the answer nor the log line quotes the API's body: an
// API refusing a key may quote it.
func apiFailure(err error) *actorsdk.Response {
	var se *actorsdk.StatusError
	var he *actorsdk.HostError
	switch {
	case errors.As(err, &se):
		st := se.Response.Status
		actorsdk.Log.Warn("the embeddings API refused a request", "status", st)
		var msg string
		switch {
		case st == 401 || st == 403:
			msg = fmt.Sprintf("the embeddings API refused the key (%d): the experiment's owner should check its %s secret", st, secretName)
		case st == 429:
			msg = "the embeddings API is limiting requests (429): try again in a moment"
		case st >= 500:
			msg = fmt.Sprintf("the embeddings API failed (%d): try again later", st)
		default:
			msg = fmt.Sprintf("the embeddings API refused the request (%d): the experiment's owner should check the model in actor.config", st)
		}
		r := actorsdk.Error(502, actorsdk.CodeBadGateway, msg)
		if ra := se.Response.Header.Get("Retry-After"); st == 429 && ra != "" {
			if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 && secs <= 3600 {
				r.WithHeader("Retry-After", ra)
			}
		}
		return r
	case errors.As(err, &he):
		// The platform's refusal (a host not allowed, an internal address,
		// a limit) keeps its code and status; its message names the host,
		// never the headers.
		actorsdk.Log.Warn("the request to the embeddings API was refused", "code", he.Code)
		return actorsdk.Error(actorsdk.StatusOf(he.Code), he.Code, "calling the embeddings API: "+he.Message)
	}
	// A 2xx answer whose body does not decode.
	actorsdk.Log.Warn("the embeddings API's answer does not decode", "error", err.Error())
	return actorsdk.Error(502, actorsdk.CodeBadGateway, "the embeddings API answered something that is not an embeddings response")
}

// scan compares q with the newest stored texts of the same model and
// dimension, at most cfg.MaxScan of them, page by page, and returns the k
// most alike and how many were compared.
func scan(q []float32, k int) ([]match, int, error) {
	var top []match
	var last actorsdk.ObjectID
	scanned := 0
	for scanned < cfg.MaxScan {
		filter := actorsdk.M{"model": cfg.Model, "dim": len(q)}
		if last != "" {
			filter["_id"] = actorsdk.M{"$lt": last}
		}
		n := min(page, cfg.MaxScan-scanned)
		docs, err := actorsdk.DB("texts").Find(filter,
			actorsdk.Sort(actorsdk.D{{Key: "_id", Value: -1}}),
			actorsdk.Projection(actorsdk.M{"text": 1, "vector": 1}),
			actorsdk.Limit(int64(n)))
		if err != nil {
			return nil, scanned, err
		}
		var stored []struct {
			ID   actorsdk.ObjectID `json:"_id"`
			Text string            `json:"text"`
			Vec  []byte            `json:"vector"`
		}
		if err := docs.Decode(&stored); err != nil {
			return nil, scanned, fmt.Errorf("decode stored texts: %w", err)
		}
		for _, s := range stored {
			if sim, ok := dot(q, s.Vec); ok {
				top = append(top, match{ID: s.ID.Hex(), Text: s.Text, Score: sim})
			}
		}
		// Only the best k are kept between pages: memory stays bounded by
		// a page, whatever max_scan is.
		top = best(top, k)
		scanned += len(stored)
		if len(stored) < n {
			break
		}
		last = stored[len(stored)-1].ID
	}
	for i := range top {
		top[i].Score = round(top[i].Score)
	}
	if top == nil {
		top = []match{}
	}
	return top, scanned, nil
}

func main() {}
