package actorhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// What a module may declare, checked on its binary before it is compiled.
// wazero bounds neither tables nor their growth (table.grow appends to a Go
// slice of 8-byte entries, so one call growing by 2^32-16 asks for 32 GiB),
// hence the platform's own bound.
const (
	// MaxTableEntries bounds the entries of all of a module's tables
	// together (8 bytes of host memory each: 800 KB at most). A Go actor's
	// one table holds an entry per function, a few thousand.
	MaxTableEntries = 100_000
	// MaxTables bounds how many tables a module declares.
	MaxTables = 16
)

// Errors of a module that cannot load; no retry can change them.
var (
	ErrTableLimit    = errors.New("the module's tables are over the platform's bound")
	ErrUnknownImport = errors.New("the module imports what the platform does not provide")
	ErrInvalidModule = errors.New("the module is not valid WebAssembly")
)

const (
	sectionImport = 2
	sectionTable  = 4
)

// boundTables checks the module's imports and tables and returns the
// binary to compile: the same, or, when a table declares no maximum, a copy
// whose such tables have their initial size as their maximum. Go's linker
// declares its table without a maximum and never grows it; toolchains that
// do grow a table (wasm-ld's --growable-table) declare a maximum.
func boundTables(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: no WebAssembly header", ErrInvalidModule)
	}
	r := reader{b: wasm, off: 8}
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		bodyStart := r.off
		body := r.take(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: section at byte %d: %v", ErrInvalidModule, start, r.err)
		}
		switch id {
		case sectionImport:
			if err := checkImportKinds(body); err != nil {
				return nil, err
			}
		case sectionTable:
			table, rewritten, err := boundTableSection(body)
			if err != nil {
				return nil, err
			}
			if !rewritten {
				return wasm, nil
			}
			out := make([]byte, 0, len(wasm)+len(table)-len(body)+8)
			out = append(out, wasm[:start]...)
			out = append(out, sectionTable)
			out = binary.AppendUvarint(out, uint64(len(table)))
			out = append(out, table...)
			return append(out, wasm[bodyStart+int(size):]...), nil
		}
	}
	return wasm, nil
}

// checkImportKinds refuses an import other than a function: the platform's
// modules export only functions, so a table, memory, global or tag import
// could never be satisfied.
func checkImportKinds(body []byte) error {
	r := reader{b: body}
	n := r.u32()
	for range n {
		module, name := r.name(), r.name()
		kind := r.byte()
		if r.err != nil {
			break
		}
		if kind != 0 {
			what := map[byte]string{1: "a table", 2: "a memory", 3: "a global", 4: "a tag"}[kind]
			if what == "" {
				what = fmt.Sprintf("an import of kind %d", kind)
			}
			return fmt.Errorf("%w: %s %s.%s (only functions are provided)", ErrUnknownImport, what, module, name)
		}
		r.u32() // the function's type index
	}
	if r.err != nil {
		return fmt.Errorf("%w: import section: %v", ErrInvalidModule, r.err)
	}
	return nil
}

// boundTableSection checks the table section's body and returns it with a
// maximum on every table; rewritten reports whether any lacked one.
func boundTableSection(body []byte) (out []byte, rewritten bool, err error) {
	r := reader{b: body}
	n := r.u32()
	if r.err == nil && n > MaxTables {
		return nil, false, fmt.Errorf("%w: %d tables, at most %d", ErrTableLimit, n, MaxTables)
	}
	out = binary.AppendUvarint(nil, uint64(n))
	total := uint64(0)
	for i := range n {
		ref := r.byte()
		flags := r.byte()
		if r.err != nil {
			break
		}
		if ref != 0x70 && ref != 0x6f {
			return nil, false, fmt.Errorf("%w: table %d has element type 0x%02x", ErrInvalidModule, i, ref)
		}
		if flags > 1 {
			return nil, false, fmt.Errorf("%w: table %d has limits of kind 0x%02x (64-bit or shared tables are not supported)", ErrInvalidModule, i, flags)
		}
		lo := uint64(r.u32())
		hi := lo
		if flags == 1 {
			hi = uint64(r.u32())
		} else {
			rewritten = true
		}
		if r.err != nil {
			break
		}
		if flags == 1 && hi > MaxTableEntries {
			return nil, false, fmt.Errorf("%w: table %d may grow to %d entries, at most %d", ErrTableLimit, i, hi, MaxTableEntries)
		}
		total += max(lo, hi)
		if total > MaxTableEntries {
			return nil, false, fmt.Errorf("%w: the tables hold %d entries or more, at most %d", ErrTableLimit, total, MaxTableEntries)
		}
		out = append(out, ref, 1)
		out = binary.AppendUvarint(out, lo)
		out = binary.AppendUvarint(out, hi)
	}
	if r.err == nil && !r.done() {
		r.err = errors.New("bytes after the last table")
	}
	if r.err != nil {
		return nil, false, fmt.Errorf("%w: table section: %v", ErrInvalidModule, r.err)
	}
	return out, rewritten, nil
}

// checkImports refuses a function import that neither the gnome host module
// nor WASI provides with that exact type: wazero would otherwise refuse it
// only when instantiating, which looks like a start that may succeed later.
func checkImports(rt wazero.Runtime, compiled wazero.CompiledModule) error {
	for _, def := range compiled.ImportedFunctions() {
		module, name, _ := def.Import()
		if module != HostModule && module != wasi_snapshot_preview1.ModuleName {
			return fmt.Errorf("%w: function %s.%s (only %s and %s are provided)", ErrUnknownImport, module, name, HostModule, wasi_snapshot_preview1.ModuleName)
		}
		provider := rt.Module(module)
		if provider == nil {
			return fmt.Errorf("%w: function %s.%s", ErrUnknownImport, module, name)
		}
		want := provider.ExportedFunctionDefinitions()[name]
		if want == nil {
			return fmt.Errorf("%w: function %s.%s", ErrUnknownImport, module, name)
		}
		if !slices.Equal(want.ParamTypes(), def.ParamTypes()) || !slices.Equal(want.ResultTypes(), def.ResultTypes()) {
			return fmt.Errorf("%w: function %s.%s with another type than the platform's", ErrUnknownImport, module, name)
		}
	}
	return nil
}

// reader decodes the parts of the binary format the checks need; the first
// error sticks and every later read returns zero.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at byte %d", msg, r.off)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	b := r.b[r.off]
	r.off++
	return b
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() uint32 {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		b := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			if v > 1<<32-1 {
				r.fail("integer over 32 bits")
				return 0
			}
			return uint32(v)
		}
	}
	r.fail("integer too long")
	return 0
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("section runs past the end")
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) name() string { return string(r.take(int(r.u32()))) }
