package authn

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
)

// Revocation is the value of a deny-list entry.
type Revocation struct {
	// Until is when the token expires; the entry is useless after it.
	Until time.Time `json:"until"`
}

// PublishKey writes the auth service's verification key to the keys bucket,
// removing any other (a new SECRET_KEY ends the old key's tokens).
func PublishKey(ctx context.Context, kv jetstream.KeyValue, kid string, pub ed25519.PublicKey) error {
	if _, err := kv.Put(ctx, kid, []byte(base64.StdEncoding.EncodeToString(pub))); err != nil {
		return fmt.Errorf("publish token key: %w", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list token keys: %w", err)
	}
	for k := range keys.Keys() {
		if k != kid {
			if err := kv.Delete(ctx, k); err != nil {
				return fmt.Errorf("retire token key %s: %w", k, err)
			}
		}
	}
	return nil
}

// Revoke puts jti on the deny-list until the token expires; the entry
// disappears by itself then.
func Revoke(ctx context.Context, kv jetstream.KeyValue, jti string, until time.Time) error {
	ttl := time.Until(until)
	if ttl <= 0 {
		return nil
	}
	// KV TTLs are whole seconds at least.
	ttl = max(ttl.Round(time.Second)+time.Second, time.Second)
	val, _ := json.Marshal(Revocation{Until: until})
	if _, err := kv.Create(ctx, jti, val, jetstream.KeyTTL(ttl)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil
		}
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// SetUserVersion records a user's token version in the versions bucket.
func SetUserVersion(ctx context.Context, kv jetstream.KeyValue, userID string, version int64) error {
	if _, err := kv.Put(ctx, userID, []byte(strconv.FormatInt(version, 10))); err != nil {
		return fmt.Errorf("publish token version: %w", err)
	}
	return nil
}

// Watch keeps v current with the keys, deny-list and token-version buckets
// until ctx ends. It returns once the buckets' current contents are loaded.
func (v *Verifier) Watch(ctx context.Context, js jetstream.JetStream) error {
	type bucket struct {
		name  string
		apply func(e jetstream.KeyValueEntry)
	}
	var keyMu sync.Mutex
	keys := map[string]ed25519.PublicKey{}
	buckets := []bucket{
		{bus.BucketAuthKeys, func(e jetstream.KeyValueEntry) {
			keyMu.Lock()
			defer keyMu.Unlock()
			if e.Operation() != jetstream.KeyValuePut {
				delete(keys, e.Key())
			} else if raw, err := base64.StdEncoding.DecodeString(string(e.Value())); err == nil && len(raw) == ed25519.PublicKeySize {
				keys[e.Key()] = ed25519.PublicKey(raw)
			}
			v.SetKeys(keys)
		}},
		{bus.BucketRevokedTokens, func(e jetstream.KeyValueEntry) {
			if e.Operation() != jetstream.KeyValuePut {
				v.Undeny(e.Key())
				return
			}
			var r Revocation
			if json.Unmarshal(e.Value(), &r) != nil || r.Until.IsZero() {
				r.Until = time.Now().Add(TokenTTL)
			}
			v.Deny(e.Key(), r.Until)
		}},
		{bus.BucketUserVersions, func(e jetstream.KeyValueEntry) {
			if e.Operation() != jetstream.KeyValuePut {
				return
			}
			if n, err := strconv.ParseInt(string(e.Value()), 10, 64); err == nil {
				v.SetVersion(e.Key(), n)
			}
		}},
	}
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b.name)
		if err != nil {
			return fmt.Errorf("open bucket %s: %w", b.name, err)
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("watch bucket %s: %w", b.name, err)
		}
		// Load what is there now before answering any request.
		initial := true
		for initial {
			select {
			case e := <-w.Updates():
				if e == nil {
					initial = false
					continue
				}
				b.apply(e)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Second):
				// A deadline: the bucket's stream did not answer in time.
				return fmt.Errorf("watch bucket %s: initial values did not arrive: %w", b.name, context.DeadlineExceeded)
			}
		}
		go func(b bucket, w jetstream.KeyWatcher) {
			defer func() { _ = w.Stop() }()
			for {
				select {
				case e, ok := <-w.Updates():
					if !ok {
						return
					}
					if e != nil {
						b.apply(e)
					}
				case <-ctx.Done():
					return
				}
			}
		}(b, w)
	}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				v.Prune(now)
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}
