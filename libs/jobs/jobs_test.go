package jobs_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/jobs/jobstest"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// natsQueue is the JetStream queue seen through the suite's interface.
type natsQueue struct {
	*jobs.Queue
	js  jetstream.JetStream
	url string
}

func (q natsQueue) NewWorker(ctx context.Context, o jobs.WorkerOptions, h jobs.Handler) (jobstest.Worker, error) {
	return q.Queue.NewWorker(ctx, o, h)
}

// newQueue is a queue on the platform's export job stream, provisioned as
// the export service does it, on a NATS server of its own.
func newQueue(t *testing.T) natsQueue {
	t.Helper()
	env := testenv.Start(t)
	nc, err := bus.Connect(env.NATSURL, "jobs-test", telemetry.NewLogger(io.Discard, "ERROR", "text"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (bus.Topology{JS: js}).EnsureStreams(ctx, bus.StreamExportJobs); err != nil {
		t.Fatal(err)
	}
	return natsQueue{jobs.NewQueue(js, bus.StreamExportJobs, "jobs.export"), js, env.NATSURL}
}

// connection is another client of q's server, as another process would
// have; it is closed at cleanup unless closed before.
func (q natsQueue) connection(t *testing.T, name string) (*nats.Conn, *jobs.Queue) {
	t.Helper()
	nc, err := bus.Connect(q.url, name, telemetry.NewLogger(io.Discard, "ERROR", "text"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, jobs.NewQueue(js, bus.StreamExportJobs, "jobs.export")
}

// A job whose worker dies during its last attempt (a killed process sends
// neither ack nor nak, and never reaches its own OnFailed) is reported by
// another instance of the durable once its ack deadline passes, with the
// job as it was enqueued, and leaves the stream.
func TestAbandonedLastAttemptIsReported(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jobs.WorkerOptions{Durable: "abandon", AckWait: time.Second, MaxAttempts: 1, Log: telemetry.NewLogger(io.Discard, "ERROR", "text")}

	// The victim takes the job and hangs on to it.
	victimConn, victimQueue := q.connection(t, "victim")
	started := make(chan struct{})
	victim, err := victimQueue.NewWorker(ctx, o, func(ctx context.Context, _ *jobs.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	victim.Start()
	t.Cleanup(func() {
		// Its job's context ends only when Stop gives up waiting.
		sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = victim.Stop(sctx)
	})
	if _, err := q.Enqueue(ctx, "build", "doomed", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the job was not taken")
	}

	// The survivor runs beside it, then the victim dies.
	type report struct {
		job *jobs.Job
		err error
	}
	reports := make(chan report, 4)
	so := o
	so.OnFailed = func(_ context.Context, j *jobs.Job, err error) { reports <- report{j, err} }
	var handled atomic.Int32
	survivor, err := q.Queue.NewWorker(ctx, so, func(context.Context, *jobs.Job) error { handled.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	survivor.Start()
	t.Cleanup(func() { _ = survivor.Stop(context.Background()) })
	victimConn.Close()
	died := time.Now()

	select {
	case r := <-reports:
		if r.job.ID != "doomed" || r.job.Kind != "build" || string(r.job.Data) != `{"n":7}` || r.job.Attempt != 1 || r.job.MaxAttempts != 1 {
			t.Errorf("OnFailed got job %+v", r.job)
		}
		if !errors.Is(r.err, jobs.ErrAbandoned) {
			t.Errorf("OnFailed got %v, want ErrAbandoned", r.err)
		}
		if err := r.job.Progress(); err != nil {
			t.Errorf("Progress of an abandoned job: %v", err)
		}
		t.Logf("reported %v after the worker died", time.Since(died).Round(time.Millisecond))
	case <-ctx.Done():
		t.Fatal("the abandoned job was never reported")
	}
	eventually(t, "the stream to be empty", func() bool { return streamMsgs(t, q.js) == 0 })
	time.Sleep(1500 * time.Millisecond)
	if n := len(reports); n != 0 || handled.Load() != 0 {
		t.Errorf("after the report: %d more reports, %d deliveries to the survivor", n, handled.Load())
	}
}

func TestConformance(t *testing.T) {
	jobstest.Run(t, func(t *testing.T) jobstest.Queue { return newQueue(t) })
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.StreamExportJobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Finished jobs, done or given up, leave the work-queue stream, so that its
// message limit counts only jobs still to do.
func TestFinishedJobsLeaveTheStream(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan string, 4)
	w, err := q.Queue.NewWorker(ctx, jobs.WorkerOptions{
		Durable: "finish", AckWait: time.Second, MaxAttempts: 2, Backoff: []time.Duration{10 * time.Millisecond},
		Log:      telemetry.NewLogger(io.Discard, "ERROR", "text"),
		OnFailed: func(_ context.Context, j *jobs.Job, _ error) { done <- j.ID },
	}, jobs.Mux{
		"ok":        func(_ context.Context, j *jobs.Job) error { done <- j.ID; return nil },
		"retry":     func(context.Context, *jobs.Job) error { return io.ErrUnexpectedEOF },
		"permanent": func(context.Context, *jobs.Job) error { return jobs.Permanent(io.EOF) },
	}.Handle)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	for _, kind := range []string{"ok", "retry", "permanent"} {
		if _, err := q.Enqueue(ctx, kind, kind+"-1", nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("jobs did not finish")
		}
	}
	eventually(t, "the stream to be empty", func() bool { return streamMsgs(t, q.js) == 0 })
	cons, err := q.js.Consumer(ctx, bus.StreamExportJobs, "finish")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 {
		t.Errorf("%d jobs still pending acknowledgement", info.NumAckPending)
	}
}

func TestEnqueueToAMissingStreamFails(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	missing := jobs.NewQueue(q.js, "NO_SUCH_STREAM", "jobs.export")
	if _, err := missing.Enqueue(context.Background(), "build", "x", nil); err == nil {
		t.Error("a job was enqueued to a stream that does not exist")
	}
	other := jobs.NewQueue(q.js, bus.StreamExportJobs, "jobs.nowhere")
	if _, err := other.Enqueue(context.Background(), "build", "y", nil); err == nil {
		t.Error("a job was enqueued on a subject the stream does not hold")
	}
}

func TestWorkerNeedsADurableName(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	if _, err := q.Queue.NewWorker(context.Background(), jobs.WorkerOptions{}, func(context.Context, *jobs.Job) error { return nil }); err == nil {
		t.Error("a worker without durable name was created")
	}
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	w, err := q.Queue.NewWorker(context.Background(), jobs.WorkerOptions{Durable: "idle"}, func(context.Context, *jobs.Job) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Errorf("Stop of a worker never started: %v", err)
	}
}

func TestPermanent(t *testing.T) {
	base := io.EOF
	p := jobs.Permanent(base)
	if !jobs.IsPermanent(p) || jobs.IsPermanent(base) || jobs.IsPermanent(nil) {
		t.Error("IsPermanent misjudges")
	}
	if p.Error() != base.Error() {
		t.Errorf("Permanent changed the message to %q", p.Error())
	}
}
