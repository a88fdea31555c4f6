package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
)

// actorKV is the actor key-value store for packages with data, or nil
// while the bucket does not exist (no actor ever ran: no keys to export).
func (s *Service) actorKV(ctx context.Context) (exportpkg.KVStore, error) {
	kv, err := s.d.JS.KeyValue(ctx, bus.BucketActorKV)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bus.BucketActorKV, err)
	}
	return exportpkg.BucketKV{KV: kv}, nil
}

// peopleKey names the state of the experiment's accounts, keys, study
// links and runs, which the data version does not count (they are not the
// experiment's collections): a ready package is handed out again only
// while it is the same, so that a new account, value, link or run is never
// missing from a package made after it. Empty for packages without data.
func (s *Service) peopleKey(ctx context.Context, t exportapi.Type, slug string) (string, error) {
	if !t.HasData() {
		return "", nil
	}
	h := sha256.New()
	accounts, err := s.d.Store.ExpAccounts().List(ctx, slug)
	if err != nil {
		return "", err
	}
	for _, a := range accounts {
		fmt.Fprintf(h, "a|%s|%d|%t|%d\n", a.UID, a.TokenVersion, a.Disabled, a.UpdatedAt.UnixNano())
	}
	links, err := exportpkg.LinksState(ctx, s.d.Store.DB, slug)
	if err != nil {
		return "", err
	}
	h.Write([]byte("l|" + links + "\n"))
	kv, err := s.d.JS.KeyValue(ctx, bus.BucketActorKV)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
	case err != nil:
		return "", fmt.Errorf("open bucket %s: %w", bus.BucketActorKV, err)
	default:
		// Revisions only: a key's revision changes with each of its writes.
		w, err := kv.WatchFiltered(ctx, []string{exportpkg.KVPrefix(slug) + ">"}, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
		if err != nil {
			return "", fmt.Errorf("list keys: %w", err)
		}
		defer w.Stop()
		// The watcher does not end with ctx: wait on both.
	keys:
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok || e == nil { // nil: the keys there now are all listed
					break keys
				}
				h.Write([]byte("k|" + e.Key() + "|" + strconv.FormatUint(e.Revision(), 10) + "\n"))
			case <-ctx.Done():
				return "", fmt.Errorf("list keys: %w", ctx.Err())
			}
		}
	}
	return "|" + hex.EncodeToString(h.Sum(nil))[:16], nil
}
