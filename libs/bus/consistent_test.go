package bus_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// jsAs is a JetStream context on a connection as bus user, with the
// platform's resources named provisioned by the admin.
func jsAs(t *testing.T, env *testenv.Env, user string) jetstream.JetStream {
	t.Helper()
	admin, err := jetstream.New(connect(t, env, "provision"))
	if err != nil {
		t.Fatal(err)
	}
	top := bus.Topology{JS: admin, Replicas: 1}
	ctx := timeout(t, 30*time.Second)
	if err := top.EnsureBuckets(ctx, bus.BucketHandoffs, bus.BucketActorKV); err != nil {
		t.Fatal(err)
	}
	if err := top.EnsureObjectStores(ctx, bus.ObjectUploads, bus.ObjectBundles); err != nil {
		t.Fatal(err)
	}
	nc, _ := as(t, env, user)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestKVGetReadsThroughTheLeaderAsKVGetDoes(t *testing.T) {
	env := testenv.Start(t)
	js := jsAs(t, env, "edge") // the hand-offs' owner
	ctx := timeout(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, bus.BucketHandoffs)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "code1", []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := bus.KVGet(ctx, js, kv, "code1")
	if err != nil {
		t.Fatalf("KVGet of a key just put: %v", err)
	}
	direct, err := kv.Get(ctx, "code1")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != "first" || e.Revision() != rev || e.Key() != "code1" || e.Bucket() != bus.BucketHandoffs ||
		e.Operation() != jetstream.KeyValuePut || !e.Created().Equal(direct.Created()) || e.Revision() != direct.Revision() {
		t.Errorf("KVGet = %q rev %d key %q bucket %q op %v created %v; want %q rev %d as kv.Get (created %v)",
			e.Value(), e.Revision(), e.Key(), e.Bucket(), e.Operation(), e.Created(), "first", rev, direct.Created())
	}

	// The latest revision wins.
	rev2, err := kv.Update(ctx, "code1", []byte("second"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := (bus.LeaderKV{KeyValue: kv, JS: js}).Get(ctx, "code1"); err != nil || string(e.Value()) != "second" || e.Revision() != rev2 {
		t.Errorf("LeaderKV.Get after an update = %v, %v; want second at %d", e, err, rev2)
	}

	// Absent: never put, deleted, purged. Each as kv.Get has it.
	if _, err := kv.Put(ctx, "deleted", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "purged", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "purged"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"never", "deleted", "purged"} {
		if e, err := bus.KVGet(ctx, js, kv, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("KVGet(%s) = %v, %v; want ErrKeyNotFound", key, e, err)
		}
		if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("kv.Get(%s) = %v; the two disagree", key, err)
		}
	}
	// A deleted key put again is there again.
	if _, err := kv.Put(ctx, "deleted", []byte("back")); err != nil {
		t.Fatal(err)
	}
	if e, err := bus.KVGet(ctx, js, kv, "deleted"); err != nil || string(e.Value()) != "back" {
		t.Errorf("KVGet of a key put after its delete = %v, %v", e, err)
	}
}

// A key removed by its TTL leaves a marker message (the bucket's
// LimitMarkerTTL), whose reason header says so: it reads as absent.
func TestKVGetOfAnExpiredKeyIsNotFound(t *testing.T) {
	env := testenv.Start(t)
	js := jsAs(t, env, "edge")
	ctx := timeout(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, bus.BucketHandoffs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "short", []byte("x"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the key's expiry marker", func() bool {
		m, err := bus.LastMsg(ctx, js, "KV_"+bus.BucketHandoffs, "$KV."+bus.BucketHandoffs+".short")
		return err == nil && m.Header.Get(jetstream.MarkerReasonHeader) != ""
	})
	if e, err := bus.KVGet(ctx, js, kv, "short"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("KVGet of an expired key = %v, %v; want ErrKeyNotFound", e, err)
	}
}

// A key is a literal subject: a wildcard or a malformed key from outside
// must not read another key's value.
func TestKVGetRefusesKeysThatAreNotLiteral(t *testing.T) {
	env := testenv.Start(t)
	js := jsAs(t, env, "actorworker")
	ctx := timeout(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, bus.BucketActorKV)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "other.secret", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "*", ">", "other.*", "other.>", "*.secret", "other secret", ".other", "other.", "other..secret", "other.secret\r\nX: y", "$KV.actor_kv.other.secret"} {
		e, err := bus.KVGet(ctx, js, kv, key)
		if !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Errorf("KVGet(%q) = %v, %v; want ErrInvalidKey", key, e, err)
		}
	}
}

func TestLastMsgOfAMissingStream(t *testing.T) {
	env := testenv.Start(t)
	js, err := jetstream.New(connect(t, env, "admin"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := bus.LastMsg(timeout(t, 10*time.Second), js, "NO_SUCH_STREAM", "x.y"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("LastMsg of a missing stream = %v, %v; want ErrStreamNotFound", m, err)
	}
}

func TestObjectsInfoAndReadThroughTheLeader(t *testing.T) {
	env := testenv.Start(t)
	js := jsAs(t, env, "upload")
	ctx := timeout(t, 60*time.Second)
	obs, err := js.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	objs := bus.Objects{JS: js, Bucket: bus.ObjectUploads}
	// Three chunks, and a name the meta subject must encode.
	body := make([]byte, 300<<10)
	_, _ = rand.Read(body)
	name := "staged/ünï cödé.zip"
	put, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	info, err := objs.Info(ctx, name)
	if err != nil {
		t.Fatalf("Info of an object just put: %v", err)
	}
	if info.Name != name || info.NUID != put.NUID || info.Size != uint64(len(body)) || info.Chunks != put.Chunks || info.Digest != put.Digest || info.Bucket != bus.ObjectUploads || info.ModTime.IsZero() {
		t.Errorf("Info = %+v; want the put's %+v", info, put)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "read"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := objs.Read(ctx, name, f, int64(len(body)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.NUID != put.NUID {
		t.Errorf("Read's info names object %s, want %s", got.NUID, put.NUID)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if back, _ := io.ReadAll(f); !bytes.Equal(back, body) {
		t.Errorf("Read wrote %d bytes that differ from the %d put", len(back), len(body))
	}

	// Over the limit: refused before anything is read.
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := objs.Read(ctx, name, f, int64(len(body))-1); !errors.Is(err, bus.ErrObjectTooLarge) {
		t.Errorf("Read over its limit = %v; want ErrObjectTooLarge", err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("a refused read wrote %d bytes", st.Size())
	}

	// Missing, then deleted: not found by both.
	if _, err := objs.Info(ctx, "never"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("Info of a missing object = %v; want ErrObjectNotFound", err)
	}
	if err := obs.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := objs.Info(ctx, name); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("Info of a deleted object = %v; want ErrObjectNotFound", err)
	}
	if _, err := objs.Read(ctx, name, f, 0); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("Read of a deleted object = %v; want ErrObjectNotFound", err)
	}
	if _, err := objs.Info(ctx, ""); !errors.Is(err, jetstream.ErrNameRequired) {
		t.Errorf("Info without a name = %v; want ErrNameRequired", err)
	}
	// An empty object reads as empty.
	if _, err := obs.PutBytes(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if info, err := objs.Read(ctx, "empty", f, 0); err != nil || info.Size != 0 {
		t.Errorf("Read of an empty object = %+v, %v", info, err)
	}
}

// A service that only reads a store may read it through its leader (its
// bus permissions allow $JS.API.STREAM.MSG.GET where it reads).
func TestReadersMayReadThroughTheLeader(t *testing.T) {
	env := testenv.Start(t)
	ctx := timeout(t, 30*time.Second)
	upload := jsAs(t, env, "upload")
	obs, err := upload.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "exp/abc", []byte("bundle")); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"edge", "export", "actorworker"} {
		objs := bus.Objects{JS: jsAs(t, env, user), Bucket: bus.ObjectBundles}
		if info, err := objs.Info(ctx, "exp/abc"); err != nil || info.Size != 6 {
			t.Errorf("%s: Info of a bundle = %+v, %v", user, info, err)
		}
		// The content comes through a pull consumer of the reader's own.
		var got bytes.Buffer
		if _, err := objs.Read(ctx, "exp/abc", &got, 0); err != nil || got.String() != "bundle" {
			t.Errorf("%s: Read of a bundle = %q, %v", user, got.String(), err)
		}
	}
}

func TestLeaderKVCreate(t *testing.T) {
	env := testenv.Start(t)
	js := jsAs(t, env, "edge")
	ctx := timeout(t, 30*time.Second)
	raw, err := js.KeyValue(ctx, bus.BucketHandoffs)
	if err != nil {
		t.Fatal(err)
	}
	kv := bus.LeaderKV{KeyValue: raw, JS: js}
	rev, err := kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatalf("Create of a new key: %v", err)
	}
	if _, err := kv.Create(ctx, "k", []byte("2")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("Create over a put = %v; want ErrKeyExists", err)
	}
	if err := kv.Delete(ctx, "k", jetstream.LastRevision(rev)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("3"), jetstream.KeyTTL(time.Minute)); err != nil {
		t.Errorf("Create over a delete: %v", err)
	}
	if err := kv.Purge(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("4")); err != nil {
		t.Errorf("Create over a purge: %v", err)
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "4" {
		t.Errorf("after the creates: %v, %v; want 4", e, err)
	}
}
