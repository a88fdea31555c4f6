package bus_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// The bus's outages, met for real: a KV read and a request while the
// server is down are unavailable with a Retry-After, wherever they are
// wrapped.
func TestBusOutagesAreUnavailable(t *testing.T) {
	env := testenv.Start(t)
	nc := connect(t, env, "outage")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 30*time.Second)
	if err := (bus.Topology{JS: js}).EnsureBuckets(ctx, bus.BucketActorState); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketActorState)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody serves the subject: no responders.
	_, noOne := bus.CallRaw(timeout(t, 5*time.Second), nc, "gnome.nobody.here", nil)
	env.NATS.Shutdown()
	_, getErr := kv.Get(timeout(t, 500*time.Millisecond), "k")
	_, reqErr := nc.Request("gnome.any", nil, 200*time.Millisecond)
	for name, err := range map[string]error{"no responders": noOne, "kv get": getErr, "request": reqErr} {
		if err == nil {
			t.Errorf("%s: no error with the server down", name)
			continue
		}
		wrapped := fmt.Errorf("read something: %w", err)
		if !bus.IsUnavailable(wrapped) {
			t.Errorf("%s: IsUnavailable(%v) = false", name, err)
		}
		if ae := apierr.From(wrapped); ae.Code.Status() != http.StatusServiceUnavailable || ae.RetryAfter <= 0 {
			t.Errorf("%s: From(%v) = %s (retry after %d), want 503 with a Retry-After", name, err, ae.Code, ae.RetryAfter)
		}
	}
}

func TestJetStreamRefusalsAreNotOutages(t *testing.T) {
	for _, err := range []error{
		jetstream.ErrStreamNotFound, jetstream.ErrKeyNotFound, jetstream.ErrStreamNameAlreadyInUse,
		&jetstream.APIError{Code: 503, ErrorCode: 10063, Description: "expected stream sequence does not match"},
		&jetstream.APIError{Code: 500, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"},
	} {
		if bus.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true", err)
		}
	}
	if !bus.IsUnavailable(&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}) {
		t.Error("JetStream temporarily unavailable is not unavailable")
	}
}
