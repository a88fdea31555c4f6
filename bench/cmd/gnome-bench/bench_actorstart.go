package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// Counts of the actorstart benchmark: each server gives one cold start,
// warmPerServer warm ones, and one in a restarted worker.
const (
	startServers  = 3
	warmPerServer = 3
)

// actorStartPoll is how often the actor's route is polled while timing a
// start.
const actorStartPoll = 5 * time.Millisecond

// startFigures are the starts of one server and their references.
type startFigures struct {
	cold, coldRef time.Duration
	warm, warmRef []time.Duration
	disk, diskRef time.Duration
	raw           []string
}

// benchActorStart times an actor's start from the request that makes its
// experiment active (the event that queues the start job) to the first 200
// of its route: cold, on a fresh DATA_DIR with an empty compilation cache;
// warm, stopping and starting it again on the same worker; and in a
// restarted gnome serve, whose compilation cache is on disk only. Beside
// each, the same module compiled and instantiated in this process through
// libs/actorhost in the same state of cache.
func benchActorStart(ctx context.Context, e *env) (*outcome, error) {
	wasm, err := e.echoWasm()
	if err != nil {
		return nil, err
	}
	out := &outcome{}
	var cold, coldRef, warm, warmRef, disk, diskRef []time.Duration
	for i := 1; i <= startServers; i++ {
		f, err := e.actorStartServer(ctx, i, wasm)
		if err != nil {
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
		cold, coldRef = append(cold, f.cold), append(coldRef, f.coldRef)
		warm, warmRef = append(warm, f.warm...), append(warmRef, f.warmRef...)
		disk, diskRef = append(disk, f.disk), append(diskRef, f.diskRef)
		out.raw = append(out.raw, f.raw...)
	}
	out.raw = append(out.raw,
		"cold starts: "+durList(cold)+"; reference: "+durList(coldRef),
		"warm starts: "+durList(warm)+"; reference: "+durList(warmRef),
		"starts in a restarted gnome serve: "+durList(disk)+"; reference: "+durList(diskRef))
	const (
		refCold = "in-process Compile+Instantiate, empty cache"
		refWarm = "in-process Compile+Instantiate again, same Engine"
		refDisk = "in-process Compile+Instantiate, new Engine on the filled cache"
	)
	coldLimit, warmLimit := below(3*time.Second), below(100*time.Millisecond)
	out.rows = []row{
		{metric: fmt.Sprintf("cold start, active→first 200, median of %d", len(cold)), unit: unitDur, got: float64(median(cold)), ref: float64(median(coldRef)), refName: refCold, target: coldLimit},
		{metric: fmt.Sprintf("cold start, max of %d", len(cold)), unit: unitDur, got: float64(slices.Max(cold)), ref: float64(slices.Max(coldRef)), refName: refCold, target: coldLimit},
		{metric: fmt.Sprintf("warm start, active→first 200, median of %d", len(warm)), unit: unitDur, got: float64(median(warm)), ref: float64(median(warmRef)), refName: refWarm, target: warmLimit},
		{metric: fmt.Sprintf("warm start, max of %d", len(warm)), unit: unitDur, got: float64(slices.Max(warm)), ref: float64(slices.Max(warmRef)), refName: refWarm, target: warmLimit},
		{metric: fmt.Sprintf("warm start after a restart, median of %d", len(disk)), unit: unitDur, got: float64(median(disk)), ref: float64(median(diskRef)), refName: refDisk, target: warmLimit},
	}
	return out, nil
}

// actorStartServer runs the starts of one gnome serve on a fresh DATA_DIR,
// then of a second gnome serve on the same DATA_DIR.
func (e *env) actorStartServer(ctx context.Context, i int, wasm []byte) (*startFigures, error) {
	name := fmt.Sprintf("actorstart-%d", i)
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
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, fmt.Sprintf("198.51.100.%d", 30+2*i))
	if err != nil {
		return nil, err
	}
	b, err := openActorBuckets(ctx, g.natsAddr, g.dataDir)
	if err != nil {
		return nil, err
	}
	defer b.nc.Close()
	if err := e.uploadActor(ctx, base, token, experiments.StatusDraft); err != nil {
		return nil, err
	}
	f := &startFigures{}

	// The reference's cache directory starts empty, like the server's.
	refDir := filepath.Join(e.tmp, name+"-refcache")
	coldRef, err := timeInProcess(ctx, refDir, nil, wasm)
	if err != nil {
		return nil, err
	}
	f.coldRef = coldRef.total()
	cold, err := e.timeActorStart(ctx, base, token)
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	f.cold = cold.took
	f.raw = append(f.raw, fmt.Sprintf("server %d, cold start: %s (reference %s)", i, cold, coldRef))

	// The reference's engine has compiled the module once, as the worker's
	// has by now.
	engine, err := actorhost.NewEngine(refDir)
	if err != nil {
		return nil, err
	}
	defer engine.Close(context.WithoutCancel(ctx))
	if _, err := timeInProcess(ctx, "", engine, wasm); err != nil {
		return nil, err
	}
	for j := 1; j <= warmPerServer; j++ {
		if err := stopActor(ctx, base, token, b); err != nil {
			return nil, err
		}
		ref, err := timeInProcess(ctx, "", engine, wasm)
		if err != nil {
			return nil, err
		}
		warm, err := e.timeActorStart(ctx, base, token)
		if err != nil {
			return nil, fmt.Errorf("warm start %d: %w", j, err)
		}
		f.warm, f.warmRef = append(f.warm, warm.took), append(f.warmRef, ref.total())
		f.raw = append(f.raw, fmt.Sprintf("server %d, warm start %d: %s (reference %s)", i, j, warm, ref))
	}

	// A new gnome serve on the same DATA_DIR: the compiled module is in the
	// cache directory, and nothing of it in memory.
	if err := stopActor(ctx, base, token, b); err != nil {
		return nil, err
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
	if token, _, err = login(ctx, base, fmt.Sprintf("198.51.100.%d", 31+2*i)); err != nil {
		return nil, err
	}
	diskRef, err := timeInProcess(ctx, refDir, nil, wasm)
	if err != nil {
		return nil, err
	}
	f.diskRef = diskRef.total()
	disk, err := e.timeActorStart(ctx, base, token)
	if err != nil {
		return nil, fmt.Errorf("start after a restart: %w", err)
	}
	f.disk = disk.took
	f.raw = append(f.raw, fmt.Sprintf("server %d, start in a restarted gnome serve: %s (reference %s)", i, disk, diskRef))
	return f, nil
}

// actorBuckets are the actor-worker's buckets, read by the benchmark to know
// when an actor has stopped.
type actorBuckets struct {
	nc             *nats.Conn
	leases, states jetstream.KeyValue
}

// openActorBuckets connects to the NATS server at addr and opens the
// buckets, waiting for the actor-worker to have created them.
func openActorBuckets(ctx context.Context, addr, dataDir string) (*actorBuckets, error) {
	auth, err := adminAuth(dataDir)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("nats://"+addr, nats.Name("gnome-bench"), nats.Timeout(5*time.Second), auth)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b := &actorBuckets{nc: nc}
	for _, bk := range []struct {
		name string
		to   *jetstream.KeyValue
	}{{bus.BucketActorLeases, &b.leases}, {bus.BucketActorState, &b.states}} {
		for try := 0; ; try++ {
			if *bk.to, err = js.KeyValue(ctx, bk.name); err == nil {
				break
			}
			if try == 100 {
				nc.Close()
				return nil, fmt.Errorf("open bucket %s: %w", bk.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return b, nil
}

// waitKeyGone polls kv every 2 ms until key is absent, for at most limit.
func waitKeyGone(ctx context.Context, kv jetstream.KeyValue, key string, limit time.Duration) error {
	for end := time.Now().Add(limit); time.Now().Before(end); {
		_, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s of bucket %s still there after %s", key, kv.Bucket(), limit)
}

// patchStatus sets the benchmark experiment's status.
func patchStatus(ctx context.Context, base, token, status string) error {
	return patchStatusOf(ctx, base, token, benchSlug, status)
}

// patchStatusOf sets experiment slug's status.
func patchStatusOf(ctx context.Context, base, token, slug, status string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, base+"/api/experiments/"+slug, bytes.NewReader([]byte(`{"status":"`+status+`"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH status %s: %d %s", status, resp.StatusCode, body)
	}
	return nil
}

// stopActor puts the experiment back to draft and waits until the worker
// has stopped its actor: the lease released and then the state removed,
// the last steps before the worker forgets it.
func stopActor(ctx context.Context, base, token string, b *actorBuckets) error {
	return stopActorOf(ctx, base, token, benchSlug, b)
}

// stopActorOf is stopActor for experiment slug.
func stopActorOf(ctx context.Context, base, token, slug string, b *actorBuckets) error {
	if err := patchStatusOf(ctx, base, token, slug, experiments.StatusDraft); err != nil {
		return err
	}
	if err := waitKeyGone(ctx, b.leases, slug, 10*time.Second); err != nil {
		return err
	}
	if err := waitKeyGone(ctx, b.states, slug, 10*time.Second); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond) // the worker forgets the actor right after
	return nil
}

// startRun is one timed start.
type startRun struct {
	took, patched time.Duration
	polls         int
}

func (r startRun) String() string {
	return fmt.Sprintf("%s to the first 200 (the PATCH answered after %s; %d polls)", fmtDur(r.took), fmtDur(r.patched), r.polls)
}

// timeActorStart makes the experiment active and times it from the PATCH
// to the first 200 of the actor's route, polled every actorStartPoll.
func (e *env) timeActorStart(ctx context.Context, base, token string) (startRun, error) {
	return e.timeActorStartOf(ctx, base, token, benchSlug)
}

// timeActorStartOf is timeActorStart for experiment slug, whose actor
// answers GET /ping as the echo actors do.
func (e *env) timeActorStartOf(ctx context.Context, base, token, slug string) (startRun, error) {
	t := time.Now()
	if err := patchStatusOf(ctx, base, token, slug, experiments.StatusActive); err != nil {
		return startRun{}, err
	}
	patched := time.Since(t)
	at, polls, err := pollOK(ctx, pingURLOf(base, slug), actorStartPoll, 30*time.Second)
	if err != nil {
		return startRun{}, err
	}
	return startRun{took: at.Sub(t), patched: patched, polls: polls}, nil
}

// inProcessStart is a start of the module in this process.
type inProcessStart struct{ compile, instantiate time.Duration }

func (r inProcessStart) total() time.Duration { return r.compile + r.instantiate }

func (r inProcessStart) String() string {
	return fmt.Sprintf("%s: Compile %s + Instantiate %s", fmtDur(r.total()), fmtDur(r.compile), fmtDur(r.instantiate))
}

// timeInProcess compiles and instantiates wasm in this process, through
// engine or else through a new engine on cacheDir, and returns the time
// each took; everything is closed again, the engine only if made here.
func timeInProcess(ctx context.Context, cacheDir string, engine *actorhost.Engine, wasm []byte) (inProcessStart, error) {
	if engine == nil {
		if err := os.MkdirAll(cacheDir, 0o700); err != nil {
			return inProcessStart{}, err
		}
		var err error
		if engine, err = actorhost.NewEngine(cacheDir); err != nil {
			return inProcessStart{}, err
		}
		defer engine.Close(context.WithoutCancel(ctx))
	}
	mod, inst, compiled, instantiated, err := startInProcess(ctx, engine, wasm)
	if err != nil {
		return inProcessStart{}, fmt.Errorf("in-process actor: %w", err)
	}
	inst.Close(ctx)
	mod.Close(ctx)
	return inProcessStart{compiled, instantiated}, nil
}
