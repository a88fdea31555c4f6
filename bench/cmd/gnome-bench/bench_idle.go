package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bus"
)

// The actoridle benchmark: what a worker's actors cost in memory, loaded
// and unloaded when idle, and how fast an unloaded actor answers again.
const (
	// idleLoaded is how many echo actors are loaded at once (and never
	// unloaded) to measure the memory of one.
	idleLoaded = 20
	// idleTotal experiments with the echo actor on one worker, of which
	// idleActive are called all along; the others are unloaded after
	// idleUnload without calls.
	idleTotal  = 200
	idleActive = 10
	idleUnload = 3 * time.Second
	// idleWakes is how many unloaded actors are called and timed.
	idleWakes = 5
)

// benchActorIdle runs the services as separate processes with one
// actor-worker. First the worker keeps every actor loaded
// (ACTOR_IDLE_UNLOAD_SECONDS=0): its resident memory is read with one echo
// actor loaded and again with idleLoaded more, all idle. Then that worker
// is replaced by one that unloads actors after idleUnload, the experiments
// are brought to idleTotal, idleActive of them called every 100 ms, and
// its memory is read once the others are idle. Last, idleWakes of the
// unloaded actors are called once each, timed from the request to the 200
// (the edge holds the call while the actor starts). The references are
// measured in this process with libs/actorhost: the memory of one more
// instance of the same module, and a Compile+Instantiate through an
// Engine that compiled it before.
func benchActorIdle(ctx context.Context, e *env) (*outcome, error) {
	wasm, err := e.echoWasm()
	if err != nil {
		return nil, err
	}
	z, err := newActorZipper(wasm)
	if err != nil {
		return nil, err
	}
	c, err := e.startIdleCluster(ctx)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	out := &outcome{}

	// Phase 1: actors stay loaded.
	w1, err := c.startWorker(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := c.deploy(ctx, z, 0, 1); err != nil {
		return nil, err
	}
	base := settledRSS(w1.cmd.Process.Pid)
	t := time.Now()
	if err := c.deploy(ctx, z, 1, 1+idleLoaded); err != nil {
		return nil, err
	}
	e.logf("%d more actors loaded in %s", idleLoaded, fmtDur(time.Since(t)))
	loaded := settledRSS(w1.cmd.Process.Pid)
	perActor := float64(loaded-base) / idleLoaded
	refPer, err := inProcessPerInstance(ctx, filepath.Join(e.tmp, "idle-refcache"), wasm)
	if err != nil {
		return nil, err
	}
	out.raw = append(out.raw, fmt.Sprintf("worker RSS with 1 echo actor loaded %s, with %d: %s; %s per actor (in process: %s per instance of the same module)",
		fmtBytes(base), 1+idleLoaded, fmtBytes(loaded), fmtBytes(int64(perActor)), fmtBytes(int64(refPer))))

	// Phase 2: a worker that unloads idle actors takes over.
	if _, err := w1.stop(30 * time.Second); err != nil {
		return nil, err
	}
	c.workers = nil
	w2, err := c.startWorker(ctx, idleUnload)
	if err != nil {
		return nil, err
	}
	peakOf := watchRSS(w2.cmd.Process.Pid, 0)
	for i := range idleActive { // the new worker starts the actors the old one handed over
		slug := idleSlug(i)
		if _, _, err := pollOK(ctx, expURL(c.base, slug, "/experiments/"+slug+"/api/ping"), 20*time.Millisecond, time.Minute); err != nil {
			return nil, fmt.Errorf("%s never served from the new worker: %w", slug, err)
		}
	}
	callers := c.keepCalling(ctx, idleActive, 100*time.Millisecond)
	t = time.Now()
	if err := c.deploy(ctx, z, 1+idleLoaded, idleTotal); err != nil {
		callers.stop()
		return nil, err
	}
	e.logf("%d experiments deployed in %s", idleTotal-1-idleLoaded, fmtDur(time.Since(t)))
	counts, err := c.waitStates(ctx, idleTotal-idleActive, 3*time.Minute)
	if err != nil {
		callers.stop()
		return nil, err
	}
	atIdle, _ := rss(w2.cmd.Process.Pid)
	// The worker gives the memory of unloaded actors back to the system
	// at most every 10 s (services/actorworker/idle.go): the last of them
	// unloaded just now.
	time.Sleep(11 * time.Second)
	peak := peakOf()
	var samples []int64
	for range 20 {
		if v, err := rss(w2.cmd.Process.Pid); err == nil {
			samples = append(samples, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	held := slices.Max(samples)
	served, failed := callers.stop()
	out.raw = append(out.raw,
		fmt.Sprintf("worker RSS with %d experiments, %d of them called every 100 ms, the others unloaded after %s: %s (max of 20 samples over 2 s, 11 s after the last unloaded; states %v); %s when the last unloaded; peak while they were deployed and loaded: %s",
			idleTotal, idleActive, idleUnload, fmtBytes(held), counts, fmtBytes(atIdle), fmtBytes(peak)),
		fmt.Sprintf("calls to the %d active actors during the phase: %d answered 200, %d not", idleActive, served, failed))

	// Phase 3: wake unloaded actors, one call each.
	engine, err := actorhost.NewEngine(filepath.Join(e.tmp, "idle-refcache"))
	if err != nil {
		return nil, err
	}
	defer engine.Close(context.WithoutCancel(ctx))
	if _, err := timeInProcess(ctx, "", engine, wasm); err != nil { // the engine compiles it once, as the worker did
		return nil, err
	}
	var wakes, wakeRefs []time.Duration
	for i := range idleWakes {
		slug := idleSlug(idleActive + i)
		took, status, body, err := c.timeCall(ctx, slug)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("the first call to unloaded %s: %d %s", slug, status, body)
		}
		ref, err := timeInProcess(ctx, "", engine, wasm)
		if err != nil {
			return nil, err
		}
		wakes, wakeRefs = append(wakes, took), append(wakeRefs, ref.total())
		out.raw = append(out.raw, fmt.Sprintf("wake %d (%s, unloaded): first call → 200 in %s (reference %s)", i+1, slug, fmtDur(took), ref))
	}

	const refMem = "in process: one more instance of the same module"
	const refAll = "all loaded: 1 actor's RSS + 199 × per actor"
	const refWake = "in-process Compile+Instantiate again, same Engine"
	allLoaded := float64(base) + (idleTotal-1)*perActor
	wakeLimit := below(100 * time.Millisecond)
	out.rows = []row{
		{metric: fmt.Sprintf("worker RSS per loaded idle actor (%d loaded)", idleLoaded), unit: unitBytes, got: perActor, ref: refPer, refName: refMem, target: noTarget()},
		{metric: fmt.Sprintf("worker RSS, %d experiments, %d active, idle unloaded after %s", idleTotal, idleActive, idleUnload), unit: unitBytes, got: float64(held), ref: allLoaded, refName: refAll, target: atMostAbs(1 << 30)},
		{metric: fmt.Sprintf("unloaded actor, first call → 200, median of %d", len(wakes)), unit: unitDur, got: float64(median(wakes)), ref: float64(median(wakeRefs)), refName: refWake, target: wakeLimit},
		{metric: fmt.Sprintf("unloaded actor, first call → 200, max of %d", len(wakes)), unit: unitDur, got: float64(slices.Max(wakes)), ref: float64(slices.Max(wakeRefs)), refName: refWake, target: wakeLimit},
	}
	return out, nil
}

func idleSlug(i int) string { return fmt.Sprintf("bench-idle-%03d", i) }

// settledRSS is pid's resident set size once it has settled: the smallest
// of ten samples over a second (a collection may be due).
func settledRSS(pid int) int64 {
	best := int64(0)
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if v, err := rss(pid); err == nil && (best == 0 || v < best) {
			best = v
		}
	}
	return best
}

// inProcessPerInstance is the growth of this process's resident memory per
// instance of wasm, each in a module of its own compiled through one
// Engine, as the worker runs its actors.
func inProcessPerInstance(ctx context.Context, cacheDir string, wasm []byte) (float64, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return 0, err
	}
	engine, err := actorhost.NewEngine(cacheDir)
	if err != nil {
		return 0, err
	}
	defer engine.Close(context.WithoutCancel(ctx))
	var mods []*actorhost.Module
	var insts []*actorhost.Instance
	defer func() {
		for i := range insts {
			insts[i].Close(ctx)
			mods[i].Close(ctx)
		}
	}()
	add := func() error {
		mod, inst, _, _, err := startInProcess(ctx, engine, wasm)
		if err != nil {
			return err
		}
		if _, err := inst.Handle(ctx, pingEnvelope()); err != nil {
			return err
		}
		mods, insts = append(mods, mod), append(insts, inst)
		return nil
	}
	if err := add(); err != nil {
		return 0, err
	}
	settle := func() int64 {
		runtime.GC()
		debug.FreeOSMemory()
		v, _ := rss(os.Getpid())
		return v
	}
	before := settle()
	for range idleLoaded {
		if err := add(); err != nil {
			return 0, err
		}
	}
	return float64(settle()-before) / idleLoaded, nil
}

// actorZipper writes experiments with the echo actor, its module
// compressed once.
type actorZipper struct {
	wasm  []byte // deflated
	crc   uint32
	plain uint64
}

func newActorZipper(wasm []byte) (*actorZipper, error) {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(wasm); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return &actorZipper{wasm: buf.Bytes(), crc: crc32.ChecksumIEEE(wasm), plain: uint64(len(wasm))}, nil
}

func (z *actorZipper) write(path, slug string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	m, _ := json.Marshal(map[string]any{
		"schema_version": "2.0", "slug": slug, "name": slug, "status": "active",
		"actor": map[string]any{"module": "actor.wasm"},
	})
	for name, body := range map[string][]byte{"manifest.json": m, "index.html": []byte("<!doctype html><h1>" + slug + "</h1>")} {
		w, err := zw.Create(name)
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
	}
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "actor.wasm", Method: zip.Deflate, CRC32: z.crc,
		CompressedSize64: uint64(len(z.wasm)), UncompressedSize64: z.plain, Modified: time.Now()})
	if err != nil {
		return err
	}
	if _, err := w.Write(z.wasm); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// idleCluster is the platform as separate processes, with one
// actor-worker at a time.
type idleCluster struct {
	*procCluster
	token  string
	states jetstream.KeyValue
}

// startIdleCluster starts the platform as processes without an
// actor-worker, and signs in.
func (e *env) startIdleCluster(ctx context.Context) (c *idleCluster, err error) {
	pc, err := e.startProcCluster(ctx, "actoridle")
	if err != nil {
		return nil, err
	}
	c = &idleCluster{procCluster: pc}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	for i := 0; i < 100; i++ { // the auth service may still be starting; each try from its own address, below the limit
		if c.token, _, err = login(ctx, c.base, fmt.Sprintf("198.51.101.%d", 1+i)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c, err
}

// startWorker starts an actor-worker that unloads actors idle for idle (0:
// never) and waits until it answers on the bus.
func (c *idleCluster) startWorker(ctx context.Context, idle time.Duration) (*proc, error) {
	p, err := c.procCluster.startWorker(ctx, "ACTOR_IDLE_UNLOAD_SECONDS="+strconv.Itoa(int(idle/time.Second)))
	if err != nil || c.states != nil {
		return p, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	if c.states, err = js.KeyValue(ctx, bus.BucketActorState); err != nil {
		return nil, err
	}
	return p, nil
}

// deploy uploads the experiments numbered from..to-1 and waits until each
// one's actor answers.
func (c *idleCluster) deploy(ctx context.Context, z *actorZipper, from, to int) error {
	path := filepath.Join(c.e.tmp, "actoridle.zip")
	defer os.Remove(path)
	for i := from; i < to; i++ {
		slug := idleSlug(i)
		if err := z.write(path, slug); err != nil {
			return err
		}
		code, body, err := postZip(ctx, c.base, c.token, path)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("upload %s: %d %v %s", slug, code, err, body)
		}
	}
	for i := from; i < to; i++ {
		slug := idleSlug(i)
		if _, _, err := pollOK(ctx, expURL(c.base, slug, "/experiments/"+slug+"/api/ping"), 20*time.Millisecond, 2*time.Minute); err != nil {
			return fmt.Errorf("%s never served: %w", slug, err)
		}
	}
	return nil
}

// callers call the first n experiments' actors in the background.
type callers struct {
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	served, failed atomic.Int64
}

func (c *idleCluster) keepCalling(ctx context.Context, n int, every time.Duration) *callers {
	ctx, cancel := context.WithCancel(ctx)
	cl := &callers{cancel: cancel}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: dialLocal}}
	for i := range n {
		slug := idleSlug(i)
		url := expURL(c.base, slug, "/experiments/"+slug+"/api/ping")
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						cl.failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					cl.served.Add(1)
				} else {
					cl.failed.Add(1)
				}
			}
		}()
	}
	return cl
}

func (cl *callers) stop() (served, failed int64) {
	cl.cancel()
	cl.wg.Wait()
	return cl.served.Load(), cl.failed.Load()
}

// waitStates waits until at least idle of the benchmark's actors show idle
// and returns the count of each state.
func (c *idleCluster) waitStates(ctx context.Context, idle int, limit time.Duration) (map[string]int, error) {
	var counts map[string]int
	for end := time.Now().Add(limit); time.Now().Before(end); {
		counts = map[string]int{}
		for i := range idleTotal {
			e, err := c.states.Get(ctx, idleSlug(i))
			var st actorapi.State
			if err != nil || json.Unmarshal(e.Value(), &st) != nil {
				counts["none"]++
				continue
			}
			counts[st.State]++
		}
		if counts[actorapi.StateIdle] >= idle {
			return counts, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("fewer than %d actors idle after %s: %v", idle, limit, counts)
}

// timeCall sends one GET of slug's ping route, on a connection of its own,
// and times it to the end of the answer.
func (c *idleCluster) timeCall(ctx context.Context, slug string) (time.Duration, int, string, error) {
	client := pollClient(15 * time.Second)
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, expURL(c.base, slug, "/experiments/"+slug+"/api/ping"), nil)
	t := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return time.Since(t), resp.StatusCode, string(b), nil
}
