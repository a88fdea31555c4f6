package exportstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gnome-platform/gnome/libs/bus"
)

// ObjectStore keeps objects in a JetStream object store, in its standard
// layout (NATS ADR-20, what nats.go and every client read): an object is
// chunk messages on a subject of its own, $O.<bucket>.C.<nuid> (a new nuid
// per Put), and one meta message on $O.<bucket>.M.<base64url(key)> naming
// the nuid, the chunk count, the size and the SHA-256. Stat, Open and
// listings see only meta messages.
//
// Put writes the chunks itself rather than through nats.go's
// ObjectStore.Put, for two reasons: nats.go publishes all chunks without
// waiting (thousands in flight), so a server that stores slower than the
// client sends (fsync per message, as the embedded server does) queues the
// whole object in its memory, in this process when it is embedded; and it
// publishes the meta behind the chunks without knowing whether they were
// stored, so a refused chunk (bucket full) can leave a visible meta with
// missing chunks. Here at most putWindow chunks are unacknowledged, and
// the meta is published only once every chunk is acknowledged.
//
// How a partial object stays invisible:
//   - if the reader fails or ctx ends, the chunks sent so far are purged
//     and no meta is published: the key keeps its previous object;
//   - if the process dies midway, its chunks stay in the stream without a
//     meta: invisible, but taking space until the stream is purged;
//   - a visible meta always has all its chunks stored; if publishing the
//     meta itself fails, its chunks are kept, as it may have been stored;
//   - a replacing Put swaps the meta in one message (a subject rollup),
//     then purges the old chunks; a reader of the old object at that
//     moment fails.
//
// Memory: Put holds putWindow chunks (1 MiB); Open fetches 8 chunks (1 MiB)
// at a time, as it is read (bus.ObjectReader). A reader may pause up to 5
// minutes between Reads. A NATS server embedded in the same process adds its own buffers: its message block caches (8 MiB blocks, up
// to about 16 MiB while an object is read back).
type ObjectStore struct {
	js     jetstream.JetStream
	bucket string

	mu sync.Mutex
	b  *bound
}

type bound struct {
	obs    jetstream.ObjectStore
	stream jetstream.Stream
	pub    jetstream.JetStream // for async chunk publishes
}

const (
	chunkSize = 128 << 10
	putWindow = 8
	// ackWait bounds the wait for one chunk's acknowledgement when ctx
	// allows longer: past it the storage is taken to be unavailable.
	ackWait = 30 * time.Second
)

// NewObjectStore uses the object store named bucket (bus.ObjectExports in
// the platform), which its owner provisions (bus.Topology); it is looked up
// at first use, so the store can be built before the bucket exists or
// while NATS is away.
func NewObjectStore(js jetstream.JetStream, bucket string) *ObjectStore {
	return &ObjectStore{js: js, bucket: bucket}
}

// Name implements Store.
func (s *ObjectStore) Name() string { return "nats-object-store:" + s.bucket }

func (s *ObjectStore) bind(ctx context.Context) (*bound, error) {
	s.mu.Lock()
	b := s.b
	s.mu.Unlock()
	if b != nil {
		return b, nil
	}
	obs, err := s.js.ObjectStore(ctx, s.bucket)
	if err != nil {
		return nil, fmt.Errorf("exportstore: object store %s: %w", s.bucket, err)
	}
	stream, err := s.js.Stream(ctx, "OBJ_"+s.bucket)
	if err != nil {
		return nil, fmt.Errorf("exportstore: object store %s: %w", s.bucket, err)
	}
	pub, err := jetstream.New(s.js.Conn(), jetstream.WithPublishAsyncTimeout(ackWait))
	if err != nil {
		return nil, fmt.Errorf("exportstore: object store %s: %w", s.bucket, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		s.b = &bound{obs: obs, stream: stream, pub: pub}
	}
	return s.b, nil
}

// Ping implements Store.
func (s *ObjectStore) Ping(ctx context.Context) error {
	b, err := s.bind(ctx)
	if err != nil {
		return err
	}
	if _, err := b.obs.Status(ctx); err != nil {
		return fmt.Errorf("exportstore: object store %s: %w", s.bucket, err)
	}
	return nil
}

func (s *ObjectStore) chunkSubject(id string) string {
	return fmt.Sprintf("$O.%s.C.%s", s.bucket, id)
}

type inflight struct {
	ack jetstream.PubAckFuture
	buf []byte
}

// objects reads the store through its leader (bus.Objects): an export is
// downloaded right after it is ready, when a replica may not hold it yet.
func (s *ObjectStore) objects(b *bound) bus.Objects {
	return bus.Objects{JS: s.js, Bucket: s.bucket}
}

// Put implements Store.
func (s *ObjectStore) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	b, err := s.bind(ctx)
	if err != nil {
		return Object{}, err
	}
	old, err := b.obs.GetInfo(ctx, key, jetstream.GetObjectInfoShowDeleted())
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return Object{}, s.err("put", key, err)
	}

	id := nuid.Next()
	subj := s.chunkSubject(id)
	h := sha256.New()
	var size uint64
	var chunks uint32
	var pending []inflight // oldest first, at most putWindow
	fail := func(err error) (Object, error) {
		s.abandon(ctx, b, subj, pending)
		return Object{}, fmt.Errorf("exportstore: put %q: %w", key, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var buf []byte
		if len(pending) == putWindow {
			// Wait for the oldest chunk to be stored, then reuse its buffer.
			if buf, err = awaitOldest(ctx, &pending); err != nil {
				return fail(err)
			}
		} else {
			buf = make([]byte, chunkSize)
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			ack, err := b.pub.PublishMsgAsync(&nats.Msg{Subject: subj, Data: buf[:n]})
			if err != nil {
				return fail(err)
			}
			pending = append(pending, inflight{ack, buf})
			size += uint64(n)
			chunks++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	for len(pending) > 0 {
		if _, err := awaitOldest(ctx, &pending); err != nil {
			return fail(err)
		}
	}

	// Every chunk is stored: publishing the meta makes the object visible.
	data, err := json.Marshal(jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: key, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}},
		Bucket:     s.bucket, NUID: id, Size: size, Chunks: chunks, Digest: jetstream.GetObjectDigestValue(h),
	})
	if err != nil {
		return fail(err)
	}
	meta := nats.NewMsg(fmt.Sprintf("$O.%s.M.%s", s.bucket, base64.URLEncoding.EncodeToString([]byte(key))))
	meta.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	meta.Data = data
	if _, err := s.js.PublishMsg(ctx, meta); err != nil {
		// Stored or not is unknown: keep the chunks, so that a stored meta
		// names a complete object.
		return Object{}, fmt.Errorf("exportstore: put %q: publish meta: %w", key, err)
	}
	if old != nil && !old.Deleted && old.NUID != "" {
		// Best effort: left over, they are invisible.
		_ = b.stream.Purge(ctx, jetstream.WithPurgeSubject(s.chunkSubject(old.NUID)))
	}
	return Object{Key: key, Size: int64(size), ModTime: time.Now().UTC()}, nil
}

// awaitOldest waits for the oldest pending chunk to be acknowledged and
// takes it out of pending, giving back its buffer. If ctx ends first, the
// chunk stays pending, for abandon to wait for.
func awaitOldest(ctx context.Context, pending *[]inflight) ([]byte, error) {
	p := (*pending)[0]
	select {
	case <-p.ack.Ok():
		*pending = (*pending)[1:]
		return p.buf, nil
	case err := <-p.ack.Err():
		*pending = (*pending)[1:]
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// abandon purges the chunks of a failed Put, once those still in flight
// are acknowledged or refused (bounded), so none is stored after the purge.
func (s *ObjectStore) abandon(ctx context.Context, b *bound, subj string, pending []inflight) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, p := range pending {
		_ = awaitAck(ctx, p.ack)
	}
	_ = b.stream.Purge(ctx, jetstream.WithPurgeSubject(subj))
}

// Stat implements Store.
func (s *ObjectStore) Stat(ctx context.Context, key string) (Object, error) {
	b, err := s.bind(ctx)
	if err != nil {
		return Object{}, err
	}
	info, err := s.objects(b).Info(ctx, key)
	if err != nil {
		return Object{}, s.err("stat", key, err)
	}
	return Object{Key: key, Size: int64(info.Size), ModTime: info.ModTime}, nil
}

// Open implements Store: the object read through its leader, a few chunks
// at a time (bus.Objects.Open). The reader checks the chunk count, the size
// and the SHA-256 recorded in the meta, and fails its last Read on a
// mismatch.
func (s *ObjectStore) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	b, err := s.bind(ctx)
	if err != nil {
		return nil, Object{}, err
	}
	r, info, err := s.objects(b).Open(ctx, key)
	if err != nil {
		return nil, Object{}, s.err("open", key, err)
	}
	return r, Object{Key: key, Size: int64(info.Size), ModTime: info.ModTime}, nil
}

// Delete implements Store.
func (s *ObjectStore) Delete(ctx context.Context, key string) error {
	b, err := s.bind(ctx)
	if err != nil {
		return err
	}
	if err := b.obs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return s.err("delete", key, err)
	}
	return nil
}

// DownloadURL implements Store: the object store has no links of its own.
func (s *ObjectStore) DownloadURL(context.Context, string, Link) (string, bool, error) {
	return "", false, nil
}

func (s *ObjectStore) err(op, key string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("exportstore: %s %q: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("exportstore: %s %q: %w", op, key, err)
}
