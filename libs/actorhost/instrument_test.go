package actorhost

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/gnome-platform/gnome/libs/actorhost/hostilewasm"
)

// A small assembler of test modules.

func leb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func wasmVec(items ...[]byte) []byte {
	out := leb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func wasmName(s string) []byte { return append(leb(uint64(len(s))), s...) }

func wasmSection(id byte, body []byte) []byte {
	return append(append([]byte{id}, leb(uint64(len(body)))...), body...)
}

func asmModule(sections ...[]byte) []byte {
	return bytes.Join(append([][]byte{[]byte("\x00asm\x01\x00\x00\x00")}, sections...), nil)
}

// wasmFunc is a function body: its locals (count, type pairs) and code,
// which must end with end (0x0b).
func wasmFunc(locals [][2]byte, code ...byte) []byte {
	body := leb(uint64(len(locals)))
	for _, l := range locals {
		body = append(body, l[0], l[1])
	}
	body = append(body, code...)
	return append(leb(uint64(len(body))), body...)
}

// Where a hand-made actor (loopActor) spins.
const (
	spinNowhere = iota
	spinHandle
	spinInitialize
	spinInit
	spinEvent
	spinNested   // in gnome_handle, a loop in blocks, an if and a br_table
	spinHostCall // in gnome_handle, a loop calling gnome.log
	spinTree     // in gnome_handle, a recursion tree without a loop: 2^60 calls
)

// loopActor is an actor that answers {"status":200} but spins forever in
// the export spin names: an actor no SDK made, reaching every entry the
// platform calls.
func loopActor(spin int) []byte {
	types := wasmVec(
		[]byte{0x60, 3, 0x7f, 0x7f, 0x7f, 0}, // 0: log
		[]byte{0x60, 1, 0x7f, 1, 0x7f},       // 1: gnome_alloc
		[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7e}, // 2: gnome_handle, gnome_init, gnome_event
		[]byte{0x60, 0, 0},                   // 3: _initialize
		[]byte{0x60, 0, 1, 0x7f},             // 4: sched_yield
		[]byte{0x60, 1, 0x7f, 0},             // 5: tree
	)
	imports := wasmVec(append(append(wasmName(HostModule), wasmName("log")...), 0, 0), yieldImport(4))
	funcs := wasmVec([]byte{1}, []byte{2}, []byte{2}, []byte{2}, []byte{3}, []byte{5}) // 2 alloc, 3 handle, 4 init, 5 event, 6 _initialize, 7 tree
	memory := wasmVec([]byte{0, 1})
	exports := wasmVec(
		append(wasmName("memory"), 2, 0),
		append(wasmName("gnome_alloc"), 0, 2),
		append(wasmName("gnome_handle"), 0, 3),
		append(wasmName("gnome_init"), 0, 4),
		append(wasmName("gnome_event"), 0, 5),
		append(wasmName("_initialize"), 0, 6),
	)
	response := `{"status":200}`
	answer := appendSLEB([]byte{0x42}, 2048<<32|int64(len(response))) // i64.const
	spinCode := []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}                  // loop br 0 end
	body := func(which int, result []byte) []byte {
		var code []byte
		switch {
		case which == spin:
			code = append(code, spinCode...)
		case which == spinHandle && spin == spinNested:
			code = append(code,
				0x02, 0x40, // block
				0x03, 0x40, // loop
				0x41, 0x00, 0x04, 0x40, 0x0c, 0x02, 0x0b, // i32.const 0 if br 2 end: never leaves
				0x02, 0x40, // block
				0x41, 0x00, 0x0e, 0x01, 0x01, 0x00, // i32.const 0 br_table [1] 0: back to the loop
				0x0b,       // end
				0x0c, 0x00, // br 0
				0x0b, 0x0b, // end end
			)
		case which == spinHandle && spin == spinTree:
			code = append(code, 0x41, 60, 0x10, 0x07) // tree(60)
		case which == spinHandle && spin == spinHostCall:
			code = append(code,
				0x03, 0x40, // loop
				0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0x10, 0x00, // gnome.log(0, 0, 0)
				0x0c, 0x00, 0x0b, // br 0 end
			)
		}
		return wasmFunc(nil, append(append(code, result...), 0x0b)...)
	}
	code := wasmVec(
		wasmFunc(nil, 0x41, 0x80, 0x08, 0x0b), // gnome_alloc: 1024
		body(spinHandle, answer),
		body(spinInit, []byte{0x42, 0}),
		body(spinEvent, []byte{0x42, 0}),
		body(spinInitialize, nil),
		// tree(n): if n == 0 return; tree(n-1); tree(n-1)
		wasmFunc(nil, 0x20, 0x00, 0x45, 0x04, 0x40, 0x0f, 0x0b,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x07,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x07, 0x0b),
	)
	data := wasmVec(append(append([]byte{0, 0x41, 0x80, 0x10, 0x0b}, leb(uint64(len(response)))...), response...))
	return asmModule(wasmSection(1, types), wasmSection(2, imports), wasmSection(3, funcs),
		wasmSection(5, memory), wasmSection(7, exports), wasmSection(10, code), wasmSection(11, data))
}

// yieldImport is the import of WASI's sched_yield, of type typ.
func yieldImport(typ byte) []byte {
	return append(append(wasmName("wasi_snapshot_preview1"), wasmName("sched_yield")...), 0, typ)
}

// countingHost counts the guest's log lines.
type countingHost struct{ logs atomic.Int64 }

func (h *countingHost) Log(context.Context, int, string) { h.logs.Add(1) }
func (h *countingHost) Call(context.Context, string, []byte) ([]byte, error) {
	return []byte(`{}`), nil
}

// An endless loop in every entry the platform calls, in blocks, ifs and a
// br_table, or around a host function, stops at the time limit with a
// timeout, in an instrumented module; the instance's name is free again
// for the one that replaces it.
func TestRunawayGuestsStopAtTheDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	limits := Limits{Timeout: 300 * time.Millisecond, StartTimeout: 300 * time.Millisecond}.Normalize()
	// The start limit is never under DefaultStartTimeout: starts that spin
	// take that long.
	for _, tc := range []struct {
		name  string
		spin  int
		start bool
	}{
		{"gnome_handle", spinHandle, false},
		{"nested blocks and br_table", spinNested, false},
		{"a loop of host calls", spinHostCall, false},
		{"a recursion tree without a loop", spinTree, false},
		{"gnome_event", spinEvent, false},
		{"_initialize", spinInitialize, true},
		{"gnome_init", spinInit, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mod := compile(t, loopActor(tc.spin), limits)
			if !mod.Instrumented() {
				t.Fatal("the module was not instrumented")
			}
			h := &countingHost{}
			begin := time.Now()
			inst, err := mod.Instantiate(ctx, "spin", h, Init{Slug: "spin", Version: 1}, nil)
			if tc.start {
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("Instantiate: %v, want %v", err, ErrTimeout)
				}
				if took := time.Since(begin); took < mod.Limits().StartTimeout {
					t.Errorf("stopped after %v, before the start limit %v", took, mod.Limits().StartTimeout)
				}
				return
			}
			if err != nil {
				t.Fatalf("Instantiate: %v", err)
			}
			defer inst.Close(ctx)
			begin = time.Now()
			if tc.spin == spinEvent {
				err = inst.Event(ctx, []byte(`{"type":"timer"}`))
			} else {
				_, err = inst.Handle(ctx, []byte(`{}`))
			}
			took := time.Since(begin)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("call: %v, want %v", err, ErrTimeout)
			}
			if took < limits.Timeout || took > limits.Timeout+30*time.Second {
				t.Errorf("stopped after %v, limit %v", took, limits.Timeout)
			}
			if tc.spin == spinHostCall && h.logs.Load() == 0 {
				t.Error("the guest never called the host")
			}
			if !errors.Is(inst.Broken(), ErrTimeout) {
				t.Errorf("Broken: %v", inst.Broken())
			}
			// A replacement under the same name starts.
			again, err := mod.Instantiate(ctx, "spin", h, Init{Slug: "spin", Version: 1}, nil)
			if err != nil {
				t.Fatalf("a new instance: %v", err)
			}
			again.Close(ctx)
		})
	}
	t.Run("answers when it does not spin", func(t *testing.T) {
		t.Parallel()
		mod := compile(t, loopActor(spinNowhere), limits)
		inst := instantiate(t, mod, "calm", &countingHost{}, Init{Slug: "calm", Version: 1}, nil)
		for range 3 {
			out, err := inst.Handle(ctx, []byte(`{}`))
			if err != nil || string(out) != `{"status":200}` {
				t.Fatalf("Handle: %q, %v", out, err)
			}
			if err := inst.Event(ctx, []byte(`{"type":"timer"}`)); err != nil {
				t.Fatalf("Event: %v", err)
			}
		}
	})
}

// A guest spinning in a loop does not hold up the process: a garbage
// collection (which stops every goroutine) completes while it spins, long
// before its deadline. Machine code cannot be preempted; the guest leaves
// it every loopFuel iterations.
func TestSpinningGuestLetsTheCollectorRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mod := compile(t, loopActor(spinHandle), Limits{Timeout: 20 * time.Second})
	inst := instantiate(t, mod, "spin-gc", &countingHost{}, Init{Slug: "spin-gc", Version: 1}, nil)
	var ended atomic.Bool
	done := make(chan error, 1)
	go func() {
		_, err := inst.Handle(ctx, []byte(`{}`))
		ended.Store(true)
		done <- err
	}()
	for range 5 {
		runtime.GC()
	}
	if ended.Load() {
		t.Error("the collections waited for the guest's deadline")
	}
	inst.Close(ctx) // stops the call, as a timeout
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Errorf("the stopped call: %v, want %v", err, ErrTimeout)
	}
}

// A call that ends as its deadline passes leaves the stop flag clear for
// the next call; a call whose context has ended does not start.
func TestStopFlagIsClearedAfterACall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mod := compile(t, loopActor(spinNowhere), Limits{})
	inst := instantiate(t, mod, "flag", &countingHost{}, Init{Slug: "flag", Version: 1}, nil)
	done, cancel := context.WithCancel(ctx)
	cancel()
	// The flag is set by the context's callback, on its own goroutine:
	// disarm either prevents it (false) or waits for it and clears the
	// flag (true). Until the callback has run once, again.
	for {
		disarm := inst.stop.arm(done)
		runtime.Gosched()
		if disarm() {
			break
		}
	}
	if got := inst.stop.flag.Get(); got != 0 {
		t.Fatalf("the flag is %d after the call", got)
	}
	if out, err := inst.Handle(ctx, []byte(`{}`)); err != nil || string(out) != `{"status":200}` {
		t.Fatalf("the next call: %q, %v", out, err)
	}
	if _, err := inst.Handle(done, []byte(`{}`)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a call with its context ended: %v, want %v", err, ErrTimeout)
	}
}

// The instrumenter on hand-made modules: the result compiles, exports the
// flag, computes what the original computes, and stops when the flag is
// set; a module exporting the reserved name is refused; one the decoder
// cannot read, or with a start function, is compiled as it is and works.
func TestInstrumenter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// f() -> i32 exercises immediates of every kind: SIMD (v128.const,
	// shuffle, lanes, a vector load and store), bulk memory (fill, copy,
	// init, data.drop), a saturating truncation, br_table, select with
	// types, nested loops over locals; it has a global of its own.
	code := []byte{
		// memory.fill(0, 7, 64); memory.copy(64, 0, 64)
		0x41, 0x00, 0x41, 0x07, 0x41, 0xc0, 0x00, 0xfc, 0x0b, 0x00,
		0x41, 0xc0, 0x00, 0x41, 0x00, 0x41, 0xc0, 0x00, 0xfc, 0x0a, 0x00, 0x00,
		// memory.init 0 (128, 0, 4); data.drop 0
		0x41, 0x80, 0x01, 0x41, 0x00, 0x41, 0x04, 0xfc, 0x08, 0x00, 0x00, 0xfc, 0x09, 0x00,
		// local 0 = i32x4.extract_lane 2 (shuffle(const, load(64)))
		0xfd, 0x0c, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0,
		0x41, 0xc0, 0x00, 0xfd, 0x00, 0x04, 0x00,
		0xfd, 0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15,
		0xfd, 0x1b, 0x02, 0x21, 0x00,
		// v128.store(256, i32x4.splat(local 0)); local 0 += i32.load(256)
		0x41, 0x80, 0x02, 0x20, 0x00, 0xfd, 0x11, 0xfd, 0x0b, 0x04, 0x00,
		0x20, 0x00, 0x41, 0x80, 0x02, 0x28, 0x02, 0x00, 0x6a, 0x21, 0x00,
		// local 0 += i32.trunc_sat_f32_s(f32.const 2.5) + global 0
		0x20, 0x00, 0x43, 0x00, 0x00, 0x20, 0x40, 0xfc, 0x00, 0x6a, 0x23, 0x00, 0x6a, 0x21, 0x00,
		// for i (local 1) < 10: for j (local 2) < 10: local 0 += br_table-chosen 1 or 2
		0x41, 0x00, 0x21, 0x01,
		0x03, 0x40, // loop
		0x41, 0x00, 0x21, 0x02,
		0x03, 0x40, // loop
		0x02, 0x40, 0x02, 0x40, // block block
		0x20, 0x02, 0x41, 0x01, 0x71, 0x0e, 0x01, 0x00, 0x01, // br_table [0] 1 on j&1
		0x0b,                                                 // end: j even
		0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, 0x0c, 0x00, // +1; br 0 (to the outer block's end)
		0x0b,                                                                               // end: j odd or done
		0x20, 0x00, 0x41, 0x02, 0x41, 0x03, 0x41, 0x01, 0x1c, 0x01, 0x7f, 0x6a, 0x21, 0x00, // += select(i32)(2, 3, 1)
		0x20, 0x02, 0x41, 0x01, 0x6a, 0x22, 0x02, 0x41, 0x0a, 0x48, 0x0d, 0x00, // j++ < 10: continue
		0x0b,
		0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01, 0x41, 0x0a, 0x48, 0x0d, 0x00, // i++ < 10: continue
		0x0b,
		0x20, 0x00, 0x0b,
	}
	spin := []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b} // loop br 0 end end
	sections := func(start bool, extraExport []byte) []byte {
		exports := [][]byte{append(wasmName("f"), 0, 1), append(wasmName("spin"), 0, 2)}
		if extraExport != nil {
			exports = append(exports, extraExport)
		}
		s := [][]byte{
			wasmSection(1, wasmVec([]byte{0x60, 0, 1, 0x7f}, []byte{0x60, 0, 0})),
			wasmSection(2, wasmVec(yieldImport(0))),
			wasmSection(3, wasmVec([]byte{0}, []byte{1}, []byte{1})),
			wasmSection(5, wasmVec([]byte{0, 1})),
			wasmSection(6, wasmVec([]byte{0x7f, 0x00, 0x41, 0x05, 0x0b})), // a global of its own: 5
			wasmSection(7, wasmVec(exports...)),
		}
		if start {
			s = append(s, wasmSection(8, leb(3)))
		}
		s = append(s,
			wasmSection(12, leb(1)),
			wasmSection(10, wasmVec(wasmFunc([][2]byte{{3, 0x7f}}, code...), wasmFunc(nil, spin...), wasmFunc(nil, 0x0b))),
			wasmSection(11, wasmVec([]byte{1, 4, 1, 2, 3, 4})), // passive
			wasmSection(0, append(wasmName("custom"), 1, 2, 3)),
		)
		return asmModule(s...)
	}
	run := func(t *testing.T, wasm []byte) (int32, api.Module) {
		t.Helper()
		rt := wazero.NewRuntime(ctx)
		t.Cleanup(func() { rt.Close(ctx) })
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		mod, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatalf("instantiate: %v", err)
		}
		res, err := mod.ExportedFunction("f").Call(ctx)
		if err != nil {
			t.Fatalf("f: %v", err)
		}
		return int32(res[0]), mod
	}

	original := sections(false, nil)
	want, _ := run(t, original)
	out, err := instrument(original)
	if err != nil {
		t.Fatalf("instrument: %v", err)
	}
	got, mod := run(t, out)
	if got != want {
		t.Errorf("instrumented f() = %d, the original's %d", got, want)
	}
	if n := bytes.Count(out, loopCheck(2, 4)); n != 3+3 {
		t.Errorf("%d checks, want 6: 3 loops and 3 functions", n)
	}
	flag, ok := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("no mutable global %q", StopExport)
	}
	flag.Set(1)
	if _, err := mod.ExportedFunction("spin").Call(ctx); err == nil {
		t.Error("spin returned with the flag set")
	}

	// Without global and export sections, they are added in their place.
	bare := asmModule(
		wasmSection(1, wasmVec([]byte{0x60, 0, 0}, []byte{0x60, 0, 1, 0x7f})),
		wasmSection(2, wasmVec(yieldImport(1))),
		wasmSection(3, wasmVec([]byte{0})),
		wasmSection(10, wasmVec(wasmFunc([][2]byte{{1, 0x7b}, {2, 0x7e}}, spin...))),
	)
	if out, err := instrument(bare); err != nil {
		t.Errorf("a module without globals or exports: %v", err)
	} else if _, err := wazero.NewRuntime(ctx).CompileModule(ctx, out); err != nil { // compiled, not linked
		t.Errorf("the instrumented bare module does not compile: %v", err)
	}

	if _, err := instrument(sections(false, append(wasmName(StopExport), 0, 0))); !errors.Is(err, ErrReservedExport) {
		t.Errorf("a module exporting %q: %v, want %v", StopExport, err, ErrReservedExport)
	}
	e := testEngine(t)
	// The same through Compile: refused, not compiled as it is.
	withName := hostilewasm.Module{Tables: []hostilewasm.Table{{Min: 1}}}.Bytes()
	if _, err := e.Compile(ctx, appendExport(t, withName, StopExport), Limits{}); !errors.Is(err, ErrReservedExport) || !errors.Is(err, ErrInvalidModule) {
		t.Errorf("Compile of a module exporting %q: %v", StopExport, err)
	}

	// A start function: compiled as it is, stopped by the runtime.
	withStart := sections(true, nil)
	if _, err := instrument(withStart); !errors.Is(err, errUninstrumentable) {
		t.Errorf("a start function: %v, want %v", err, errUninstrumentable)
	}
	// An instruction the decoder does not know (a tail call): compiled as
	// it is, and refused by wazero with its own reason.
	tail := asmModule(
		wasmSection(1, wasmVec([]byte{0x60, 0, 0}, []byte{0x60, 0, 1, 0x7f})),
		wasmSection(2, wasmVec(yieldImport(1))),
		wasmSection(3, wasmVec([]byte{0})),
		wasmSection(10, wasmVec(wasmFunc(nil, 0x12, 0x00, 0x0b))),
	)
	if _, err := instrument(tail); !errors.Is(err, errUninstrumentable) {
		t.Errorf("return_call: %v, want %v", err, errUninstrumentable)
	}
}

// appendExport adds an export of function 0 named name to wasm's export
// section.
func appendExport(t *testing.T, wasm []byte, name string) []byte {
	t.Helper()
	r := reader{b: wasm, off: 8}
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		body := r.take(int(size))
		if id == sectionExport {
			body = appendToVector(body, append(wasmName(name), 0, 0))
			out := append([]byte(nil), wasm[:start]...)
			out = append(out, wasmSection(sectionExport, body)...)
			return append(out, wasm[r.off:]...)
		}
	}
	t.Fatal("no export section")
	return nil
}

// A module the instrumenter cannot read (here: a start function) is
// compiled as it is, answers, and is still stopped at its deadline, by the
// runtime.
func TestUninstrumentedModuleStillStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wasm := withStartFunction(t, loopActor(spinHandle))
	mod := compile(t, wasm, Limits{Timeout: 300 * time.Millisecond})
	if mod.Instrumented() {
		t.Fatal("a module with a start function was instrumented")
	}
	inst := instantiate(t, mod, "plain", &countingHost{}, Init{Slug: "plain", Version: 1}, nil)
	if err := inst.Event(ctx, []byte(`{"type":"timer"}`)); err != nil {
		t.Fatalf("Event: %v", err)
	}
	if _, err := inst.Handle(ctx, []byte(`{}`)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Handle: %v, want %v", err, ErrTimeout)
	}
}

// withStartFunction gives loopActor a start section calling _initialize
// (function 6, of type () -> ()).
func withStartFunction(t *testing.T, wasm []byte) []byte {
	t.Helper()
	r := reader{b: wasm, off: 8}
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		r.take(int(size))
		if id == sectionCode {
			out := append([]byte(nil), wasm[:start]...)
			out = append(out, wasmSection(sectionStart, leb(6))...)
			return append(out, wasm[start:]...)
		}
	}
	t.Fatal("no code section")
	return nil
}

// Real guests, instrumented, answer what they answer as they are.
func TestInstrumentedGuestsAnswerTheSame(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testEngine(t)
	for _, tc := range []struct {
		guest   string
		targets []string
	}{
		{"libs/actorhost/testdata/rawabi", []string{"/init", "/request", "/take", "/calls"}},
		{"libs/actorhost/testdata/hostile", []string{"/ok", "/state", "/state"}},
		{"bench/actors/echo", []string{"/ping", "/nope"}},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			wasm := guest(t, tc.guest)
			envs := make([][]byte, len(tc.targets)) // one request ID for both
			for k, target := range tc.targets {
				envs[k] = envelope(t, "GET", target, "", ada)
			}
			answers := map[bool][]string{}
			for _, instrumented := range []bool{true, false} {
				mod, err := e.compile(ctx, wasm, Limits{}, instrumented)
				if err != nil {
					t.Fatalf("compile (instrumented %v): %v", instrumented, err)
				}
				t.Cleanup(func() { mod.rt.Close(ctx) })
				if mod.Instrumented() != instrumented {
					t.Fatalf("Instrumented() = %v, want %v", mod.Instrumented(), instrumented)
				}
				inst := instantiate(t, mod, "same", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
				for k, target := range tc.targets {
					out, err := inst.Handle(ctx, envs[k])
					if err != nil {
						t.Fatalf("%s (instrumented %v): %v", target, instrumented, err)
					}
					answers[instrumented] = append(answers[instrumented], string(out))
				}
			}
			for k := range answers[true] {
				if answers[true][k] != answers[false][k] {
					t.Errorf("%s: instrumented %s, as it is %s", tc.targets[k], answers[true][k], answers[false][k])
				}
			}
		})
	}
}

// The decoder never panics, whatever it reads; what it instruments
// differs from its input only by the flag and the checks.
func FuzzInstrument(f *testing.F) {
	f.Add(loopActor(spinNested))
	f.Add(loopActor(spinHostCall))
	f.Add(hostilewasm.Recurser())
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add(asmModule(wasmSection(1, wasmVec([]byte{0x60, 0, 0}, []byte{0x60, 0, 1, 0x7f})), wasmSection(2, wasmVec(yieldImport(1))), wasmSection(3, wasmVec([]byte{0})),
		wasmSection(10, wasmVec(wasmFunc(nil, 0xfd, 0x0c, 0x0b)))))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument(wasm)
		if err != nil {
			if !errors.Is(err, errUninstrumentable) && !errors.Is(err, ErrReservedExport) {
				t.Fatalf("an error of another kind: %v", err)
			}
			return
		}
		if len(out) < len(wasm) {
			t.Fatalf("instrumented %d bytes into %d", len(wasm), len(out))
		}
	})
}

// The decoder on random bytes in a function body, a few thousand times
// per run (FuzzInstrument explores further under go test -fuzz).
func TestInstrumentRandomBodies(t *testing.T) {
	t.Parallel()
	seed := uint64(1)
	next := func() byte {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return byte(seed)
	}
	ops := []byte{0x02, 0x03, 0x04, 0x05, 0x0b, 0x0c, 0x0e, 0x11, 0x1c, 0x28, 0x41, 0x42, 0x43, 0x44, 0xfc, 0xfd, 0xd0, 0x6a}
	for range 5000 {
		var code []byte
		for range int(next() % 40) {
			if next()%2 == 0 {
				code = append(code, ops[int(next())%len(ops)])
			} else {
				code = append(code, next())
			}
		}
		wasm := asmModule(wasmSection(1, wasmVec([]byte{0x60, 0, 0}, []byte{0x60, 0, 1, 0x7f})), wasmSection(2, wasmVec(yieldImport(1))), wasmSection(3, wasmVec([]byte{0})),
			wasmSection(10, wasmVec(wasmFunc(nil, code...))))
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("instrument(% x) panicked: %v", wasm, p)
				}
			}()
			_, _ = instrument(wasm)
		}()
	}
}

// The Engine remembers instrumented modules by their bytes: the same bytes
// give the same result without another pass, other bytes (even of the same
// length) their own, a refused module is refused every time, and only the
// last memoEntries are kept.
func TestInstrumentMemo(t *testing.T) {
	t.Parallel()
	var m instrumentMemo
	a := loopActor(spinHandle)
	b := loopActor(spinEvent) // the same length, other code
	if len(a) != len(b) || bytes.Equal(a, b) {
		t.Fatalf("want two modules of one length: %d, %d", len(a), len(b))
	}
	outA, err := m.instrument(a)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.instrument(bytes.Clone(a))
	if &again[0] != &outA[0] {
		t.Error("the same bytes were instrumented again")
	}
	outB, err := m.instrument(b)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := instrument(b); !bytes.Equal(outB, want) || bytes.Equal(outA, outB) {
		t.Error("another module of the same length got the first one's result")
	}
	reserved := appendExport(t, a, StopExport)
	for range 2 {
		if _, err := m.instrument(reserved); !errors.Is(err, ErrReservedExport) {
			t.Fatalf("a module exporting %s: %v", StopExport, err)
		}
	}
	for i := range memoEntries {
		if _, err := m.instrument(loopActor(spinNowhere + i%7)); err != nil && !errors.Is(err, ErrReservedExport) {
			t.Fatal(err)
		}
	}
	if len(m.entries) > memoEntries {
		t.Errorf("%d entries kept, at most %d", len(m.entries), memoEntries)
	}
}
