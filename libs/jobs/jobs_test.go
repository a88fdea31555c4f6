package jobs_test

import (
	"context"
	"io"
	"testing"
	"time"

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
	js jetstream.JetStream
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
	return natsQueue{jobs.NewQueue(js, bus.StreamExportJobs, "jobs.export"), js}
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
