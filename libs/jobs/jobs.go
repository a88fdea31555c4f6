// Package jobs runs background work through JetStream work-queue streams:
// at-least-once delivery with explicit acks, progress heartbeats that keep a
// long job's ack deadline alive, bounded redelivery with back-off, and
// de-duplication by job ID. Handlers must be idempotent by job ID: a job may
// run again after a crash between its work and its ack.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

const tracerName = "github.com/gnome-platform/gnome/libs/jobs"

// HeaderKind names the job's kind on the message.
const HeaderKind = "Gnome-Job-Kind"

// Queue enqueues jobs on one work-queue stream. It is safe for concurrent use.
type Queue struct {
	js     jetstream.JetStream
	stream string
	prefix string // subject prefix, e.g. "jobs.export"
}

// NewQueue binds to stream, whose subjects are prefix.<kind>.
func NewQueue(js jetstream.JetStream, stream, prefix string) *Queue {
	return &Queue{js: js, stream: stream, prefix: prefix}
}

// Enqueue publishes a job. The job ID is the de-duplication key: enqueueing
// the same ID again within the stream's duplicate window is a no-op that
// reports duplicate=true.
func (q *Queue) Enqueue(ctx context.Context, kind, id string, payload any) (duplicate bool, err error) {
	if id == "" || kind == "" {
		return false, errors.New("enqueue: job kind and id are required")
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return false, fmt.Errorf("encode %s job: %w", kind, err)
	}
	subject := q.prefix + "." + kind
	ctx, span := otel.Tracer(tracerName).Start(ctx, "enqueue "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject), attribute.String("gnome.job.id", id)))
	defer span.End()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderKind, kind)
	bus.Inject(ctx, msg.Header, telemetry.RequestID(ctx))
	ack, err := q.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(q.stream))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return false, fmt.Errorf("enqueue %s job %s: %w", kind, id, err)
	}
	return ack.Duplicate, nil
}

// Job is one delivery of a job to a handler.
type Job struct {
	ID      string
	Kind    string
	Subject string
	Data    []byte
	// Attempt counts deliveries, from 1.
	Attempt     int
	MaxAttempts int
	msg         jetstream.Msg
}

// Decode unmarshals the job's payload.
func (j *Job) Decode(v any) error { return json.Unmarshal(j.Data, v) }

// Progress tells the server the job is alive, resetting its ack deadline.
// Workers call it on their own every AckWait/3; handlers may call it at
// each step too. A job given to OnFailed after it was abandoned has no
// delivery to keep alive: Progress does nothing there.
func (j *Job) Progress() error {
	if j.msg == nil {
		return nil
	}
	return j.msg.InProgress()
}

// Handler does a job's work. Returning nil acks the job; an error makes it
// run again after a back-off, until MaxAttempts, unless it is Permanent.
type Handler func(ctx context.Context, job *Job) error

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks an error that no retry can fix: the job fails at once.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { var p permanent; return errors.As(err, &p) }

// ErrAbandoned is wrapped by the error OnFailed gets for a job whose last
// delivery went unanswered: its worker died (or stalled past AckWait)
// without acking it, and no delivery is left.
var ErrAbandoned = errors.New("the job's worker stopped responding")

// WorkerOptions configure a worker.
type WorkerOptions struct {
	// Durable names the consumer every instance of the worker shares.
	Durable string
	// Kinds limits the worker to some job kinds; all when empty.
	Kinds []string
	// AckWait is how long a delivery may go without progress before the
	// server redelivers it (30 s by default).
	AckWait time.Duration
	// MaxAttempts bounds deliveries (5 by default).
	MaxAttempts int
	// Backoff is the delay before attempt n+1 after attempt n failed; the
	// last value repeats (1 s, 5 s, 30 s by default).
	Backoff []time.Duration
	// Concurrency bounds jobs this instance runs at once (1 by default).
	Concurrency int
	// OnFailed is called once when a job is given up: its last attempt
	// failed or it failed permanently. Use it to record the reason.
	//
	// It is also called, with an error wrapping ErrAbandoned, for a job
	// whose last delivery died with its worker (a killed process never
	// reaches its own OnFailed): some instance of the durable that is
	// running learns it from the server's max-deliveries advisory, reads
	// the job back from the stream by its sequence, calls OnFailed and
	// removes it. The advisory is not stored, so a job abandoned while no
	// instance runs is not reported; callers that must know keep their own
	// deadline too. Rarely (a worker starved past AckWait on the last
	// attempt), OnFailed may run for a job whose handler is still running.
	OnFailed func(ctx context.Context, job *Job, err error)
	Log      *slog.Logger
}

func (o *WorkerOptions) defaults() {
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Worker takes jobs from a queue's durable consumer and runs them.
type Worker struct {
	q      *Queue
	o      WorkerOptions
	h      Handler
	cons   jetstream.Consumer
	stop   context.CancelFunc
	hardCx context.Context
	hard   context.CancelFunc
	loop   sync.WaitGroup
	active sync.WaitGroup
	// advisories receives the server's max-deliveries advisories of the
	// durable (see WorkerOptions.OnFailed); reports counts their handling,
	// which admits no more once reportsOff is set.
	advisories *nats.Subscription
	reportsMu  sync.Mutex
	reportsOff bool
	reports    sync.WaitGroup
}

// NewWorker creates (or updates) the durable consumer. Call Start to run.
func (q *Queue) NewWorker(ctx context.Context, o WorkerOptions, h Handler) (*Worker, error) {
	o.defaults()
	if o.Durable == "" {
		return nil, errors.New("worker: a durable name is required")
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxAttempts,
		MaxAckPending: 10_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	for _, k := range o.Kinds {
		cfg.FilterSubjects = append(cfg.FilterSubjects, q.prefix+"."+k)
	}
	// Made at start, like the streams: retried while JetStream cannot
	// answer yet (a cluster starting with its services).
	var cons jetstream.Consumer
	err := bus.Retry(ctx, "consumer", q.stream+"/"+o.Durable, func(ctx context.Context) (err error) {
		cons, err = q.js.CreateOrUpdateConsumer(ctx, q.stream, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", o.Durable, q.stream, err)
	}
	return &Worker{q: q, o: o, h: h, cons: cons}, nil
}

// Start begins taking jobs.
func (w *Worker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.hardCx, w.hard = context.WithCancel(context.Background())
	slots := make(chan struct{}, w.o.Concurrency)
	w.watchAbandoned()
	w.loop.Add(1)
	go func() {
		defer w.loop.Done()
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			msg, err := w.cons.Next(jetstream.FetchContext(ctx))
			if err != nil {
				<-slots
				if ctx.Err() != nil {
					return
				}
				if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
					w.o.Log.Warn("job fetch failed", "consumer", w.o.Durable, "err", err)
					select {
					case <-time.After(500 * time.Millisecond):
					case <-ctx.Done():
						return
					}
				}
				continue
			}
			w.active.Add(1)
			go func() {
				defer func() { <-slots; w.active.Done() }()
				w.run(msg)
			}()
		}
	}()
}

// Stop takes no more jobs and waits for those running until ctx ends; jobs
// still running then are cancelled and handed back (nak) for another
// instance to take at once, except on their last attempt, when they are
// given up through OnFailed.
func (w *Worker) Stop(ctx context.Context) error {
	if w.stop == nil {
		return nil
	}
	w.stop()
	if w.advisories != nil {
		_ = w.advisories.Unsubscribe()
	}
	w.reportsMu.Lock()
	w.reportsOff = true
	w.reportsMu.Unlock()
	w.reports.Wait()
	w.loop.Wait()
	done := make(chan struct{})
	go func() { w.active.Wait(); close(done) }()
	select {
	case <-done:
		w.hard()
		return nil
	case <-ctx.Done():
		w.hard()
		<-done
		return nil
	}
}

func (w *Worker) run(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	job := &Job{
		ID:          msg.Headers().Get(jetstream.MsgIDHeader),
		Kind:        msg.Headers().Get(HeaderKind),
		Subject:     msg.Subject(),
		Data:        msg.Data(),
		Attempt:     int(md.NumDelivered),
		MaxAttempts: w.o.MaxAttempts,
		msg:         msg,
	}
	ctx, rid := bus.Extract(w.hardCx, nats.Header(msg.Headers()))
	ctx = telemetry.WithRequestID(ctx, rid)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "process "+job.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("gnome.job.id", job.ID),
			attribute.Int("gnome.job.attempt", job.Attempt)))
	defer span.End()

	beat := time.NewTicker(w.o.AckWait / 3)
	stopBeat := make(chan struct{})
	go func() {
		for {
			select {
			case <-beat.C:
				_ = msg.InProgress()
			case <-stopBeat:
				return
			}
		}
	}()
	err = safeRun(ctx, w.h, job)
	beat.Stop()
	close(stopBeat)

	switch {
	case err == nil:
		if aerr := msg.DoubleAck(context.Background()); aerr != nil {
			w.o.Log.WarnContext(ctx, "job ack failed; it will run again", "job", job.ID, "err", aerr)
		}
	case w.hardCx.Err() != nil && job.Attempt < w.o.MaxAttempts:
		// Shutting down: hand the job back so another instance runs it now.
		span.SetStatus(codes.Error, "handed back on shutdown")
		_ = msg.Nak()
	case IsPermanent(err) || job.Attempt >= w.o.MaxAttempts:
		if w.hardCx.Err() != nil {
			// The server delivers no more than MaxAttempts times: a job
			// handed back now would never run again, unreported.
			err = fmt.Errorf("stopped during the last attempt: %w", err)
		}
		span.SetStatus(codes.Error, err.Error())
		w.o.Log.ErrorContext(ctx, "job failed", "job", job.ID, "kind", job.Kind, "attempt", job.Attempt, "err", err)
		if w.o.OnFailed != nil {
			w.o.OnFailed(ctx, job, err)
		}
		_ = msg.Term()
	default:
		span.SetStatus(codes.Error, err.Error())
		delay := w.o.Backoff[min(job.Attempt-1, len(w.o.Backoff)-1)]
		w.o.Log.WarnContext(ctx, "job attempt failed; retrying", "job", job.ID, "attempt", job.Attempt, "retry_in", delay, "err", err)
		_ = msg.NakWithDelay(delay)
	}
}

// AdvisoryMaxDeliveries is the subject of the server's advisory that a
// consumer's message ran out of deliveries.
func AdvisoryMaxDeliveries(stream, durable string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + durable
}

// watchAbandoned subscribes to the durable's max-deliveries advisories, in
// a queue group so that one instance of the durable handles each.
func (w *Worker) watchAbandoned() {
	if w.o.OnFailed == nil {
		return
	}
	nc := w.q.js.Conn()
	sub, err := nc.QueueSubscribe(AdvisoryMaxDeliveries(w.q.stream, w.o.Durable), "gnome-jobs-"+w.o.Durable, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		if json.Unmarshal(m.Data, &adv) != nil || adv.StreamSeq == 0 {
			return
		}
		w.reportsMu.Lock()
		defer w.reportsMu.Unlock()
		if w.reportsOff {
			return // stopping: another instance, or none, reports it
		}
		w.reports.Add(1)
		go func() {
			defer w.reports.Done()
			w.abandoned(adv.StreamSeq, int(adv.Deliveries))
		}()
	})
	if err != nil {
		w.o.Log.Warn("watch abandoned jobs failed; a job whose worker dies on its last attempt will not be reported", "consumer", w.o.Durable, "err", err)
		return
	}
	// Once the server knows the subscription, no advisory passes it by.
	_ = nc.Flush()
	w.advisories = sub
}

// abandoned reports the job at stream sequence seq, whose last delivery
// went unanswered, to OnFailed, and removes it from the stream (a
// work-queue stream keeps a message nobody acked).
func (w *Worker) abandoned(seq uint64, deliveries int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := w.q.js.Stream(ctx, w.q.stream)
	if err != nil {
		w.o.Log.Warn("read an abandoned job failed", "consumer", w.o.Durable, "seq", seq, "err", err)
		return
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			w.o.Log.Warn("read an abandoned job failed", "consumer", w.o.Durable, "seq", seq, "err", err)
		}
		return // gone already: acked, or reported by another instance
	}
	job := &Job{
		ID:          raw.Header.Get(jetstream.MsgIDHeader),
		Kind:        raw.Header.Get(HeaderKind),
		Subject:     raw.Subject,
		Data:        raw.Data,
		Attempt:     deliveries,
		MaxAttempts: w.o.MaxAttempts,
	}
	jctx, rid := bus.Extract(ctx, raw.Header)
	jctx = telemetry.WithRequestID(jctx, rid)
	jctx, span := otel.Tracer(tracerName).Start(jctx, "abandoned "+job.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("gnome.job.id", job.ID),
			attribute.Int("gnome.job.attempt", job.Attempt)))
	defer span.End()
	ferr := fmt.Errorf("%w: no sign of life within %s on the last of %d attempts", ErrAbandoned, w.o.AckWait, w.o.MaxAttempts)
	span.SetStatus(codes.Error, ferr.Error())
	w.o.Log.ErrorContext(jctx, "job failed", "job", job.ID, "kind", job.Kind, "attempt", job.Attempt, "err", ferr)
	w.o.OnFailed(jctx, job, ferr)
	if err := stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		w.o.Log.WarnContext(jctx, "remove an abandoned job failed", "job", job.ID, "seq", seq, "err", err)
	}
}

func safeRun(ctx context.Context, h Handler, j *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("job handler panic: %v", r)
		}
	}()
	return h(ctx, j)
}

// Mux routes jobs to a handler by kind; a kind it does not know fails at
// once with a reason naming it.
type Mux map[string]Handler

// Handle runs the handler of the job's kind.
func (m Mux) Handle(ctx context.Context, job *Job) error {
	h, ok := m[job.Kind]
	if !ok {
		return Permanent(fmt.Errorf("no handler for job kind %q", job.Kind))
	}
	return h(ctx, job)
}

// Kinds lists the kinds m handles.
func (m Mux) Kinds() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
