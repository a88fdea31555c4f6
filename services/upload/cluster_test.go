package upload_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/upload"
)

var quiet = telemetry.NewLogger(io.Discard, "ERROR", "text")

// On a three-node cluster, the edge's side stages each upload through node
// 1 and the upload service, connected to nodes 2 and 3, reads it at once:
// every upload is found (a replica's direct get answered 404 now and then).
func TestUploadsStagedOnAnotherNodeAreFound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	env := testenv.Start(t)
	urls := testenv.StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	edge, err := bus.Connect(urls[0], "edge-side", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(edge.Close)
	js, err := jetstream.New(edge)
	if err != nil {
		t.Fatal(err)
	}
	// The tokens of testenv.Caller verify with the key of the test
	// SECRET_KEY, which the cluster learns as an auth service would
	// publish it.
	if err := (bus.Topology{JS: js, Replicas: 3, Bound: time.Minute}).EnsureBuckets(ctx, bus.BucketAuthKeys); err != nil {
		t.Fatal(err)
	}
	keys, err := js.KeyValue(ctx, bus.BucketAuthKeys)
	if err != nil {
		t.Fatal(err)
	}
	key, err := authn.DeriveKey(testenv.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := authn.NewSigner(key).Public()
	if err := authn.PublishKey(ctx, keys, kid, pub); err != nil {
		t.Fatal(err)
	}

	// Two instances, on nodes 2 and 3: whichever takes a request, one of
	// them reads through a replica that was not in the quorum of the put.
	for _, u := range urls[1:] {
		cfg := env.Config(t, map[string]string{"NATS_URL": u, "NATS_REPLICAS": "3"})
		d := env.Deps(t, cfg)
		testenv.Run(t, d, upload.New(d))
	}
	uploads, err := js.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	client := uploadapi.Client{T: bus.Client{NC: edge}, Staging: bus.ObjectStaging{Store: uploads}}
	// Several at once, as the edges send them, beside other writes to the
	// same store: a loaded cluster is where replicas fall behind.
	const workers, each = 8, 10
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for g := range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				_, _ = bus.PutObject(loadCtx, uploads, jetstream.ObjectMeta{Name: fmt.Sprintf("load-%d-%d", g, i)}, bytes.NewReader(make([]byte, 200<<10)))
			}
		}()
	}
	defer func() { stopLoad(); load.Wait() }()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				slug := fmt.Sprintf("exp-%d-%d", g, j)
				res, err := client.Upload(ctx, bytes.NewReader(zipOf(t, slug, nil)), ann)
				if err != nil {
					t.Errorf("upload %s: %v", slug, err)
					continue
				}
				if res.Experiment.Slug != slug || res.Experiment.Version != 1 {
					t.Errorf("upload %s: %+v", slug, res.Experiment)
				}
			}
		}()
	}
	wg.Wait()
}

// On a three-node cluster (replicas 3), an upload whose instance on node 2
// is lost mid-way is taken over by the instance on node 3 and answered
// once: the leases and outcomes of upload_runs hold on replicated streams.
func TestProcessTakenOverOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	env := testenv.Start(t)
	urls := testenv.StartCluster(t)
	on := func(node int) *config.Config {
		return env.Config(t, map[string]string{"NATS_URL": urls[node], "NATS_REPLICAS": "3"})
	}
	w := &world{t: t, env: env, cfg: on(0)}
	w.d = env.Deps(t, w.cfg)
	ctx := ctxT(t)
	if err := w.d.Topology.EnsureBuckets(ctx, bus.BucketAuthKeys); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Topology.EnsureObjectStores(ctx, bus.ObjectUploads); err != nil {
		t.Fatal(err)
	}
	keys, err := w.d.JS.KeyValue(ctx, bus.BucketAuthKeys)
	if err != nil {
		t.Fatal(err)
	}
	key, err := authn.DeriveKey(testenv.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := authn.NewSigner(key).Public()
	if err := authn.PublishKey(ctx, keys, kid, pub); err != nil {
		t.Fatal(err)
	}
	lostMidway(t, w, func(i int) *config.Config { return on(1 + i) }, upload.SetAfterStore)
}
