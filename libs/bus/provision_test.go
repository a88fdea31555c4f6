package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/testenv"
)

var (
	everyStream = []string{bus.StreamEvents, bus.StreamExportJobs, bus.StreamActorJobs, bus.StreamActorLogs}
	everyBucket = []string{
		bus.BucketRateLimit, bus.BucketRevokedTokens, bus.BucketAuthKeys, bus.BucketUserVersions, bus.BucketActorLeases,
		bus.BucketActorState, bus.BucketActorKV, bus.BucketActorTimers, bus.BucketDataGrants, bus.BucketHandoffs,
	}
	everyObjectStore = []string{bus.ObjectUploads, bus.ObjectBundles, bus.ObjectExports}
)

// provisionAll provisions the whole topology through top.
func provisionAll(ctx context.Context, top bus.Topology) error {
	if err := top.EnsureStreams(ctx, everyStream...); err != nil {
		return err
	}
	if err := top.EnsureBuckets(ctx, everyBucket...); err != nil {
		return err
	}
	return top.EnsureObjectStores(ctx, everyObjectStore...)
}

// provisionTogether provisions the whole topology from one client per
// connection in ncs, all released at the same moment, and returns each
// client's error. Odd clients provision as a service that owns nothing
// (create, and accept what exists), even ones as the owner (create or
// update): both paths race.
func provisionTogether(ctx context.Context, ncs []*nats.Conn, bound, attempt time.Duration, retrying func(client int)) []error {
	errs := make([]error, len(ncs))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, nc := range ncs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[i] = err
				ready.Done()
				return
			}
			top := bus.Topology{JS: js, Bound: bound, Attempt: attempt}
			if retrying != nil {
				top.Retrying = func(string, string, int, error) { retrying(i) }
			}
			if i%2 == 1 {
				top.Service = "edge"
			}
			ready.Done()
			<-start
			errs[i] = provisionAll(ctx, top)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

func checkTopology(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 10*time.Second)
	for _, s := range everyStream {
		if _, err := js.Stream(ctx, s); err != nil {
			t.Errorf("stream %s: %v", s, err)
		}
	}
	for _, b := range everyBucket {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	for _, o := range everyObjectStore {
		if _, err := js.ObjectStore(ctx, o); err != nil {
			t.Errorf("object store %s: %v", o, err)
		}
	}
}

func TestProvisionFromManyInstancesAtOnce(t *testing.T) {
	env := testenv.Start(t)
	ncs := make([]*nats.Conn, 10)
	for i := range ncs {
		ncs[i] = connect(t, env, fmt.Sprintf("instance-%d", i))
	}
	for i, err := range provisionTogether(timeout(t, 2*time.Minute), ncs, 90*time.Second, 0, nil) {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	checkTopology(t, ncs[0])
}

// freeLoopbackAddr is a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestProvisionWaitsForALateServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	// The server's credentials exist before it does: the clients know
	// them, as deployed services know theirs from their settings.
	creds, err := embedded.LoadCredentials(filepath.Join(dir, embedded.CredentialsDir))
	if err != nil {
		t.Fatal(err)
	}
	admin := creds.Auth(bus.Admin)
	addr := freeLoopbackAddr(t)
	ncs := make([]*nats.Conn, 4)
	for i := range ncs {
		nc, err := bus.Connect("nats://"+addr, fmt.Sprintf("early-%d", i), quiet,
			nats.UserInfo(admin.User, admin.Password), nats.RetryOnFailedConnect(true))
		if err != nil {
			t.Fatalf("connect before the server: %v", err)
		}
		t.Cleanup(nc.Close)
		ncs[i] = nc
	}
	var mu sync.Mutex
	retried := map[int]bool{}
	results := make(chan []error, 1)
	go func() {
		results <- provisionTogether(context.Background(), ncs, time.Minute, 300*time.Millisecond, func(i int) {
			mu.Lock()
			defer mu.Unlock()
			retried[i] = true
		})
	}()
	// Every client has seen an attempt fail for want of a server.
	eventually(t, "every client to fail an attempt before the server exists", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(retried) == len(ncs)
	})
	srv, err := embedded.StartNATS(dir, addr)
	if err != nil {
		t.Fatalf("start the server late: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	select {
	case errs := <-results:
		for i, err := range errs {
			if err != nil {
				t.Errorf("instance %d: %v", i, err)
			}
		}
	case <-time.After(90 * time.Second):
		t.Fatal("provisioning did not finish 90 s after the server started")
	}
	checkTopology(t, ncs[0])
}

func TestProvisionGivesUpAtTheBound(t *testing.T) {
	addr := freeLoopbackAddr(t)
	nc, err := bus.Connect("nats://"+addr, "alone", quiet, nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	top := bus.Topology{JS: js, Bound: 700 * time.Millisecond}
	began := time.Now()
	err = top.EnsureBuckets(timeout(t, time.Minute), bus.BucketRevokedTokens)
	took := time.Since(began)
	var pe *bus.ProvisionError
	if !errors.As(err, &pe) || pe.Kind != "bucket" || pe.Name != bus.BucketRevokedTokens {
		t.Fatalf("err = %v, want a ProvisionError naming bucket %s", err, bus.BucketRevokedTokens)
	}
	if !strings.Contains(err.Error(), "provision bucket "+bus.BucketRevokedTokens) {
		t.Errorf("message %q does not name the bucket", err)
	}
	if !bus.IsUnavailable(err) {
		t.Errorf("giving up on an absent server is not unavailable: %v", err)
	}
	if took < 700*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about the 700 ms bound", took)
	}
}

// A refusal that retrying cannot mend fails at once, whatever the bound.
func TestProvisionDoesNotRetryARefusal(t *testing.T) {
	top, _ := topology(t)
	top.Replicas, top.Bound = 3, time.Minute
	began := time.Now()
	err := top.EnsureStreams(timeout(t, time.Minute), bus.StreamEvents)
	if err == nil || !strings.Contains(err.Error(), bus.StreamEvents) {
		t.Fatalf("err = %v, want a refusal naming %s", err, bus.StreamEvents)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("a refusal took %v: it was retried", took)
	}
}
