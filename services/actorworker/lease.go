package actorworker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// Leases: an actor runs only on the instance holding its key in
// actor_leases. The key is created only if absent, renewed every RenewEvery
// by an update naming the revision last written (so a renewal fails once
// anyone else wrote the key), and expires the bucket's TTL after the last
// renewal; the bucket leaves a marker when a key expires, so every
// instance's watcher sees it go.

func (s *Service) leaseValue(sp *spec) []byte {
	b, _ := json.Marshal(actorapi.Lease{Worker: s.d.InstanceID, Version: sp.version, Checksum: sp.checksum, AcquiredAt: time.Now().UTC()})
	return b
}

// acquireLease takes the lease key (instanceKey) of sp's actor; held is
// false when another worker holds it.
func (s *Service) acquireLease(ctx context.Context, key string, sp *spec) (rev uint64, held bool, err error) {
	rev, err = s.leases.Create(ctx, key, s.leaseValue(sp))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return rev, true, nil
}

// renewLease keeps a's lease until ctx ends. A renewal refused because the
// key changed means the lease is lost; renewals failing for longer than the
// lease lives mean it may be lost: either way the actor stops here, before
// another instance can start it.
func (s *Service) renewLease(ctx context.Context, a *actor) {
	t := time.NewTicker(s.tune.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.tune.RenewEvery)
		a.mu.Lock()
		sp := a.leaseSpec
		a.mu.Unlock()
		rev, err := s.leases.Update(rctx, a.key, s.leaseValue(sp), a.leaseRev.Load())
		cancel()
		switch {
		case err == nil:
			a.leaseRev.Store(rev)
			a.leaseOK.Store(time.Now().UnixNano())
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound):
			a.log.Warn("actor lease lost", "err", err)
			a.requestStop(stopLost)
			return
		default:
			since := time.Since(time.Unix(0, a.leaseOK.Load()))
			a.log.Warn("actor lease renewal failed", "err", err, "since_renewal", since)
			if since > s.leaseTTL-s.tune.RenewEvery {
				a.requestStop(stopLost)
				return
			}
		}
	}
}

// releaseLease deletes a's lease if it still holds it, so that another
// instance may take it at once.
func (s *Service) releaseLease(ctx context.Context, a *actor) {
	err := s.leases.Delete(ctx, a.key, jetstream.LastRevision(a.leaseRev.Load()))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		a.log.Warn("release actor lease failed; it will expire", "err", err)
	}
}

// leaseHeld reports whether the lease key (instanceKey) is held by anyone,
// as the bucket's leader has it (s.leases is a bus.LeaderKV): a lease
// taken an instant ago by another worker must not read as free, or its
// actor's state would be dropped.
func (s *Service) leaseHeld(ctx context.Context, key string) (bool, error) {
	_, err := s.leases.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	}
	return false, err
}
