package bus_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// An object read whose consumer's server dies mid-read goes on from the
// next chunk through a consumer made again on a surviving node, and ends
// with the whole object long before its context's deadline. nats.go's
// ObjectStore.Get waits for the next chunk until its ordered consumer's
// missed heartbeats reset it (20 s): with an election on top, an upload in
// flight when a NATS node died waited past its client's 30 s.
func TestObjectReadGoesOnWhenItsConsumersServerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	srvs := testenv.StartClusterServers(t)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	ctx := timeout(t, 4*time.Minute)
	// Connected as services are, to every node, so that either client
	// outlives the loss of any one.
	all := strings.Join(urls, ",")
	jsW, jsR := jsAt(t, all, "writer"), jsAt(t, all, "reader")
	if err := (bus.Topology{JS: jsW, Replicas: 3, Bound: time.Minute}).EnsureObjectStores(ctx, bus.ObjectUploads); err != nil {
		t.Fatal(err)
	}
	obs, err := jsW.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 40*128<<10) // 40 chunks: five fetches
	_, _ = rand.Read(body)
	if _, err := bus.PutObject(ctx, obs, jetstream.ObjectMeta{Name: "up-1"}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}

	// The first chunk written stops the server of the reader's consumer.
	var stopped string
	dst := writeHook{after: func() {
		stream, err := jsW.Stream(ctx, "OBJ_"+bus.ObjectUploads)
		if err != nil {
			t.Fatal(err)
		}
		consumers := stream.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if ci.Cluster == nil {
				continue
			}
			for _, s := range srvs {
				if s.Name() == ci.Cluster.Leader {
					stopped = s.Name()
					s.Shutdown()
				}
			}
		}
		if stopped == "" {
			t.Fatalf("found no server holding the reader's consumer: %v", consumers.Err())
		}
	}}
	// A deadline far past the test's: a read waiting for it is the fault.
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	began := time.Now()
	_, err = bus.Objects{JS: jsR, Bucket: bus.ObjectUploads}.Read(rctx, "up-1", &dst, 0)
	took := time.Since(began)
	t.Logf("server %s stopped after the first chunk; the read ended after %v: %v", stopped, took.Round(time.Millisecond), err)
	switch {
	case rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		t.Fatalf("the read waited for its deadline: %v", err)
	case err != nil:
		t.Fatalf("the read failed: %v", err)
	case !bytes.Equal(dst.buf.Bytes(), body):
		t.Fatalf("read %d bytes that differ from the %d put", dst.buf.Len(), len(body))
	}
}

// writeHook keeps what is written, and calls after once, after the first
// write.
// (Not a bytes.Buffer itself: io.Copy would use its ReadFrom.)
type writeHook struct {
	buf   bytes.Buffer
	after func()
}

func (w *writeHook) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if w.after != nil {
		f := w.after
		w.after = nil
		f()
	}
	return len(p), nil
}
