//go:build wasip1

package actorsdk

import (
	"errors"
	"sync"
	"unsafe"
)

// The host's imports (docs/actors.md, section 2).

//go:wasmimport gnome log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport gnome call
func hostCall(opPtr unsafe.Pointer, opLen uint32, reqPtr unsafe.Pointer, reqLen uint32, outPtr unsafe.Pointer, outCap uint32) int64

//go:wasmimport gnome take
func hostTake(outPtr unsafe.Pointer, outCap uint32) int64

// Memory the host reads or writes lives in Go slices that package variables
// keep reachable for as long as the ABI says it must stay valid; Go's
// garbage collector does not move heap objects, so reachable is enough.
var (
	// inbox holds the buffers gnome_alloc handed out whose envelope has not
	// been handled yet.
	inbox [][]byte
	// outbox is the last response or init error envelope, valid until the
	// next one replaces it.
	outbox []byte
)

//go:wasmexport gnome_alloc
func gnomeAlloc(size uint32) uint32 {
	b := make([]byte, size, max(size, 1))
	inbox = append(inbox, b)
	return address(b)
}

//go:wasmexport gnome_init
func gnomeInit(ptr, n uint32) uint64 {
	env, ok := received(ptr, n)
	if !ok {
		return keep(errorEnvelope(CodeBadRequest, "the init envelope is not in a gnome_alloc buffer"))
	}
	if out := start(env); out != nil {
		return keep(out)
	}
	return 0
}

//go:wasmexport gnome_handle
func gnomeHandle(ptr, n uint32) uint64 {
	env, ok := received(ptr, n)
	if !ok {
		return keep(encodeResponse(Error(500, CodeInternal, "the request envelope is not in a gnome_alloc buffer")))
	}
	return keep(handle(env))
}

//go:wasmexport gnome_event
func gnomeEvent(ptr, n uint32) uint64 {
	env, ok := received(ptr, n)
	if !ok {
		return keep(errorEnvelope(CodeBadRequest, "the event envelope is not in a gnome_alloc buffer"))
	}
	return keep(event(env))
}

// received finds the envelope the host wrote at ptr in a gnome_alloc buffer
// and lets go of the buffers handed out so far: the ABI keeps them valid
// only until this call returns, and the envelope is decoded before that.
func received(ptr, n uint32) ([]byte, bool) {
	defer func() {
		clear(inbox)
		inbox = inbox[:0]
	}()
	for i := len(inbox) - 1; i >= 0; i-- {
		b := inbox[i]
		if address(b) == ptr && n <= uint32(cap(b)) {
			inbox[i] = nil
			return b[:n], true
		}
	}
	return nil, false
}

// keep makes out the envelope the host reads after the export returns and
// returns its location.
func keep(out []byte) uint64 {
	outbox = out
	if len(out) == 0 {
		return 0
	}
	return uint64(address(out))<<32 | uint64(len(out))
}

func address(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

var (
	callMu sync.Mutex
	// callBuf takes results up to its size; larger ones come through take.
	callBuf = make([]byte, 64<<10)
)

// maxTake bounds what the SDK accepts through take: the host's result
// limit, 4 MiB, and its envelope.
const maxTake = 8 << 20

func hostTransport(op string, req []byte) ([]byte, error) {
	callMu.Lock()
	defer callMu.Unlock()
	n := hostCall(unsafe.Pointer(unsafe.StringData(op)), uint32(len(op)),
		unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)),
		unsafe.Pointer(unsafe.SliceData(callBuf)), uint32(len(callBuf)))
	if n >= 0 {
		return append([]byte(nil), callBuf[:n]...), nil
	}
	size := -n
	if size > maxTake {
		return nil, errors.New(op + ": the host's result is too large to take")
	}
	out := make([]byte, size)
	m := hostTake(unsafe.Pointer(unsafe.SliceData(out)), uint32(size))
	if m < 0 || m > size {
		return nil, errors.New(op + ": the host's result could not be taken")
	}
	return out[:m], nil
}

func logSink(level int32, msg string) {
	hostLog(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
