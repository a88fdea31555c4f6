package actorsdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// resetRoutes gives a test an empty router.
func resetRoutes(t *testing.T) {
	saved, savedFallback := routes, fallback
	routes, fallback = nil, nil
	t.Cleanup(func() { routes, fallback = saved, savedFallback })
}

// fakeHost replaces the host for a test: it records each call and answers
// with the envelope reply gives.
type fakeHost struct {
	ops  []string
	reqs []string
}

func useFakeHost(t *testing.T, reply func(op, req string) string) *fakeHost {
	f := &fakeHost{}
	saved := transport
	transport = func(op string, req []byte) ([]byte, error) {
		f.ops = append(f.ops, op)
		f.reqs = append(f.reqs, string(req))
		return []byte(reply(op, string(req))), nil
	}
	t.Cleanup(func() { transport = saved })
	return f
}

func text(r *Response) string { return string(r.Body) }

func TestRouter(t *testing.T) {
	resetRoutes(t)
	Route("GET", "/counts", func(*Request) *Response { return Text(200, "counts") })
	Route("GET", "/items/{id}", func(r *Request) *Response { return Text(200, "item "+r.PathValue("id")) })
	Route("GET", "/items/new", func(*Request) *Response { return Text(200, "new item") })
	Route("POST", "/items/{id}", func(r *Request) *Response { return Text(201, "made "+r.PathValue("id")) })
	Route("*", "/files/{path...}", func(r *Request) *Response { return Text(200, "file "+r.PathValue("path")) })
	Route("GET", "/", func(*Request) *Response { return Text(200, "root") })
	Route("GET", "/empty", func(*Request) *Response { return nil })

	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/counts", 200, "counts"},
		{"get", "/counts", 200, "counts"},
		{"GET", "/items/7", 200, "item 7"},
		{"GET", "/items/new", 200, "new item"}, // more literal segments win
		{"POST", "/items/9", 201, "made 9"},
		{"DELETE", "/files/a/b.txt", 200, "file a/b.txt"},
		{"GET", "/files", 200, "file "},
		{"GET", "/", 200, "root"},
		{"GET", "", 200, "root"},
		{"GET", "/items/", 404, ""},
		{"GET", "/nothing", 404, ""},
		{"PUT", "/counts", 405, ""},
		{"GET", "/empty", 204, ""},
	} {
		r := Serve(&Request{Method: tc.method, Path: tc.path})
		status := r.Status
		if r.Status == 0 {
			status = 200
		}
		if status != tc.status || (tc.body != "" && text(r) != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, status, text(r), tc.status, tc.body)
		}
	}
	r := Serve(&Request{Method: "PUT", Path: "/items/3"})
	if r.Header.Get("Allow") != "GET, POST" || !strings.Contains(text(r), `"code":"method_not_allowed"`) {
		t.Errorf("405: %v %s", r.Header, r.Body)
	}
	if r := Serve(&Request{Method: "GET", Path: "/nothing"}); !strings.Contains(text(r), `"code":"not_found"`) {
		t.Errorf("404: %s", r.Body)
	}

	Handle(func(*Request) *Response { return Text(200, "fallback") })
	if r := Serve(&Request{Method: "GET", Path: "/nothing"}); text(r) != "fallback" {
		t.Errorf("fallback: %s", r.Body)
	}
}

func TestRouteRefusesBadPatterns(t *testing.T) {
	resetRoutes(t)
	for _, p := range []string{"counts", "/a/{rest...}/b", "/a/{}", "/a/{x}/{x}", "/a/b{x}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pattern %q accepted", p)
				}
			}()
			Route("GET", p, func(*Request) *Response { return nil })
		}()
	}
}

func TestEnvelopes(t *testing.T) {
	resetRoutes(t)
	Route("POST", "/echo", func(r *Request) *Response {
		var in map[string]any
		if err := r.DecodeJSON(&in); err != nil {
			return Error(400, CodeInvalidJSON, err.Error())
		}
		return JSON(200, map[string]any{
			"in": in, "q": r.Query["q"], "bad": r.Query.Get("ok"), "ct": r.Header.Get("content-type"),
			"who": r.Caller.Email, "admin": r.Caller.HasRole("admin"), "id": r.RequestID,
		}).WithHeader("x-trace", "1")
	})
	env := `{"method":"post","path":"/echo","query":"q=a%20b&q=c&ok=1&bad=%zz","headers":{"content-type":["application/json"]},` +
		`"body":"eyJ4IjoxfQ==","caller":{"email":"ada@example.com","roles":["admin"],"anonymous":false},"request_id":"r1","future":1}`
	out := handle([]byte(env))
	var res struct {
		Status  int                 `json:"status"`
		Headers map[string][]string `json:"headers"`
		Body    []byte              `json:"body"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	want := `{"admin":true,"bad":"1","ct":"application/json","id":"r1","in":{"x":1},"q":["a b","c"],"who":"ada@example.com"}`
	if res.Status != 200 || string(res.Body) != want || res.Headers["X-Trace"][0] != "1" || res.Headers["Content-Type"][0] != "application/json" {
		t.Errorf("response %s (body %s)", out, res.Body)
	}

	// Errors carry the request's ID while it is served, and only then.
	Route("GET", "/fail", func(*Request) *Response { return Error(418, "teapot", "short and stout") })
	out = handle([]byte(`{"method":"GET","path":"/fail","request_id":"r2"}`))
	if !strings.Contains(string(out), `"status":418`) || !strings.Contains(mustBody(t, out), `"request_id":"r2"`) {
		t.Errorf("error response %s", out)
	}
	if currentRequestID != "" {
		t.Errorf("request ID kept after the request: %q", currentRequestID)
	}

	if out := handle([]byte(`not json`)); !strings.Contains(string(out), `"status":500`) {
		t.Errorf("malformed envelope: %s", out)
	}
}

func mustBody(t *testing.T, env []byte) string {
	t.Helper()
	var r struct {
		Body []byte `json:"body"`
	}
	if err := json.Unmarshal(env, &r); err != nil {
		t.Fatal(err)
	}
	return string(r.Body)
}

func TestEncodeResponseMendsWhatTheHostWouldRefuse(t *testing.T) {
	for _, tc := range []struct {
		r    *Response
		want string
	}{
		{nil, `{"status":204}`},
		{&Response{}, `{"status":200}`},
		{&Response{Status: 201, Body: []byte("hi")}, `{"status":201,"body":"aGk="}`},
		{&Response{Status: 200, Header: Header{"Empty": nil, "Bad Name": {"x"}, "Ok": {"1"}}}, `{"status":200,"headers":{"Ok":["1"]}}`},
	} {
		if got := string(encodeResponse(tc.r)); got != tc.want {
			t.Errorf("encode %+v = %s, want %s", tc.r, got, tc.want)
		}
	}
	if got := string(encodeResponse(&Response{Status: 99})); !strings.HasPrefix(got, `{"status":500,`) {
		t.Errorf("status 99 gave %s", got)
	}
}

func TestHostOperationsSendTheDocumentedRequests(t *testing.T) {
	replies := map[string]string{
		"db.find":      `{"ok":{"documents":[{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"n":1},{"n":2}]}}`,
		"db.find_one":  `{"ok":{"document":null}}`,
		"db.count":     `{"ok":{"count":7}}`,
		"db.aggregate": `{"ok":{"documents":[]}}`,
		"db.insert":    `{"ok":{"inserted_ids":[{"$oid":"65a1b2c3d4e5f60718293a4b"}]}}`,
		"db.update":    `{"ok":{"matched":1,"modified":0,"upserted_id":{"$oid":"65a1b2c3d4e5f60718293a4c"}}}`,
		"db.delete":    `{"ok":{"deleted":3}}`,
		"kv.get":       `{"ok":{"value":"aGk=","revision":4}}`,
		"kv.put":       `{"ok":{"revision":5}}`,
		"kv.delete":    `{"ok":{}}`,
		"config":       `{"ok":{"buttons":["red"]}}`,
	}
	f := useFakeHost(t, func(op, _ string) string { return replies[op] })

	docs, err := DB("clicks").Find(M{"b": "red"}, Sort(D{{"at", -1}, {"b", 1}}), Limit(5), Skip(2), Projection(M{"_id": 0}))
	var got []struct {
		ID ObjectID `json:"_id"`
		N  int      `json:"n"`
	}
	if err != nil || docs.Decode(&got) != nil || len(got) != 2 || got[0].ID != "65a1b2c3d4e5f60718293a4b" || got[1].N != 2 {
		t.Errorf("find: %v %+v", err, got)
	}
	if _, err := DBFrom("other", "clicks").FindOne(nil, Limit(3)); !errors.Is(err, ErrNoDocuments) {
		t.Errorf("find_one: %v", err)
	}
	if n, err := DB("clicks").Count(nil); n != 7 || err != nil {
		t.Errorf("count: %d %v", n, err)
	}
	if _, err := DBFrom("other", "clicks").Aggregate(A{M{"$count": "n"}}); err != nil {
		t.Errorf("aggregate: %v", err)
	}
	if id, err := DB("clicks").InsertOne(M{"b": "red"}); err != nil || string(id) != `{"$oid":"65a1b2c3d4e5f60718293a4b"}` {
		t.Errorf("insert: %s %v", id, err)
	}
	if res, err := DB("clicks").UpdateMany(M{"b": "red"}, M{"$inc": M{"n": 1}}, Upsert()); err != nil || res.Matched != 1 || res.UpsertedID == nil {
		t.Errorf("update: %+v %v", res, err)
	}
	if n, err := DB("clicks").DeleteOne(nil); n != 3 || err != nil {
		t.Errorf("delete: %d %v", n, err)
	}
	if v, rev, err := KV().Get("last"); string(v) != "hi" || rev != 4 || err != nil {
		t.Errorf("kv.get: %q %d %v", v, rev, err)
	}
	if rev, err := KV().Put("last", []byte("hi")); rev != 5 || err != nil {
		t.Errorf("kv.put: %d %v", rev, err)
	}
	if err := KV().Delete("last"); err != nil {
		t.Errorf("kv.delete: %v", err)
	}
	if c := Config(); len(c) != 1 {
		t.Errorf("config: %v", c)
	}

	want := []string{
		`db.find {"collection":"clicks","filter":{"b":"red"},"sort":{"at":-1,"b":1},"projection":{"_id":0},"limit":5,"skip":2}`,
		`db.find_one {"collection":"clicks","slug":"other"}`,
		`db.count {"collection":"clicks"}`,
		`db.aggregate {"collection":"clicks","slug":"other","pipeline":[{"$count":"n"}]}`,
		`db.insert {"collection":"clicks","documents":[{"b":"red"}]}`,
		`db.update {"collection":"clicks","filter":{"b":"red"},"update":{"$inc":{"n":1}},"many":true,"upsert":true}`,
		`db.delete {"collection":"clicks","filter":{}}`,
		`kv.get {"key":"last"}`,
		`kv.put {"key":"last","value":"aGk="}`,
		`kv.delete {"key":"last"}`,
		`config {}`,
	}
	for i, w := range want {
		if i >= len(f.ops) || f.ops[i]+" "+f.reqs[i] != w {
			t.Errorf("call %d: got %v, want %s", i, at(f, i), w)
		}
	}
}

func at(f *fakeHost, i int) string {
	if i >= len(f.ops) {
		return "nothing"
	}
	return f.ops[i] + " " + f.reqs[i]
}

func TestHostErrors(t *testing.T) {
	useFakeHost(t, func(op, _ string) string {
		if op == "db.count" {
			return `{"error":{"code":"scope_forbidden","message":"\"x\" is not in the data scope","field":"/slug"}}`
		}
		return `{"neither":1}`
	})
	_, err := DBFrom("x", "clicks").Count(nil)
	var he *HostError
	if !errors.As(err, &he) || he.Op != "db.count" || he.Code != CodeScopeForbidden || he.Field != "/slug" || !IsCode(err, CodeScopeForbidden) {
		t.Fatalf("error %#v", err)
	}
	r := Fail(err)
	if r.Status != 403 || !strings.Contains(text(r), `"field":"/slug"`) {
		t.Errorf("Fail: %d %s", r.Status, r.Body)
	}
	if err := Call("kv.delete", M{"key": "k"}, nil); err == nil || IsCode(err, CodeInternal) {
		t.Errorf("an envelope without ok or error: %v", err)
	}
	if r := Fail(errors.New("secret detail")); r.Status != 500 || strings.Contains(text(r), "secret") {
		t.Errorf("Fail of a plain error: %d %s", r.Status, r.Body)
	}
	if r := Fail(ErrNoDocuments); r.Status != 404 {
		t.Errorf("Fail(ErrNoDocuments): %d", r.Status)
	}
	if StatusOf("no_such_code") != 500 || StatusOf(CodeStoreUnsupported) != 501 {
		t.Error("StatusOf")
	}
}

func TestOutsideWasmHostOperationsFail(t *testing.T) {
	if _, err := DB("clicks").Count(nil); !errors.Is(err, ErrNotWasm) {
		t.Errorf("Count: %v", err)
	}
}

func TestInit(t *testing.T) {
	saved, savedHooks := started, initHooks
	t.Cleanup(func() { started, initHooks = saved, savedHooks })
	useFakeHost(t, func(string, string) string { return `{"error":{"code":"internal","message":"no"}}` })

	initHooks = nil
	var seen Init
	OnInit(func(in Init) error { seen = in; return nil })
	if out := start([]byte(`{"slug":"clicks","version":3,"config":null}`)); out != nil {
		t.Fatalf("start: %s", out)
	}
	if Slug() != "clicks" || Version() != 3 || string(seen.Config) != "{}" || len(Config()) != 0 {
		t.Errorf("init: %s %d %+v", Slug(), Version(), seen)
	}
	start([]byte(`{"slug":"clicks","version":4,"config":{"a":[1,2]}}`))
	var c struct{ A []int }
	if err := DecodeConfig(&c); err != nil || len(c.A) != 2 {
		t.Errorf("DecodeConfig: %+v %v", c, err)
	}

	OnInit(func(Init) error { return errors.New("config lacks buttons") })
	if out := string(start([]byte(`{"slug":"clicks","version":1,"config":{}}`))); out != `{"error":{"code":"unavailable","message":"config lacks buttons"}}` {
		t.Errorf("refusal: %s", out)
	}
	initHooks = nil
	OnInit(func(Init) error { return &HostError{Code: CodeValidationFailed, Message: "bad"} })
	if out := string(start([]byte(`{"slug":"clicks","version":1,"config":{}}`))); !strings.Contains(out, `"code":"validation_failed"`) {
		t.Errorf("refusal with a code: %s", out)
	}
}

func TestTypes(t *testing.T) {
	b, _ := json.Marshal(D{{"z", 1}, {"a", D{{"y", true}}}, {"m", nil}})
	if string(b) != `{"z":1,"a":{"y":true},"m":null}` {
		t.Errorf("D: %s", b)
	}
	b, _ = json.Marshal(ObjectID("65a1b2c3d4e5f60718293a4b"))
	if string(b) != `{"$oid":"65a1b2c3d4e5f60718293a4b"}` {
		t.Errorf("ObjectID: %s", b)
	}
	var id ObjectID
	if err := json.Unmarshal([]byte(`"abc"`), &id); err != nil || id != "abc" {
		t.Errorf("ObjectID from a string: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"x":1}`), &id); err == nil {
		t.Error("ObjectID from a document")
	}

	at := DateTime(time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC))
	b, _ = json.Marshal(at)
	if string(b) != `{"$date":"2025-01-02T03:04:05.006Z"}` {
		t.Errorf("DateTime: %s", b)
	}
	for _, in := range []string{string(b), `{"$date":{"$numberLong":"1735787045006"}}`} {
		var d DateTime
		if err := json.Unmarshal([]byte(in), &d); err != nil || !d.Time().Equal(at.Time()) {
			t.Errorf("DateTime from %s: %v %v", in, d.Time(), err)
		}
	}
	var d DateTime
	if err := json.Unmarshal([]byte(`"2025-01-02"`), &d); err == nil {
		t.Error("DateTime from a string")
	}
	if n := Now().Time(); time.Since(n) > time.Minute || n.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("Now: %v", n)
	}
}

func TestHeader(t *testing.T) {
	for in, want := range map[string]string{
		"content-type": "Content-Type", "X-CUSTOM-header": "X-Custom-Header", "te": "Te", "bad name": "bad name",
	} {
		if got := CanonicalHeaderKey(in); got != want {
			t.Errorf("CanonicalHeaderKey(%q) = %q, want %q", in, got, want)
		}
	}
	h := Header{}
	h.Add("x-a", "1")
	h.Add("X-A", "2")
	h.Set("x-b", "3")
	h.Del("X-B")
	if h.Get("x-a") != "1" || len(h.Values("X-a")) != 2 || h.Get("x-b") != "" {
		t.Errorf("header %v", h)
	}
}

func TestLog(t *testing.T) {
	type line struct {
		level int32
		msg   string
	}
	var lines []line
	saved := logOut
	logOut = func(level int32, msg string) { lines = append(lines, line{level, msg}) }
	t.Cleanup(func() { logOut = saved })

	Log.Debug("d")
	Log.Info("clicked", "button", "red", "note", "two words")
	Log.With("exp", "clicks").WithGroup("req").Warn("slow", "ms", 12)
	Log.Error("failed", "err", `a "quoted" thing`)
	want := []line{
		{0, "d"},
		{1, `clicked button=red note="two words"`},
		{2, `slow exp=clicks req.ms=12`},
		{3, `failed err="a \"quoted\" thing"`},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %+v", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}

// The caller's kind and ID arrive; cookies are read from the Cookie header
// and set with the attributes the platform expects, the opt-out of
// HttpOnly named in its header.
func TestCallerAndCookies(t *testing.T) {
	resetRoutes(t)
	Route("GET", "/jar", func(r *Request) *Response {
		theme, ok := r.Cookie("theme")
		_, missing := r.Cookie("absent")
		quoted, _ := r.Cookie("q")
		return JSON(200, M{"kind": r.Caller.Kind, "id": r.Caller.ID, "theme": theme, "ok": ok, "missing": missing, "q": quoted}).
			SetCookie(Cookie{Name: "seen", Value: "1", MaxAge: 3600}).
			SetCookie(Cookie{Name: "pref", Value: "dark", Path: "/experiments/x/", SameSite: "Strict", Script: true}).
			SetCookie(Cookie{Name: "old", MaxAge: -1, Secure: true})
	})
	out := handle([]byte(`{"method":"GET","path":"/jar","headers":{"Cookie":["a=1; theme=light;q=\"v w\""]},` +
		`"caller":{"kind":"participant","id":"p-123","email":"","roles":[],"anonymous":true},"request_id":"r"}`))
	var res struct {
		Headers map[string][]string `json:"headers"`
		Body    []byte              `json:"body"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"p-123","kind":"participant","missing":false,"ok":true,"q":"v w","theme":"light"}`; string(res.Body) != want {
		t.Errorf("body %s, want %s", res.Body, want)
	}
	want := []string{
		"seen=1; Path=/; Max-Age=3600; HttpOnly",
		"pref=dark; Path=/experiments/x/; SameSite=Strict",
		"old=; Path=/; Max-Age=0; Secure; HttpOnly",
	}
	if got := res.Headers["Set-Cookie"]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Set-Cookie %q, want %q", got, want)
	}
	if got := res.Headers[HeaderScriptCookies]; len(got) != 1 || got[0] != "pref" {
		t.Errorf("%s: %q", HeaderScriptCookies, got)
	}
}
