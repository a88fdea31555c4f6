package bus_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

var (
	allStreams      = []string{bus.StreamEvents, bus.StreamExportJobs, bus.StreamActorJobs}
	allBuckets      = []string{bus.BucketRateLimit, bus.BucketRevokedTokens, bus.BucketActorLeases, bus.BucketActorState, bus.BucketActorKV}
	allObjectStores = []string{bus.ObjectUploads, bus.ObjectBundles, bus.ObjectExports}
)

func topology(t *testing.T) (bus.Topology, jetstream.JetStream) {
	t.Helper()
	env := testenv.Start(t)
	js, err := jetstream.New(connect(t, env, "topology"))
	if err != nil {
		t.Fatal(err)
	}
	return bus.Topology{JS: js}, js
}

func TestEnsureIsIdempotent(t *testing.T) {
	top, js := topology(t)
	ctx := timeout(t, 30*time.Second)
	for i := range 2 {
		if err := top.EnsureStreams(ctx, allStreams...); err != nil {
			t.Fatalf("EnsureStreams call %d: %v", i+1, err)
		}
		if err := top.EnsureBuckets(ctx, allBuckets...); err != nil {
			t.Fatalf("EnsureBuckets call %d: %v", i+1, err)
		}
		if err := top.EnsureObjectStores(ctx, allObjectStores...); err != nil {
			t.Fatalf("EnsureObjectStores call %d: %v", i+1, err)
		}
	}
	for _, name := range allStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 || cfg.Duplicates != 10*time.Minute {
			t.Errorf("stream %s: storage %v replicas %d duplicates %v", name, cfg.Storage, cfg.Replicas, cfg.Duplicates)
		}
		want := jetstream.WorkQueuePolicy
		if name == bus.StreamEvents {
			want = jetstream.LimitsPolicy
		}
		if cfg.Retention != want {
			t.Errorf("stream %s: retention %v, want %v", name, cfg.Retention, want)
		}
	}
	for _, name := range allBuckets {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			t.Fatalf("bucket %s: %v", name, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.History() != 1 {
			t.Errorf("bucket %s keeps %d revisions, want 1", name, st.History())
		}
	}
	if kv, _ := js.KeyValue(ctx, bus.BucketRateLimit); kv != nil {
		if st, _ := kv.Status(ctx); st.TTL() != time.Hour {
			t.Errorf("ratelimit TTL %v, want 1h", st.TTL())
		}
	}
	for _, name := range allObjectStores {
		if _, err := js.ObjectStore(ctx, name); err != nil {
			t.Errorf("object store %s: %v", name, err)
		}
	}
}

func TestJobStreamsAreWorkQueues(t *testing.T) {
	top, js := topology(t)
	ctx := timeout(t, 30*time.Second)
	if err := top.EnsureStreams(ctx, bus.StreamExportJobs); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "jobs.export.standalone", []byte("job")); err != nil {
		t.Fatal(err)
	}
	// Publishing the same message ID again inside the window is de-duplicated.
	for i := range 2 {
		ack, err := js.Publish(ctx, "jobs.export.standalone", []byte("job2"), jetstream.WithMsgID("job-2"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != (i == 1) {
			t.Errorf("publish %d of job-2: duplicate=%v", i+1, ack.Duplicate)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamExportJobs, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("fetched %d jobs, want 2", n)
	}
	s, _ := js.Stream(ctx, bus.StreamExportJobs)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d acknowledged jobs remain in the work queue", info.State.Msgs)
	}
	// A work queue refuses a second consumer over the same subjects.
	if _, err := js.CreateOrUpdateConsumer(ctx, bus.StreamExportJobs, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Error("a second unfiltered consumer was allowed on a work-queue stream")
	}
}

func TestUnknownNamesAreRefused(t *testing.T) {
	top, _ := topology(t)
	ctx := timeout(t, 10*time.Second)
	for name, err := range map[string]error{
		"stream":       top.EnsureStreams(ctx, bus.StreamEvents, "NOPE"),
		"bucket":       top.EnsureBuckets(ctx, "nope"),
		"object store": top.EnsureObjectStores(ctx, "nope"),
	} {
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "nope") {
			t.Errorf("unknown %s: err = %v, want one naming it", name, err)
		}
	}
	if _, err := top.Stream("NOPE"); err == nil {
		t.Error("Stream accepted an unknown name")
	}
	if _, err := top.KeyValue("nope"); err == nil {
		t.Error("KeyValue accepted an unknown name")
	}
	if _, err := top.ObjectStore("nope"); err == nil {
		t.Error("ObjectStore accepted an unknown name")
	}
}

func TestReplicasAreApplied(t *testing.T) {
	for _, r := range []int{0, -1, 1} {
		cfg, err := bus.Topology{Replicas: r}.Stream(bus.StreamEvents)
		if err != nil || cfg.Replicas != 1 {
			t.Errorf("Replicas %d: stream replicas %d, %v; want 1", r, cfg.Replicas, err)
		}
	}
	three := bus.Topology{Replicas: 3}
	s, _ := three.Stream(bus.StreamActorJobs)
	kv, _ := three.KeyValue(bus.BucketActorKV)
	obj, _ := three.ObjectStore(bus.ObjectExports)
	if s.Replicas != 3 || kv.Replicas != 3 || obj.Replicas != 3 {
		t.Errorf("replicas: stream %d bucket %d object store %d, want 3", s.Replicas, kv.Replicas, obj.Replicas)
	}
	// A single embedded server cannot hold three replicas: the setting
	// reaches the server rather than being dropped.
	top, js := topology(t)
	three.JS = top.JS
	if err := three.EnsureStreams(timeout(t, 10*time.Second), bus.StreamEvents); err == nil {
		t.Error("a 3-replica stream was created on a single server")
	}
	if _, err := js.Stream(timeout(t, 5*time.Second), bus.StreamEvents); !bus.IsNotFound(err) {
		t.Errorf("stream lookup after the refusal: %v", err)
	}
}

func TestIsNotFound(t *testing.T) {
	top, js := topology(t)
	ctx := timeout(t, 10*time.Second)
	_, err := js.Stream(ctx, "ABSENT")
	if !bus.IsNotFound(err) {
		t.Errorf("missing stream: IsNotFound(%v) = false", err)
	}
	_, err = js.KeyValue(ctx, "absent")
	if !bus.IsNotFound(err) {
		t.Errorf("missing bucket: IsNotFound(%v) = false", err)
	}
	if err := top.EnsureBuckets(ctx, bus.BucketActorState); err != nil {
		t.Fatal(err)
	}
	kv, _ := js.KeyValue(ctx, bus.BucketActorState)
	_, err = kv.Get(ctx, "absent")
	if !bus.IsNotFound(err) {
		t.Errorf("missing key: IsNotFound(%v) = false", err)
	}
	if err := top.EnsureObjectStores(ctx, bus.ObjectBundles); err != nil {
		t.Fatal(err)
	}
	obj, _ := js.ObjectStore(ctx, bus.ObjectBundles)
	_, err = obj.GetInfo(ctx, "absent")
	if !bus.IsNotFound(err) {
		t.Errorf("missing object: IsNotFound(%v) = false", err)
	}
	if bus.IsNotFound(errors.New("connection refused")) || bus.IsNotFound(nil) {
		t.Error("IsNotFound is true for other errors")
	}
}
