package actorhost

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// A runaway guest (an endless loop) must stop at its call's deadline.
// wazero can stop it itself (RuntimeConfig.WithCloseOnContextDone), but
// only by leaving the generated code for Go at every loop iteration, which
// makes a loop-heavy guest such as Go's several times slower. The platform
// instead instruments the module with two globals of its own, a stop flag
// (a mutable i32 exported as StopExport) and a fuel counter, and a function
// of its own, yield; every loop body starts with
//
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//	global.get $fuel
//	i32.eqz
//	if
//	  call $yield
//	end
//
// and yield, every loopFuel loop iterations, calls WASI's sched_yield
// (which the host serves with runtime.Gosched), checks the flag
// (unreachable when it is set) and refills the fuel. When a call's context
// ends, the host sets the flag (stopper): the guest traps within loopFuel
// iterations, and the call fails with ErrTimeout.
//
// The yield is what lets Go stop the goroutine: machine code cannot be
// preempted, so a guest that never gave up its processor would hold up
// every stop of the world (a garbage collection) in the whole process, and
// the timer that sets the flag with it. Merely leaving the compiled code
// now and then (memory.grow 0) is not enough: a collection then waited
// seconds for a spinning guest.
//
// Loops are the only backward branches in WebAssembly, and calls the only
// other way to run code again: with the check at every loop header and
// every function's start, a guest cannot run on unchecked, not even by a
// recursion tree that never loops (the yield function alone has no check,
// and calls nothing but sched_yield); a guest blocked in a host function returns when the host
// operation sees the context end. A module the instrumenter cannot read (an
// instruction it does not know; a start function, which would run before
// the host can reach the flag; no sched_yield import, which every Go module
// has) is compiled as it is, on a runtime that stops guests wazero's way.

// StopExport is the name under which an instrumented module exports its
// stop flag. A module may not export it itself.
const StopExport = "gnome.stop"

// loopFuel is how many loop iterations run between two visits to yield:
// the most a guest runs on after its deadline, and between two points
// where Go may stop its goroutine (a few microseconds in a tight loop).
const loopFuel = 1 << 14

// ErrReservedExport refuses a module that exports StopExport itself.
var ErrReservedExport = fmt.Errorf("%w: it exports %q, a name the platform reserves", ErrInvalidModule, StopExport)

// errUninstrumentable is why a module is compiled as it is: the
// instrumenter met something it does not know. The module may still be
// valid; wazero decides.
var errUninstrumentable = errors.New("the module cannot be instrumented")

// Section ids and their order in a module (custom sections, id 0, may
// appear anywhere); tags (13) come between memories and globals, the data
// count (12) before code.
const (
	sectionType     = 1
	sectionFunction = 3
	sectionGlobal   = 6
	sectionExport   = 7
	sectionStart    = 8
	sectionCode     = 10
)

var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// appendSLEB appends v as a signed LEB128 (wasm's encoding of i32.const).
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// loopCheck is what starts every loop body.
func loopCheck(fuel, yield uint32) []byte {
	b := binary.AppendUvarint([]byte{0x23}, uint64(fuel)) // global.get
	b = append(b, 0x41, 0x01, 0x6b, 0x24)                 // i32.const 1, i32.sub, global.set
	b = binary.AppendUvarint(b, uint64(fuel))
	b = binary.AppendUvarint(append(b, 0x23), uint64(fuel)) // global.get
	b = append(b, 0x45, 0x04, 0x40, 0x10)                   // i32.eqz, if (empty), call
	b = binary.AppendUvarint(b, uint64(yield))
	return append(b, 0x0b) // end
}

// yieldBody is the code of yield (() -> ()), with its size.
func yieldBody(schedYield, stop, fuel uint32) []byte {
	b := binary.AppendUvarint([]byte{0x00, 0x10}, uint64(schedYield)) // no locals; call sched_yield
	b = append(b, 0x1a)                                               // drop its errno
	b = binary.AppendUvarint(append(b, 0x23), uint64(stop))           // global.get $stop
	b = append(b, 0x04, 0x40, 0x00, 0x0b)                             // if unreachable end
	b = appendSLEB(append(b, 0x41), loopFuel)                         // i32.const loopFuel
	b = binary.AppendUvarint(append(b, 0x24), uint64(fuel))           // global.set $fuel
	b = append(b, 0x0b)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// instrument returns wasm with the stop flag, the fuel, yield and the
// loops' checks. Its error is ErrReservedExport, which refuses the module,
// or wraps errUninstrumentable, and the module is then compiled as it is.
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: no WebAssembly 1 header", errUninstrumentable)
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	r := reader{b: wasm, off: 8}
	last := 0
	var globals, funcs, types uint32 // imported and defined
	schedYield := int64(-1)          // the function index of WASI's sched_yield
	have := map[byte]bool{}
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.take(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, r.err)
		}
		if id != 0 {
			order, ok := sectionOrder[id]
			if !ok || order <= last {
				return nil, fmt.Errorf("%w: section %d out of place", errUninstrumentable, id)
			}
			last = order
			have[id] = true
		}
		count := func() uint32 {
			br := reader{b: body}
			n := br.u32()
			if br.err != nil {
				r.err = fmt.Errorf("section %d: %v", id, br.err)
			}
			return n
		}
		switch id {
		case sectionImport:
			imported, yield, err := countImports(body)
			if err != nil {
				return nil, err
			}
			globals += imported[3]
			funcs += imported[0]
			schedYield = yield
		case sectionType:
			types = count()
		case sectionFunction:
			funcs += count()
		case sectionGlobal:
			globals += count()
		case sectionExport:
			if err := checkExportNames(body); err != nil {
				return nil, err
			}
		case sectionStart:
			return nil, fmt.Errorf("%w: it has a start function", errUninstrumentable)
		}
		if r.err != nil {
			return nil, fmt.Errorf("%w: %v", errUninstrumentable, r.err)
		}
		sections = append(sections, section{id, body})
	}
	if schedYield < 0 {
		return nil, fmt.Errorf("%w: it does not import %s.%s", errUninstrumentable, wasi_snapshot_preview1.ModuleName, schedYieldName)
	}
	if !have[sectionType] || !have[sectionFunction] || !have[sectionCode] {
		return nil, fmt.Errorf("%w: no types, functions or code", errUninstrumentable)
	}
	stop, fuel := globals, globals+1
	yieldType, yield := types, funcs

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// The new globals: the flag, a mutable i32 initialised to 0, and the
	// fuel, initialised to loopFuel.
	newGlobals := [][]byte{{0x7f, 0x01, 0x41, 0x00, 0x0b}, append(appendSLEB([]byte{0x7f, 0x01, 0x41}, loopFuel), 0x0b)}
	export := append(binary.AppendUvarint(nil, uint64(len(StopExport))), StopExport...)
	export = append(export, 0x03) // a global
	export = binary.AppendUvarint(export, uint64(stop))
	haveGlobal, haveExport := false, false
	for _, s := range sections {
		if s.id != 0 {
			if !haveGlobal && sectionOrder[s.id] > sectionOrder[sectionGlobal] {
				emit(sectionGlobal, appendToVector([]byte{0}, newGlobals...))
				haveGlobal = true
			}
			if !haveExport && sectionOrder[s.id] > sectionOrder[sectionExport] {
				emit(sectionExport, appendToVector([]byte{0}, export))
				haveExport = true
			}
		}
		switch s.id {
		case sectionType:
			emit(sectionType, appendToVector(s.body, []byte{0x60, 0, 0}))
		case sectionFunction:
			emit(sectionFunction, appendToVector(s.body, binary.AppendUvarint(nil, uint64(yieldType))))
		case sectionGlobal:
			emit(sectionGlobal, appendToVector(s.body, newGlobals...))
			haveGlobal = true
		case sectionExport:
			emit(sectionExport, appendToVector(s.body, export))
			haveExport = true
		case sectionCode:
			code, err := instrumentCode(s.body, loopCheck(fuel, yield))
			if err != nil {
				return nil, err
			}
			emit(sectionCode, appendToVector(code, yieldBody(uint32(schedYield), stop, fuel)))
		default:
			emit(s.id, s.body)
		}
	}
	return out, nil
}

// appendToVector returns a vector section's body (its count, then its
// entries) with entries added at its end.
func appendToVector(body []byte, entries ...[]byte) []byte {
	r := reader{b: body}
	n := r.u32() // read before, by the caller
	out := binary.AppendUvarint(nil, uint64(n)+uint64(len(entries)))
	out = append(out, body[r.off:]...)
	for _, e := range entries {
		out = append(out, e...)
	}
	return out
}

// schedYieldName is WASI's yield, which yield calls.
const schedYieldName = "sched_yield"

// countImports counts the imports of each kind (function, table, memory,
// global): they come first in their index spaces; schedYield is the
// function index of WASI's sched_yield, -1 if it is not imported.
func countImports(body []byte) (counts [4]uint32, schedYield int64, err error) {
	schedYield = -1
	r := reader{b: body}
	n := r.u32()
	for range n {
		module, name := r.name(), r.name()
		kind := r.byte()
		switch kind {
		case 0: // a function: its type
			r.u32()
			if module == wasi_snapshot_preview1.ModuleName && name == schedYieldName && schedYield < 0 {
				schedYield = int64(counts[0])
			}
		case 1: // a table: its element type and limits
			r.byte()
			r.limits()
		case 2: // a memory
			r.limits()
		case 3: // a global: its value type and mutability
			r.byte()
			r.byte()
		default:
			r.fail(fmt.Sprintf("import of kind %d", kind))
		}
		if r.err != nil {
			break
		}
		counts[kind]++
	}
	if r.err == nil && !r.done() {
		r.fail("bytes after the last import")
	}
	if r.err != nil {
		return counts, -1, fmt.Errorf("%w: import section: %v", errUninstrumentable, r.err)
	}
	return counts, schedYield, nil
}

// checkExportNames refuses a module exporting StopExport.
func checkExportNames(body []byte) error {
	r := reader{b: body}
	n := r.u32()
	for range n {
		name := r.name()
		r.byte()
		r.u32()
		if r.err != nil {
			break
		}
		if name == StopExport {
			return ErrReservedExport
		}
	}
	if r.err == nil && !r.done() {
		r.fail("bytes after the last export")
	}
	if r.err != nil {
		return fmt.Errorf("%w: export section: %v", errUninstrumentable, r.err)
	}
	return nil
}

// instrumentCode returns the code section's body with check at the start
// of every function and of every loop body, each function's size rewritten.
func instrumentCode(body, check []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := make([]byte, 0, len(body)+len(body)/16+8)
	out = binary.AppendUvarint(out, uint64(n))
	var fn []byte
	for i := range n {
		size := r.u32()
		code := r.take(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: function %d: %v", errUninstrumentable, i, r.err)
		}
		var err error
		fn, err = instrumentFunction(fn[:0], code, check)
		if err != nil {
			return nil, fmt.Errorf("%w: function %d: %v", errUninstrumentable, i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if r.err == nil && !r.done() {
		return nil, fmt.Errorf("%w: bytes after the last function", errUninstrumentable)
	}
	return out, nil
}

// instrumentFunction appends the function body code, check inserted after
// its locals and after every loop's block type, to out. It reads every instruction, since an
// immediate may hold the loop opcode's byte; what it does not know fails.
func instrumentFunction(out, code, check []byte) ([]byte, error) {
	r := reader{b: code}
	groups := r.u32()
	for range groups {
		r.u32()
		if t := r.byte(); r.err == nil && !isValueType(t) {
			return nil, fmt.Errorf("local of type 0x%02x", t)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	// The check starts the function too: a guest that recurses without
	// looping (a recursion tree) would otherwise run on unchecked.
	out = append(out, code[:r.off]...)
	out = append(out, check...)
	copied := r.off
	depth := 1 // the function's own block
	for depth > 0 {
		if r.err != nil {
			return nil, r.err
		}
		op := r.byte()
		switch {
		case op == 0x02 || op == 0x04: // block, if
			r.blockType()
			depth++
		case op == 0x03: // loop
			r.blockType()
			depth++
			if r.err == nil {
				out = append(out, code[copied:r.off]...)
				out = append(out, check...)
				copied = r.off
			}
		case op == 0x0b: // end
			depth--
		case op == 0x0e: // br_table
			targets := r.u32()
			for range targets {
				r.u32()
			}
			r.u32()
		case op == 0x11: // call_indirect: type and table
			r.u32()
			r.u32()
		case op == 0x1c: // select with types
			types := r.u32()
			for range types {
				r.byte()
			}
		case op == 0x0c || op == 0x0d || op == 0x10 || // br, br_if, call
			op >= 0x20 && op <= 0x26 || // local.*, global.*, table.get, table.set
			op == 0x3f || op == 0x40 || // memory.size, memory.grow: the memory index
			op == 0xd2: // ref.func
			r.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x41: // i32.const
			r.skipLEB(5)
		case op == 0x42: // i64.const
			r.skipLEB(10)
		case op == 0x43: // f32.const
			r.take(4)
		case op == 0x44: // f64.const
			r.take(8)
		case op == 0xd0: // ref.null: the reference type
			r.byte()
		case op == 0xfc:
			r.miscOp()
		case op == 0xfd:
			r.vectorOp()
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || // unreachable, nop, else, return
			op == 0x1a || op == 0x1b || // drop, select
			op >= 0x45 && op <= 0xc4 || // numeric, sign extension
			op == 0xd1: // ref.is_null
		default:
			return nil, fmt.Errorf("unknown opcode 0x%02x at byte %d", op, r.off-1)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(code) {
		return nil, fmt.Errorf("bytes after the function's end at byte %d", r.off)
	}
	return append(out, code[copied:]...), nil
}

func isValueType(t byte) bool {
	switch t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // i32 i64 f32 f64 v128 funcref externref
		return true
	}
	return false
}

// blockType skips a block type: empty, a value type or a type index (a
// signed 33-bit integer).
func (r *reader) blockType() {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return
	}
	if b := r.b[r.off]; b == 0x40 || isValueType(b) {
		r.off++
		return
	}
	r.skipLEB(5)
}

// skipLEB skips a LEB128 integer of at most max bytes.
func (r *reader) skipLEB(max int) {
	for range max {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail("integer too long")
}

// limits skips a table's or a memory's limits.
func (r *reader) limits() {
	switch flags := r.byte(); flags {
	case 0:
		r.u32()
	case 1:
		r.u32()
		r.u32()
	default:
		r.fail(fmt.Sprintf("limits of kind 0x%02x", flags))
	}
}

// memarg skips a memory access's alignment and offset. An alignment of
// 2^32 or more would be another proposal's (multiple memories): unknown.
func (r *reader) memarg() {
	if align := r.u32(); align >= 32 {
		r.fail("memory alignment")
	}
	r.u32()
}

// miscOp skips a 0xfc instruction's immediates: saturating truncations,
// bulk memory and table operations.
func (r *reader) miscOp() {
	switch op := r.u32(); {
	case op <= 7: // trunc_sat
	case op == 8: // memory.init: data and memory
		r.u32()
		r.u32()
	case op == 9 || op == 13: // data.drop, elem.drop
		r.u32()
	case op == 10 || op == 12 || op == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case op == 11 || op >= 15 && op <= 17: // memory.fill, table.grow, table.size, table.fill
		r.u32()
	default:
		r.fail(fmt.Sprintf("unknown instruction 0xfc %d", op))
	}
}

// vectorOps holds, per 0xfd instruction, its immediates: 0 unknown, 1
// none, 2 a memarg, 3 16 bytes (v128.const, i8x16.shuffle), 4 a lane, 5 a
// memarg and a lane.
var vectorOps = func() (t [256]byte) {
	for op := range t {
		t[op] = 1
	}
	for _, op := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = 0 // unassigned
	}
	for op := 0x00; op <= 0x0b; op++ {
		t[op] = 2 // v128.load*, v128.store
	}
	t[0x5c], t[0x5d] = 2, 2 // v128.load32_zero, v128.load64_zero
	t[0x0c], t[0x0d] = 3, 3
	for op := 0x15; op <= 0x22; op++ {
		t[op] = 4 // extract_lane, replace_lane
	}
	for op := 0x54; op <= 0x5b; op++ {
		t[op] = 5 // v128.load*_lane, v128.store*_lane
	}
	return t
}()

// vectorOp skips a 0xfd (SIMD) instruction's immediates.
func (r *reader) vectorOp() {
	op := r.u32()
	if r.err != nil {
		return
	}
	kind := byte(0)
	if op < 256 {
		kind = vectorOps[op]
	}
	switch kind {
	case 0:
		r.fail(fmt.Sprintf("unknown instruction 0xfd %d", op))
	case 2:
		r.memarg()
	case 3:
		r.take(16)
	case 4:
		r.byte()
	case 5:
		r.memarg()
		r.byte()
	}
}

// stopper sets an instrumented instance's stop flag when the context of a
// call into it ends; the zero stopper (a module compiled as it is, stopped
// by wazero) does nothing.
type stopper struct {
	flag api.MutableGlobal
}

// newStopper finds mod's stop flag, if it has one.
func newStopper(mod api.Module) stopper {
	g, _ := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
	return stopper{flag: g}
}

// arm watches ctx for one call into the guest. disarm, called when the
// call has returned, reports whether the flag was set: then the guest was
// stopped, or finished as it was being stopped. Either way the flag is
// cleared again, so that it cannot stop a next call.
func (s stopper) arm(ctx context.Context) (disarm func() (fired bool)) {
	if s.flag == nil {
		return func() bool { return false }
	}
	set := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		s.flag.Set(1)
		close(set)
	})
	return func() bool {
		if cancel() {
			return false
		}
		<-set // the flag is being set: wait, then clear it
		s.flag.Set(0)
		return true
	}
}

// memoEntries is how many modules' instrumented forms an Engine keeps.
const memoEntries = 8

// instrumentMemo remembers the instrumented form of the modules compiled
// last, so that starting an actor whose module was compiled before (a
// restart, a wake from idle, its other instances) costs the compilation
// cache's read and not another pass over its code (some 10 to 20 ms for a
// Go module of 4 MB). A module is known by two hashes of its bytes under
// seeds of this process (maphash: about a millisecond for 4 MB), 128 bits
// no upload can aim at, and its length.
type instrumentMemo struct {
	once    sync.Once
	seeds   [2]maphash.Seed
	mu      sync.Mutex
	entries []memoEntry // most recently used first
}

type memoEntry struct {
	key  [2]uint64
	size int
	out  []byte
	err  error
}

// instrument is instrument(wasm), remembered. The bytes returned are
// shared: callers only read them.
func (m *instrumentMemo) instrument(wasm []byte) ([]byte, error) {
	m.once.Do(func() { m.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()} })
	key := [2]uint64{maphash.Bytes(m.seeds[0], wasm), maphash.Bytes(m.seeds[1], wasm)}
	m.mu.Lock()
	for i, e := range m.entries {
		if e.key == key && e.size == len(wasm) {
			copy(m.entries[1:i+1], m.entries[:i])
			m.entries[0] = e
			m.mu.Unlock()
			return e.out, e.err
		}
	}
	m.mu.Unlock()
	out, err := instrument(wasm)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append([]memoEntry{{key: key, size: len(wasm), out: out, err: err}}, m.entries...)
	if len(m.entries) > memoEntries {
		clear(m.entries[memoEntries:])
		m.entries = m.entries[:memoEntries]
	}
	return out, err
}
