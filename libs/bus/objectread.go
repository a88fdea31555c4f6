package bus

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reading an object's content.
//
// nats.go's ObjectStore.Get delivers the chunks through an ordered push
// consumer whose reader waits for the next chunk until its context's
// deadline: when the consumer's server is lost or the stream changes
// leader mid-read, nothing more arrives and the read hangs for the whole
// deadline, or until the consumer's missed heartbeats reset it (20 s).
// ObjectReader pulls the chunks a few at a time instead, each fetch
// answered at once or bounded to a second; when the chunks due stop coming
// while the object is still there, it makes its consumer again from the
// next chunk, every reopenAfter, so a lost consumer or a replica behind
// costs about a second, and a reader that cannot go on fails within
// lagBound as an outage, never waits for its deadline.

const (
	// readChunks is how many chunks (128 KiB each in the platform's
	// stores) a reader fetches at a time: nothing is sent ahead of it.
	readChunks = 8
	// readIdle is how long a reader may pause between Reads before the
	// server drops its consumer (and the next Read fails).
	readIdle = 5 * time.Minute
	// reopenAfter is how long a reader waits for chunks due before it
	// makes its consumer again (ObjectReader.lagging).
	reopenAfter = time.Second
	// lagBound is how long a reader goes without a chunk due, while the
	// object is still there, before it gives up (ErrReaderLost): longer
	// than a stream's leader election (4 to 9 s).
	lagBound = 15 * time.Second
)

// Open is a reader of the object name's content from its start, with the
// object's info as the store's leader has it (Info). The reader checks the
// chunk count, the size and the SHA-256 recorded in the info, and fails
// its last Read on a mismatch; when its consumer's server is lost it reads
// on through a new consumer, or fails within lagBound, never waiting for
// ctx's deadline. Close it.
func (o Objects) Open(ctx context.Context, name string) (*ObjectReader, *jetstream.ObjectInfo, error) {
	info, err := o.Info(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	r, err := o.open(ctx, info)
	if err != nil {
		return nil, nil, err
	}
	return r, info, nil
}

func (o Objects) open(ctx context.Context, info *jetstream.ObjectInfo) (*ObjectReader, error) {
	if info.Opts != nil && info.Opts.Link != nil {
		return nil, fmt.Errorf("object %s: object store links are not supported", info.Name)
	}
	r := &ObjectReader{ctx: ctx, info: info, h: sha256.New(), objs: o}
	if info.Chunks > 0 {
		if err := r.consume(ctx); err != nil {
			return nil, fmt.Errorf("read object %s: %w", info.Name, err)
		}
	}
	return r, nil
}

// consume makes the reader's consumer: a plain pull consumer of the
// object's chunks from the one after the last read, fetched exactly the
// chunks still due, a few at a time.
func (r *ObjectReader) consume(ctx context.Context) error {
	cfg := jetstream.ConsumerConfig{
		FilterSubject: "$O." + r.objs.Bucket + ".C." + r.info.NUID, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: readIdle, MemoryStorage: true, Replicas: 1,
	}
	if r.got > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.seq+1
	}
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	cons, err := r.objs.JS.CreateConsumer(ctx, r.objs.stream(), cfg)
	if err != nil {
		return err
	}
	r.cons = cons
	return nil
}

func (o Objects) stream() string { return "OBJ_" + o.Bucket }

// ObjectReader reads one object's chunks (Objects.Open).
type ObjectReader struct {
	ctx    context.Context
	info   *jetstream.ObjectInfo
	objs   Objects
	behind time.Time // since when no chunk due has come
	opened time.Time // when the consumer was last made again
	cons   jetstream.Consumer
	seq    uint64 // the stream sequence of the last chunk read
	// fetchErr is the last fetch's error, said when the reader gives up.
	fetchErr error
	batch    *countedBatch
	h        hash.Hash
	cur      []byte
	got      uint32
	size     uint64
	err      error
}

func (r *ObjectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 && r.err == nil {
		r.err = r.next()
	}
	if len(r.cur) == 0 {
		return 0, r.err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *ObjectReader) next() error {
	if r.got == r.info.Chunks {
		if r.size != r.info.Size || jetstream.GetObjectDigestValue(r.h) != r.info.Digest {
			return fmt.Errorf("read object %s: content does not match its size and digest", r.info.Name)
		}
		return io.EOF
	}
	if r.batch == nil {
		// The chunks are stored already: ask for those there now rather
		// than wait for more, so that chunks deleted under the reader are
		// an error at once rather than a wait.
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("read object %s: %w", r.info.Name, err)
		}
		batch, err := r.cons.FetchNoWait(int(min(readChunks, r.info.Chunks-r.got)))
		if err != nil {
			r.fetchErr = err
			return r.lagging()
		}
		r.batch = &countedBatch{MessageBatch: batch}
	}
	cb := r.batch
	m, ok := <-cb.Messages()
	if !ok {
		r.batch = nil
		if err := cb.Error(); err != nil {
			r.fetchErr = err
		}
		if cb.n > 0 {
			// The batch is done, or ended early (its server shutting
			// down, the consumer's leader changing): fetch the next. A
			// consumer lost meanwhile shows as a fetch without chunks.
			return nil
		}
		// None of the chunks due came. Right after the consumer is made,
		// its server's interest may not have reached this one yet (no
		// responders); on a cluster its replica may not hold the chunks
		// yet; the consumer may be gone with its server, or the fetch
		// failed on the way: all worth a short wait and a new consumer.
		return r.lagging()
	}
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("read object %s: chunk %d of %d: %w", r.info.Name, r.got+1, r.info.Chunks, err)
	}
	cb.n++
	r.behind = time.Time{}
	r.seq = md.Sequence.Stream
	r.cur = m.Data()
	r.got++
	r.size += uint64(len(r.cur))
	r.h.Write(r.cur)
	return nil
}

// lagging decides, after a fetch that found none of the chunks due,
// whether to fetch again. While the object is still the one being read, as
// the store's leader has it, the consumer's replica (any replica of the
// stream) may not have applied its chunks yet, which on a cluster happens
// right after a put, or the consumer went with its server: every
// reopenAfter the consumer is made again from the next chunk, and the
// reader waits for lagBound at most, through a leader election (the
// leader's answers are then an outage, waited out too). Past it the reader
// is lost (ErrReaderLost). An object deleted or replaced meanwhile is an
// error at once.
func (r *ObjectReader) lagging() error {
	missing := fmt.Sprintf("read object %s: chunk %d of %d", r.info.Name, r.got+1, r.info.Chunks)
	now := time.Now()
	if r.behind.IsZero() {
		r.behind, r.opened = now, now
	}
	ictx, cancel := context.WithTimeout(r.ctx, 2*reopenAfter)
	info, err := r.objs.Info(ictx, r.info.Name)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("%s: the object was deleted while read", missing)
	case err != nil && !IsUnavailable(err):
		return fmt.Errorf("%s: %w", missing, err)
	case err == nil && info.NUID != r.info.NUID:
		return fmt.Errorf("%s: the object was replaced while read", missing)
	}
	if r.ctx.Err() != nil {
		return fmt.Errorf("%s: %w", missing, r.ctx.Err())
	}
	if now.Sub(r.behind) > lagBound {
		if err == nil {
			err = ErrReaderLost
		}
		if r.fetchErr != nil {
			return fmt.Errorf("%s: none came for %v (the last fetch: %v): %w", missing, lagBound, r.fetchErr, err)
		}
		return fmt.Errorf("%s: none came for %v: %w", missing, lagBound, err)
	}
	if now.Sub(r.opened) >= reopenAfter {
		r.opened = now
		old := r.cons
		ctx, cancel := context.WithTimeout(r.ctx, reopenAfter)
		if r.consume(ctx) == nil {
			go r.drop(old)
		}
		cancel()
	}
	select {
	case <-r.ctx.Done():
		return fmt.Errorf("%s: %w", missing, r.ctx.Err())
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

// drop removes a consumer of the reader's (best effort: the server drops
// an idle one by itself, and a lost server took it along).
func (r *ObjectReader) drop(cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 5*time.Second)
	defer cancel()
	_ = r.objs.JS.DeleteConsumer(ctx, r.objs.stream(), cons.CachedInfo().Name)
}

// ErrReaderLost is an object read whose chunks stopped coming while the
// object is still there: the bus lost the reader's consumer (with its
// server) or the replica it reads is far behind. An outage
// (IsUnavailable): reading again is worth it.
var ErrReaderLost = errors.New("the bus lost the object's reader")

type countedBatch struct {
	jetstream.MessageBatch
	n int // messages received
}

// Close removes the reader's consumer; after a failed read in the
// background, so that the failure (maybe an outage, where the removal
// waits for its bound) is answered at once.
func (r *ObjectReader) Close() error {
	r.batch = nil
	if r.cons != nil {
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			go r.drop(r.cons)
		} else {
			r.drop(r.cons)
		}
		r.cons = nil
	}
	return nil
}
