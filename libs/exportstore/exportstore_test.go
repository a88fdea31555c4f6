package exportstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/exportstore/s3test"
	"github.com/gnome-platform/gnome/libs/exportstore/storetest"
)

// startNATS starts an embedded server for t and connects to it.
func startNATS(t *testing.T) (*embedded.NATS, jetstream.JetStream) {
	t.Helper()
	n, err := embedded.StartNATS(filepath.Join(t.TempDir(), "nats"), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(n.Shutdown)
	return n, connect(t, n.AdminURL())
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

var bucketSeq atomic.Int64

// newBucket creates an object store configured as the platform's
// "exports", under a name of its own.
func newBucket(t *testing.T, js jetstream.JetStream, edit func(*jetstream.ObjectStoreConfig)) string {
	t.Helper()
	cfg, err := bus.Topology{JS: js}.ObjectStore(bus.ObjectExports)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bucket = fmt.Sprintf("exports-test-%d", bucketSeq.Add(1))
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateObjectStore(ctx, cfg); err != nil {
		t.Fatalf("create object store: %v", err)
	}
	return cfg.Bucket
}

func TestObjectStoreConformance(t *testing.T) {
	_, js := startNATS(t)
	storetest.Run(t, func(t *testing.T) exportstore.Store {
		return exportstore.NewObjectStore(js, newBucket(t, js, nil))
	})
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	var buckets []string
	storetest.Run(t, func(t *testing.T) exportstore.Store {
		cfg := srv.NewBucket(t)
		buckets = append(buckets, cfg.Bucket)
		s, err := exportstore.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	// Failed and cancelled Puts aborted their multipart uploads: no parts
	// are left behind either.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := srv.Client(t)
	for _, b := range buckets {
		for u := range c.ListIncompleteUploads(ctx, b, "", true) {
			t.Errorf("bucket %s keeps an incomplete upload of %q (%v)", b, u.Key, u.Err)
		}
	}
}

func TestAttachment(t *testing.T) {
	for name, want := range map[string]string{
		"clicks-v3.zip":            `attachment; filename="clicks-v3.zip"`,
		`a "b" \c.zip`:             `attachment; filename="a b c.zip"; filename*=UTF-8''a%20%22b%22%20%5Cc.zip`,
		"naïve, ok=1.zip":          `attachment; filename="na_ve, ok=1.zip"; filename*=UTF-8''na%C3%AFve%2C%20ok%3D1.zip`,
		"x\r\nSet-Cookie: a=b.csv": `attachment; filename="xSet-Cookie: a=b.csv"; filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%3Db.csv`,
	} {
		if got := exportstore.Attachment(name); got != want {
			t.Errorf("Attachment(%q) = %s\nwant %s", name, got, want)
		}
	}
}

func TestS3DownloadURL(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.NewBucket(t)
	s, err := exportstore.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, "exports/e1.zip", strings.NewReader("PK")); err != nil {
		t.Fatal(err)
	}
	for ttl, want := range map[time.Duration]string{0: "900", 90 * time.Second: "90"} {
		link, ok, err := s.DownloadURL(ctx, "exports/e1.zip", exportstore.Link{TTL: ttl})
		if err != nil || !ok {
			t.Fatalf("DownloadURL(%s): %q %v %v", ttl, link, ok, err)
		}
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("X-Amz-Expires"); got != want {
			t.Errorf("DownloadURL(%s) expires after %s s, want %s", ttl, got, want)
		}
		if u.Query().Get("X-Amz-Credential") == "" || strings.Contains(link, s3test.SecretKey) {
			t.Errorf("link %s is not presigned, or shows the secret", link)
		}
	}
	if _, _, err := s.DownloadURL(ctx, "exports/e1.zip", exportstore.Link{TTL: 8 * 24 * time.Hour}); err == nil {
		t.Error("a link of 8 days was given; SigV4 allows 7")
	}
	st, err := s.Stat(ctx, "exports/e1.zip")
	if err != nil || st.Size != 2 {
		t.Fatalf("Stat: %+v %v", st, err)
	}
	info, err := srv.Client(t).StatObject(ctx, cfg.Bucket, "exports/e1.zip", minio.StatObjectOptions{})
	if err != nil || info.ContentType != "application/zip" {
		t.Errorf("stored content type %q (%v), want application/zip", info.ContentType, err)
	}
}

// Objects are in the standard object store layout: nats.go (and so the nats
// CLI and other clients) reads what Put wrote, and Open reads what nats.go
// wrote.
func TestObjectStoreLayoutIsNATSStandard(t *testing.T) {
	_, js := startNATS(t)
	bucket := newBucket(t, js, nil)
	s := exportstore.NewObjectStore(js, bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	ours := storetest.Bytes(1, 1<<20+12345)
	if _, err := s.Put(ctx, "exports/ours.zip", bytes.NewReader(ours)); err != nil {
		t.Fatal(err)
	}
	got, err := obs.GetBytes(ctx, "exports/ours.zip") // checks the digest
	if err != nil || !bytes.Equal(got, ours) {
		t.Errorf("nats.go read %d bytes (%v), want the %d put", len(got), err, len(ours))
	}
	theirs := storetest.Bytes(2, 700_000)
	if _, err := obs.PutBytes(ctx, "exports/theirs.zip", theirs); err != nil {
		t.Fatal(err)
	}
	rc, obj, err := s.Open(ctx, "exports/theirs.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, theirs) || obj.Size != int64(len(theirs)) {
		t.Errorf("Open read %d bytes (%v, size %d), want the %d nats.go put", len(got), err, obj.Size, len(theirs))
	}
	// Replacing through nats.go after Put, and deleting, keep working.
	if _, err := obs.PutBytes(ctx, "exports/ours.zip", theirs); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, "exports/ours.zip"); err != nil || st.Size != int64(len(theirs)) {
		t.Errorf("Stat after a nats.go replace: %+v %v", st, err)
	}
	if err := s.Delete(ctx, "exports/ours.zip"); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.GetInfo(ctx, "exports/ours.zip"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("nats.go still sees the deleted object: %v", err)
	}
}

// A reader that stops early and closes leaves nothing behind on the server.
func TestObjectStoreCloseReleasesTheConsumer(t *testing.T) {
	_, js := startNATS(t)
	bucket := newBucket(t, js, nil)
	s := exportstore.NewObjectStore(js, bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, "x.zip", storetest.NewGenerator(1, 3<<20)); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(ctx, "x.zip")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 200_000); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left after Close", info.State.Consumers)
	}
}

// A Put whose reader fails leaves none of its chunks in the stream.
func TestObjectStoreFailedPutPurgesChunks(t *testing.T) {
	_, js := startNATS(t)
	bucket := newBucket(t, js, nil)
	s := exportstore.NewObjectStore(js, bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boom := errors.New("boom")
	if _, err := s.Put(ctx, "x.zip", io.MultiReader(storetest.NewGenerator(1, 3<<20), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	if n := streamMsgs(t, js, bucket); n != 0 {
		t.Errorf("the stream keeps %d messages after the failed Put", n)
	}
}

// When the server refuses chunks (the bucket is full), no meta is
// published and the chunks that were stored are purged.
func TestObjectStoreFullBucketLeavesNoObject(t *testing.T) {
	_, js := startNATS(t)
	bucket := newBucket(t, js, func(c *jetstream.ObjectStoreConfig) { c.MaxBytes = 1 << 20 })
	s := exportstore.NewObjectStore(js, bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, "full.zip", storetest.NewGenerator(2, 3<<20)); err == nil {
		t.Fatal("Put of 3 MiB into a 1 MiB bucket succeeded")
	}
	if st, err := s.Stat(ctx, "full.zip"); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat after the refused Put: %+v, %v; want ErrNotFound", st, err)
	}
	// The bucket is usable again for what fits.
	if _, err := s.Put(ctx, "small.zip", strings.NewReader("PK")); err != nil {
		t.Errorf("Put after: %v", err)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Storage that does not answer makes calls fail within their context, so a
// job can retry; nothing hangs.
func TestUnavailableStorageFails(t *testing.T) {
	n, js := startNATS(t)
	bucket := newBucket(t, js, nil)
	stores := map[string]exportstore.Store{"object store": exportstore.NewObjectStore(js, bucket)}
	addr := closedAddr(t)
	s3, err := exportstore.NewS3(exportstore.S3Config{Endpoint: "http://" + addr, Region: "us-east-1", AccessKey: "a", SecretKey: "b", Bucket: "exports"})
	if err != nil {
		t.Fatal(err)
	}
	stores["s3"] = s3
	n.Shutdown()
	for name, s := range stores {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		if err := s.Ping(ctx); err == nil {
			t.Errorf("%s: Ping succeeded", name)
		}
		if _, err := s.Put(ctx, "x.zip", strings.NewReader("PK")); err == nil {
			t.Errorf("%s: Put succeeded", name)
		}
		if _, err := s.Stat(ctx, "x.zip"); err == nil || errors.Is(err, exportstore.ErrNotFound) {
			t.Errorf("%s: Stat gave %v, want an error other than not found", name, err)
		}
		cancel()
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%s: calls took %s past their 2s context", name, d)
		}
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A process killed in the middle of a Put leaves no object, though part of
// its data reached the storage.
func TestKilledPutLeavesNoObject(t *testing.T) {
	t.Run("ObjectStore", func(t *testing.T) {
		n, js := startNATS(t)
		bucket := newBucket(t, js, nil)
		s := exportstore.NewObjectStore(js, bucket)
		killMidPut(t, []string{"KILL_NATS_URL=" + n.AdminURL(), "KILL_BUCKET=" + bucket}, func() bool {
			return streamMsgs(t, js, bucket) > 0 // chunks are stored
		})
		checkGone(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		obs, err := js.ObjectStore(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if list, err := obs.List(ctx); !errors.Is(err, jetstream.ErrNoObjectsFound) {
			t.Errorf("the bucket lists %d objects (%v), want none", len(list), err)
		}
	})
	t.Run("S3", func(t *testing.T) {
		srv := s3test.Start(t)
		cfg := srv.NewBucket(t)
		s, err := exportstore.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := srv.Client(t)
		killMidPut(t, []string{"KILL_S3_ENDPOINT=" + cfg.Endpoint, "KILL_BUCKET=" + cfg.Bucket}, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, killKey, false) {
				if u.Err != nil {
					continue
				}
				parts, err := (minio.Core{Client: c}).ListObjectParts(ctx, cfg.Bucket, killKey, u.UploadID, 0, 100)
				if err == nil && len(parts.ObjectParts) >= 2 { // two parts are uploaded
					return true
				}
			}
			return false
		})
		checkGone(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for o := range c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			t.Errorf("the bucket lists %q (%v), want nothing", o.Key, o.Err)
		}
		// What a lifecycle rule does to the abandoned upload.
		if err := c.RemoveIncompleteUpload(ctx, cfg.Bucket, killKey); err != nil {
			t.Errorf("abort the abandoned upload: %v", err)
		}
	})
}

const killKey = "exports/killed.zip"

func checkGone(t *testing.T, s exportstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := s.Stat(ctx, killKey); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Stat after the kill: %+v, %v; want ErrNotFound", st, err)
	}
	if _, _, err := s.Open(ctx, killKey); !errors.Is(err, exportstore.ErrNotFound) {
		t.Errorf("Open after the kill: %v, want ErrNotFound", err)
	}
}

// killMidPut runs TestKillHelper in a child process, waits until it has
// streamed part of an object and stored says the storage holds some of it,
// then kills it.
func killMidPut(t *testing.T, env []string, stored func() bool) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), append(env, "EXPORTSTORE_KILL_HELPER=1")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	streaming := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "STREAMING" {
				close(streaming)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-streaming:
	case <-time.After(30 * time.Second):
		t.Fatalf("the helper did not start streaming in 30s; stderr: %s", stderr.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for !stored() {
		if time.Now().After(deadline) {
			t.Fatalf("the storage holds none of the helper's data after 20s; stderr: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
}

// TestKillHelper is the child of TestKilledPutLeavesNoObject: it streams an
// object of 100 MiB, stalls after 12 MiB and waits to be killed.
func TestKillHelper(t *testing.T) {
	if os.Getenv("EXPORTSTORE_KILL_HELPER") == "" {
		t.Skip("run by TestKilledPutLeavesNoObject")
	}
	var s exportstore.Store
	if u := os.Getenv("KILL_NATS_URL"); u != "" {
		s = exportstore.NewObjectStore(connect(t, u), os.Getenv("KILL_BUCKET"))
	} else {
		var err error
		s, err = exportstore.NewS3(exportstore.S3Config{
			Endpoint: os.Getenv("KILL_S3_ENDPOINT"), Region: s3test.Region, Bucket: os.Getenv("KILL_BUCKET"),
			AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey, PartSize: 5 << 20,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := &stallingReader{r: storetest.NewGenerator(3, 100<<20), stallAt: 12 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.Put(ctx, killKey, r)
	t.Fatalf("Put returned (%v) instead of being killed", err)
}

type stallingReader struct {
	r       io.Reader
	n       int64
	stallAt int64
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.n >= s.stallAt {
		fmt.Println("STREAMING")
		select {} // until killed
	}
	if rest := s.stallAt - s.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

func TestFromConfig(t *testing.T) {
	_, js := startNATS(t)
	s, err := exportstore.FromConfig(config.B2Config{}, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*exportstore.ObjectStore); !ok || s.Name() != "nats-object-store:exports" {
		t.Errorf("without B2: %T %s, want the exports object store", s, s.Name())
	}
	// An endpoint alone (a deployment default) keeps the object store.
	if s, err := exportstore.FromConfig(config.B2Config{Endpoint: "https://s3.us-west-004.backblazeb2.com"}, js); err != nil || s.Name() != "nats-object-store:exports" {
		t.Errorf("endpoint only: %v %v", s, err)
	}
	b2 := config.B2Config{KeyID: "kid", Key: "key", Bucket: "gnome-exports", Endpoint: "s3.us-west-004.backblazeb2.com"}
	s, err = exportstore.FromConfig(b2, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*exportstore.S3); !ok || s.Name() != "s3:s3.us-west-004.backblazeb2.com/gnome-exports" {
		t.Errorf("with B2: %T %s", s, s.Name())
	}
	// A link is signed for B2's region, found in the endpoint, offline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	link, ok, err := s.DownloadURL(ctx, "exports/a.zip", exportstore.Link{})
	if err != nil || !ok || !strings.HasPrefix(link, "https://") || !strings.Contains(link, "%2Fus-west-004%2Fs3%2Faws4_request") {
		t.Errorf("B2 link %q %v %v: want https, signed for us-west-004", link, ok, err)
	}

	for name, c := range map[string]config.B2Config{
		"no bucket":   {KeyID: "kid", Key: "key"},
		"no key":      {KeyID: "kid", Bucket: "b", Endpoint: "https://s3.example.com"},
		"no endpoint": {KeyID: "kid", Key: "key", Bucket: "b"},
	} {
		if _, err := exportstore.FromConfig(c, js); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]struct {
		host   string
		secure bool
	}{
		"https://s3.us-west-004.backblazeb2.com":  {"s3.us-west-004.backblazeb2.com", true},
		"https://s3.us-west-004.backblazeb2.com/": {"s3.us-west-004.backblazeb2.com", true},
		"s3.us-west-004.backblazeb2.com":          {"s3.us-west-004.backblazeb2.com", true},
		" s3.eu-central-003.backblazeb2.com ":     {"s3.eu-central-003.backblazeb2.com", true},
		"http://127.0.0.1:7070":                   {"127.0.0.1:7070", false},
		"minio.internal:9000":                     {"minio.internal:9000", true},
	} {
		host, secure, err := exportstore.ParseEndpoint(in)
		if err != nil || host != want.host || secure != want.secure {
			t.Errorf("ParseEndpoint(%q) = %q %v %v, want %q %v", in, host, secure, err, want.host, want.secure)
		}
	}
	for _, bad := range []string{"", "ftp://host", "https://host/bucket", "https://user:pw@host", "https://"} {
		if _, _, err := exportstore.ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
}

func TestNotFoundIsAnAPIError(t *testing.T) {
	err := fmt.Errorf("exportstore: open %q: %w", "k", exportstore.ErrNotFound)
	if e := apierr.From(err); e.Code != apierr.CodeNotFound || e.Code.Status() != 404 {
		t.Errorf("apierr.From(ErrNotFound) = %v", e)
	}
}
