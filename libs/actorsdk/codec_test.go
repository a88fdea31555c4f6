package actorsdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// requestEnvelopeJSON is the request envelope as encoding/json reads it:
// the reference the hand-written reader must agree with.
type requestEnvelopeJSON struct {
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Headers   map[string][]string `json:"headers"`
	Body      []byte              `json:"body"`
	Caller    Caller              `json:"caller"`
	RequestID string              `json:"request_id"`
}

// decodeRequestJSON is how the SDK read envelopes before codec.go.
func decodeRequestJSON(env []byte) (*Request, error) {
	var e requestEnvelopeJSON
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, err
	}
	h := make(Header, len(e.Headers))
	for k, vs := range e.Headers {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	path := e.Path
	if path == "" {
		path = "/"
	}
	return &Request{
		Method: strings.ToUpper(e.Method), Path: path, RawQuery: e.Query, Query: parseQuery(e.Query),
		Header: h, Body: e.Body, Caller: e.Caller, RequestID: e.RequestID,
	}, nil
}

// responseEnvelopeJSON is the response envelope as encoding/json writes it.
type responseEnvelopeJSON struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"`
}

const pingEnvelope = `{"method":"GET","path":"/ping","query":"","headers":{"Accept-Encoding":["gzip"],"Host":["127.0.0.1"],` +
	`"User-Agent":["Go-http-client/1.1"]},"body":"","caller":{"email":"","roles":[],"anonymous":true},` +
	`"request_id":"0123456789abcdef0123456789abcdef"}`

// requestSeeds are envelopes the host sends and envelopes it never would.
var requestSeeds = []string{
	pingEnvelope,
	`{"method":"POST","path":"/click","query":"source=page&x=1","headers":{"Content-Type":["application/json"],"Accept":["*/*"]},` +
		`"body":"eyJidXR0b24iOiJyZWQifQ==","caller":{"kind":"user","id":"6571f0c2a9e1","email":"ada@example.com","roles":["user"],"anonymous":false},"request_id":"c1a2b3d4e5f6"}`,
	`{"method":"GET","path":"/","query":"","headers":{},"body":"","caller":{"kind":"participant","id":"9f2c1e0a7b3d4c5e6f708192","email":"","roles":[],"anonymous":true,` +
		`"link":{"id":"q8Zr1kV0c3xYp2LmN5bT7w","kind":"single","label":"","run":"Hk3s9QvB0nLw2XcE7yU1tA","params":{"PROLIFIC_PID":"5f8d","STUDY_ID":"64a1","x":null}}},"request_id":"r"}`,
	`{"method":"get","path":"/a%2Fb/\u00e9\ud83d\ude00","query":"a=%zz&b=2","headers":{"x-lower":["a","b"],"X-Lower":["c"],"Cookie":["a=1; b=\"q\""]},"body":null,"caller":null,"request_id":null,"future":{"a":[1,2.5e-3,-0,true,false,null,"\n"]}}`,
	`{"METHOD":"GET","Path":"/x","request_Id":"r","\u212aind":1}`,
	`{"caller":{"\u212aind":"user","roleſ":["a"]}}`,
	`{"headers":{"A":null,"B":[null,"x"],"A":["late"]}}`,
	`{"caller":{"link":null,"roles":null,"anonymous":null}}`,
	" \t\r\n{}\n ",
	`null`,
	`{"body":"aGk="}`,
	`{"body":"aGk"}`,
	`{"body":"a\nGk="}`,
	`{"body":"a\\nGk="}`,
	`{"body":"!!!!"}`,
	`{"method":"GET","method":"POST"}`,
	`{"caller":{"id":"a","ID":"b"}}`,
	`{"path":"\ud800x\udc00\ud800\udbff\udfff"}`,
	"{\"path\":\"\xff\xfe ok\"}",
	"{\"path\":\"tab\there\"}",
	`{"path":"\x"}`,
	`{"path":"\'"}`,
	`{"method":1}`,
	`{"caller":{"roles":"admin"}}`,
	`{"caller":{"roles":[1]}}`,
	`{"caller":{"anonymous":"true"}}`,
	`{"caller":{"link":{"params":{"a":1}}}}`,
	`{"caller":{"link":[]}}`,
	`{"headers":{"A":"x"}}`,
	`{"headers":[]}`,
	`{"future":01}`,
	`{"future":1.}`,
	`{"future":-}`,
	`{"future":1e}`,
	`{"future":[1,]}`,
	`{"future":{"a":1,}}`,
	`{,}`,
	`{"a" 1}`,
	`{}x`,
	"{}\x00",
	"\x00",
	`{} {}`,
	`[]`,
	`"x"`,
	`{"method":"GET"`,
	`{"future":tru}`,
	``,
	`{"future":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"future":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
	`{"future":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
}

// sortedHeader is h with each name's values sorted: the reader before
// codec.go added values of names that differ only in case in the order of
// a map's iteration, which is random.
func sortedHeader(h Header) Header {
	out := Header{}
	for k, vs := range h {
		out[k] = slices.Sorted(slices.Values(vs))
	}
	return out
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		got, err := decodeRequestString(string(env))
		want, werr := decodeRequestJSON(env)
		if errors.Is(err, errDuplicateField) {
			// Stricter than encoding/json on purpose (codec.go).
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: codec error %v, encoding/json error %v", env, err, werr)
		}
		if err != nil {
			return
		}
		if got.Method != want.Method || got.Path != want.Path || got.RawQuery != want.RawQuery || got.RequestID != want.RequestID {
			t.Fatalf("%q: got %q %q %q %q, want %q %q %q %q", env, got.Method, got.Path, got.RawQuery, got.RequestID,
				want.Method, want.Path, want.RawQuery, want.RequestID)
		}
		if !reflect.DeepEqual(got.Query, want.Query) {
			t.Fatalf("%q: query %v, want %v", env, got.Query, want.Query)
		}
		if !reflect.DeepEqual(sortedHeader(got.Header), sortedHeader(want.Header)) {
			t.Fatalf("%q: headers %v, want %v", env, got.Header, want.Header)
		}
		if !reflect.DeepEqual(got.Body, want.Body) {
			t.Fatalf("%q: body %q, want %q", env, got.Body, want.Body)
		}
		if !reflect.DeepEqual(got.Caller, want.Caller) {
			t.Fatalf("%q: caller %+v, want %+v", env, got.Caller, want.Caller)
		}
		if got.Caller.Link != nil && !reflect.DeepEqual(*got.Caller.Link, *want.Caller.Link) {
			t.Fatalf("%q: link %+v, want %+v", env, *got.Caller.Link, *want.Caller.Link)
		}
	})
}

func TestDecodeRequestReadsEveryField(t *testing.T) {
	req, err := decodeRequestString(requestSeeds[2])
	if err != nil {
		t.Fatal(err)
	}
	l := req.Caller.Link
	if req.Caller.Kind != KindParticipant || req.Caller.ID != "9f2c1e0a7b3d4c5e6f708192" || !req.Caller.Anonymous || l == nil ||
		l.ID != "q8Zr1kV0c3xYp2LmN5bT7w" || l.Kind != LinkSingle || l.Run != "Hk3s9QvB0nLw2XcE7yU1tA" ||
		l.Params["PROLIFIC_PID"] != "5f8d" || l.Params["STUDY_ID"] != "64a1" || len(l.Params) != 3 {
		t.Errorf("caller %+v link %+v", req.Caller, l)
	}
	req, err = decodeRequestString(requestSeeds[3])
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "GET" || req.Path != "/a%2Fb/é😀" || req.Query.Get("b") != "2" ||
		!slices.Equal(req.Header.Values("X-Lower"), []string{"a", "b", "c"}) || req.Body != nil {
		t.Errorf("request %+v", req)
	}
	if v, ok := req.Cookie("b"); !ok || v != "q" {
		t.Errorf("cookie b = %q %v", v, ok)
	}
}

func TestDecodeRequestRefusesRepeatedFields(t *testing.T) {
	for _, env := range []string{
		`{"method":"GET","method":"POST"}`,
		`{"caller":{"email":"a@b.c"},"Caller":{"email":"x@y.z"}}`,
		`{"caller":{"id":"a","ID":"b"}}`,
		`{"caller":{"link":{"run":"a","run":"b"}}}`,
	} {
		_, err := decodeRequestString(env)
		if !errors.Is(err, errDuplicateField) {
			t.Errorf("%s: %v, want a repeated field refused", env, err)
		}
	}
}

func TestDecodeRequestErrorsSayWhere(t *testing.T) {
	_, err := decodeRequestString(`{"method":"GET",}`)
	if err == nil || !strings.Contains(err.Error(), "at byte 16") {
		t.Errorf("error %v", err)
	}
}

func TestResponseEnvelopeIsWhatEncodingJSONWrites(t *testing.T) {
	for _, tc := range []struct {
		status int
		h      Header
		body   []byte
	}{
		{200, nil, nil},
		{204, Header{}, []byte{}},
		{201, Header{"Content-Type": {"application/json"}, "B": {"1", "2"}, "A": {"<&>\"\\\u2028\u2029\x00\x1f\b\f\n\r\t\x7f"}}, []byte(`{"ok":true}`)},
		{500, Header{"X": {"\xff\xfe", "é😀"}, "Empty": {}, "Bad Name": {"x"}}, bytes.Repeat([]byte{0, 1, 255}, 100)},
	} {
		got := encodeResponseEnvelope(tc.status, tc.h, tc.body)
		env := responseEnvelopeJSON{Status: tc.status, Body: tc.body}
		for k, vs := range tc.h {
			if len(vs) > 0 && validHeaderName(k) {
				if env.Headers == nil {
					env.Headers = map[string][]string{}
				}
				env.Headers[k] = vs
			}
		}
		want, _ := json.Marshal(env)
		if !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func FuzzEncodeResponse(f *testing.F) {
	f.Add(200, "Content-Type", "application/json", "b", []byte(`{"ok":true}`))
	f.Add(599, "X", "<\u2028\xff>", "", []byte{})
	f.Fuzz(func(t *testing.T, status int, k1, v1, v2 string, body []byte) {
		h := Header{k1: {v1, v2}, "Z": {v2}}
		got := encodeResponseEnvelope(status, h, body)
		env := responseEnvelopeJSON{Status: status, Body: body}
		for k, vs := range h {
			if len(vs) > 0 && validHeaderName(k) {
				if env.Headers == nil {
					env.Headers = map[string][]string{}
				}
				env.Headers[k] = vs
			}
		}
		want, _ := json.Marshal(env)
		if !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

func TestRouteMatchAgreesWithSplitting(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		ok            bool
		params        map[string]string
	}{
		{"/", "/", true, nil},
		{"/", "/x", false, nil},
		{"/a", "/a/", false, nil},
		{"/a/{id}", "/a/7", true, map[string]string{"id": "7"}},
		{"/a/{id}", "/a/", false, nil},
		{"/a/{id}", "/a", false, nil},
		{"/a/{id}", "/a/7/x", false, nil},
		{"/a/{rest...}", "/a", true, map[string]string{"rest": ""}},
		{"/a/{rest...}", "/a/", true, map[string]string{"rest": ""}},
		{"/a/{rest...}", "/a/b/c", true, map[string]string{"rest": "b/c"}},
		{"/a/{rest...}", "/b/c", false, nil},
		{"/{rest...}", "/", true, map[string]string{"rest": ""}},
		{"/{rest...}", "/x/y", true, map[string]string{"rest": "x/y"}},
		{"/{x}/{y}", "//y", false, nil},
	} {
		r, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		params, ok := r.Match(tc.path)
		if ok != tc.ok || (ok && !reflect.DeepEqual(params, tc.params)) {
			t.Errorf("%s against %s: %v %v, want %v %v", tc.pattern, tc.path, params, ok, tc.params, tc.ok)
		}
	}
}

// benchmarkPing registers the echo actor's route for a benchmark.
func benchmarkPing(b *testing.B) {
	saved, savedFallback := routes, fallback
	routes, fallback = nil, nil
	b.Cleanup(func() { routes, fallback = saved, savedFallback })
	pong := []byte(`{"ok":true}`)
	Route("GET", "/ping", func(*Request) *Response { return Bytes(200, "application/json", pong) })
	Route("GET", "/instance", func(*Request) *Response { return Bytes(200, "application/json", pong) })
}

// BenchmarkHandlePing is the guest's side of the echo actor's call (the
// actorcall benchmark), from envelope to envelope. Built for wasip1 and run
// on wazero it shows the guest's own share of the in-process call.
func BenchmarkHandlePing(b *testing.B) {
	benchmarkPing(b)
	env := []byte(pingEnvelope)
	b.ReportAllocs()
	for b.Loop() {
		out := handle(env)
		if len(out) == 0 {
			b.Fatal("no response")
		}
	}
}

// BenchmarkHandlePingJSON is the same with encoding/json, as before
// codec.go, for comparison.
func BenchmarkHandlePingJSON(b *testing.B) {
	benchmarkPing(b)
	env := []byte(pingEnvelope)
	b.ReportAllocs()
	for b.Loop() {
		req, err := decodeRequestJSON(env)
		if err != nil {
			b.Fatal(err)
		}
		r := Serve(req)
		out, _ := json.Marshal(responseEnvelopeJSON{Status: r.Status, Headers: r.Header, Body: r.Body})
		if len(out) == 0 {
			b.Fatal("no response")
		}
	}
}

func TestPlainMakesExtendedJSONPlain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"at":{"$date":"2026-12-07T10:00:00Z"}}`, `{"at":"2026-12-07T10:00:00Z"}`},
		{`{"at":{"$date":"2026-12-07T11:00:00.120+01:00"}}`, `{"at":"2026-12-07T10:00:00.12Z"}`},
		{`{"at":{"$date":{"$numberLong":"-1000"}}}`, `{"at":"1969-12-31T23:59:59Z"}`},
		{`{"at":{"$date":{"$numberLong":"-99999999999999"}}}`, `{"at":{"$date":{"$numberLong":"-99999999999999"}}}`},
		{`{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"n":1}`, `{"_id":"65a1b2c3d4e5f60718293a4b","n":1}`},
		{`[{"$numberLong":"9007199254740993"},{"$numberInt":"7"},{"$numberDouble":"NaN"},{"$numberDouble":"-Infinity"},{"$numberDouble":"1.5e3"},{"$numberDecimal":"0.10"}]`,
			`[9007199254740993,7,null,null,1.5e3,0.10]`},
		{`{"b":{"$binary":{"base64":"aGk=","subType":"00"}},"s":{"$symbol":"x"},"u":{"$undefined":true}}`, `{"b":"aGk=","s":"x","u":null}`},
		// Not wrappers: copied as they are.
		{`{"q":{"$gt":5},"d":{"$date":"yesterday"},"two":{"$oid":"a","x":1},"l":{"$numberLong":"1.5"}}`,
			`{"q":{"$gt":5},"d":{"$date":"yesterday"},"two":{"$oid":"a","x":1},"l":{"$numberLong":"1.5"}}`},
		{` { "k\u00e9" : [ 1 , "a\"b" , true , null , { } , [ ] ] } `, `{"k\u00e9":[1,"a\"b",true,null,{},[]]}`},
		{`{"nested":[{"at":{"$date":"2026-01-02T03:04:05.006Z"}}]}`, `{"nested":[{"at":"2026-01-02T03:04:05.006Z"}]}`},
	} {
		if got := string(Document(tc.in).Plain()); got != tc.want {
			t.Errorf("Plain(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `{"$date":"2026-12-07T10:00:00Z"`, `[1,]`} {
		if got := string(Document(bad).Plain()); got != "null" {
			t.Errorf("Plain(%q) = %s, want null", bad, got)
		}
		if err := Document(bad).Decode(&struct{}{}); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func TestDecodeHandsOverNativeValues(t *testing.T) {
	docs := Documents{
		Document(`{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"at":{"$date":"2026-12-07T10:00:00.5Z"},"stamp":{"$date":{"$numberLong":"1700000000000"}},"n":{"$numberLong":"42"},"tags":["a"]}`),
		Document(`{"_id":{"$oid":"65a1b2c3d4e5f60718293a4c"},"at":{"$date":"2026-12-08T10:00:00Z"},"stamp":{"$date":"2026-12-08T10:00:00Z"},"n":7}`),
	}
	var got []struct {
		ID    ObjectID  `json:"_id"`
		At    time.Time `json:"at"`
		Stamp DateTime  `json:"stamp"`
		N     int64     `json:"n"`
	}
	if err := docs.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID.Hex() != "65a1b2c3d4e5f60718293a4b" || got[0].ID.String() != "65a1b2c3d4e5f60718293a4b" ||
		!got[0].At.Equal(time.Date(2026, 12, 7, 10, 0, 0, 5e8, time.UTC)) ||
		!got[0].Stamp.Time().Equal(time.UnixMilli(1700000000000)) || got[0].N != 42 || got[1].N != 7 {
		t.Fatalf("decoded %+v", got)
	}
	// Written back to the store they keep their types.
	back, err := json.Marshal(M{"_id": got[0].ID, "stamp": got[0].Stamp})
	if err != nil || string(back) != `{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"stamp":{"$date":"2023-11-14T22:13:20.000Z"}}` {
		t.Errorf("written back as %s %v", back, err)
	}
	var one map[string]any
	if err := docs[1].Decode(&one); err != nil || one["at"] != "2026-12-08T10:00:00Z" || one["_id"] != "65a1b2c3d4e5f60718293a4c" {
		t.Errorf("into a map: %v %v", one, err)
	}
	// A response built from the documents gives browsers plain values.
	var plain []map[string]any
	if err := json.Unmarshal(docs.Plain(), &plain); err != nil || plain[0]["at"] != "2026-12-07T10:00:00.5Z" || plain[0]["n"] != float64(42) {
		t.Errorf("plain %s: %v", docs.Plain(), err)
	}
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{`{"at":{"$date":"2026-12-07T10:00:00Z"}}`, `{"$oid":"x"}`, `[{"$numberDouble":"-Infinity"}]`,
		`{"$binary":{"base64":"aGk=","subType":"00"}}`, `{"$date":{"$numberLong":"1"}}`, `"\ud800"`, `{"a":[1,{"$gt":2}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := plainJSON(s)
		if valid := json.Valid([]byte(s)); valid != (err == nil) {
			t.Fatalf("%q: valid %v, plain error %v", s, valid, err)
		}
		if err == nil && !json.Valid(out) {
			t.Fatalf("%q: plain gave invalid JSON %q", s, out)
		}
	})
}

// An envelope cannot make the reader allocate more than a few times its
// size: escaped strings are sized by their own length, not by what
// follows them (a hostile page could send many such headers).
func TestDecodeRequestAllocatesInProportion(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"method":"POST","path":"/x","headers":{`)
	for i := range 300 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"X-H` + strings.Repeat("a", i%7) + `":["say \"hi\" \u00e9"]`)
	}
	b.WriteString(`},"body":"` + strings.Repeat("QUFB", 256<<10) + `","request_id":"r"}`)
	env := b.String()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, err := decodeRequestString(env)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Body) != 768<<10 || req.Header.Get("X-H") != `say "hi" é` {
		t.Fatalf("body %d bytes, header %q", len(req.Body), req.Header.Get("X-H"))
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*uint64(len(env)) {
		t.Errorf("reading a %d-byte envelope allocated %d bytes", len(env), got)
	}
}
