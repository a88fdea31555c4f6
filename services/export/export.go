// Package export is the export service: it builds experiment packages
// (libs/exportpkg) as background jobs, keeps their logs in export_logs and
// their files in the export store (libs/exportstore), and answers the edge
// through the contract of libs/exports.
//
// An export goes: request (reuse a ready package of the same source, join
// one being built for the same requester, or log a queued one and queue a
// build job) → build job (on JOBS_EXPORT, durable export-worker: the
// package streamed from the database and the bundle straight into the
// store, progress written to the log and published on
// exports.progress.<id>) → ready, with its checksum and an expiry. A new
// version or the deletion of the experiment (its events, read through the
// durable export-invalidator) or an admin invalidates it; the clean-up
// deletes files past retention and fails jobs that stopped responding.
package export

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Name is the service's name on the bus.
const Name = "export"

// Durable is the consumer every export worker instance shares.
const Durable = "export-worker"

// InvalidatorDurable is the consumer of experiment events every export
// service instance shares: each event invalidates the exports it makes
// stale, once.
const InvalidatorDurable = "export-invalidator"

// Options tune the service; zero fields take the production defaults
// (DefaultOptions). Tests shorten them.
type Options struct {
	// AckWait, MaxAttempts and Backoff are the build jobs' (libs/jobs):
	// a job silent for AckWait is given to another worker; a job fails
	// after MaxAttempts deliveries, waiting Backoff between attempts.
	AckWait     time.Duration
	MaxAttempts int
	Backoff     []time.Duration
	// Concurrency bounds the builds one instance runs at once.
	Concurrency int
	// ProgressEvery is the least time between two progress writes of one
	// build (a change of step is written at once).
	ProgressEvery time.Duration
	// HeartbeatEvery is how often a build marks its log alive and checks
	// that it was not invalidated meanwhile.
	HeartbeatEvery time.Duration
	// CleanupEvery is how often the clean-up runs; zero is a tenth of the
	// retention, at most 10 minutes.
	CleanupEvery time.Duration
	// StaleAfter is how long a running export's log may go without a
	// heartbeat before the clean-up fails it; zero is twice the longest a
	// job can take between deliveries over all its attempts.
	StaleAfter time.Duration
	// QueuedFor is how long an export may stay queued before the clean-up
	// fails it: longer than JOBS_EXPORT keeps a job.
	QueuedFor time.Duration
	// Files is where packages are stored; nil: exportstore.FromConfig.
	Files exportstore.Store
}

// DefaultOptions are the production settings for cfg.
func DefaultOptions(cfg *config.Config) Options {
	o := Options{
		AckWait:        30 * time.Second,
		MaxAttempts:    5,
		Backoff:        []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
		Concurrency:    2,
		ProgressEvery:  250 * time.Millisecond,
		HeartbeatEvery: 5 * time.Second,
		QueuedFor:      25 * time.Hour,
	}
	if cfg != nil && cfg.ExportJobAckWait > 0 {
		o.AckWait = cfg.ExportJobAckWait
	}
	return o
}

func (o Options) withDefaults(cfg *config.Config) Options {
	d := DefaultOptions(cfg)
	if o.AckWait <= 0 {
		o.AckWait = d.AckWait
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = d.MaxAttempts
	}
	if len(o.Backoff) == 0 {
		o.Backoff = d.Backoff
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = d.ProgressEvery
	}
	if o.HeartbeatEvery <= 0 {
		o.HeartbeatEvery = min(d.HeartbeatEvery, o.AckWait/3)
	}
	if o.CleanupEvery <= 0 {
		o.CleanupEvery = min(cfg.ExportRetention/10, 10*time.Minute)
		if o.CleanupEvery <= 0 {
			o.CleanupEvery = 10 * time.Minute
		}
	}
	if o.StaleAfter <= 0 {
		// A job's log may rightly stay silent for an ack deadline (its
		// worker died) plus a back-off, at each attempt.
		var span time.Duration
		for i := range o.MaxAttempts {
			span += o.AckWait + o.Backoff[min(i, len(o.Backoff)-1)]
		}
		o.StaleAfter = 2 * span
	}
	if o.QueuedFor <= 0 {
		o.QueuedFor = d.QueuedFor
	}
	return o
}

// Service is one instance of the export service.
type Service struct {
	svc.Base
	// Handlers are the job kinds this worker runs.
	Handlers jobs.Mux

	d       *svc.Deps
	o       Options
	logs    exportLogs
	configs interface {
		Get(ctx context.Context, slug string) (*experiments.Config, error)
	}
	bundles jetstream.ObjectStore
	files   exportstore.Store
	queue   *jobs.Queue
	tmp     string

	// progressHook, set by tests, sees every progress report of a build
	// before it is written, on the build's writer goroutine.
	progressHook func(id string, fraction float64, step string)

	sizes sizeCache // collection sizes read last (datastats.go)
}

// New builds the service on d with the production options.
func New(d *svc.Deps) *Service { return NewWith(d, Options{}) }

// NewWith builds the service on d with o.
func NewWith(d *svc.Deps, o Options) *Service {
	s := &Service{
		d: d, o: o.withDefaults(d.Config), Handlers: jobs.Mux{},
		logs:    d.Store.Exports(),
		configs: d.Store.Experiments(),
		queue:   jobs.NewQueue(d.JS, bus.StreamExportJobs, exportapi.JobPrefix),
	}
	s.Handlers[exportapi.JobBuild] = s.build
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "export packages built as background jobs",
		Provision:   s.provision,
		Endpoints: func(srv *bus.Server) error {
			return srv.Register(
				bus.Endpoint(exportapi.EndpointRequest, s.request),
				bus.Endpoint(exportapi.EndpointGet, s.get),
				bus.Endpoint(exportapi.EndpointList, s.list),
				bus.Endpoint(exportapi.EndpointInvalidate, s.invalidate),
				bus.Endpoint(exportapi.EndpointDownload, s.download),
				bus.Endpoint(exportapi.EndpointData, s.data),
				bus.Endpoint(exportapi.EndpointDataStats, s.dataStats),
			)
		},
		Workers: func(ctx context.Context) ([]*jobs.Worker, error) {
			w, err := s.queue.NewWorker(ctx, jobs.WorkerOptions{
				Durable: Durable, Concurrency: s.o.Concurrency, AckWait: s.o.AckWait,
				MaxAttempts: s.o.MaxAttempts, Backoff: s.o.Backoff, Log: d.Log, OnFailed: s.buildFailed,
			}, s.Handlers.Handle)
			if err != nil {
				return nil, err
			}
			return []*jobs.Worker{w}, nil
		},
		// Besides: the invalidator follows the experiment events, and the
		// clean-up runs on a timer.
		Background: func(ctx context.Context, bg *svc.Background) error {
			f, err := bus.Follow(ctx, bg.Context(), d.JS, invalidatorOptions(d.Log), s.onExperimentEvent)
			if err != nil {
				return err
			}
			bg.Follow(f)
			bg.Go(s.cleanupLoop)
			return nil
		},
	}
	return s
}

func (s *Service) provision(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureStreams(ctx, bus.StreamExportJobs, bus.StreamEvents); err != nil {
		return err
	}
	if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectExports, bus.ObjectBundles); err != nil {
		return err
	}
	if err := d.Store.EnsureIndexes(ctx, store.ExportLogs); err != nil {
		return err
	}
	var err error
	if s.bundles, err = d.Topology.Objects(ctx, bus.ObjectBundles); err != nil {
		return fmt.Errorf("open bundles store: %w", err)
	}
	s.files = s.o.Files
	if s.files == nil {
		if s.files, err = exportstore.FromConfig(d.Config.B2, d.JS); err != nil {
			return err
		}
	}
	s.tmp = filepath.Join(d.Config.DataDir, "tmp", "export")
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return fmt.Errorf("create export work dir: %w", err)
	}
	return nil
}

// exportLogs is what the use cases need of the export logs, each declaring
// its part beside it; store.Exports is the MongoDB one.
type exportLogs interface {
	requestLogs
	buildLogs
	invalidationLogs
	cleanupLogs
}

var _ exportLogs = store.Exports{}

// What every use case of the service calls: the recorded time, the
// source an export is made of, who may read it, and the announcement of
// its changes.

// now is the time the service records: BSON dates keep milliseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// normEmail is how an email is stored and compared: user_email matches
// its requester case-insensitively.
func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// mayRead reports whether c may see the export: its requester and admins.
func mayRead(l *exportapi.Log, c uploadapi.Caller) bool {
	return c.IsAdmin || (l.UserEmail != "" && l.UserEmail == normEmail(c.Email))
}

// sourceKey names what a package is made of: its type, the version's
// bundle, the configuration state and, for the types that carry data, the
// data version. Two exports with one source key have the same content.
func sourceKey(t exportapi.Type, checksum string, configSeq, dataSeq int64) string {
	return fmt.Sprintf("%s|%s|%d|%d", t, checksum, configSeq, dataSeq)
}

// dataSeq is the data version a package of type t depends on (0 for those
// without data).
func (s *Service) dataSeq(ctx context.Context, t exportapi.Type, slug string) (int64, error) {
	if !withData(t) {
		return 0, nil
	}
	return scoped.DataSeq(ctx, s.d.Store.DB, slug)
}

// publish announces the log's new state on its progress subject (core
// NATS: only those listening now hear it).
func (s *Service) publish(ctx context.Context, l *exportapi.Log) {
	data, err := json.Marshal(l)
	if err != nil {
		return
	}
	msg := nats.NewMsg(exportapi.ProgressSubject(l.ID))
	msg.Data = data
	bus.Inject(ctx, msg.Header, telemetry.RequestID(ctx))
	if err := s.d.NC.PublishMsg(msg); err != nil {
		s.d.Log.WarnContext(ctx, "publish export progress failed", "export", l.ID, "err", err)
	}
}
