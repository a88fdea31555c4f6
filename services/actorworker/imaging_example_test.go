package actorworker

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The example examples/imaging, as uploaded, run by a real worker on the
// embedded NATS and store: its actor reads the experiment's secret API_KEY
// and calls an embeddings API at the host its manifest allows. Here the API
// is a local server under an allowed name, which only the fetch state's
// test hooks let actors reach; everything else is the example's own
// manifest.

// imagingActor is examples/imaging/actor built for the sandbox.
func imagingActor(t *testing.T) []byte { return guest(t, "examples/imaging/actor") }

// imagingManifest is the example's manifest with actor.config and
// actor.http.allow changed as given.
func imagingManifest(t *testing.T, config map[string]any, allow []string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../examples/imaging/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	actor := m["actor"].(map[string]any)
	for k, v := range config {
		actor["config"].(map[string]any)[k] = v
	}
	actor["http"].(map[string]any)["allow"] = allow
	return m
}

// embeddingsAPI is a stand-in for Voyage AI's embeddings API: it embeds a
// text as a bag of its words (each word adds 1 to a dimension picked by
// its hash), so that texts sharing words are alike, and records what it was
// sent. fail makes it answer as a failing API does, quoting the key it was
// sent, as some do.
type embeddingsAPI struct {
	srv *httptest.Server

	mu     sync.Mutex
	auths  []string
	bodies []string
	fail   string
}

const embedDim = 256

var stopWords = map[string]bool{"a": true, "an": true, "the": true, "on": true, "and": true, "after": true, "two": true}

// bagOfWords is the API's embedding of s.
func bagOfWords(s string) []float64 {
	v := make([]float64, embedDim)
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r < 'a' || r > 'z' }) {
		if stopWords[w] {
			continue
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(w))
		v[h.Sum32()%embedDim]++
	}
	return v
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab, aa, bb = ab+a[i]*b[i], aa+a[i]*a[i], bb+b[i]*b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

func newEmbeddingsAPI(t *testing.T) *embeddingsAPI {
	api := &embeddingsAPI{}
	api.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		api.mu.Lock()
		api.auths = append(api.auths, r.Header.Get("Authorization"))
		api.bodies = append(api.bodies, string(body))
		fail := api.fail
		api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		quoted := fmt.Sprintf(`{"detail": "Provided API key is invalid: %s"}`, r.Header.Get("Authorization"))
		switch fail {
		case "401", "403", "500", "503":
			var code int
			_, _ = fmt.Sscan(fail, &code)
			w.WriteHeader(code)
			_, _ = io.WriteString(w, quoted)
			return
		case "429":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			_, _ = io.WriteString(w, quoted)
			return
		case "not json":
			_, _ = io.WriteString(w, "<html>"+r.Header.Get("Authorization")+"</html>")
			return
		case "zero":
			_, _ = io.WriteString(w, `{"data": [{"embedding": [0, 0, 0]}]}`)
			return
		case "two":
			_, _ = io.WriteString(w, `{"data": [{"embedding": [1, 0]}, {"embedding": [0, 1]}]}`)
			return
		}
		var in struct {
			Input []string `json:"input"`
			Model string   `json:"model"`
		}
		if r.Method != "POST" || r.URL.Path != "/v1/embeddings" || json.Unmarshal(body, &in) != nil || len(in.Input) != 1 || in.Model == "" {
			http.Error(w, `{"detail": "bad request"}`, 400)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": in.Model,
			"data": []any{map[string]any{"object": "embedding", "index": 0, "embedding": bagOfWords(in.Input[0])}}})
	}))
	t.Cleanup(api.srv.Close)
	return api
}

func (a *embeddingsAPI) setFail(mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = mode
}

// seen is how many requests reached the API, and the last one's
// Authorization header and body.
func (a *embeddingsAPI) seen() (n int, auth, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n = len(a.auths); n > 0 {
		auth, body = a.auths[n-1], a.bodies[n-1]
	}
	return n, auth, body
}

// hooks lets f reach the server, as the name api.embed.test only.
func (a *embeddingsAPI) hooks(f *fetchState) {
	ap := a.srv.Listener.Addr().(*net.TCPAddr).AddrPort()
	f.testAllow = map[netip.AddrPort]bool{ap: true}
	f.testResolver = names{"api.embed.test": addrs("127.0.0.1")}
}

func (a *embeddingsAPI) baseURL() string {
	return fmt.Sprintf("http://api.embed.test:%d/v1", a.srv.Listener.Addr().(*net.TCPAddr).Port)
}

// imagingAnswer is an answer of the example's POST /texts and /search.
type imagingAnswer struct {
	ID      string `json:"id"`
	Dim     int    `json:"dim"`
	Scanned int    `json:"scanned"`
	Similar []struct {
		ID    string  `json:"id"`
		Text  string  `json:"text"`
		Score float64 `json:"score"`
	} `json:"similar"`
	Error struct{ Code, Message string } `json:"error"`
}

func TestImagingExample(t *testing.T) {
	api := newEmbeddingsAPI(t)
	w := newWorld(t)
	logs := &syncBuffer{}
	d := w.env.Deps(t, w.env.Config(t, nil))
	d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(d)
	s.tune = w.tune
	api.hooks(&s.fetch)
	testenv.Run(t, d, s)

	// Four stored texts at most are compared: the fifth oldest is never.
	w.deploy("imaging", imagingManifest(t, map[string]any{"base_url": api.baseURL(), "max_scan": 4}, []string{"api.embed.test"}), imagingActor(t))
	var st map[string]any
	eventually(t, 30*time.Second, "the imaging actor to answer", func() bool {
		r := w.callWithin(2*time.Second, "imaging", "GET", "/status", "", nil)
		if r.err != nil || r.status != 200 {
			return false
		}
		st = r.json(t)
		return true
	})
	if st["configured"] != false || st["secret"] != "API_KEY" || st["model"] != "voyage-3.5-lite" || st["stored"] != 0.0 {
		t.Errorf("status before the secret: %v", st)
	}

	post := func(path string, body any) (int, imagingAnswer, string) {
		t.Helper()
		raw, ok := body.(string)
		if !ok {
			b, _ := json.Marshal(body)
			raw = string(b)
		}
		r := w.call("imaging", "POST", path, "", []byte(raw))
		if r.err != nil {
			t.Fatalf("POST %s: %v", path, r)
		}
		var a imagingAnswer
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatalf("POST %s: not JSON: %s", path, r.body)
		}
		return r.status, a, string(r.body)
	}
	text := func(s string) map[string]any { return map[string]any{"text": s} }

	// No secret: 503 saying how the owner sets it, and nothing sent.
	if status, a, body := post("/texts", text("The cat sat on the mat")); status != 503 || a.Error.Code != "unavailable" ||
		!strings.Contains(a.Error.Message, "PUT /api/experiments/imaging/secrets/API_KEY") {
		t.Errorf("without a secret: %d %s", status, body)
	}

	// Bad input: refused before the key is read or the API called.
	for _, c := range []struct {
		body   string
		status int
		says   string
	}{
		{`{"text": `, 400, "not JSON"},
		{`[1, 2]`, 422, "JSON object"},
		{`{}`, 422, "text is missing"},
		{`{"text": "   "}`, 422, "text is empty"},
		{`{"text": 42}`, 422, "text must be a string"},
		{`{"text": "hi", "k": 0}`, 422, "k must be"},
		{`{"text": "hi", "k": 11}`, 422, "k must be"},
		{`{"text": "hi", "k": "3"}`, 422, "k must be"},
		{`{"text": "hi", "model": "gpt-4"}`, 422, `unknown field "model"`},
		{`{"text": "` + strings.Repeat("é", 1001) + `"}`, 422, "1001 characters long, over the limit of 1000"},
	} {
		if status, a, body := post("/search", c.body); status != c.status || !strings.Contains(a.Error.Message, c.says) {
			t.Errorf("POST /search %.40s: %d %s, want %d saying %q", c.body, status, body, c.status, c.says)
		}
	}
	if n, _, _ := api.seen(); n != 0 {
		t.Fatalf("%d requests reached the API before it could be used", n)
	}

	ctx := ctxT(t)
	if err := w.d.Store.EnsureIndexes(ctx, store.ExperimentSecrets); err != nil {
		t.Fatal(err)
	}
	sl, err := store.NewSealer(testenv.SecretKey, "")
	if err != nil {
		t.Fatal(err)
	}
	secrets := w.d.Store.Secrets(sl)
	const key = "pa-imaging-9d8c7b6a5f4e3d2c"
	setKey := func(v string) {
		t.Helper()
		if _, _, err := secrets.Put(ctx, "imaging", "API_KEY", v, "owner@example.com", uploadapi.MaxSecrets); err != nil {
			t.Fatal(err)
		}
	}
	// Pasted with its line end: the line end is not part of the key.
	setKey(key + "\n")
	if r := w.call("imaging", "GET", "/status", "", nil); r.json(t)["configured"] != true {
		t.Errorf("status with the secret: %v", r)
	}

	stored := []string{
		"Two eggs, flour and butter make a simple cake batter",
		"The cat sat on the mat",
		"Stock markets fell sharply today",
		"A black cat slept on a warm mat",
		"Markets rallied after strong stock earnings",
	}
	ids := map[string]string{}
	for i, s := range stored {
		status, a, body := post("/texts", text(s))
		if status != 201 || a.ID == "" || a.Dim != embedDim || a.Scanned != min(i, 4) {
			t.Fatalf("store %q: %d %s", s, status, body)
		}
		ids[a.ID] = s
		n, auth, sent := api.seen()
		if n != i+1 || auth != "Bearer "+key {
			t.Fatalf("request %d reached the API with Authorization %q", n, auth)
		}
		var req map[string]any
		_ = json.Unmarshal([]byte(sent), &req)
		if in, _ := req["input"].([]any); len(in) != 1 || in[0] != s || req["model"] != "voyage-3.5-lite" || len(req) != 2 {
			t.Errorf("the API was sent %s", sent)
		}
		if s == "Markets rallied after strong stock earnings" && (len(a.Similar) == 0 || a.Similar[0].Text != "Stock markets fell sharply today") {
			t.Errorf("storing the second text on markets: %s", body)
		}
	}

	// The answers are the k stored texts most alike by cosine similarity,
	// among the newest max_scan, highest first.
	check := func(query string, k int) imagingAnswer {
		t.Helper()
		status, a, body := post("/search", map[string]any{"text": query, "k": k})
		if status != 200 || a.Scanned != 4 || a.Dim != embedDim {
			t.Fatalf("search %q: %d %s", query, status, body)
		}
		// The reference: every text within max_scan (the oldest is past
		// it), scored here in float64. Equal scores may come in either
		// order, so each answer is held to the score of its position and
		// to its own text's score.
		q := bagOfWords(query)
		var want []float64
		for _, s := range stored[1:] {
			want = append(want, cosine(q, bagOfWords(s)))
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(want)))
		if len(a.Similar) != k {
			t.Fatalf("search %q: %d answers, want %d: %s", query, len(a.Similar), k, body)
		}
		for i, m := range a.Similar {
			if ids[m.ID] != m.Text || math.Abs(m.Score-want[i]) > 1e-3 || math.Abs(m.Score-cosine(q, bagOfWords(m.Text))) > 1e-3 {
				t.Errorf("search %q, answer %d: %q %.4f, want the score %.4f (%s)", query, i, m.Text, m.Score, want[i], body)
			}
		}
		return a
	}
	if a := check("cat on a mat", 2); a.Similar[0].Text != "The cat sat on the mat" || a.Similar[1].Text != "A black cat slept on a warm mat" || a.Similar[0].Score < .8 {
		t.Errorf("cats: %+v", a.Similar)
	}
	check("stock markets", 3)
	if a := check("eggs flour cake", 4); slicesHasText(a, stored[0]) {
		t.Errorf("a text past max_scan was compared: %+v", a.Similar)
	}
	r := w.call("imaging", "GET", "/texts", "n=2", nil)
	var recent struct {
		Texts []map[string]any `json:"texts"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &recent) != nil || len(recent.Texts) != 2 || recent.Texts[0]["text"] != stored[4] || recent.Texts[1]["text"] != stored[3] {
		t.Errorf("GET /texts?n=2: %v", r)
	}
	if strings.Contains(string(r.body), "vector") {
		t.Errorf("the list carries vectors: %s", r.body)
	}

	// What is stored: the text, the model, and the unit vector as binary
	// float32, nothing of the key.
	var doc bson.M
	if err := w.d.Store.Collection("x.imaging.texts").FindOne(ctx, bson.D{{Key: "text", Value: stored[1]}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	vec, ok := doc["vector"].(bson.Binary)
	if !ok || len(vec.Data) != 4*embedDim || doc["dim"] != int32(embedDim) || doc["model"] != "voyage-3.5-lite" {
		t.Errorf("stored document: %v", doc)
	}
	if b, _ := bson.MarshalExtJSON(doc, false, false); strings.Contains(string(b), key) {
		t.Errorf("the key is in a stored document: %s", b)
	}

	// The API refusing or failing: 502 with a message that says what to do
	// and never the key the API quoted back.
	for _, c := range []struct {
		fail, says string
	}{
		{"401", "refused the key (401): the experiment's owner should check its API_KEY secret"},
		{"403", "refused the key (403)"},
		{"429", "limiting requests (429)"},
		{"500", "failed (500): try again later"},
		{"503", "failed (503)"},
		{"not json", "not an embeddings response"},
		{"zero", "an embedding that is not zero"},
		{"two", "2 embeddings for one text"},
	} {
		api.setFail(c.fail)
		r := w.call("imaging", "POST", "/search", "", []byte(`{"text": "cat"}`))
		var a imagingAnswer
		_ = json.Unmarshal(r.body, &a)
		if r.err != nil || r.status != 502 || a.Error.Code != "bad_gateway" || !strings.Contains(a.Error.Message, c.says) {
			t.Errorf("API failing with %s: %v", c.fail, r)
		}
		if strings.Contains(string(r.body), key) || strings.Contains(fmt.Sprint(r.headers), key) {
			t.Errorf("API failing with %s: the answer holds the key: %v", c.fail, r)
		}
		if c.fail == "429" && (len(r.headers["Retry-After"]) != 1 || r.headers["Retry-After"][0] != "7") {
			t.Errorf("429: Retry-After not passed on: %v", r.headers)
		}
	}
	api.setFail("")
	if n, _, _ := api.seen(); n != 5+3+8 {
		t.Errorf("%d requests reached the API, want 16 (5 stored, 3 searches, 8 failures)", n)
	}

	// A key that cannot be a bearer token is not sent.
	before, _, _ := api.seen()
	setKey("pa-imaging\r\nX-Injected: 1")
	if status, a, body := post("/search", text("cat")); status != 503 || !strings.Contains(a.Error.Message, "space or a control character") || strings.Contains(body, "pa-imaging") {
		t.Errorf("a key with a line break: %d %s", status, body)
	}
	// Deleted: 503 again, from the next call.
	if _, err := secrets.Remove(ctx, "imaging", "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if status, a, body := post("/texts", text("cat")); status != 503 || !strings.Contains(a.Error.Message, "has no API key yet") {
		t.Errorf("after the secret's deletion: %d %s", status, body)
	}
	if n, _, _ := api.seen(); n != before {
		t.Errorf("%d requests reached the API without a usable key", n-before)
	}

	// A new version compares every stored text: the oldest is found.
	setKey(key)
	w.deploy("imaging", imagingManifest(t, map[string]any{"base_url": api.baseURL()}, []string{"api.embed.test"}), imagingActor(t))
	eventually(t, 30*time.Second, "the new version to scan every text", func() bool {
		status, a, _ := post("/search", map[string]any{"text": "eggs flour cake", "k": 1})
		return status == 200 && a.Scanned == 5 && len(a.Similar) == 1 && a.Similar[0].Text == stored[0]
	})

	out := logs.String()
	if !strings.Contains(out, "the embeddings API refused a request") || !strings.Contains(out, "status=401") {
		t.Errorf("the API's refusals were not logged; the check below would prove nothing:\n%s", out)
	}
	if strings.Contains(out, key) || strings.Contains(out, "pa-imaging") {
		t.Errorf("the worker's log holds the key:\n%s", out)
	}
}

func slicesHasText(a imagingAnswer, s string) bool {
	for _, m := range a.Similar {
		if m.Text == s {
			return true
		}
	}
	return false
}
