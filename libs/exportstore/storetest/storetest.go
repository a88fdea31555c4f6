// Package storetest is the conformance suite of exportstore.Store: what
// every backend must do, stated as tests. exportstore's tests run it
// against the JetStream object store and against S3 (a real versitygw
// server); another backend passes it before it is used.
//
// Beyond the contract in exportstore's documentation, the suite checks
// that a 40 MiB object is streamed: while it is written, and while it is
// read back, the process's live heap grows by well under its size
// (LargeObjectIsStreamed). The live heap is taken after a full collection
// at every few MiB that pass through the test's reader or writer, so the
// measure does not depend on when the collector happens to run. It covers
// the whole test process, servers included when they run in it, so it is
// an upper bound for the client side.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/exportstore"
)

const (
	// LargeSize is the size of the streamed object.
	LargeSize = 40 << 20
	// MaxHeapGrowth is how much the heap may grow while it is written or
	// read.
	MaxHeapGrowth = 32 << 20
	// failAfter is where failing readers fail: past the first S3 part
	// (16 MiB), so parts have been uploaded and must be dropped.
	failAfter = 20 << 20
)

// Run runs the suite. Each call of newStore gives a store with no objects,
// of its own for the rest of the test. Cases run one after another: the
// memory measure needs a quiet process.
func Run(t *testing.T, newStore func(t *testing.T) exportstore.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, context.Context, exportstore.Store)
	}{
		{"PutOpenStatDelete", putOpenStatDelete},
		{"EmptyObject", emptyObject},
		{"MissingKey", missingKey},
		{"OverwriteReplaces", overwriteReplaces},
		{"LargeObjectIsStreamed", largeObjectIsStreamed},
		{"FailingReaderLeavesNoObject", failingReaderLeavesNoObject},
		{"FailedOverwriteKeepsThePrevious", failedOverwriteKeepsPrevious},
		{"CancelledPutLeavesNoObject", cancelledPutLeavesNoObject},
		{"DeleteWhileReading", deleteWhileReading},
		{"DownloadURL", downloadURL},
		{"PingAndName", pingAndName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tc.fn(t, ctx, newStore(t))
		})
	}
}

func putOpenStatDelete(t *testing.T, ctx context.Context, s exportstore.Store) {
	key := "exports/2024 Q1/naïve+résumé (1).zip"
	data := Bytes(3, 300_000)
	start := time.Now()
	obj, err := s.Put(ctx, key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) {
		t.Errorf("Put gave %+v, want key %q size %d", obj, key, len(data))
	}
	checkModTime(t, "Put", obj.ModTime, start)
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Key != key || st.Size != int64(len(data)) {
		t.Errorf("Stat gave %+v, want key %q size %d", st, key, len(data))
	}
	checkModTime(t, "Stat", st.ModTime, start)
	if got := read(t, ctx, s, key); !bytes.Equal(got, data) {
		t.Errorf("Open read %d bytes, not the %d put", len(got), len(data))
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(ctx, key); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Open after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
}

func emptyObject(t *testing.T, ctx context.Context, s exportstore.Store) {
	obj, err := s.Put(ctx, "empty.zip", bytes.NewReader(nil))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if obj.Size != 0 {
		t.Errorf("Put gave size %d, want 0", obj.Size)
	}
	if st, err := s.Stat(ctx, "empty.zip"); err != nil || st.Size != 0 {
		t.Errorf("Stat: %+v, %v; want size 0", st, err)
	}
	if got := read(t, ctx, s, "empty.zip"); len(got) != 0 {
		t.Errorf("Open read %d bytes, want 0", len(got))
	}
}

func missingKey(t *testing.T, ctx context.Context, s exportstore.Store) {
	if _, err := s.Stat(ctx, "never/put.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat: %v, want ErrNotFound", err)
	}
	if rc, _, err := s.Open(ctx, "never/put.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Open: %v, want ErrNotFound", err)
		if rc != nil {
			rc.Close()
		}
	}
	if err := s.Delete(ctx, "never/put.zip"); err != nil {
		t.Errorf("Delete: %v, want nil", err)
	}
}

func overwriteReplaces(t *testing.T, ctx context.Context, s exportstore.Store) {
	v1, v2 := Bytes(1, 5000), Bytes(2, 200_000)
	if _, err := s.Put(ctx, "x.zip", bytes.NewReader(v1)); err != nil {
		t.Fatalf("Put v1: %v", err)
	}
	obj, err := s.Put(ctx, "x.zip", bytes.NewReader(v2))
	if err != nil {
		t.Fatalf("Put v2: %v", err)
	}
	if obj.Size != int64(len(v2)) {
		t.Errorf("Put v2 gave size %d, want %d", obj.Size, len(v2))
	}
	if st, err := s.Stat(ctx, "x.zip"); err != nil || st.Size != int64(len(v2)) {
		t.Errorf("Stat: %+v, %v; want size %d", st, err, len(v2))
	}
	if got := read(t, ctx, s, "x.zip"); !bytes.Equal(got, v2) {
		t.Errorf("Open read %d bytes, not v2", len(got))
	}
}

// deleteWhileReading deletes an object a reader is in the middle of: the
// reader then either delivers the whole, intact content (a backend may keep
// serving what it opened) or fails, within seconds; it never hangs until its
// context ends, nor delivers something else without an error.
func deleteWhileReading(t *testing.T, ctx context.Context, s exportstore.Store) {
	data := Bytes(9, 8<<20)
	if _, err := s.Put(ctx, "gone.zip", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	rc, _, err := s.Open(ctx, "gone.zip")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	head := make([]byte, 1<<10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("read the start: %v", err)
	}
	if err := s.Delete(ctx, "gone.zip"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	start := time.Now()
	rest, err := io.ReadAll(rc)
	took := time.Since(start)
	if took > 20*time.Second {
		t.Errorf("reading on after the delete took %v", took)
	}
	if err == nil && !bytes.Equal(append(head, rest...), data) {
		t.Errorf("the read after the delete ended without an error but with %d bytes that are not the object", len(head)+len(rest))
	}
	t.Logf("after the delete: %d more bytes in %v, err %v", len(rest), took.Round(time.Millisecond), err)
}

func largeObjectIsStreamed(t *testing.T, ctx context.Context, s exportstore.Store) {
	src := NewGenerator(7, LargeSize)
	var obj exportstore.Object
	var err error
	watch := newHeapWatch()
	obj, err = s.Put(ctx, "large.zip", watch.reader(src))
	put := watch.done()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if obj.Size != LargeSize {
		t.Errorf("Put gave size %d, want %d", obj.Size, LargeSize)
	}
	h := sha256.New()
	var n int64
	watch = newHeapWatch()
	func() {
		var rc io.ReadCloser
		rc, obj, err = s.Open(ctx, "large.zip")
		if err != nil {
			return
		}
		defer rc.Close()
		n, err = io.Copy(io.MultiWriter(h, watch.writer()), rc)
	}()
	get := watch.done()
	if err != nil {
		t.Fatalf("Open and read: %v", err)
	}
	if obj.Size != LargeSize || n != LargeSize || !bytes.Equal(h.Sum(nil), src.Sum()) {
		t.Errorf("read back %d bytes (Open said %d); content equal: %v", n, obj.Size, bytes.Equal(h.Sum(nil), src.Sum()))
	}
	t.Logf("%s, %d MiB: Put heap peak +%.1f MiB (allocated %.1f MiB); Open heap peak +%.1f MiB (allocated %.1f MiB)",
		s.Name(), LargeSize>>20, mib(put.peak), mib(put.total), mib(get.peak), mib(get.total))
	if put.peak >= MaxHeapGrowth {
		t.Errorf("heap grew by %.1f MiB while putting %d MiB: not streamed (limit %d MiB)", mib(put.peak), LargeSize>>20, MaxHeapGrowth>>20)
	}
	if get.peak >= MaxHeapGrowth {
		t.Errorf("heap grew by %.1f MiB while reading %d MiB: not streamed (limit %d MiB)", mib(get.peak), LargeSize>>20, MaxHeapGrowth>>20)
	}
}

var errBoom = errors.New("storetest: the reader failed")

func failingReaderLeavesNoObject(t *testing.T, ctx context.Context, s exportstore.Store) {
	_, err := s.Put(ctx, "broken.zip", io.MultiReader(NewGenerator(4, failAfter), errReader{errBoom}))
	if !errors.Is(err, errBoom) {
		t.Fatalf("Put: %v, want the reader's error", err)
	}
	if st, err := s.Stat(ctx, "broken.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat after the failed Put: %+v, %v; want ErrNotFound", st, err)
	}
	if _, _, err := s.Open(ctx, "broken.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Open after the failed Put: %v, want ErrNotFound", err)
	}
}

func failedOverwriteKeepsPrevious(t *testing.T, ctx context.Context, s exportstore.Store) {
	v1 := Bytes(5, 70_000)
	if _, err := s.Put(ctx, "kept.zip", bytes.NewReader(v1)); err != nil {
		t.Fatalf("Put v1: %v", err)
	}
	_, err := s.Put(ctx, "kept.zip", io.MultiReader(NewGenerator(6, failAfter), errReader{errBoom}))
	if !errors.Is(err, errBoom) {
		t.Fatalf("failing Put: %v, want the reader's error", err)
	}
	if st, err := s.Stat(ctx, "kept.zip"); err != nil || st.Size != int64(len(v1)) {
		t.Errorf("Stat: %+v, %v; want the previous object, size %d", st, err, len(v1))
	}
	if got := read(t, ctx, s, "kept.zip"); !bytes.Equal(got, v1) {
		t.Errorf("Open read %d bytes, not the previous object", len(got))
	}
}

func cancelledPutLeavesNoObject(t *testing.T, ctx context.Context, s exportstore.Store) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The job is stopped midway: the context ends while the reader still
	// has data.
	r := &cancellingReader{r: NewGenerator(8, failAfter), after: 1 << 20, cancel: cancel}
	if _, err := s.Put(pctx, "cancelled.zip", r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	if st, err := s.Stat(ctx, "cancelled.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat after the cancelled Put: %+v, %v; want ErrNotFound", st, err)
	}
}

func downloadURL(t *testing.T, ctx context.Context, s exportstore.Store) {
	key := "exports/2024 Q1/naïve+résumé (1).zip"
	data := Bytes(9, 100_000)
	if _, err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	const name = `clicks "v3", naïve.zip`
	link, ok, err := s.DownloadURL(ctx, key, exportstore.Link{TTL: time.Minute, FileName: name, ContentType: "application/zip"})
	if err != nil {
		t.Fatalf("DownloadURL: %v", err)
	}
	if !ok {
		if link != "" {
			t.Errorf("DownloadURL gave %q with ok false", link)
		}
		return // the caller streams through Open, tested above
	}
	status, got, h := fetchHeader(t, ctx, link)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET of the link: %d, %d bytes; want 200 and the %d bytes put", status, len(got), len(data))
	}
	if cd := h.Get("Content-Disposition"); cd != exportstore.Attachment(name) {
		t.Errorf("GET of the link: Content-Disposition %q, want %q", cd, exportstore.Attachment(name))
	}
	if ct := h.Get("Content-Type"); ct != "application/zip" {
		t.Errorf("GET of the link: Content-Type %q, want application/zip", ct)
	}
	if link, ok, err := s.DownloadURL(ctx, key, exportstore.Link{}); err != nil || !ok {
		t.Errorf("DownloadURL with the default lifetime: %q %v %v", link, ok, err)
	}

	short, _, err := s.DownloadURL(ctx, key, exportstore.Link{TTL: time.Second})
	if err != nil {
		t.Fatalf("DownloadURL 1s: %v", err)
	}
	time.Sleep(2 * time.Second)
	if status, _ := fetch(t, ctx, short); status != http.StatusForbidden {
		t.Errorf("GET of an expired link: %d, want 403", status)
	}
}

func pingAndName(t *testing.T, ctx context.Context, s exportstore.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if s.Name() == "" {
		t.Error("Name is empty")
	}
}

func read(t *testing.T, ctx context.Context, s exportstore.Store, key string) []byte {
	t.Helper()
	rc, obj, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if obj.Key != key || obj.Size != int64(len(b)) {
		t.Errorf("Open gave %+v for %d bytes", obj, len(b))
	}
	return b
}

func fetch(t *testing.T, ctx context.Context, link string) (int, []byte) {
	t.Helper()
	status, b, _ := fetchHeader(t, ctx, link)
	return status, b
}

func fetchHeader(t *testing.T, ctx context.Context, link string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	return resp.StatusCode, b, resp.Header
}

func checkModTime(t *testing.T, op string, got, start time.Time) {
	t.Helper()
	// Storage clocks keep whole seconds.
	if got.Before(start.Add(-2*time.Second)) || got.After(time.Now().Add(2*time.Second)) {
		t.Errorf("%s gave ModTime %s, not around now (%s)", op, got, start)
	}
}

// Bytes returns n bytes of seeded random data.
func Bytes(seed uint64, n int) []byte {
	b, _ := io.ReadAll(NewGenerator(seed, int64(n)))
	return b
}

// Generator reads n bytes of seeded random data, holding none of it, and
// keeps their SHA-256.
type Generator struct {
	src  *rand.ChaCha8
	left int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// NewGenerator returns a Generator of n bytes.
func NewGenerator(seed uint64, n int64) *Generator {
	var s [32]byte
	copy(s[:], fmt.Sprint(seed))
	return &Generator{src: rand.NewChaCha8(s), left: n, h: sha256.New()}
}

func (g *Generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.src.Read(p)
	g.h.Write(p[:n])
	g.left -= int64(n)
	return n, nil
}

// Sum is the SHA-256 of the bytes read so far.
func (g *Generator) Sum() []byte { return g.h.Sum(nil) }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type cancellingReader struct {
	r      io.Reader
	after  int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.read += int64(n); c.read >= c.after {
		c.cancel()
	}
	return n, err
}

type usage struct{ peak, total uint64 }

// watchEvery is how many bytes pass between two measures of the live heap.
const watchEvery = 4 << 20

// heapWatch measures how far the live heap grows above its level at the
// start while bytes pass through its reader or writer: at every
// watchEvery bytes, and at the end, it runs a full collection and reads
// the heap, so garbage not yet collected never counts and the measure does
// not depend on the collector's timing.
type heapWatch struct {
	base, baseTotal uint64
	passed, next    int64
	peak            uint64
}

func newHeapWatch() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &heapWatch{base: ms.HeapAlloc, baseTotal: ms.TotalAlloc, next: watchEvery}
}

func (w *heapWatch) measure() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > w.base {
		w.peak = max(w.peak, ms.HeapAlloc-w.base)
	}
}

func (w *heapWatch) pass(n int) {
	for w.passed += int64(n); w.passed >= w.next; w.next += watchEvery {
		w.measure()
	}
}

// done takes a last measure and reports the peak and the bytes allocated
// since the start.
func (w *heapWatch) done() usage {
	w.measure()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{peak: w.peak, total: ms.TotalAlloc - w.baseTotal}
}

func (w *heapWatch) reader(r io.Reader) io.Reader { return watchedReader{r, w} }
func (w *heapWatch) writer() io.Writer            { return watchedWriter{w} }

type watchedReader struct {
	r io.Reader
	w *heapWatch
}

func (r watchedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.w.pass(n)
	if err == io.EOF {
		r.w.measure() // everything was read: a buffering store holds it all now
	}
	return n, err
}

type watchedWriter struct{ w *heapWatch }

func (w watchedWriter) Write(p []byte) (int, error) {
	w.w.pass(len(p))
	return len(p), nil
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
