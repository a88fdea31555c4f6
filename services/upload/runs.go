package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Processing an upload is idempotent by upload ID. The first ask takes a
// lease on the ID in the upload_runs bucket ({id}.lease, with a TTL the
// holder renews) and processes in the background; when done, it records
// the outcome ({id}.done) and only then deletes the staged ZIP. Any ask,
// on any instance, answers the recorded outcome when there is one, waits
// for the processing while the lease is held, and takes the processing
// over when the lease lapsed with its holder. An ask is held at most
// uploadapi.ProcessWait and then answered Pending, so that the edge
// notices a lost instance or node within seconds. A version records its
// upload ID: a takeover after the lost holder made the version finds it
// and makes no second one.
const (
	// leaseTTL is how long a lease outlives its holder's last renewal.
	leaseTTL = 5 * time.Second
	// leaseRenew is how often the holder renews its lease.
	leaseRenew = time.Second
	// lookAgain spaces the looks of an ask waiting for a processing held
	// by another instance.
	lookAgain = 200 * time.Millisecond
)

func leaseKey(id string) string { return id + ".lease" }
func doneKey(id string) string  { return id + ".done" }

// runLease is the value of {id}.lease.
type runLease struct {
	Instance  string    `json:"instance"`
	By        string    `json:"by"`
	StartedAt time.Time `json:"started_at"`
}

// runOutcome is the value of {id}.done: the answer every ask for the
// upload gets from then on.
type runOutcome struct {
	By     string            `json:"by"`
	Result *uploadapi.Result `json:"result,omitempty"`
	Error  *apierr.BodyError `json:"error,omitempty"`
	At     time.Time         `json:"at"`
}

func (o *runOutcome) answer() (uploadapi.Result, error) {
	if o.Error != nil {
		return uploadapi.Result{}, apierr.FromBody(*o.Error)
	}
	if o.Result == nil {
		return uploadapi.Result{}, apierr.New(apierr.CodeInternal, "the recorded outcome of the upload is empty")
	}
	return *o.Result, nil
}

// run is a processing on this instance; done closes when it ends.
type run struct {
	by   string
	done chan struct{}
	res  uploadapi.Result
	err  error
	// gave is set when the processing stopped without an outcome (the
	// lease was lost, or the instance is stopping): another ask decides.
	gave bool
}

// runs are this instance's processings under way, and what they run on.
type runs struct {
	mu  sync.Mutex
	m   map[string]*run
	bg  atomic.Pointer[svc.Background]
	kv  bus.LeaderKV
	raw jetstream.KeyValue
	// beforeStore, when set (tests), runs after a staged upload was
	// checked and its bundle stored, before its version is recorded.
	beforeStore func(id string)
	// afterStore, when set (tests), runs right after the version was
	// recorded, before the steps that follow it.
	afterStore func(id string)
}

// process answers an ask to process a staged upload: its outcome, or
// Pending after uploadapi.ProcessWait.
func (s *Service) process(ctx context.Context, req uploadapi.ProcessUpload) (uploadapi.Result, error) {
	if !uploadapi.ValidUploadID(req.UploadID) {
		return uploadapi.Result{}, apierr.New(apierr.CodeBadRequest, "the upload id must be letters, digits, - and _ (at most 64)").OnField("/upload_id")
	}
	if !canUpload(req.Caller) {
		return uploadapi.Result{}, apierr.New(apierr.CodeForbidden, "only developers and admins upload experiments")
	}
	wait := time.NewTimer(uploadapi.ProcessWait)
	defer wait.Stop()
	pending := uploadapi.Result{Pending: true}
	for {
		out, err := s.outcome(ctx, req.UploadID)
		if err != nil {
			return uploadapi.Result{}, err
		}
		if out != nil {
			if !sameCaller(out.By, req.Caller.Email) {
				return uploadapi.Result{}, noUpload(req.UploadID)
			}
			return out.answer()
		}
		r, other, err := s.claim(ctx, req)
		if err != nil {
			return uploadapi.Result{}, err
		}
		if r != nil {
			if !sameCaller(r.by, req.Caller.Email) {
				return uploadapi.Result{}, noUpload(req.UploadID)
			}
			select {
			case <-r.done:
				if r.gave {
					return pending, nil
				}
				return r.res, r.err
			case <-wait.C:
				return pending, nil
			}
		}
		if other != nil && !sameCaller(other.By, req.Caller.Email) {
			return uploadapi.Result{}, noUpload(req.UploadID)
		}
		// Another instance processes it: look again shortly.
		select {
		case <-wait.C:
			return pending, nil
		case <-time.After(lookAgain):
		}
	}
}

func sameCaller(a, b string) bool { return strings.EqualFold(a, b) }

// noUpload is the answer for an upload ID that is not the caller's: the
// same as for one that does not exist, so that nobody learns of others'.
func noUpload(id string) error { return apierr.New(apierr.CodeNotFound, "no staged upload %q", id) }

// outcome is the recorded outcome of upload id, or nil.
func (s *Service) outcome(ctx context.Context, id string) (*runOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, bus.OpTimeout)
	defer cancel()
	e, err := s.runs.kv.Get(ctx, doneKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the outcome of upload %s: %w", id, err)
	}
	var out runOutcome
	if err := json.Unmarshal(e.Value(), &out); err != nil {
		return nil, fmt.Errorf("decode the outcome of upload %s: %w", id, err)
	}
	return &out, nil
}

// claim finds the processing of req on this instance, or starts one when
// it takes the lease; otherwise it returns the lease another instance
// holds (nil when it could not be read).
func (s *Service) claim(ctx context.Context, req uploadapi.ProcessUpload) (*run, *runLease, error) {
	id := req.UploadID
	s.runs.mu.Lock()
	if r := s.runs.m[id]; r != nil {
		s.runs.mu.Unlock()
		return r, nil, nil
	}
	s.runs.mu.Unlock()
	bg := s.runs.bg.Load()
	if bg == nil || bg.Context().Err() != nil {
		return nil, nil, apierr.New(apierr.CodeUnavailable, "the upload service is starting or stopping; try again")
	}
	lease, _ := json.Marshal(runLease{Instance: s.d.InstanceID, By: req.Caller.Email, StartedAt: time.Now().UTC()})
	cctx, cancel := context.WithTimeout(ctx, bus.OpTimeout)
	defer cancel()
	rev, err := s.runs.kv.Create(cctx, leaseKey(id), lease, jetstream.KeyTTL(leaseTTL))
	if errors.Is(err, jetstream.ErrKeyExists) {
		var held runLease
		if e, gerr := s.runs.kv.Get(cctx, leaseKey(id)); gerr == nil && json.Unmarshal(e.Value(), &held) == nil {
			return nil, &held, nil
		}
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("take the lease of upload %s: %w", id, err)
	}
	r := &run{by: req.Caller.Email, done: make(chan struct{})}
	s.runs.mu.Lock()
	s.runs.m[id] = r
	s.runs.mu.Unlock()
	// The processing outlives this ask (which answers Pending after
	// ProcessWait) but keeps its trace and request ID; it ends with the
	// instance, which hands it over.
	link := trace.SpanContextFromContext(ctx)
	rid := telemetry.RequestID(ctx)
	bg.Go(func(bctx context.Context) {
		pctx := telemetry.WithRequestID(trace.ContextWithSpanContext(bctx, link), rid)
		s.execute(pctx, r, req, rev, lease)
	})
	return r, nil, nil
}

// execute processes req under the lease at rev, renewing it, and records
// the outcome; a processing whose lease was lost, or whose instance stops,
// records nothing and leaves the upload to the next ask.
func (s *Service) execute(ctx context.Context, r *run, req uploadapi.ProcessUpload, rev uint64, lease []byte) {
	id := req.UploadID
	defer func() {
		s.runs.mu.Lock()
		delete(s.runs.m, id)
		s.runs.mu.Unlock()
		close(r.done)
	}()
	pctx, cancel := context.WithTimeout(ctx, uploadapi.ProcessBound(req.Size))
	defer cancel()
	var lost atomic.Bool
	renewed := make(chan uint64, 1)
	stopRenew := make(chan struct{})
	go func() {
		cur := rev
		defer func() { renewed <- cur }()
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-stopRenew:
				return
			case <-pctx.Done():
				return
			case <-t.C:
			}
			next, err := s.renewLease(pctx, id, cur, lease)
			switch {
			case err == nil:
				cur = next
			case isWrongRevision(err):
				// The lease lapsed and another instance holds it now.
				lost.Store(true)
				cancel()
				return
			default:
				// An outage: keep processing; if the lease lapses meanwhile,
				// the next renewal finds out.
				s.d.Log.WarnContext(pctx, "renew upload lease failed", "upload_id", id, "err", err)
			}
		}
	}()
	res, err := s.processStaged(pctx, req)
	close(stopRenew)
	rev = <-renewed
	if lost.Load() || (err != nil && ctx.Err() != nil) {
		// Not this processing's outcome to record: the version it may have
		// made carries the upload ID, which the next processing finds.
		r.gave = true
		if !lost.Load() {
			s.releaseLease(id, rev)
		}
		s.d.Log.InfoContext(ctx, "upload processing handed over", "upload_id", id, "lease_lost", lost.Load())
		return
	}
	out := runOutcome{By: req.Caller.Email, At: time.Now().UTC()}
	if err != nil {
		ae := apierr.From(err)
		if ae.Code == apierr.CodeInternal || ae.Code == apierr.CodeUnavailable {
			// A refusal of the upload is its caller's to read; a fault or
			// an outage is the operator's too.
			s.d.Log.WarnContext(ctx, "upload processing failed", "upload_id", id, "err", err)
		}
		be := ae.ToBody("").Error
		out.Error = &be
	} else {
		out.Result = &res
	}
	final, rerr := s.record(id, out)
	if rerr != nil {
		// The staged ZIP stays (the uploads store's TTL removes it) and the
		// lease lapses: an ask now processes the upload again and finds the
		// version this one made.
		s.d.Log.WarnContext(ctx, "record upload outcome failed", "upload_id", id, "err", rerr)
		r.res, r.err = res, err
		return
	}
	r.res, r.err = final.answer()
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), bus.OpTimeout)
	defer dcancel()
	// Asked for again, the upload is answered from its outcome: the
	// staged ZIP is never needed again.
	if derr := s.uploads.Delete(dctx, id); derr != nil && !errors.Is(derr, jetstream.ErrObjectNotFound) {
		s.d.Log.WarnContext(ctx, "delete staged upload failed", "upload_id", id, "err", derr)
	}
	s.releaseLease(id, rev)
}

// renewLease puts the lease again at revision rev with a fresh TTL: the
// bucket's Update sets no TTL, so the put is published as Update would,
// with the TTL header. A lease that lapsed (its key moved on) is refused as
// a wrong revision.
func (s *Service) renewLease(ctx context.Context, id string, rev uint64, lease []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, bus.OpTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: "$KV." + bus.BucketUploadRuns + "." + leaseKey(id), Data: lease}
	ack, err := s.d.JS.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(leaseTTL))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// isWrongRevision reports a put refused because the key moved on.
func isWrongRevision(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// releaseLease ends a lease still at rev, so that the next ask need not
// wait for its TTL.
func (s *Service) releaseLease(id string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), bus.OpTimeout)
	defer cancel()
	_ = s.runs.raw.Delete(ctx, leaseKey(id), jetstream.LastRevision(rev))
}

// record stores out as the outcome of upload id, unless one was recorded
// first (by a processing this one took over from): that one stands and is
// returned.
func (s *Service) record(id string, out runOutcome) (*runOutcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bus.OpTimeout)
	defer cancel()
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode the outcome of upload %s: %w", id, err)
	}
	if _, err := s.runs.kv.Create(ctx, doneKey(id), data); errors.Is(err, jetstream.ErrKeyExists) {
		first, gerr := s.outcome(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		if first != nil {
			return first, nil
		}
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("record the outcome of upload %s: %w", id, err)
	}
	return &out, nil
}
