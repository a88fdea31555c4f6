package actorhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorhost/hostilewasm"
)

// Tables are bounded at load: a table without a maximum cannot grow past
// its initial size, a maximum over the bound is refused, and table.grow by
// 2^32-16 entries fails cleanly instead of asking the host for 32 GiB.
func TestTablesAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testEngine(t)
	grow := func(t *testing.T, m hostilewasm.Module) (int32, *Instance) {
		t.Helper()
		mod, err := e.Compile(ctx, m.Bytes(), Limits{})
		if err != nil {
			t.Fatalf("compile: %v", err)
		}
		t.Cleanup(func() { mod.Close(ctx) })
		inst := instantiate(t, mod, "tables", &testHost{t: t}, Init{Slug: "tables", Version: 1}, nil)
		res, err := inst.mod.ExportedFunction("grow").Call(ctx)
		if err != nil {
			t.Fatalf("grow: %v", err)
		}
		return int32(res[0]), inst
	}

	t.Run("no maximum: the initial size is the bound", func(t *testing.T) {
		before := heapInUse()
		got, inst := grow(t, hostilewasm.Module{Tables: []hostilewasm.Table{{Min: 1}}, GrowBy: 1<<32 - 16})
		if got != -1 {
			t.Errorf("table.grow by 2^32-16 answered %d, want -1", got)
		}
		if grown := heapInUse() - before; grown > 64<<20 {
			t.Errorf("the host's heap grew by %d MiB", grown>>20)
		}
		// Through the ABI: the guest sees the refusal and answers.
		if r := mustDo(t, inst, "GET", "/", "", ada, 200); string(r.Body) != "refused" {
			t.Errorf("the guest's answer: %s", r.Body)
		}
		if got, _ := grow(t, hostilewasm.Module{Tables: []hostilewasm.Table{{Min: 1}}, GrowBy: 1}); got != -1 {
			t.Errorf("a table without a maximum grew by one entry: %d", got)
		}
	})
	t.Run("a maximum within the bound", func(t *testing.T) {
		tables := []hostilewasm.Table{{Min: 1, Max: MaxTableEntries, HasMax: true}}
		if got, _ := grow(t, hostilewasm.Module{Tables: tables, GrowBy: 1<<32 - 16}); got != -1 {
			t.Errorf("table.grow by 2^32-16 answered %d, want -1", got)
		}
		if got, _ := grow(t, hostilewasm.Module{Tables: tables, GrowBy: 1000}); got != 1 {
			t.Errorf("growing within the maximum answered %d, want the old size 1", got)
		}
	})
	for _, tc := range []struct {
		name   string
		tables []hostilewasm.Table
	}{
		{"a maximum over the bound", []hostilewasm.Table{{Min: 1, Max: 1<<32 - 1, HasMax: true}}},
		{"an initial size over the bound", []hostilewasm.Table{{Min: MaxTableEntries + 1}}},
		{"tables over the bound together", []hostilewasm.Table{{Min: 1, Max: MaxTableEntries, HasMax: true}, {Min: 1}}},
		{"too many tables", make([]hostilewasm.Table, MaxTables+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Compile(ctx, hostilewasm.Module{Tables: tc.tables}.Bytes(), Limits{})
			if !errors.Is(err, ErrTableLimit) {
				t.Errorf("Compile: %v, want %v", err, ErrTableLimit)
			}
		})
	}

	// Every Go guest the platform knows loads: Go declares its table
	// without a maximum, and a few thousand entries.
	for _, g := range []string{"hostile", "rawabi"} {
		wasm := testdataGuest(t, g)
		bounded, err := boundTables(wasm)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if bytes.Equal(bounded, wasm) {
			t.Errorf("%s: a Go module's table was not given a maximum", g)
		}
		if again, _ := boundTables(bounded); !bytes.Equal(again, bounded) {
			t.Errorf("%s: bounding a bounded module changed it", g)
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// A module that imports what the platform does not provide is refused
// when it is loaded, not when an instance starts: no start can ever
// succeed, so the worker must not retry it.
func TestUnknownImportsFailAtLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testEngine(t)
	table := []hostilewasm.Table{{Min: 1}}
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"a Go guest's unknown host function", testdataGuest(t, "badimport")},
		{"an unknown host function", hostilewasm.UnknownImport()},
		{"an unknown module", hostilewasm.Module{Tables: table, Imports: []hostilewasm.Import{{Module: "env", Name: "system"}}}.Bytes()},
		{"a known function with another type", hostilewasm.Module{Tables: table, Imports: []hostilewasm.Import{{Module: "gnome", Name: "log"}}}.Bytes()},
		{"a memory", hostilewasm.Module{Tables: table, Imports: []hostilewasm.Import{{Module: "env", Name: "memory", Kind: 2}}}.Bytes()},
		{"a table", hostilewasm.Module{Tables: table, Imports: []hostilewasm.Import{{Module: "gnome", Name: "table", Kind: 1}}}.Bytes()},
		{"a global", hostilewasm.Module{Tables: table, Imports: []hostilewasm.Import{{Module: "gnome", Name: "g", Kind: 3}}}.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := e.Compile(ctx, tc.wasm, Limits{})
			if err == nil {
				m.Close(ctx)
			}
			if !errors.Is(err, ErrUnknownImport) {
				t.Errorf("Compile: %v, want %v", err, ErrUnknownImport)
			}
		})
	}
	// The same module without the import loads.
	m, err := e.Compile(ctx, hostilewasm.Module{Tables: table}.Bytes(), Limits{})
	if err != nil {
		t.Fatalf("without the import: %v", err)
	}
	m.Close(ctx)
	for _, bad := range [][]byte{nil, []byte("\x00asm\x01\x00\x00\x00\x04\xff"), []byte("\x00asm\x01\x00\x00\x00\x04\x03\x01\x70\x02")} {
		if _, err := e.Compile(ctx, bad, Limits{}); !errors.Is(err, ErrInvalidModule) {
			t.Errorf("Compile(%q): %v, want %v", bad, err, ErrInvalidModule)
		}
	}
}

// A guest asleep (Go's time.Sleep, WASI poll_oneoff on a clock) wakes at
// the call's deadline and at the start's: a 20 s sleep under a 1 s limit
// ends the call at about 1 s with a timeout, and a guest sleeping forever
// while starting fails its start at the start limit.
func TestSleepEndsAtTheDeadline(t *testing.T) {
	t.Parallel()
	wasm := testdataGuest(t, "hostile")
	db := database(t)
	m, _ := example(t, "clicks")
	other, _ := startExample(t, db, "clicks", m.Slug, m.DataScope)

	t.Run("in a call", func(t *testing.T) {
		mod := compile(t, wasm, Limits{Timeout: time.Second})
		inst := instantiate(t, mod, "sleeper", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
		b := startBystander(t, other)
		since := b.answered.Load()
		start := time.Now()
		_, err := do(t, inst, "GET", "/sleep?ms=20000", "", ada)
		took := time.Since(start)
		b.check(t, since)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("error %v, want %v", err, ErrTimeout)
		}
		// Generous: the point is that the sleep does not run its 20 s.
		if took < time.Second || took > 10*time.Second {
			t.Errorf("the call ended after %v; limit 1 s, sleep 20 s", took)
		}
		fresh := instantiate(t, mod, "sleeper", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
		mustDo(t, fresh, "GET", "/sleep?ms=10", "", ada, 200)
	})
	for _, where := range []string{"initialize", "gnome_init"} {
		t.Run("in "+where, func(t *testing.T) {
			mod := compile(t, wasm, Limits{Timeout: time.Second})
			h := &testHost{t: t, config: map[string]any{"sleep_in": where}}
			b := startBystander(t, other)
			since := b.answered.Load()
			start := time.Now()
			_, err := mod.Instantiate(context.Background(), "sleeper-"+where, h, Init{Slug: hostileSlug, Version: 1, Config: h.config}, nil)
			took := time.Since(start)
			b.check(t, since)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("Instantiate: %v, want %v", err, ErrTimeout)
			}
			if limit := mod.Limits().StartTimeout; took < limit || took > limit+30*time.Second {
				t.Errorf("the start ended after %v; start limit %v, sleep an hour", took, limit)
			}
		})
	}
}

// lineCounter counts the log records written and their size.
type lineCounter struct {
	records, bytes, longest, output atomic.Int64
	warned                          atomic.Bool
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.records.Add(1)
	c.bytes.Add(int64(len(p)))
	if int64(len(p)) > c.longest.Load() {
		c.longest.Store(int64(len(p)))
	}
	if bytes.Contains(p, []byte("msg=\"actor output\"")) {
		c.output.Add(1)
	}
	if bytes.Contains(p, []byte("over its budget")) {
		c.warned.Store(true)
	}
	return len(p), nil
}

// A flood on stdout (16 MiB of short lines) and one 4 MiB line on stderr
// reach the log within the output budget, the long line cut; the actor
// answers, and keeps answering.
func TestOutputIsBounded(t *testing.T) {
	t.Parallel()
	wasm := testdataGuest(t, "hostile")
	counter := &lineCounter{}
	log := slog.New(slog.NewTextHandler(counter, nil))
	mod := compile(t, wasm, Limits{MemoryMB: 64, Timeout: 30 * time.Second})
	inst, err := mod.Instantiate(context.Background(), "printer", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	start := time.Now()
	if r := mustDo(t, inst, "GET", "/print?mb=16&line=4", "", ada, 200); string(r.Body) != "printed" {
		t.Errorf("answer %s", r.Body)
	}
	took := time.Since(start)
	// The budget's burst, and what it refilled while the call ran.
	refills := 1 + took.Seconds()
	if n := counter.output.Load(); n == 0 || float64(n) > OutputBurstLines*refills+1 {
		t.Errorf("%d output lines logged in %v; the budget allows %d a second", n, took, OutputBurstLines)
	}
	if b := counter.bytes.Load(); float64(b) > (OutputBurstBytes+OutputBurstLines*512)*refills {
		t.Errorf("%d bytes logged in %v for 20 MiB printed", b, took)
	}
	if l := counter.longest.Load(); l > MaxLogLine+1024 {
		t.Errorf("a log record of %d bytes", l)
	}
	if !counter.warned.Load() {
		t.Error("no warning that output was dropped")
	}
	for range 3 {
		mustDo(t, inst, "GET", "/ok", "", ada, 200)
	}
}

// The documented bounds of an instance's host memory beside its linear
// memory (docs/actors.md, section 6): tables, the instance's own
// structures and what a call allocates, and, while a call recurses without
// end, the engine's native stack (its ceiling, the copy it grew from and
// the smaller ones before, until the collector frees them).
const (
	overheadMB      = 16
	stackOverheadMB = 192
)

// An instance's host memory stays within its memory limit plus the
// documented overhead: while a Go actor allocates up to its limit (the
// linear memory is one reservation made at instantiation and grown in
// place, so no growth copies it: wazero's own memory would hold the old
// and new copies at once), and while a module recurses without end.
// Measured as the growth of the process's peak resident size over the
// call, which the kernel keeps; not parallel, so that no other test of the
// package runs meanwhile.
func TestHostMemoryIsBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the reservation is made on Linux")
	}
	if !resetPeakRSS() {
		t.Skip("the peak resident size cannot be reset here (/proc/self/clear_refs)")
	}
	// measure runs call and returns how much the peak resident size grew,
	// in MiB, with the Go heap collected and returned before.
	measure := func(call func()) int64 {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		base := residentKB(t, "VmRSS")
		call()
		return (residentKB(t, "VmHWM") - base) >> 10
	}

	t.Run("linear memory to the limit", func(t *testing.T) {
		const limitMB = 256
		mod := compile(t, testdataGuest(t, "hostile"), Limits{MemoryMB: limitMB, Timeout: 60 * time.Second})
		inst := instantiate(t, mod, "hog", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, &output{})
		var err error
		grew := measure(func() { _, err = do(t, inst, "GET", "/hog", "", ada) })
		if !errors.Is(err, ErrTrap) {
			t.Fatalf("the hog: %v, want a trap at its limit", err)
		}
		t.Logf("peak resident size grew by %d MiB for a %d MiB limit", grew, limitMB)
		// The hog really took its memory: the measurement measures it.
		if grew < limitMB/2 {
			t.Errorf("the resident size grew by only %d MiB: the hog did not reach its limit", grew)
		}
		if grew > limitMB+overheadMB {
			t.Errorf("the resident size grew by %d MiB, over the limit of %d MiB plus %d MiB", grew, limitMB, overheadMB)
		}
		// Closing the instance gives the memory back.
		base := residentKB(t, "VmRSS")
		inst.Close(context.Background())
		if freed := (base - residentKB(t, "VmRSS")) >> 10; freed < limitMB/2 {
			t.Errorf("closing the instance gave back %d MiB", freed)
		}
	})

	t.Run("recursion without end", func(t *testing.T) {
		if raceEnabled {
			// The engine's stack is Go heap, which the race detector
			// shadows with several times its size.
			t.Skip("the race detector's shadow memory is not the worker's")
		}
		mod, err := testEngine(t).Compile(context.Background(), hostilewasm.Recurser(), Limits{MemoryMB: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mod.Close(context.Background()) })
		inst := instantiate(t, mod, "recurser", &testHost{t: t}, Init{Slug: hostileSlug, Version: 1}, nil)
		grew := measure(func() { _, err = inst.mod.ExportedFunction("recurse").Call(context.Background()) })
		if err == nil || !strings.Contains(err.Error(), "stack overflow") {
			t.Fatalf("recursing without end: %v, want a stack overflow", err)
		}
		t.Logf("peak resident size grew by %d MiB for a 1 MiB limit", grew)
		if grew > 1+stackOverheadMB {
			t.Errorf("the resident size grew by %d MiB, over the 1 MiB limit plus %d MiB", grew, stackOverheadMB)
		}
	})
}

// resetPeakRSS makes VmHWM start again from the current resident size.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// residentKB reads a size field of /proc/self/status, in KiB.
func residentKB(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
