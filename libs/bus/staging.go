package bus

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// OpTimeout bounds one bus operation inside a longer request: one
// JetStream API call or one object chunk's acknowledgement. A request may
// take minutes (a large upload), but a lost node must fail it within
// seconds, not at the request's deadline. The platform's JetStream
// contexts use it as their default timeout (svc).
const OpTimeout = 10 * time.Second

// ObjectStaging is uploadapi.Staging over the uploads object store.
type ObjectStaging struct{ Store jetstream.ObjectStore }

// Put streams r into the store under name.
func (o ObjectStaging) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	info, err := PutObject(ctx, o.Store, jetstream.ObjectMeta{Name: name}, r)
	if err != nil {
		return 0, err
	}
	return int64(info.Size), nil
}

// Delete removes name.
func (o ObjectStaging) Delete(ctx context.Context, name string) error {
	return o.Store.Delete(ctx, name)
}

var _ uploadapi.Staging = ObjectStaging{}

// PutObject is store.Put with every chunk's acknowledgement bounded by the
// store's JetStream default timeout (OpTimeout), and the whole by ctx.
// jetstream's Put bounds each chunk only when its context has no deadline:
// with one, a chunk whose acknowledgement was lost with a node waits for
// the whole deadline. So the put runs under a context without deadline
// that ctx cancels. An object becomes visible only with its metadata,
// published after every chunk; a put that fails leaves none (its chunks are
// purged, or expire with the store's TTL), and a read checks the digest.
func PutObject(ctx context.Context, store jetstream.ObjectStore, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	info, err := store.Put(pctx, meta, r)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("put object %s: %w", meta.Name, cerr)
		}
		return nil, fmt.Errorf("put object %s: %w", meta.Name, err)
	}
	return info, nil
}
