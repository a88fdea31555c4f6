package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// benchSlugJS is the experiment of the jsactor benchmark; its actor is
// bench/actors/echo-js, the JavaScript twin of bench/actors/echo.
const benchSlugJS = "bench-actor-js"

// jsEchoScript is the JavaScript echo actor, read relative to the
// repository root, where gnome-bench runs (as -gnome's bin/gnome).
const jsEchoScript = "bench/actors/echo-js/actor.js"

// jsRuntimeModule is the platform's JavaScript runtime as make build
// embeds it, read relative to the repository root: the cold start's
// in-process reference compiles it.
const jsRuntimeModule = "services/actorworker/jsruntime/dist/jsruntime.wasm"

// jsWarmStarts is how many warm starts of each actor jsactor times.
const jsWarmStarts = 5

// jsActorZip writes experiment slug with the JavaScript echo actor (default
// limits) in status, a page and the script.
func jsActorZip(path, slug, status string, script []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	m, _ := json.Marshal(map[string]any{
		"schema_version": "2.0", "slug": slug, "name": "Bench JavaScript actor", "status": status,
		"actor": map[string]any{"script": "actor.js"},
	})
	for _, file := range []struct {
		name string
		body []byte
	}{{"manifest.json", m}, {"index.html", []byte("<!doctype html><h1>bench JavaScript actor</h1>")}, {"actor.js", script}} {
		w, err := zw.Create(file.name)
		if err != nil {
			return err
		}
		if _, err := w.Write(file.body); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// uploadJSActor uploads the JavaScript echo actor as benchSlugJS in status.
func (e *env) uploadJSActor(ctx context.Context, base, token, status string) error {
	script, err := os.ReadFile(jsEchoScript)
	if err != nil {
		return fmt.Errorf("the JavaScript echo actor (run gnome-bench from the repository root): %w", err)
	}
	path := filepath.Join(e.tmp, benchSlugJS+"-"+status+".zip")
	if err := jsActorZip(path, benchSlugJS, status, script); err != nil {
		return err
	}
	defer os.Remove(path)
	code, body, err := postZip(ctx, base, token, path)
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("upload %s: %d %v %s", benchSlugJS, code, err, body)
	}
	return nil
}

// benchJSActor measures a JavaScript actor beside the Go echo actor in one
// gnome serve on a fresh DATA_DIR: the first start of the JavaScript actor
// (experiment made active → first 200 of GET /ping), with the compilation
// cache empty, so that the platform's JavaScript runtime module is compiled
// then, beside the Go actor's first start on the same server; warm starts of
// each, stopping and starting it again on the same worker; the echo
// route's req/s at -conns connections, alternating the two actors round by
// round; and the start of each in a restarted gnome serve on the same
// DATA_DIR, whose compilation cache is on disk only.
func benchJSActor(ctx context.Context, e *env) (*outcome, error) {
	const name = "jsactor"
	g, err := e.startAccounts(ctx, name)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			g.stop(30 * time.Second)
		}
	}()
	ready := time.Now()
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.60")
	if err != nil {
		return nil, err
	}
	b, err := openActorBuckets(ctx, g.natsAddr, g.dataDir)
	if err != nil {
		return nil, err
	}
	defer b.nc.Close()
	if err := e.uploadJSActor(ctx, base, token, experiments.StatusDraft); err != nil {
		return nil, err
	}
	if err := e.uploadActor(ctx, base, token, experiments.StatusDraft); err != nil {
		return nil, err
	}
	out := &outcome{}

	// Cold: the JavaScript actor first, nothing compiled yet; then the Go
	// actor, whose module is new to the cache too.
	pid := g.cmd.Process.Pid
	sinceReady := time.Since(ready)
	cpu := sampleCPU(pid)
	coldJS, err := e.timeActorStartOf(ctx, base, token, benchSlugJS)
	if err != nil {
		return nil, fmt.Errorf("cold start of the JavaScript actor: %w\n%s", err, g.tail())
	}
	coldJSCPU := cpuBetween(cpu, sampleCPU(pid))
	cpu = sampleCPU(pid)
	coldGo, err := e.timeActorStartOf(ctx, base, token, benchSlug)
	if err != nil {
		return nil, fmt.Errorf("cold start of the Go actor: %w\n%s", err, g.tail())
	}
	coldGoCPU := cpuBetween(cpu, sampleCPU(pid))
	e.logf("cold start: JavaScript %s; Go %s", coldJS, coldGo)
	out.raw = append(out.raw,
		fmt.Sprintf("cold start of the JavaScript actor, %s after gnome serve answered /health: %s; %s", fmtDur(sinceReady), coldJS, coldJSCPU),
		fmt.Sprintf("cold start of the Go echo actor, next: %s; %s", coldGo, coldGoCPU))

	// The runtime module compiled in this process on an empty cache: the
	// part of the cold start that is the compiler's.
	compileRef, err := compileInProcess(ctx, filepath.Join(e.tmp, "jsactor-refcache"), jsRuntimeModule)
	if err != nil {
		return nil, err
	}
	out.raw = append(out.raw, fmt.Sprintf("in-process Compile of %s on an empty cache: %s", jsRuntimeModule, fmtDur(compileRef)))

	// Warm: stop and start each again, alternating; the other stays up.
	var warmJS, warmGo []time.Duration
	for i := 1; i <= jsWarmStarts; i++ {
		for _, a := range []struct {
			slug string
			to   *[]time.Duration
			name string
		}{{benchSlugJS, &warmJS, "JavaScript"}, {benchSlug, &warmGo, "Go"}} {
			if err := stopActorOf(ctx, base, token, a.slug, b); err != nil {
				return nil, err
			}
			r, err := e.timeActorStartOf(ctx, base, token, a.slug)
			if err != nil {
				return nil, fmt.Errorf("warm start %d of the %s actor: %w\n%s", i, a.name, err, g.tail())
			}
			*a.to = append(*a.to, r.took)
			out.raw = append(out.raw, fmt.Sprintf("warm start %d of the %s actor: %s", i, a.name, r))
		}
	}
	e.logf("warm starts: JavaScript %s; Go %s", durList(warmJS), durList(warmGo))

	// Throughput, alternating the two routes round by round.
	js, goURL := pingURLOf(base, benchSlugJS), pingURLOf(base, benchSlug)
	var jsRuns, goRuns []loadResult
	for round := 1; round <= e.rounds; round++ {
		j, err := e.measureServer(ctx, js, pid)
		if err != nil {
			return nil, err
		}
		gr, err := e.measureServer(ctx, goURL, pid)
		if err != nil {
			return nil, err
		}
		jsRuns, goRuns = append(jsRuns, j), append(goRuns, gr)
		e.logf("round %d JavaScript ping @%d conns %s", round, e.conns, j)
		e.logf("round %d Go ping         @%d conns %s", round, e.conns, gr)
		out.raw = append(out.raw,
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @%d conns: %s", round, benchSlugJS, e.conns, j),
			fmt.Sprintf("round %d, GET /experiments/%s/api/ping @%d conns: %s", round, benchSlug, e.conns, gr))
	}
	j, gr := best(jsRuns), best(goRuns)

	// A new gnome serve on the same DATA_DIR: the compiled modules are in
	// the cache directory, and nothing of them in memory.
	for _, slug := range []string{benchSlugJS, benchSlug} {
		if err := stopActorOf(ctx, base, token, slug, b); err != nil {
			return nil, err
		}
	}
	stopped = true
	if _, err := g.stop(30 * time.Second); err != nil {
		return nil, err
	}
	g2, err := e.startGnome(filepath.Join(e.tmp, name+"-data"), name+"-restart.log",
		"ADMIN_EMAIL="+benchAdmin, "ADMIN_PASSWORD="+benchPassword, "TRUSTED_PROXIES=127.0.0.1/32")
	if err != nil {
		return nil, err
	}
	defer g2.stop(30 * time.Second)
	base = "http://" + g2.httpAddr
	if _, err := g2.waitReady(ctx, base+"/health", 5*time.Millisecond, 60*time.Second); err != nil {
		return nil, err
	}
	if token, _, err = login(ctx, base, "198.51.100.61"); err != nil {
		return nil, err
	}
	diskJS, err := e.timeActorStartOf(ctx, base, token, benchSlugJS)
	if err != nil {
		return nil, fmt.Errorf("start of the JavaScript actor in a restarted gnome serve: %w\n%s", err, g2.tail())
	}
	diskGo, err := e.timeActorStartOf(ctx, base, token, benchSlug)
	if err != nil {
		return nil, fmt.Errorf("start of the Go actor in a restarted gnome serve: %w\n%s", err, g2.tail())
	}
	e.logf("starts in a restarted gnome serve: JavaScript %s; Go %s", diskJS, diskGo)
	out.raw = append(out.raw,
		fmt.Sprintf("start of the JavaScript actor in a restarted gnome serve (the cache on disk): %s", diskJS),
		fmt.Sprintf("start of the Go echo actor, next: %s", diskGo))

	how := fmt.Sprintf("best of %d", e.rounds)
	const (
		refCold = "Go echo actor's first start, same server"
		refWarm = "Go echo actor, same server"
		refLoad = "Go echo actor, same server"
	)
	out.rows = []row{
		{metric: "JavaScript actor cold start, empty cache, active→first 200", unit: unitDur, got: float64(coldJS.took), ref: float64(coldGo.took), refName: refCold, target: below(5 * time.Second)},
		{metric: "JavaScript actor cold start, empty cache, active→first 200", unit: unitDur, got: float64(coldJS.took), ref: float64(compileRef), refName: "in-process Compile of the runtime module, empty cache", target: noTarget()},
		{metric: fmt.Sprintf("JavaScript actor warm start, active→first 200, median of %d", len(warmJS)), unit: unitDur, got: float64(median(warmJS)), ref: float64(median(warmGo)), refName: refWarm, target: below(100 * time.Millisecond)},
		{metric: fmt.Sprintf("JavaScript actor warm start, max of %d", len(warmJS)), unit: unitDur, got: float64(slices.Max(warmJS)), ref: float64(slices.Max(warmGo)), refName: refWarm, target: below(100 * time.Millisecond)},
		{metric: "JavaScript actor start in a restarted gnome serve, active→first 200", unit: unitDur, got: float64(diskJS.took), ref: float64(diskGo.took), refName: "Go echo actor, same restarted server", target: noTarget()},
		{metric: fmt.Sprintf("JavaScript echo req/s @%d conns (%s)", e.conns, how), unit: unitRate, got: j.rps, ref: gr.rps, refName: refLoad, target: atLeastRate(2000)},
		{metric: fmt.Sprintf("JavaScript echo p50 @%d conns (%s)", e.conns, how), unit: unitDur, got: float64(j.p50), ref: float64(gr.p50), refName: refLoad, target: noTarget()},
		{metric: fmt.Sprintf("JavaScript echo p99 @%d conns (%s)", e.conns, how), unit: unitDur, got: float64(j.p99), ref: float64(gr.p99), refName: refLoad, target: noTarget()},
		{metric: "JavaScript echo server CPU per request", unit: unitDur, got: cpuPerReq(jsRuns), ref: cpuPerReq(goRuns), refName: refLoad, target: noTarget()},
		{metric: "JavaScript echo success (worst run)", unit: unitPct, got: j.success, ref: gr.success, refName: refLoad, target: bothFull()},
	}
	return out, nil
}

// compileInProcess compiles the module at path through a new engine on an
// empty cache directory, as a worker's first JavaScript actor does, and
// returns how long Compile took.
func compileInProcess(ctx context.Context, cacheDir, path string) (time.Duration, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("the JavaScript runtime module (make build, run from the repository root): %w", err)
	}
	engine, err := actorhost.NewEngine(cacheDir)
	if err != nil {
		return 0, err
	}
	defer engine.Close(context.WithoutCancel(ctx))
	t := time.Now()
	mod, err := engine.Compile(ctx, wasm, actorhost.Limits{})
	took := time.Since(t)
	if err != nil {
		return 0, fmt.Errorf("in-process compile of the JavaScript runtime: %w", err)
	}
	mod.Close(ctx)
	return took, nil
}
