package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
)

// SecretKey is the SECRET_KEY of every test config (Env.Config).
const SecretKey = "test-secret-key-0123456789abcdef0123456789"

var testSigner = func() *authn.Signer {
	key, err := authn.DeriveKey(SecretKey)
	if err != nil {
		panic(err)
	}
	return authn.NewSigner(key)
}()

// Token is a valid token of a user with email and roles, signed with the
// key of SecretKey, which every env trusts from its start (an auth service
// running with the test config publishes the same key): what a signed-in
// user's requests carry.
func Token(email string, roles ...string) string {
	sum := sha256.Sum256([]byte(email))
	t, _, err := testSigner.Mint(authn.Subject{ID: hex.EncodeToString(sum[:12]), Email: email, Roles: roles}, time.Now())
	if err != nil {
		panic(err)
	}
	return t
}

// Caller is a caller with email and roles and its token, as the edge sends
// one: services act on the token, so a caller without one is refused.
func Caller(email string, roles ...string) contract.Caller {
	if roles == nil {
		roles = []string{}
	}
	return contract.Caller{Email: email, Roles: roles, IsAdmin: slices.Contains(roles, "admin"), Token: Token(email, roles...)}
}

// trustTestKey publishes the verification key of SecretKey, so that the
// services of the env accept Token's tokens even without an auth service.
func trustTestKey(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Errorf("connect to publish the test key: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := (bus.Topology{JS: js, Service: bus.Admin}).EnsureBuckets(ctx, bus.BucketAuthKeys); err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, bus.BucketAuthKeys)
	if err != nil {
		return err
	}
	kid, pub := testSigner.Public()
	return authn.PublishKey(ctx, kv, kid, pub)
}
