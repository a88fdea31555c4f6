package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/store"
)

const tracerName = "github.com/gnome-platform/gnome/services/export"

// errInvalidated stops a build whose export was invalidated meanwhile.
var errInvalidated = errors.New("the export was invalidated")

// buildLogs is what a build needs of the export logs.
type buildLogs interface {
	Get(ctx context.Context, id string) (*exportapi.Log, error)
	Start(ctx context.Context, id, worker, step string, at time.Time) (*exportapi.Log, error)
	Touch(ctx context.Context, id string, at time.Time, p *store.Progress) (*exportapi.Log, error)
	Ready(ctx context.Context, id string, b store.Built) (*exportapi.Log, error)
	Fail(ctx context.Context, id, reason string, at time.Time, s store.Stale) (*exportapi.Log, error)
}

// build runs a build job: it streams the package of the export's version
// into the store and marks the export ready, unless it is no longer live.
// A job delivered again after its export is final does nothing, so that a
// redelivery never makes a second package.
func (s *Service) build(ctx context.Context, job *jobs.Job) error {
	var p exportapi.BuildJob
	if err := job.Decode(&p); err != nil {
		return jobs.Permanent(fmt.Errorf("read the build job: %w", err))
	}
	if p.ID == "" {
		p.ID = job.ID
	}
	l, err := s.logs.Start(ctx, p.ID, s.d.InstanceID, stepStarting, now())
	if err != nil {
		return err
	}
	if l == nil {
		cur, err := s.logs.Get(ctx, p.ID)
		if err != nil {
			return err
		}
		if cur == nil {
			return jobs.Permanent(fmt.Errorf("no export %s is recorded", p.ID))
		}
		return nil // ready, failed or invalidated already
	}
	s.publish(ctx, l)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "export build", trace.WithAttributes(
		attribute.String("gnome.export.id", l.ID), attribute.String("gnome.export.type", string(l.Type)),
		attribute.String("gnome.slug", l.Slug), attribute.Int("gnome.job.attempt", job.Attempt)))
	defer span.End()
	err = s.buildPackage(ctx, job, l)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (s *Service) buildPackage(ctx context.Context, job *jobs.Job, l *exportapi.Log) error {
	cfg, err := s.configs.Get(ctx, l.Slug)
	if err != nil {
		return err
	}
	switch {
	case cfg == nil:
		return s.dropBuild(ctx, l, "experiment deleted")
	case cfg.Checksum != l.VersionChecksum:
		return s.dropBuild(ctx, l, fmt.Sprintf("new version %d", cfg.Version))
	case l.Data != nil:
		return s.buildData(ctx, job, l, cfg)
	}
	// The data version is read before any document is: the package holds
	// at least the data it names.
	dataSeq, err := s.dataSeq(ctx, l.Type, l.Slug)
	if err != nil {
		return err
	}
	people, err := s.peopleKey(ctx, l.Type, l.Slug)
	if err != nil {
		return err
	}
	key := sourceKey(l.Type, cfg.Checksum, cfg.Seq, dataSeq) + people
	var kv exportpkg.KVStore
	if l.Type.HasData() {
		if kv, err = s.actorKV(ctx); err != nil {
			return err
		}
	}

	bundle, size, err := s.copyBundle(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = bundle.Close(); _ = os.Remove(bundle.Name()) }()

	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr := &progress{s: s, ctx: context.WithoutCancel(ctx), job: job, id: l.ID, cancel: cancel, every: s.o.ProgressEvery}
	stopBeat := pr.heartbeat(bctx, s.o.HeartbeatEvery)
	src := exportpkg.Source{Config: *cfg, Bundle: bundle, BundleSize: size, DB: s.d.Store.DB, KV: kv}
	sum, obj, err := pipeToStore(bctx, s, l.StorageKey, "package",
		func(ctx context.Context, w io.Writer) (exportpkg.Summary, error) {
			return exportpkg.Write(ctx, w, l.Type, src, exportpkg.Options{Progress: pr.report, CreatedAt: l.CreatedAt})
		},
		func(sum exportpkg.Summary) (int64, int64) { return sum.Size, sum.Documents })
	stopBeat()
	if cause := context.Cause(bctx); errors.Is(cause, errInvalidated) {
		// Stored or not, the package is nobody's now.
		s.deleteFile(context.WithoutCancel(ctx), l.StorageKey)
		return nil
	}
	if err != nil {
		return err
	}
	if obj.Size != sum.Size {
		return fmt.Errorf("the store kept %d bytes of a %d-byte package", obj.Size, sum.Size)
	}

	at := now()
	expires := at.Add(s.d.Config.ExportRetention)
	return s.markReady(ctx, l, store.Built{
		Size: sum.Size, Checksum: sum.SHA256, Documents: sum.Documents, Step: exportpkg.StepDone,
		FileName: exportpkg.FileName(cfg.Slug, cfg.Version, l.Type), StorageKey: l.StorageKey,
		Version: cfg.Version, ConfigSeq: cfg.Seq, DataSeq: dataSeq, SourceKey: key, At: at, ExpiresAt: expires,
	})
}

// markReady records l's stored file as built and tells the requester; an
// export invalidated (or failed) while the last bytes were stored loses
// its file, unless a concurrent attempt that won keeps it.
func (s *Service) markReady(ctx context.Context, l *exportapi.Log, built store.Built) error {
	ready, err := s.logs.Ready(ctx, l.ID, built)
	if err != nil {
		return err
	}
	if ready == nil {
		cur, err := s.logs.Get(ctx, l.ID)
		if err != nil {
			return err
		}
		if cur == nil || cur.Status != exportapi.StatusReady {
			s.deleteFile(context.WithoutCancel(ctx), l.StorageKey)
		}
		return nil
	}
	s.publish(ctx, ready)
	return nil
}

// dropBuild ends a build whose experiment changed or went away before it
// began: the export is invalidated.
func (s *Service) dropBuild(ctx context.Context, l *exportapi.Log, by string) error {
	return s.invalidateLogs(ctx, []string{l.ID}, by, true)
}

// copyBundle copies the version's bundle out of the bundles object store
// into a temporary file, which the package reads at random (a ZIP is read
// from its end). The caller closes and removes it.
func (s *Service) copyBundle(ctx context.Context, cfg *experiments.Config) (f *os.File, size int64, err error) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "export copy bundle")
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	name := experiments.BundleObject(cfg.Slug, cfg.Checksum)
	f, err = os.CreateTemp(s.tmp, "bundle-*.zip")
	if err != nil {
		return nil, 0, fmt.Errorf("create a work file: %w", err)
	}
	// Through the store's leader: an export asked for right after an
	// upload may reach a replica that does not hold the bundle yet, and a
	// missing bundle fails the export for good.
	info, err := bus.Objects{JS: s.d.JS, Bucket: bus.ObjectBundles}.Read(ctx, name, f, 0)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, 0, jobs.Permanent(fmt.Errorf("the bundle of %s version %d is missing", cfg.Slug, cfg.Version))
		}
		return nil, 0, fmt.Errorf("copy the bundle of %s: %w", cfg.Slug, err)
	}
	size = int64(info.Size)
	span.SetAttributes(attribute.Int64("gnome.bundle.size", size))
	return f, size, nil
}

// pipeToStore runs write into a pipe the store reads from: the file is
// never whole in memory, and the store sees it complete or not at all.
// what names the file in spans and errors ("package", "research data");
// measure gives the size and documents written, for the span.
func pipeToStore[S any](ctx context.Context, s *Service, key, what string,
	write func(context.Context, io.Writer) (S, error), measure func(S) (size, documents int64)) (S, exportstore.Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracer := otel.Tracer(tracerName)
	pr, pw := io.Pipe()
	type written struct {
		sum S
		err error
	}
	done := make(chan written, 1)
	go func() {
		wctx, span := tracer.Start(ctx, "export write "+what)
		defer span.End()
		sum, err := write(wctx, pw)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			size, docs := measure(sum)
			span.SetAttributes(attribute.Int64("gnome.export.size", size), attribute.Int64("gnome.export.documents", docs))
		}
		pw.CloseWithError(err)
		done <- written{sum, err}
	}()
	sctx, span := tracer.Start(ctx, "export store "+what, trace.WithAttributes(attribute.String("gnome.export.store", s.files.Name())))
	obj, perr := s.files.Put(sctx, key, pr)
	if perr != nil {
		span.SetStatus(codes.Error, perr.Error())
	}
	span.End()
	// A store that gave up stops the writer; one that finished has read it all.
	cancel()
	_ = pr.CloseWithError(errors.New("the store stopped reading"))
	w := <-done
	var zero S
	switch {
	case w.err != nil && (perr == nil || errors.Is(perr, io.ErrClosedPipe) || errors.Is(perr, w.err)):
		return zero, exportstore.Object{}, fmt.Errorf("write the %s: %w", what, w.err)
	case perr != nil:
		return zero, exportstore.Object{}, fmt.Errorf("store the %s: %w", what, perr)
	}
	return w.sum, obj, nil
}

// deleteFile removes a stored package nobody has; a failure leaves it to
// the clean-up.
func (s *Service) deleteFile(ctx context.Context, key string) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.files.Delete(ctx, key); err != nil {
		s.d.Log.WarnContext(ctx, "delete an export file failed; the clean-up retries", "key", key, "err", err)
	}
}

// buildFailed records a build job given up: its last attempt failed, it
// failed for good, or its worker died on the last attempt.
func (s *Service) buildFailed(ctx context.Context, job *jobs.Job, err error) {
	var p exportapi.BuildJob
	if job.Decode(&p) != nil || p.ID == "" {
		p.ID = job.ID
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.failBuild(ctx, p.ID, err.Error(), store.Stale{})
}

// failBuild marks a live export failed (if stale still names it; see
// store.Exports.Fail), publishes it and deletes whatever of its file was
// stored.
func (s *Service) failBuild(ctx context.Context, id, reason string, stale store.Stale) {
	l, err := s.logs.Fail(ctx, id, reason, now(), stale)
	if err != nil {
		s.d.Log.WarnContext(ctx, "record a failed export failed", "export", id, "err", err)
		return
	}
	if l == nil {
		return
	}
	s.publish(ctx, l)
	if l.StorageKey == l.StorageKeyOf() {
		s.deleteFile(ctx, l.StorageKey)
	}
}

// progress writes a build's progress to its log and publishes it: at a
// change of step at once, else at most every every; each write is a
// heartbeat too, and finds out whether the export was invalidated.
type progress struct {
	s *Service
	// ctx carries the build's trace to the writes, which outlive a
	// cancelled build.
	ctx    context.Context
	job    *jobs.Job
	id     string
	cancel context.CancelCauseFunc
	every  time.Duration

	last     time.Time
	lastStep string

	// mu keeps the build's own writes of its log one at a time. The
	// embedded store applies an update by reading the document and writing
	// it back whole, so two writes of one document at once can lose one
	// (a heartbeat overwriting the status ready just set).
	mu sync.Mutex
}

// report is exportpkg's progress callback; it runs on the writer's
// goroutine, so the writes of one build are in order.
func (p *progress) report(fraction float64, step string) {
	if p.s.progressHook != nil {
		p.s.progressHook(p.id, fraction, step)
	}
	if step == p.lastStep && time.Since(p.last) < p.every && fraction < 1 {
		return
	}
	p.last, p.lastStep = time.Now(), step
	_ = p.job.Progress()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	p.touch(ctx, &store.Progress{Fraction: fraction, Step: step})
}

// touch writes the progress and the heartbeat; an export that is no
// longer running cancels the build.
func (p *progress) touch(ctx context.Context, pr *store.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, err := p.s.logs.Touch(ctx, p.id, now(), pr)
	switch {
	case err != nil:
		p.s.d.Log.WarnContext(ctx, "export progress not recorded", "export", p.id, "err", err)
	case l == nil:
		p.cancel(errInvalidated)
	default:
		p.s.publish(ctx, l)
	}
}

// heartbeat touches the log every every until stopped, so that a build
// between progress reports (a slow store) shows it lives and learns soon
// that it was invalidated.
func (p *progress) heartbeat(ctx context.Context, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// Not cancelled with the heartbeat: a write abandoned midway
				// may still land after the build's last one (see mu), so
				// stop waits for it instead.
				tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				p.mu.Lock()
				l, err := p.s.logs.Touch(tctx, p.id, now(), nil)
				p.mu.Unlock()
				tcancel()
				if err == nil && l == nil {
					p.cancel(errInvalidated)
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
