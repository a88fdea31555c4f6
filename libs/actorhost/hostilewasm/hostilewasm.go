// Package hostilewasm assembles small WebAssembly modules by hand, for
// tests of the actor sandbox: modules no compiler would emit (a table grown
// by 2^32-16 entries, a table with no bound, an import the platform lacks),
// each a complete actor as far as its exports go.
package hostilewasm

import (
	"encoding/base64"
	"encoding/binary"
)

// Table is one table of a module: its initial size and, when HasMax is
// set, its maximum.
type Table struct {
	Min, Max uint32
	HasMax   bool
}

// Import is one import of a module: a function of type (i32) -> i32
// (Kind 0), or a table (1), memory (2) or global (3).
type Import struct {
	Module, Name string
	Kind         byte
}

// Module is an actor (it needs at least one table): memory (one page), gnome_alloc (answers 2048),
// gnome_handle, and grow (() -> i32), which grows table 0 by GrowBy null
// entries and returns table.grow's result, and recurse (() -> ()), which
// calls itself without end. gnome_handle grows the table as grow does and
// answers 200 with the body "refused" when the growth failed, "grew" when
// it succeeded.
type Module struct {
	Tables  []Table
	Imports []Import
	GrowBy  uint32
}

// Recurser is an actor with a function "recurse" (() -> ()) that calls
// itself without end: the engine's native stack grows until its ceiling.
func Recurser() []byte {
	return Module{Tables: []Table{{Min: 1}}}.Bytes()
}

// TableGrower is an actor whose every call tries to grow its one table
// (declared without a maximum, as Go's linker declares it) by 2^32-16
// entries: 32 GiB of host memory, were it allowed.
func TableGrower() []byte {
	return Module{Tables: []Table{{Min: 1}}, GrowBy: 1<<32 - 16}.Bytes()
}

// UnknownImport is an actor that imports a function the platform does
// not provide.
func UnknownImport() []byte {
	return Module{Tables: []Table{{Min: 1}}, Imports: []Import{{Module: "gnome", Name: "open_socket"}}}.Bytes()
}

// Bytes assembles the module.
func (m Module) Bytes() []byte {
	imported := 0
	var imports [][]byte
	for _, im := range m.Imports {
		e := append(name(im.Module), name(im.Name)...)
		switch im.Kind {
		case 0:
			e = append(e, 0, 0) // a function of type 0
			imported++
		case 1:
			e = append(e, 1, 0x70, 0, 0)
		case 2:
			e = append(e, 2, 0, 1)
		default:
			e = append(e, 3, 0x7f, 0)
		}
		imports = append(imports, e)
	}
	var tables [][]byte
	for _, t := range m.Tables {
		e := []byte{0x70, 0}
		e = binary.AppendUvarint(e, uint64(t.Min))
		if t.HasMax {
			e[1] = 1
			e = binary.AppendUvarint(e, uint64(t.Max))
		}
		tables = append(tables, e)
	}
	const refused, grew = 1024, 1536
	envRefused := []byte(`{"status":200,"body":"` + base64.StdEncoding.EncodeToString([]byte("refused")) + `"}`)
	envGrew := []byte(`{"status":200,"body":"` + base64.StdEncoding.EncodeToString([]byte("grew")) + `"}`)
	grow := []byte{0xd0, 0x70, 0x41} // ref.null func, i32.const GrowBy
	grow = append(grow, sleb(int64(int32(m.GrowBy)))...)
	grow = append(grow, 0xfc, 0x0f, 0)                                              // table.grow 0
	handle := append(append([]byte{}, grow...), 0x41, 0x7f, 0x46, 0x04, 0x7e, 0x42) // i32.const -1, i32.eq, if (result i64), i64.const
	handle = append(handle, sleb(refused<<32|int64(len(envRefused)))...)
	handle = append(handle, 0x05, 0x42) // else, i64.const
	handle = append(handle, sleb(grew<<32|int64(len(envGrew)))...)
	handle = append(handle, 0x0b) // end

	fn := func(i int) byte { return byte(imported + i) }
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	out = append(out, section(1, vec(
		[]byte{0x60, 1, 0x7f, 1, 0x7f},       // 0: (i32) -> i32
		[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7e}, // 1: (i32, i32) -> i64
		[]byte{0x60, 0, 1, 0x7f},             // 2: () -> i32
		[]byte{0x60, 0, 0},                   // 3: () -> ()
	))...)
	if len(imports) > 0 {
		out = append(out, section(2, vec(imports...))...)
	}
	out = append(out, section(3, vec([]byte{0}, []byte{1}, []byte{2}, []byte{3}))...)
	if len(tables) > 0 {
		out = append(out, section(4, vec(tables...))...)
	}
	out = append(out, section(5, vec([]byte{0, 1}))...)
	out = append(out, section(7, vec(
		append(name("memory"), 2, 0),
		append(name("gnome_alloc"), 0, fn(0)),
		append(name("gnome_handle"), 0, fn(1)),
		append(name("grow"), 0, fn(2)),
		append(name("recurse"), 0, fn(3)),
	))...)
	out = append(out, section(10, vec(
		body(0x41, 0x80, 0x10), // i32.const 2048
		body(handle...),
		body(grow...),
		body(0x10, fn(3)), // call recurse
	))...)
	return append(out, section(11, vec(data(refused, envRefused), data(grew, envGrew)))...)
}

func section(id byte, content []byte) []byte {
	return append(binary.AppendUvarint([]byte{id}, uint64(len(content))), content...)
}

func vec(items ...[]byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func name(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }

// body is a function body without locals.
func body(instr ...byte) []byte {
	b := append(append([]byte{0}, instr...), 0x0b)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// data is an active data segment of memory 0 at offset.
func data(offset int32, b []byte) []byte {
	d := append([]byte{0, 0x41}, sleb(int64(offset))...)
	d = append(d, 0x0b)
	return append(d, name(string(b))...)
}

// sleb is v in signed LEB128, as i32.const and i64.const take it.
func sleb(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
