package bus

import (
	"context"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// ObjectStaging is uploadapi.Staging over the uploads object store.
type ObjectStaging struct{ Store jetstream.ObjectStore }

// Put streams r into the store under name.
func (o ObjectStaging) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	info, err := o.Store.Put(ctx, jetstream.ObjectMeta{Name: name}, r)
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
