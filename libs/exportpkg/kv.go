package exportpkg

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketKV is a KVStore over the actor_kv bucket (bus.BucketActorKV), as
// the actor worker keeps it.
type BucketKV struct{ KV jetstream.KeyValue }

// Each lists the experiment's keys by subject filter, so that the bucket's
// other experiments are never read.
func (b BucketKV) Each(ctx context.Context, slug string, fn func(string, []byte) error) error {
	lister, err := b.KV.ListKeysFiltered(ctx, KVPrefix(slug)+">")
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	// The lister stops its watcher itself once the keys are all out or ctx
	// ends (a second Stop fails), so only ctx says whether the list is whole.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	for _, k := range keys {
		e, err := b.KV.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return fmt.Errorf("read key %s: %w", k, err)
		}
		if err := fn(k, e.Value()); err != nil {
			return err
		}
	}
	return nil
}

// Create puts a key that holds no value; one that does is left as it is.
func (b BucketKV) Create(ctx context.Context, key string, value []byte) (bool, error) {
	_, err := b.KV.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
