package actorworker

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/services/actorworker/jsruntime"
)

// JavaScript actors (docs/architecture.md, "How a JavaScript actor
// starts"). A manifest's actor.script names a script instead of a module:
// the module such an actor runs is the platform's JavaScript runtime
// (package jsruntime), the same for every JavaScript actor, and its init
// envelope carries the scripts. The runtime is 18 MB of WebAssembly whose
// compilation takes seconds, so it is compiled once per worker and memory
// limit, and every JavaScript actor instantiates that one compiled module
// (actorhost.Module.Share): a JavaScript actor's start costs its scripts.
// The scripts are read from the verified bundle with the fetch that would
// read a module, and kept in the module cache (idlemodules.go) in its
// place.

// jsRuntimes is the worker's compiled JavaScript runtime, by memory limit
// (a compiled module's runtime holds the memory limit).
type jsRuntimes struct {
	// source is the runtime module's bytes (jsruntime.Module; tests set
	// their own).
	source func() ([]byte, error)

	// mu is held through a compilation: the JavaScript actors that start
	// meanwhile wait for it instead of compiling it again.
	mu   sync.Mutex
	mods map[int]*actorhost.Module
	// compiles counts the runtime's compilations, for tests and the log.
	compiles int
}

// jsRuntime is a handle on the compiled JavaScript runtime for limits,
// compiled now if this worker has not yet compiled it for limits' memory.
func (s *Service) jsRuntime(ctx context.Context, limits actorhost.Limits) (*actorhost.Module, error) {
	j := &s.js
	j.mu.Lock()
	defer j.mu.Unlock()
	limits = limits.Normalize()
	if m := j.mods[limits.MemoryMB]; m != nil {
		return m.Share(limits)
	}
	wasm, err := j.source()
	if err != nil {
		// A build without the runtime (ErrNotBuilt) stays so until the
		// platform is rebuilt.
		return nil, permanent("load the JavaScript runtime: %w", err)
	}
	t := time.Now()
	m, err := s.engine.Compile(ctx, wasm, limits)
	took := time.Since(t)
	s.metrics.compile.Observe(took.Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, permanent("compile the JavaScript runtime: %w", err)
	}
	j.compiles++
	s.d.Log.Info("JavaScript runtime compiled", "memory_mb", limits.MemoryMB, "took_ms", took.Milliseconds(), "bytes", len(wasm))
	if j.mods == nil {
		j.mods = map[int]*actorhost.Module{}
	}
	j.mods[limits.MemoryMB] = m
	return m.Share(limits)
}

// jsCompiles is how many times this worker compiled the runtime.
func (s *Service) jsCompiles() int {
	s.js.mu.Lock()
	defer s.js.mu.Unlock()
	return s.js.compiles
}

// closeJS frees the compiled runtimes when the worker stops; actors still
// holding a handle keep theirs until they close it.
func (s *Service) closeJS(ctx context.Context) {
	s.js.mu.Lock()
	defer s.js.mu.Unlock()
	for k, m := range s.js.mods {
		_ = m.Close(ctx)
		delete(s.js.mods, k)
	}
}

// compileScript is compile for a JavaScript actor: its scripts (through
// the module cache) on a copy of sp, and a handle on the shared runtime.
func (s *Service) compileScript(ctx context.Context, sp *spec) (*actorhost.Module, *spec, error) {
	raw, err := s.moduleOf(ctx, sp)
	if err != nil {
		return nil, nil, err
	}
	var script actorhost.Script
	if err := json.Unmarshal(raw, &script); err != nil || script.Entry == "" {
		s.dropModule(sp) // not scripts: fetched again on the next try
		return nil, nil, fmt.Errorf("read the cached scripts of %s: %w", sp.slug, errors.Join(err, errors.New("no entry script")))
	}
	mod, err := s.jsRuntime(ctx, sp.limits)
	if err != nil {
		return nil, nil, err
	}
	run := *sp
	run.script = &script
	return mod, &run, nil
}

// scriptsIn reads a JavaScript actor's scripts out of its verified bundle:
// the entry script, and every .js, .cjs, .mjs and .json file in its folder
// and below, at most s.tune.MaxModule bytes together, as the JSON of an
// actorhost.Script (what the module cache keeps).
func (s *Service) scriptsIn(zr *zip.Reader, sp *spec) ([]byte, error) {
	entry := path.Clean(sp.actor.Script)
	dir := bundle.ScriptDir(entry)
	limit := s.tune.MaxModule
	files := map[string]string{}
	var total int64
	found := false
	for _, zf := range zr.File {
		name := zf.Name
		// The upload stored only clean relative names; a bundle that
		// says otherwise gives the runtime none of them.
		if zf.FileInfo().IsDir() || !fs.ValidPath(name) || !bundle.ScriptSource(name) || !bundle.InScriptDir(dir, name) {
			continue
		}
		found = found || name == entry
		if total+int64(min(zf.UncompressedSize64, uint64(limit)+1)) > limit {
			return nil, permanent("the actor's scripts (the .js, .cjs, .mjs and .json files in %s and below) are over the limit of %d bytes together", scriptDirName(dir), limit)
		}
		src, err := readEntry(zf, limit-total)
		if err != nil {
			return nil, err
		}
		total += int64(len(src))
		if !utf8.Valid(src) {
			if name != entry {
				continue // not text: require() does not find it, and says so
			}
			return nil, permanent("actor script %s is not UTF-8 text", name)
		}
		files[name] = string(src)
	}
	if !found {
		return nil, permanent("actor script %s is not in the bundle", entry)
	}
	return json.Marshal(actorhost.Script{Entry: entry, Files: files})
}

// readEntry reads a file of the bundle, refusing it past limit bytes.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, permanent("open actor script %s: %w", zf.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, permanent("read actor script %s: %w", zf.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, permanent("the actor's scripts are over the limit: %s does not fit", zf.Name)
	}
	return b, nil
}

func scriptDirName(dir string) string {
	if dir == "" {
		return "the bundle's root"
	}
	return dir + "/"
}

// isScriptError reports whether err is the runtime's refusal of the
// scripts at start (a syntax error, a top-level exception): the same
// scripts fail the same way on every try.
func isScriptError(sp *spec, err error) bool {
	return sp.actor.Script != "" && errors.Is(err, actorhost.ErrInitRefused)
}

// defaultJSRuntime is the embedded runtime module.
func defaultJSRuntime() ([]byte, error) { return jsruntime.Module() }
