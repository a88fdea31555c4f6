// Package actorworker is the actor-worker service: it hosts experiments'
// backends as sandboxed WebAssembly actors, started as background jobs.
//
// One actor runs per active experiment that declares one, on the worker
// instance holding its lease in actor_leases (one key per slug, renewed every
// second, expiring unless renewed). An actor is started by a job on
// JOBS_ACTOR: every instance follows the experiment events and enqueues one
// (de-duplicated by job ID) for a version with an actor that becomes active;
// every instance watches the leases and enqueues one when a lease of an
// active actor expires or is released; and every few seconds each instance
// reconciles what runs with what should. The instance that takes the job and
// wins the lease fetches the module from the bundles object store, compiles
// it through the compilation cache under DATA_DIR, instantiates it, calls its
// init export and answers on actorapi.Subject(slug).
//
// Calls are served one at a time from a bounded mailbox. A trap, a timeout
// or running out of memory discards the instance; a new one starts after an
// exponential back-off, without limit. Instances start on a goroutine of
// their own, so that calls are answered while a start runs: they wait for
// it, or, when the actor is failing to start, get 503 with Retry-After at
// once. A module that cannot be loaded at all (not WebAssembly, a missing
// export, an import the platform lacks, tables over the bound, missing from
// its bundle) is failed, without retries, until the experiment changes. The
// actor's state lives in actor_state for every edge to show. An actor
// without calls for ACTOR_IDLE_UNLOAD_SECONDS is unloaded and shown idle;
// the next call starts it again (idle.go).
package actorworker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Name is the service's name on the bus.
const Name = "actorworker"

// Durable is the consumer every actor-worker instance shares for start jobs.
const Durable = "actor-start"

// tuning holds the worker's timings; tests of this package shorten some.
type tuning struct {
	// Mailbox bounds the calls waiting for an actor.
	Mailbox int
	// RenewEvery is how often a held lease is renewed; the lease itself
	// lives for the actor_leases bucket's TTL after each renewal.
	RenewEvery time.Duration
	// Reconcile is how often the instance compares what runs with what
	// should.
	Reconcile time.Duration
	// BackoffMin and BackoffMax bound the wait before a broken instance is
	// replaced; it doubles with each failure in a row.
	BackoffMin, BackoffMax time.Duration
	// RetryFailedStart is when a start that failed for a passing reason
	// (object store or database unavailable) is tried again.
	RetryFailedStart time.Duration
	// HostCall bounds one host function call.
	HostCall time.Duration
	// FlushState is how often call counts reach actor_state.
	FlushState time.Duration
	// MaxModule bounds the module's size.
	MaxModule int64
	// IdleUnload is how long an actor may go without calls before it is
	// unloaded (idle.go); 0 keeps actors loaded.
	IdleUnload time.Duration
	// Timers bound actors' timers (timers.go).
	Timers timerTuning
	// Live bounds live channels (live.go).
	Live liveTuning
}

var defaults = tuning{
	Mailbox:          64,
	RenewEvery:       time.Second,
	Reconcile:        5 * time.Second,
	BackoffMin:       100 * time.Millisecond,
	BackoffMax:       30 * time.Second,
	RetryFailedStart: 30 * time.Second,
	HostCall:         5 * time.Second,
	FlushState:       time.Second,
	MaxModule:        64 << 20,
	Timers:           timerDefaults,
	Live:             liveDefaults,
}

// Service is one instance of the actor-worker service.
type Service struct {
	svc.Base
	// Handlers are the job kinds this worker runs.
	Handlers jobs.Mux

	d        *svc.Deps
	tune     tuning
	leaseTTL time.Duration
	metrics  *metrics

	engine  *actorhost.Engine
	queue   *jobs.Queue
	leases  jetstream.KeyValue
	states  jetstream.KeyValue
	kv      jetstream.KeyValue
	bundles jetstream.ObjectStore
	configs store.Experiments
	tmpDir  string
	grants  grantWatch    // the data_grants bucket (hostops.go)
	runs    startedRuns   // study-link runs marked started (runs.go)
	freed   memoryReturn  // memory of unloaded actors returned (idle.go)
	fetch   fetchState    // outbound HTTP of actors (httpfetch.go)
	timers  timerService  // actors' timers (timers.go)
	js      jsRuntimes    // the compiled JavaScript runtime (jsactor.go)
	live    *liveMetrics  // live channels (live.go)
	logs    *logPublisher // actors' log lines to the bus (logs.go)
	bg      atomic.Pointer[svc.Background]

	slow slowOpRecorder // actors' slow data operations (slowops.go)

	mu sync.Mutex
	// actors are the actor instances running here, by key (instanceKey).
	actors   map[string]*actor
	stopping bool
}

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{d: d, tune: defaults, actors: map[string]*actor{}, Handlers: jobs.Mux{}}
	s.js.source = defaultJSRuntime
	s.tune.IdleUnload = d.Config.ActorIdleUnload
	s.Handlers[actorapi.JobKind] = s.startJob
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "sandboxed WebAssembly and JavaScript actors of experiments",
		Provision:   s.provision,
		Workers: func(ctx context.Context) ([]*jobs.Worker, error) {
			w, err := s.queue.NewWorker(ctx, jobs.WorkerOptions{
				Durable: Durable, Concurrency: 4, AckWait: 15 * time.Second, Log: d.Log,
				OnFailed: s.startGivenUp,
			}, s.Handlers.Handle)
			if err != nil {
				return nil, err
			}
			return []*jobs.Worker{w}, nil
		},
		// Following events and leases, and bringing up the actors that
		// should run, happen in the background: starting never waits for
		// actors.
		Background: func(ctx context.Context, bg *svc.Background) error {
			s.bg.Store(bg)
			bg.Go(s.logs.run)
			bg.Go(s.slow.run(s.d.Store, s.d.Log))
			if err := s.watchGrants(bg); err != nil {
				return err
			}
			if err := s.follow(ctx, bg); err != nil {
				return err
			}
			bg.Go(s.reconcileLoop)
			bg.Go(s.flushLoop)
			return nil
		},
	}
	return s
}

func (s *Service) provision(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureStreams(ctx, bus.StreamActorJobs, bus.StreamEvents, bus.StreamActorLogs); err != nil {
		return err
	}
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketActorLeases, bus.BucketActorState, bus.BucketActorKV, bus.BucketDataGrants); err != nil {
		return err
	}
	if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectBundles); err != nil {
		return err
	}
	leaseCfg, err := d.Topology.KeyValue(bus.BucketActorLeases)
	if err != nil {
		return err
	}
	s.leaseTTL = leaseCfg.TTL
	for _, b := range []struct {
		name string
		to   *jetstream.KeyValue
	}{{bus.BucketActorLeases, &s.leases}, {bus.BucketActorState, &s.states}, {bus.BucketActorKV, &s.kv}} {
		kv, err := d.Topology.Bucket(ctx, b.name)
		if err != nil {
			return fmt.Errorf("open bucket %s: %w", b.name, err)
		}
		// Their reads decide (is a lease held, did the actor fail, is it
		// idle) or must give an actor back what it just wrote: through the
		// bucket's leader, which a replica's direct get is not
		// (docs/architecture.md, "Reads after writes").
		*b.to = bus.LeaderKV{KeyValue: kv, JS: d.JS}
	}
	if s.bundles, err = d.Topology.Objects(ctx, bus.ObjectBundles); err != nil {
		return fmt.Errorf("open bundles store: %w", err)
	}
	s.queue = jobs.NewQueue(d.JS, bus.StreamActorJobs, "jobs.actor")
	s.configs = d.Store.Experiments()
	s.tmpDir = filepath.Join(d.Config.DataDir, "tmp")
	if s.engine == nil {
		if s.engine, err = actorhost.NewEngine(filepath.Join(d.Config.DataDir, "cache", "actors")); err != nil {
			return err
		}
	}
	s.metrics = newMetrics(d.Telemetry.Registry)
	s.live = newLiveMetrics(d.Telemetry.Registry)
	if s.logs == nil {
		s.logs = newLogPublisher(d.NC, d.Telemetry.Registry)
	}
	if err := s.provisionTimers(ctx); err != nil {
		return err
	}
	s.sweepModules()
	return nil
}

// Stop takes no more jobs, stops following, and hands every actor over: its
// lease is released so that another instance starts it at once.
func (s *Service) Stop(ctx context.Context) error {
	errs := []error{s.Base.Stop(ctx)}
	s.mu.Lock()
	s.stopping = true
	running := make([]*actor, 0, len(s.actors))
	for _, a := range s.actors {
		running = append(running, a)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range running {
		wg.Add(1)
		go func() { defer wg.Done(); a.stopAndWait(ctx, stopHandover) }()
	}
	wg.Wait()
	s.closeJS(context.WithoutCancel(ctx))
	if s.engine != nil {
		errs = append(errs, s.engine.Close(context.WithoutCancel(ctx)))
	}
	return errors.Join(errs...)
}

// local is the actor instance of key this worker runs, or nil: with the
// slug as key, the actor's first instance (instances.go).
func (s *Service) local(key string) *actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actors[key]
}

// register records a new actor unless one runs already or the instance is
// stopping.
func (s *Service) register(a *actor) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.actors[a.key] != nil {
		return false
	}
	s.actors[a.key] = a
	return true
}

func (s *Service) forget(a *actor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.actors[a.key] == a {
		delete(s.actors, a.key)
	}
}

func (s *Service) all() []*actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*actor, 0, len(s.actors))
	for _, a := range s.actors {
		out = append(out, a)
	}
	return out
}
