package bus_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/embedded"
)

// cutReader yields size bytes and runs cut once, after the first half.
type cutReader struct {
	left, half int
	once       sync.Once
	cut        func()
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left <= r.half {
		r.once.Do(r.cut)
	}
	n := min(len(p), r.left, 64<<10)
	for i := range p[:n] {
		p[i] = byte(r.left - i)
	}
	r.left -= n
	return n, nil
}

// A node lost in the middle of an upload fails the put within seconds
// even when the request allows minutes, and leaves nothing readable.
func TestStagingFailsFastWhenTheServerGoesAway(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	addr := freeLoopbackAddr(t)
	srv, err := embedded.StartNATS(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.Credentials().Auth(bus.Admin)
	nc, err := bus.Connect(srv.URL(), "uploader", quiet, nats.UserInfo(admin.User, admin.Password))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The per-operation timeout the platform's connections get (svc),
	// shortened for the test.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, time.Minute)
	if err := (bus.Topology{JS: js}).EnsureObjectStores(ctx, bus.ObjectUploads); err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	var stopped sync.WaitGroup
	stopped.Add(1)
	r := &cutReader{left: 4 << 20, half: 2 << 20, cut: func() { go func() { defer stopped.Done(); srv.Shutdown() }() }}
	// The edge's upload deadline: ten minutes.
	upload, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	began := time.Now()
	_, err = bus.ObjectStaging{Store: obj}.Put(upload, "up-cut", r)
	took := time.Since(began)
	stopped.Wait()
	if err == nil {
		t.Fatal("the put succeeded though the server went away in the middle")
	}
	if took > 15*time.Second {
		t.Errorf("the put failed after %v, want within seconds", took)
	}
	if ae := apierr.From(err); ae.Code != apierr.CodeUnavailable || ae.RetryAfter <= 0 {
		t.Errorf("err %v is %s (retry after %d), want unavailable with a Retry-After", err, ae.Code, ae.RetryAfter)
	}

	// The same server comes back: the half-written upload is not there.
	srv, err = embedded.StartNATS(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	eventually(t, "the client to reconnect", func() bool { return nc.Status() == nats.CONNECTED })
	if _, err := obj.GetInfo(timeout(t, 10*time.Second), "up-cut"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("after a failed put, GetInfo = %v, want object not found", err)
	}
	// And the store works again for the next upload.
	data := bytes.Repeat([]byte("z"), 300<<10)
	if n, err := (bus.ObjectStaging{Store: obj}).Put(timeout(t, time.Minute), "up-next", bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("put after the server came back: %d, %v", n, err)
	}
}

// A reader that fails part-way (a client gone) stores nothing.
func TestStagingOfABrokenBodyLeavesNothing(t *testing.T) {
	top, js := topology(t)
	ctx := timeout(t, 30*time.Second)
	if err := top.EnsureObjectStores(ctx, bus.ObjectUploads); err != nil {
		t.Fatal(err)
	}
	obj, err := js.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	gone := errors.New("client went away")
	body := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), 1<<20)), iotestErr{gone})
	if _, err := (bus.ObjectStaging{Store: obj}).Put(ctx, "up-broken", body); !errors.Is(err, gone) {
		t.Fatalf("err = %v, want the reader's", err)
	}
	if _, err := obj.GetInfo(ctx, "up-broken"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("GetInfo after a broken body = %v, want object not found", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }
