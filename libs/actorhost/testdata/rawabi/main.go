// Command rawabi speaks the actor ABI directly, without the SDK, exactly as
// docs/actors.md describes it, so that the host's side of the ABI is tested
// on its own: buffers, take, limits, and the ways a guest can get it wrong.
package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"unsafe"
)

//go:wasmimport gnome log
func hostLog(level, ptr, n uint32)

//go:wasmimport gnome call
func hostCall(opPtr, opLen, reqPtr, reqLen, outPtr, outCap uint32) int64

//go:wasmimport gnome take
func hostTake(outPtr, outCap uint32) int64

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

var (
	inbox   []byte // the last gnome_alloc buffer
	outbox  []byte // the last envelope returned
	initEnv []byte // the init envelope as received
)

//go:wasmexport gnome_alloc
func alloc(size uint32) uint32 {
	inbox = make([]byte, size+1)
	return addr(inbox)
}

//go:wasmexport gnome_init
func initialise(ptr, n uint32) uint64 {
	initEnv = append([]byte(nil), inbox[:n]...)
	var env struct {
		Config struct {
			Refuse string `json:"refuse"`
		} `json:"config"`
	}
	_ = json.Unmarshal(initEnv, &env)
	if env.Config.Refuse != "" {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "validation_failed", "message": env.Config.Refuse}})
		return out(b)
	}
	return 0
}

func out(b []byte) uint64 {
	outbox = b
	return uint64(addr(b))<<32 | uint64(len(b))
}

func respond(status int, body []byte) uint64 {
	b, _ := json.Marshal(map[string]any{"status": status, "body": body})
	return out(b)
}

func call(op string, req []byte, outCap int) (int64, []byte) {
	o := []byte(op)
	buf := make([]byte, max(outCap, 1))
	n := hostCall(addr(o), uint32(len(o)), addr(req), uint32(len(req)), addr(buf), uint32(outCap))
	runtime.KeepAlive(o)
	runtime.KeepAlive(req)
	if n < 0 {
		return n, nil
	}
	return n, buf[:n]
}

func take(capacity int) (int64, []byte) {
	buf := make([]byte, max(capacity, 1))
	n := hostTake(addr(buf), uint32(capacity))
	if n < 0 {
		return n, nil
	}
	return n, buf[:n]
}

//go:wasmexport gnome_handle
func handle(ptr, n uint32) uint64 {
	var req struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(inbox[:n], &req); err != nil || ptr != addr(inbox) {
		return respond(500, []byte("the request is not where gnome_alloc put it"))
	}
	switch req.Path {
	case "/init":
		return respond(200, initEnv)
	case "/request":
		return respond(200, append([]byte(nil), inbox[:n]...))
	case "/take":
		return takeSemantics()
	case "/calls":
		return badCalls()
	case "/log":
		msg := []byte(strings.Repeat("x", 20<<10))
		hostLog(2, addr(msg), uint32(len(msg)))
		runtime.KeepAlive(msg)
		return respond(200, []byte("logged"))
	case "/outside":
		return 0xFFFF_FF00<<32 | 64
	case "/zero":
		return 0
	}
	return respond(404, nil)
}

// takeSemantics reports what call and take return around a result larger
// than the guest's buffer.
func takeSemantics() uint64 {
	r := map[string]any{}
	req := []byte("{}")
	n, _ := call("config", req, 4)
	r["call_small"] = n
	r["take_short"], _ = take(int(-n) - 1)
	t, got := take(int(-n))
	r["take_exact"] = t
	r["taken"] = string(got)
	r["take_again"], _ = take(int(-n))
	// A result left waiting is dropped by the next call.
	n2, _ := call("config", req, 4)
	r["call_small_2"] = n2
	n3, fit := call("config", req, 1<<16)
	r["call_fits"] = n3
	r["fitted"] = string(fit)
	r["take_after_fit"], _ = take(1 << 16)
	b, _ := json.Marshal(r)
	return respond(200, b)
}

// badCalls reports the envelopes of host calls the host must refuse.
func badCalls() uint64 {
	r := map[string]string{}
	_, b := call("no.such.op", []byte("{}"), 1<<16)
	r["unknown op"] = string(b)
	_, b = call(strings.Repeat("x", 65), []byte("{}"), 1<<16)
	r["long op"] = string(b)
	_, b = call("config", make([]byte, 1<<20+1), 1<<16)
	r["large request"] = string(b)
	buf := make([]byte, 1<<16)
	n := hostCall(0xFFFF_FF00, 8, 0, 0, addr(buf), uint32(len(buf)))
	if n >= 0 {
		r["op outside memory"] = string(buf[:n])
	}
	_, b = call("config", []byte("{not json"), 1<<16)
	r["malformed request"] = string(b)
	out, _ := json.Marshal(r)
	return respond(200, out)
}

func main() {}
