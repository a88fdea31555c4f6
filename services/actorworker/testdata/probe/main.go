// Command probe is a test actor written against the raw ABI of
// libs/actorhost (no SDK): each path exercises one part of the platform.
//
//	GET  /echo, /         the request envelope as the actor received it
//	POST /count           an in-memory counter (lives as long as the instance)
//	GET  /whoami          a random ID drawn once per instance, kept in memory
//	GET  /init            the init envelope
//	POST /kv/put?key=K    kv.put of the body (JSON) under K
//	GET  /kv/get?key=K    kv.get of K
//	POST /db/insert       db.insert of the body (a JSON document) into "notes"
//	GET  /db/find         db.find of every note
//	POST /db/other?slug=S db.insert into S's "notes" (refused)
//	GET  /db/from?slug=S  db.find of S's notes (allowed when S is in data_scope)
//	GET  /malformed       answers with a response envelope the host refuses
//	GET  /headers         answers with headers the platform must drop, and one it keeps
//	GET  /config          the config host operation
//	GET  /log             writes a log line through the host
//	GET  /sleep?ms=N      waits N milliseconds
//	GET  /loop            never returns
//	GET  /panic           panics (the instance exits)
//	GET  /oom             allocates until memory runs out
//	GET  /print?mb=N&line=M  floods stdout with N MiB of short lines, then
//	                      writes one line of M MiB to stderr
//
// With "refuse_init" in the actor's config, gnome_init refuses to start
// with that message; with "sleep_init" (milliseconds), it sleeps that long
// first.
//
// A host error comes back as the response's status (4xx for the data
// scope's refusals) with the error envelope as the body.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o probe.wasm
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport gnome log
func hostLog(level, ptr, n uint32)

//go:wasmimport gnome call
func hostCall(opPtr, opLen, reqPtr, reqLen, outPtr, outCap uint32) int64

//go:wasmimport gnome take
func hostTake(outPtr, outCap uint32) int64

var (
	in      []byte // the buffer the host writes the next envelope into
	out     []byte // the last response, kept until the next call
	n       int
	initEnv []byte
	hold    [][]byte
	whoami  string
)

func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport gnome_alloc
func gnomeAlloc(size uint32) uint32 {
	in = make([]byte, size)
	if size == 0 {
		return 0
	}
	return ptr(in)
}

//go:wasmexport gnome_init
func gnomeInit(p, l uint32) uint64 {
	initEnv = append([]byte(nil), in[:l]...)
	var env struct {
		Config map[string]any `json:"config"`
	}
	_ = json.Unmarshal(initEnv, &env)
	if ms, ok := env.Config["sleep_init"].(float64); ok {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if msg, ok := env.Config["refuse_init"].(string); ok {
		out, _ = json.Marshal(map[string]any{"error": map[string]string{"code": "validation_failed", "message": msg}})
		return uint64(ptr(out))<<32 | uint64(len(out))
	}
	return 0
}

//go:wasmexport gnome_handle
func gnomeHandle(p, l uint32) uint64 {
	var req request
	if err := json.Unmarshal(in[:l], &req); err != nil {
		return respond(400, map[string]any{"error": err.Error()})
	}
	return route(&req)
}

type request struct {
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Query     json.RawMessage     `json:"query"`
	Headers   map[string][]string `json:"headers"`
	Body      []byte              `json:"body"`
	Caller    json.RawMessage     `json:"caller"`
	RequestID string              `json:"request_id"`
}

// param reads a query parameter whether the envelope gives the query as a
// string or as an object of lists.
func (r *request) param(name string) string {
	var s string
	if json.Unmarshal(r.Query, &s) == nil {
		v, _ := url.ParseQuery(strings.TrimPrefix(s, "?"))
		return v.Get(name)
	}
	var m map[string][]string
	if json.Unmarshal(r.Query, &m) == nil && len(m[name]) > 0 {
		return m[name][0]
	}
	return ""
}

func route(r *request) uint64 {
	switch strings.TrimSuffix(r.Path, "/") {
	case "/echo", "":
		var e map[string]any
		raw, _ := json.Marshal(r)
		_ = json.Unmarshal(raw, &e)
		e["body"] = string(r.Body)
		return respond(200, e)
	case "/count":
		n++
		return respond(200, map[string]int{"n": n})
	case "/whoami":
		if whoami == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			whoami = hex.EncodeToString(b[:])
		}
		return respond(200, map[string]string{"id": whoami})
	case "/init":
		return respondRaw(200, initEnv)
	case "/kv/put":
		return forward("kv.put", map[string]any{"key": r.param("key"), "value": json.RawMessage(r.Body)})
	case "/kv/get":
		return forward("kv.get", map[string]any{"key": r.param("key")})
	case "/db/insert":
		return forward("db.insert", map[string]any{"collection": "notes", "documents": []json.RawMessage{r.Body}})
	case "/db/find":
		return forward("db.find", map[string]any{"collection": "notes", "filter": map[string]any{}, "sort": map[string]int{"n": 1}})
	case "/db/other":
		return forward("db.insert", map[string]any{"collection": "notes", "slug": r.param("slug"), "documents": []json.RawMessage{r.Body}})
	case "/db/from":
		return forward("db.find", map[string]any{"collection": "notes", "slug": r.param("slug")})
	case "/malformed":
		out = []byte(`{"status": 700, "body": "not base64!"}`)
		return uint64(ptr(out))<<32 | uint64(len(out))
	case "/headers":
		out, _ = json.Marshal(map[string]any{
			"status": 203,
			"headers": map[string][]string{
				"Set-Cookie": {"gnome_session=stolen; Path=/", "wide=1; Domain=localhost"}, "X-Request-Id": {"forged"}, "Strict-Transport-Security": {"max-age=1"},
				"Connection": {"close"}, "Content-Length": {"999"}, "X-Custom": {"one", "two"}, "Content-Type": {"text/plain"},
			},
			"body": []byte("headers"),
		})
		return uint64(ptr(out))<<32 | uint64(len(out))
	case "/config":
		return forward("config", map[string]any{})
	case "/log":
		msg := "hello from the probe"
		hostLog(1, uint32(uintptr(unsafe.Pointer(unsafe.StringData(msg)))), uint32(len(msg)))
		return respond(200, map[string]bool{"logged": true})
	case "/sleep":
		ms, _ := strconv.Atoi(r.param("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return respond(200, map[string]int{"slept": ms})
	case "/loop":
		for {
			n++
		}
	case "/panic":
		panic("the probe was asked to panic")
	case "/oom":
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // every page, so that the host really provides it
			}
			hold = append(hold, b)
		}
	case "/print":
		mb, _ := strconv.Atoi(r.param("mb"))
		lineMB, _ := strconv.Atoi(r.param("line"))
		line := []byte(strings.Repeat("x", 99) + "\n")
		for range mb << 20 / len(line) {
			_, _ = os.Stdout.Write(line)
		}
		_, _ = os.Stderr.Write(append(bytes.Repeat([]byte("y"), lineMB<<20), '\n'))
		return respond(200, map[string]bool{"printed": true})
	}
	return respond(404, map[string]string{"error": "no route " + r.Path})
}

// forward runs a host operation and answers with its result: 200 and the
// "ok" value, or the error envelope with a status for its code.
func forward(op string, req any) uint64 {
	raw, _ := json.Marshal(req)
	res := call(op, raw)
	var env struct {
		OK    json.RawMessage `json:"ok"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res, &env); err != nil {
		return respond(500, map[string]string{"error": "host result is not JSON: " + err.Error()})
	}
	if env.Error != nil {
		status := 400
		switch {
		case strings.HasPrefix(env.Error.Code, "scope_forbidden"), env.Error.Code == "forbidden":
			status = 403
		case env.Error.Code == "not_found":
			status = 404
		case env.Error.Code == "unavailable":
			status = 503
		case env.Error.Code == "timeout":
			status = 504
		}
		return respondRaw(status, res)
	}
	return respondRaw(200, env.OK)
}

func call(op string, req []byte) []byte {
	buf := make([]byte, 4096)
	opb := []byte(op)
	got := hostCall(ptr(opb), uint32(len(opb)), ptr(req), uint32(len(req)), ptr(buf), uint32(len(buf)))
	if got < 0 {
		buf = make([]byte, -got)
		got = hostTake(ptr(buf), uint32(len(buf)))
		if got < 0 {
			return []byte(`{"error":{"code":"internal","message":"take failed"}}`)
		}
	}
	return buf[:got]
}

func respond(status int, v any) uint64 {
	raw, _ := json.Marshal(v)
	return respondRaw(status, raw)
}

func respondRaw(status int, body []byte) uint64 {
	out, _ = json.Marshal(map[string]any{
		"status":  status,
		"headers": map[string][]string{"Content-Type": {"application/json"}, "X-Probe": {"yes"}},
		"body":    body,
	})
	return uint64(ptr(out))<<32 | uint64(len(out))
}

func main() {}
