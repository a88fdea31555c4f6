package bus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads that see every acknowledged write.
//
// nats.go's key-value and object store handles read with direct gets
// ($JS.API.DIRECT.GET.<stream>), which every replica of a stream answers,
// followers included, possibly before they applied the latest write: on a
// cluster, a value or an object read right after another client's put can
// come back absent or old. The stream leader applies a write before it
// acknowledges it, and $JS.API.STREAM.MSG.GET.<stream> is answered by the
// leader only, so a read through it sees every write acknowledged before
// it was sent. nats-server v2.15 has no consistent mode for direct gets,
// and turning direct gets off on the streams would break every handle bound
// before the change (they keep sending direct gets, which then nobody
// answers). So the reads that must see a write just acknowledged go through
// the leader here, and the others keep their direct gets
// (docs/architecture.md, "Reads after writes").
//
// Every bus user that reads a stream may send both requests (access.go).
// While a stream has no leader (an election, a few seconds) nobody answers
// these reads: they fail at ctx's deadline or OpTimeout, whichever comes
// first, an outage (IsUnavailable), where direct gets would answer.

// LastMsg is the last message stored on subject in stream, as the stream's
// leader has it; jetstream.ErrMsgNotFound when there is none, and
// jetstream.ErrStreamNotFound without the stream. subject must be a literal
// subject: a wildcard would match other subjects' messages.
func LastMsg(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return nil, fmt.Errorf("read %s from the leader: %w", subject, err)
	}
	opts := js.Options()
	prefix := opts.APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	// One operation: bounded by the handle's timeout (OpTimeout in the
	// platform) under ctx's own deadline, so that a request sent while the
	// leader is lost fails within seconds, not at a long request's end.
	wait := opts.DefaultTimeout
	if wait <= 0 {
		wait = OpTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	reply, err := js.Conn().RequestWithContext(ctx, prefix+"STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, fmt.Errorf("read %s from the leader: %w", subject, err)
	}
	return decodeMsgGet(reply.Data)
}

// decodeMsgGet decodes the reply to $JS.API.STREAM.MSG.GET: the message,
// its headers and data in base64, or an error.
func decodeMsgGet(data []byte) (*jetstream.RawStreamMsg, error) {
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode a stream message: %w", err)
	}
	if resp.Error != nil {
		switch resp.Error.ErrorCode {
		case jetstream.JSErrCodeMessageNotFound:
			return nil, jetstream.ErrMsgNotFound
		case jetstream.JSErrCodeStreamNotFound:
			return nil, jetstream.ErrStreamNotFound
		}
		return nil, resp.Error
	}
	m := resp.Message
	if m == nil {
		return nil, fmt.Errorf("decode a stream message: %w", jetstream.ErrInvalidJetStreamResponse)
	}
	var hdr nats.Header
	if len(m.Header) > 0 {
		var err error
		if hdr, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return nil, fmt.Errorf("decode the headers of message %d: %w", m.Sequence, err)
		}
	}
	return &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Header: hdr, Data: m.Data, Time: m.Time}, nil
}

// keyRe is nats.go's rule for a key: a literal subject, so that a key from
// outside cannot widen the read to other keys ("*", ">").
var keyRe = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func validKey(key string) bool {
	return key != "" && key[0] != '.' && key[len(key)-1] != '.' && !strings.Contains(key, "..") && keyRe.MatchString(key)
}

// KVGet is kv.Get answered by the bucket's leader: the value and revision
// of key's last put, or jetstream.ErrKeyNotFound when the key was never
// put, was deleted or purged (or expired). jetstream.ErrInvalidKey for a
// key kv.Get refuses. The bucket must be one of the platform's plain
// buckets (no mirror, no JetStream domain).
func KVGet(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	if !validKey(key) {
		return nil, jetstream.ErrInvalidKey
	}
	bucket := kv.Bucket()
	m, err := LastMsg(ctx, js, "KV_"+bucket, "$KV."+bucket+"."+key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, jetstream.ErrKeyNotFound
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, jetstream.ErrBucketNotFound
	case err != nil:
		return nil, err
	}
	e := &kvEntry{bucket: bucket, key: key, value: m.Data, revision: m.Sequence, created: m.Time, op: jetstream.KeyValuePut}
	// A delete or purge is a message too, marked by a header (or, for a key
	// removed by its TTL or a purge with a marker, by the server's marker
	// reason): such a key is absent, as kv.Get has it.
	switch m.Header.Get("KV-Operation") {
	case "DEL":
		e.op = jetstream.KeyValueDelete
	case "PURGE":
		e.op = jetstream.KeyValuePurge
	}
	switch m.Header.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge":
		e.op = jetstream.KeyValuePurge
	case "Remove":
		e.op = jetstream.KeyValueDelete
	}
	if e.op != jetstream.KeyValuePut {
		return nil, jetstream.ErrKeyNotFound
	}
	return e, nil
}

type kvEntry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e *kvEntry) Bucket() string                  { return e.bucket }
func (e *kvEntry) Key() string                     { return e.key }
func (e *kvEntry) Value() []byte                   { return e.value }
func (e *kvEntry) Revision() uint64                { return e.revision }
func (e *kvEntry) Created() time.Time              { return e.created }
func (e *kvEntry) Delta() uint64                   { return 0 }
func (e *kvEntry) Operation() jetstream.KeyValueOp { return e.op }

// LeaderKV is a bucket whose Get reads through the bucket's leader
// (KVGet), and whose Create does not take a deleted key for an existing
// one; everything else is the handle's own. Puts, updates at a revision
// and deletes are decided by the leader anyway.
type LeaderKV struct {
	jetstream.KeyValue
	JS jetstream.JetStream
}

// Get implements jetstream.KeyValue.
func (l LeaderKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return KVGet(ctx, l.JS, l.KeyValue, key)
}

// catchUp bounds how long a write waits for a replica to hold what the
// leader has. A follower that missed the quorum applies the write within
// milliseconds on a healthy cluster; past the bound something else is
// wrong and the write fails.
const catchUp = 5 * time.Second

// Create implements jetstream.KeyValue: the handle's Create, which over a
// deleted or purged key (a released or expired lease) puts at the
// revision of the delete, and finds that revision with a direct get. A
// replica behind answers with the put before the delete, or nothing, and
// Create says the key exists. So when it says so and the leader says the
// key is absent, Create is tried again until the replicas have caught up
// (within catchUp); a key another client created meanwhile still fails it.
func (l LeaderKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	deadline := time.Now().Add(catchUp)
	wait := 5 * time.Millisecond
	for {
		rev, err := l.KeyValue.Create(ctx, key, value, opts...)
		if !errors.Is(err, jetstream.ErrKeyExists) || time.Now().After(deadline) {
			return rev, err
		}
		if _, gerr := KVGet(ctx, l.JS, l.KeyValue, key); !errors.Is(gerr, jetstream.ErrKeyNotFound) {
			return rev, err
		}
		select {
		case <-ctx.Done():
			return rev, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Objects reads an object store so that an object whose put was
// acknowledged is found.
type Objects struct {
	JS     jetstream.JetStream
	Bucket string // the store's name (bus.ObjectUploads, ...)
}

// ErrObjectTooLarge is Objects.Read's refusal of an object over its limit,
// before any of it is read.
var ErrObjectTooLarge = errors.New("the object is over its size limit")

// Info is the object's info as the store's leader has it;
// jetstream.ErrObjectNotFound when it does not exist or was deleted.
func (o Objects) Info(ctx context.Context, name string) (*jetstream.ObjectInfo, error) {
	if name == "" {
		return nil, jetstream.ErrNameRequired
	}
	// The meta subject of nats.go's layout: $O.<bucket>.M.<base64url name>.
	m, err := LastMsg(ctx, o.JS, o.stream(), "$O."+o.Bucket+".M."+base64.URLEncoding.EncodeToString([]byte(name)))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, jetstream.ErrObjectNotFound
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, jetstream.ErrBucketNotFound
	case err != nil:
		return nil, err
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return nil, fmt.Errorf("object %s: %w", name, jetstream.ErrBadObjectMeta)
	}
	if info.Deleted {
		return nil, jetstream.ErrObjectNotFound
	}
	info.ModTime = m.Time
	return &info, nil
}

// Read writes the object name to dst from its start and returns its info:
// jetstream.ErrObjectNotFound only when the leader has no such object, and
// ErrObjectTooLarge (nothing read) when limit > 0 and it is larger. It
// reads through an ObjectReader (Open): a replica that was not in the
// quorum of the object's writes is waited for, within seconds, and a lost
// consumer's server is an error, never a wait for ctx's deadline.
func (o Objects) Read(ctx context.Context, name string, dst io.Writer, limit int64) (*jetstream.ObjectInfo, error) {
	info, err := o.Info(ctx, name)
	if err != nil {
		return nil, err
	}
	if limit > 0 && info.Size > uint64(limit) {
		return nil, fmt.Errorf("object %s of %d bytes: %w", name, info.Size, ErrObjectTooLarge)
	}
	r, err := o.open(ctx, info)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := io.Copy(dst, r); err != nil {
		return nil, err
	}
	return info, nil
}
