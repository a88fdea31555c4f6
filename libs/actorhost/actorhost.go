// Package actorhost runs an experiment's backend: a WebAssembly module, on
// wazero, in a sandbox with no filesystem, no sockets, no environment and no
// arguments, reaching the platform only through the host functions below.
//
// # The ABI (version 1)
//
// All data crosses the boundary as UTF-8 JSON in the guest's linear memory,
// addressed by (pointer, length) pairs of unsigned 32-bit integers.
//
// The guest exports:
//
//	memory                              its linear memory
//	gnome_alloc(size i32) -> i32        a buffer of size bytes the host may write
//	                                    into; it stays valid until the guest's
//	                                    next gnome_handle or gnome_init returns
//	gnome_handle(ptr i32, len i32) -> i64
//	                                    handles the request envelope at ptr,len
//	                                    (written by the host into a gnome_alloc
//	                                    buffer) and returns the response
//	                                    envelope's location as ptr<<32 | len;
//	                                    that memory stays valid until the next
//	                                    call into the guest
//	gnome_init(ptr i32, len i32) -> i64 optional: called once after
//	                                    instantiation with the init envelope;
//	                                    returns 0, or ptr<<32 | len of an error
//	                                    envelope {"error":{"code","message"}}
//	gnome_event(ptr i32, len i32) -> i64
//	                                    optional: handles one event envelope
//	                                    (a timer firing); returns 0 or an
//	                                    error envelope (event.go)
//	_initialize                         optional (WASI reactors): called first
//
// The guest imports, from module "gnome":
//
//	log(level i32, ptr i32, len i32)    writes one log line (level: 0 debug,
//	                                    1 info, 2 warn, 3 error)
//	call(op_ptr i32, op_len i32, req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i64
//	                                    runs host operation op (db.find, kv.get,
//	                                    ...; see Host) with the JSON request at
//	                                    req; writes the JSON result envelope
//	                                    {"ok": ...} or {"error": {"code",
//	                                    "message"}} to out and returns its
//	                                    length; when it does not fit in out_cap
//	                                    it writes nothing and returns -(length),
//	                                    and the guest fetches it with take
//	take(out_ptr i32, out_cap i32) -> i64
//	                                    copies the result the last call could not
//	                                    fit (out_cap must hold it) and returns its
//	                                    length, or -1 if there is none
//
// and WASI preview 1 (wasi_snapshot_preview1) for its runtime's needs: clocks,
// random numbers, stdout and stderr (captured into the platform's log
// within an output budget, output.go), sleeping (which ends at the call's
// deadline), proc_exit. No directory is pre-opened, no environment
// variable or argument is set, so files and sockets cannot be opened. Any
// other import refuses the module when it is compiled, as do tables over
// MaxTableEntries (module.go).
//
// Host memory: the linear memory is reserved at the memory limit when an
// instance starts and grows in place (memory_linux.go); tables hold at most
// MaxTableEntries entries; the engine's native stack of a call grows with
// recursion up to wazero's ceiling, where the call traps.
//
// The request envelope is {"method","path","query","headers":{name:[values]},
// "body" (base64),"caller":{"email","roles","anonymous"},"request_id"}; the
// response envelope {"status","headers","body" (base64)}. The init envelope
// is {"slug","version","config"}. schemas/messages/actor-*.json define them.
//
// Every call into the guest is stopped at its time limit, an endless loop
// included, by a stop flag the platform adds to the module when it
// compiles it (instrument.go); the flag's export name, StopExport, is
// reserved.
//
// An instance serves one call at a time. Any trap (a panic, running out of
// memory, an unreachable instruction), a timeout, or a malformed response
// breaks it: the caller gets an error and must discard it (Broken).
package actorhost

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// ABIVersion is the version of the ABI this host speaks.
const ABIVersion = 1

// Limits bound one actor.
type Limits struct {
	// MemoryMB caps the guest's linear memory.
	MemoryMB int
	// Timeout bounds each call into the guest.
	Timeout time.Duration
	// StartTimeout bounds starting an instance: instantiation, the WASI
	// reactor's _initialize and gnome_init. A language runtime starting up
	// (Go's takes tens of milliseconds, more on a busy machine) must not
	// depend on how short the actor's calls are meant to be, so it is never
	// shorter than Timeout nor than DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxResponse bounds the response envelope.
	MaxResponse int
	// MaxHostResult bounds what one host call returns.
	MaxHostResult int
}

// Platform maximums and defaults.
const (
	DefaultMemoryMB = 64
	MaxMemoryMB     = 512
	DefaultTimeout  = 2 * time.Second
	MaxTimeout      = 60 * time.Second
	// DefaultStartTimeout is the shortest start limit.
	DefaultStartTimeout = 10 * time.Second
	DefaultResponse     = 1 << 20
	DefaultHostReply    = 4 << 20
)

// Normalize fills zero fields with defaults and caps the rest at the
// platform maximums.
func (l Limits) Normalize() Limits {
	if l.MemoryMB <= 0 {
		l.MemoryMB = DefaultMemoryMB
	}
	l.MemoryMB = min(l.MemoryMB, MaxMemoryMB)
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	l.Timeout = min(l.Timeout, MaxTimeout)
	l.StartTimeout = min(max(l.StartTimeout, l.Timeout, DefaultStartTimeout), MaxTimeout)
	if l.MaxResponse <= 0 {
		l.MaxResponse = DefaultResponse
	}
	if l.MaxHostResult <= 0 {
		l.MaxHostResult = DefaultHostReply
	}
	return l
}

// Host is what an actor may reach: the worker implements it per actor.
type Host interface {
	// Log records a line the guest wrote.
	Log(ctx context.Context, level int, msg string)
	// Call runs operation op with the JSON request and returns its JSON
	// result; an error becomes the guest's error envelope (use
	// *apierr.Error for a code the guest can act on).
	Call(ctx context.Context, op string, req []byte) ([]byte, error)
}

// Errors of a call into the guest; each breaks the instance.
var (
	ErrTimeout          = errors.New("the actor did not answer in time")
	ErrTrap             = errors.New("the actor trapped")
	ErrResponseTooLarge = errors.New("the actor's response is over the limit")
	ErrBadResponse      = errors.New("the actor's response is malformed")
	ErrExited           = errors.New("the actor exited")
	ErrMissingExport    = errors.New("the module lacks a required export")
	ErrBroken           = errors.New("the actor instance is broken")
	// ErrInitRefused: the guest's gnome_init answered with an error
	// envelope (its message follows).
	ErrInitRefused = errors.New("actor init refused")
)

// Engine compiles modules through a compilation cache on disk shared by
// every actor of the process.
type Engine struct {
	cache wazero.CompilationCache
	// memo keeps the instrumented forms of the modules compiled last.
	memo instrumentMemo
}

// NewEngine keeps compiled code under cacheDir ("" for memory only).
func NewEngine(cacheDir string) (*Engine, error) {
	if cacheDir == "" {
		return &Engine{cache: wazero.NewCompilationCache()}, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("create compilation cache: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("open compilation cache: %w", err)
	}
	return &Engine{cache: c}, nil
}

// Close releases the cache.
func (e *Engine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// Module is a compiled actor module, with its own runtime (its memory limit
// is the runtime's), from which instances are made.
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	limits   Limits
	hasInit  bool
	// instrumented: the module carries its own stop flag (instrument.go);
	// otherwise its runtime stops it wazero's way, at a higher cost.
	instrumented bool
	// refs counts the handles on rt and compiled (Share): the last Close
	// frees them. shared marks a handle made by Share, whose instances
	// are anonymous in the runtime (several actors instantiate it).
	refs   *atomic.Int64
	shared bool
	closed bool
}

// Share is another handle on m's compiled code and runtime, with limits of
// its own but m's memory limit (the runtime's), so that several actors run
// one compiled module (the platform's JavaScript runtime) without each
// compiling it. Each handle is closed on its own; the last Close frees
// the code.
func (m *Module) Share(limits Limits) (*Module, error) {
	limits = limits.Normalize()
	if limits.MemoryMB != m.limits.MemoryMB {
		return nil, fmt.Errorf("share module: memory limit %d MiB, the module's runtime has %d MiB", limits.MemoryMB, m.limits.MemoryMB)
	}
	if m.refs.Add(1) == 1 {
		m.refs.Add(-1)
		return nil, errors.New("share module: the module is closed")
	}
	return &Module{rt: m.rt, compiled: m.compiled, limits: limits, hasInit: m.hasInit, instrumented: m.instrumented, refs: m.refs, shared: true}, nil
}

// Compile checks and compiles wasm for limits. Compiling a module compiled
// before (by any process sharing the cache directory) reads the cache.
// The module is instrumented to stop at its calls' deadlines; one the
// instrumenter cannot read is compiled as it is, on a runtime that stops
// it wazero's way (slower, and just as safe).
func (e *Engine) Compile(ctx context.Context, wasm []byte, limits Limits) (*Module, error) {
	return e.compile(ctx, wasm, limits, true)
}

// compile is Compile; mayInstrument false compiles the module as it is.
func (e *Engine) compile(ctx context.Context, wasm []byte, limits Limits, mayInstrument bool) (*Module, error) {
	limits = limits.Normalize()
	wasm, err := boundTables(wasm)
	if err != nil {
		return nil, err
	}
	if mayInstrument {
		switch stoppable, err := e.memo.instrument(wasm); {
		case errors.Is(err, ErrReservedExport):
			return nil, err
		case err != nil:
			slog.DebugContext(ctx, "actor module compiled as it is, stopped by the runtime", "reason", err)
		default:
			m, err := e.compileOn(ctx, stoppable, limits, false)
			if err == nil {
				slog.DebugContext(ctx, "actor module instrumented with its stop flag")
				m.instrumented = true
				return m, nil
			}
			if !errors.Is(err, ErrInvalidModule) {
				return nil, err // a missing export or import: the same as it is
			}
			// wazero refused the instrumented module: the module as it is
			// is compiled, and refused with wazero's reason if invalid.
			slog.DebugContext(ctx, "instrumented actor module refused, compiled as it is", "error", err)
		}
	}
	return e.compileOn(ctx, wasm, limits, true)
}

// compileOn compiles wasm on a runtime of its own; closeOnDone makes the
// runtime stop guest code when its call's context ends (for a module
// without its own stop flag).
func (e *Engine) compileOn(ctx context.Context, wasm []byte, limits Limits, closeOnDone bool) (*Module, error) {
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithCloseOnContextDone(closeOnDone).
		WithMemoryLimitPages(uint32(limits.MemoryMB) * 16)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("provide wasi: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	// Functions compile on every processor: a large module (the
	// JavaScript runtime's 12,000 functions) compiles in about half the
	// time on two.
	compiled, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("compile actor module: %w: %w", ErrInvalidModule, err)
	}
	if err := checkImports(rt, compiled); err != nil {
		_ = compiled.Close(ctx)
		rt.Close(ctx)
		return nil, err
	}
	exports := compiled.ExportedFunctions()
	for _, name := range []string{"gnome_alloc", "gnome_handle"} {
		if _, ok := exports[name]; !ok {
			rt.Close(ctx)
			return nil, fmt.Errorf("%w: %s", ErrMissingExport, name)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		rt.Close(ctx)
		return nil, fmt.Errorf("%w: memory", ErrMissingExport)
	}
	_, hasInit := exports["gnome_init"]
	refs := new(atomic.Int64)
	refs.Store(1)
	return &Module{rt: rt, compiled: compiled, limits: limits, hasInit: hasInit, refs: refs}, nil
}

// Instrumented reports whether the module stops at its deadlines by its
// own stop flag (instrument.go) rather than by the runtime.
func (m *Module) Instrumented() bool { return m.instrumented }

// Limits are the module's limits, normalised.
func (m *Module) Limits() Limits { return m.limits }

// Close frees the module and every instance made from it. Close the
// instances first (Instance.Close waits for a call in progress): an
// instance closed here under a running call would have its memory released
// beneath it.
// The compiled code is closed too: with a shared compilation cache, wazero
// would otherwise keep every module version's machine code for good.
func (m *Module) Close(ctx context.Context) error {
	if m.closed {
		return nil
	}
	m.closed = true
	if m.refs.Add(-1) > 0 {
		return nil // another handle (Share) still uses the code
	}
	err := m.compiled.Close(ctx)
	return errors.Join(err, m.rt.Close(ctx))
}

// Instance is one running actor. It is safe for concurrent use: calls are
// served one at a time.
type Instance struct {
	m      *Module
	mod    api.Module
	alloc  api.Function
	handle api.Function
	host   Host
	state  *callState
	// stop stops a call at its deadline (a zero stopper when the runtime
	// does).
	stop stopper

	mu     sync.Mutex
	broken error

	// running cancels the call in progress, if any (under runningMu, not
	// mu, which the call holds).
	runningMu sync.Mutex
	running   context.CancelFunc
}

// callState is what the host functions of one instance share with it.
// Guest code, and so every host function, runs only within a call, and an
// instance serves one call at a time: the fields need no lock.
type callState struct {
	host    Host
	limits  Limits
	pending []byte // the result take will copy

	// ctx is the call (or start) in progress.
	ctx   context.Context
	log   *slog.Logger
	actor string
	// logs and out are the output budgets of gnome.log and of stdout and
	// stderr together.
	logs, out      *budget
	stdout, stderr *outputWriter
}

// begin makes ctx the call in progress.
func (st *callState) begin(ctx context.Context) { st.ctx = ctx }

// end closes the lines the call left unfinished.
func (st *callState) end() {
	st.stdout.flush()
	st.stderr.flush()
}

func (st *callState) context() context.Context {
	if st.ctx == nil {
		return context.Background()
	}
	return st.ctx
}

// sleep is the guest's clock wait (WASI poll_oneoff on a clock, which is
// how Go's time.Sleep and every language runtime's sleep reach the host).
// It ends at the deadline of the call or start in progress, whichever
// comes first: wazero's own sleep cannot be interrupted, so a guest asleep
// for 20 s under a 1 s limit held its instance for the 20 s. The guest then
// stops at its next loop (its stop flag is set, instrument.go) or at its
// next instruction (on a runtime that closes on the context's end).
func (st *callState) sleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-st.context().Done():
	}
}

type stateKey struct{}

// Init is the init envelope.
type Init struct {
	Slug    string         `json:"slug"`
	Version int            `json:"version"`
	Config  map[string]any `json:"config"`
	// Script is set for a JavaScript actor: the scripts the platform's
	// JavaScript runtime module runs (docs/actors.md, section 9).
	Script *Script `json:"script,omitempty"`
}

// Script is a JavaScript actor's code as the init envelope carries it: the
// entry script's bundle path and the source of every script it may load,
// by bundle path.
type Script struct {
	Entry string            `json:"entry"`
	Files map[string]string `json:"files"`
}

// Instantiate starts an instance: WASI reactor initialisation, then the
// module's gnome_init with init, within the start limit.
func (m *Module) Instantiate(ctx context.Context, name string, host Host, init Init, log *slog.Logger) (*Instance, error) {
	st := &callState{host: host, limits: m.limits, log: log, actor: name, logs: newBudget(), out: newBudget()}
	st.stdout = &outputWriter{st: st, stream: "stdout"}
	st.stderr = &outputWriter{st: st, stream: "stderr"}
	wasmName := name
	if m.shared {
		wasmName = "" // anonymous: other actors' instances share the runtime
	}
	cfg := wazero.NewModuleConfig().
		WithName(wasmName).
		WithStartFunctions(). // reactors start with _initialize, called below
		WithSysWalltime().WithSysNanotime().WithNanosleep(st.sleep).
		WithOsyield(runtime.Gosched). // sched_yield gives up the processor (instrument.go)
		WithRandSource(rand.Reader).
		WithStdout(st.stdout).WithStderr(st.stderr)
	ictx, cancel := context.WithTimeout(context.WithValue(ctx, stateKey{}, st), m.limits.StartTimeout)
	defer cancel()
	st.begin(ictx)
	defer st.end()
	mod, err := m.rt.InstantiateModule(withLinearMemory(ictx), m.compiled, cfg)
	if err != nil {
		return nil, classify(ictx, fmt.Errorf("instantiate actor: %w", err))
	}
	inst := &Instance{m: m, mod: mod, alloc: mod.ExportedFunction("gnome_alloc"), handle: mod.ExportedFunction("gnome_handle"), host: host, state: st}
	if m.instrumented {
		// Instantiation ran no guest code: an instrumented module has no
		// start function, and the reactor's start is _initialize, below.
		inst.stop = newStopper(mod)
		if inst.stop.flag == nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("instantiate actor: %w: %s", ErrMissingExport, StopExport)
		}
	}
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if _, err := inst.call(ictx, "initialise actor", f); err != nil {
			mod.Close(ctx)
			return nil, err
		}
	}
	if m.hasInit {
		if init.Config == nil {
			init.Config = map[string]any{} // the envelope's config is an object
		}
		data, _ := json.Marshal(init)
		res, err := inst.invoke(ictx, mod.ExportedFunction("gnome_init"), data)
		if err != nil {
			mod.Close(ctx)
			return nil, err
		}
		if res != nil {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			_ = json.Unmarshal(res, &e)
			mod.Close(ctx)
			return nil, fmt.Errorf("%w: %s: %s", ErrInitRefused, e.Error.Code, e.Error.Message)
		}
	}
	return inst, nil
}

// Handle serves one request envelope and returns the response envelope. An
// error breaks the instance.
func (i *Instance) Handle(ctx context.Context, req []byte) ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.broken != nil {
		return nil, fmt.Errorf("%w: %v", ErrBroken, i.broken)
	}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, stateKey{}, i.state), i.m.limits.Timeout)
	defer cancel()
	i.runningMu.Lock()
	i.running = cancel
	i.runningMu.Unlock()
	defer func() {
		i.runningMu.Lock()
		i.running = nil
		i.runningMu.Unlock()
	}()
	i.state.begin(cctx)
	res, err := i.invoke(cctx, i.handle, req)
	i.state.end()
	if err == nil && res == nil {
		err = fmt.Errorf("%w: empty response", ErrBadResponse)
	}
	if err != nil {
		i.broken = err
		return nil, err
	}
	return res, nil
}

// Broken is the error that broke the instance, or nil.
func (i *Instance) Broken() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.broken
}

// Close stops the instance: a call in progress is stopped (it fails as if
// it had run out of time) and Close waits for it to return before the
// instance's memory is released, since guest code or a host function still
// running must never touch memory that is gone.
func (i *Instance) Close(ctx context.Context) error {
	i.runningMu.Lock()
	if i.running != nil {
		i.running()
	}
	i.runningMu.Unlock()
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.broken == nil {
		i.broken = errors.New("the instance was closed")
	}
	return i.mod.Close(ctx)
}

// invoke writes data into a guest buffer, calls fn with it and copies the
// (ptr<<32|len) result out; a zero result is nil.
func (i *Instance) invoke(ctx context.Context, fn api.Function, data []byte) ([]byte, error) {
	res, err := i.call(ctx, "allocate in actor", i.alloc, uint64(len(data)))
	if err != nil {
		return nil, err
	}
	ptr := uint32(res[0])
	if len(data) > 0 && !i.mod.Memory().Write(ptr, data) {
		return nil, fmt.Errorf("%w: allocation outside memory", ErrBadResponse)
	}
	out, err := i.call(ctx, "", fn, uint64(ptr), uint64(len(data)))
	if err != nil {
		return nil, err
	}
	packed := out[0]
	if packed == 0 {
		return nil, nil
	}
	rptr, rlen := uint32(packed>>32), uint32(packed)
	if int(rlen) > i.m.limits.MaxResponse {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrResponseTooLarge, rlen, i.m.limits.MaxResponse)
	}
	b, ok := i.mod.Memory().Read(rptr, rlen)
	if !ok {
		return nil, fmt.Errorf("%w: response outside memory", ErrBadResponse)
	}
	return append([]byte(nil), b...), nil
}

// call calls fn, one entry into the guest, stopped at ctx's end; what
// ("" for none) prefixes its error. Every call into the guest goes
// through here, so that none runs past its deadline.
func (i *Instance) call(ctx context.Context, what string, fn api.Function, params ...uint64) ([]uint64, error) {
	prefix := func(err error) error {
		if what == "" {
			return err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		// Out of time before it began: without this, an instrumented
		// guest would run until its first loop.
		return nil, i.timedOut(fmt.Errorf("%w: %v", ErrTimeout, prefix(err)))
	}
	disarm := i.stop.arm(ctx)
	res, err := fn.Call(ctx, params...)
	if disarm() && err != nil {
		// The guest trapped on its stop flag (or at the same moment).
		return nil, i.timedOut(fmt.Errorf("%w: stopped: %v", ErrTimeout, prefix(err)))
	}
	if err != nil {
		return nil, i.timedOut(classify(ctx, prefix(err)))
	}
	return res, nil
}

// timedOut closes an instrumented instance's module when err is a
// timeout, as a runtime that closes on the context's end closes it: its
// name is free again for the instance that replaces it, and nothing can
// enter it any more. It returns err.
func (i *Instance) timedOut(err error) error {
	if i.stop.flag != nil && errors.Is(err, ErrTimeout) {
		_ = i.mod.CloseWithExitCode(context.Background(), sys.ExitCodeDeadlineExceeded)
	}
	return err
}

// classify turns a wazero failure into one of this package's errors.
func classify(ctx context.Context, err error) error {
	var exit *sys.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.As(err, &exit):
		if exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled {
			return fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		return fmt.Errorf("%w with code %d", ErrExited, exit.ExitCode())
	}
	return fmt.Errorf("%w: %v", ErrTrap, err)
}
