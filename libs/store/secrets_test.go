package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

const (
	keyA = "secret-key-a-0123456789abcdef0123456789"
	keyB = "secret-key-b-0123456789abcdef0123456789"
)

func sealer(t *testing.T, cur, prev string) *store.Sealer {
	t.Helper()
	s, err := store.NewSealer(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A value seals and opens under its own slug and name only, never with
// another key, and a changed byte refuses to open.
func TestSealerBindsValueToItsPlace(t *testing.T) {
	a := sealer(t, keyA, "")
	v, err := a.Seal("alpha", "API_KEY", []byte("sk-live-123"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(v.Box, []byte("sk-live-123")) {
		t.Fatal("the sealed value holds the plain value")
	}
	if got, err := a.Open("alpha", "API_KEY", v); err != nil || string(got) != "sk-live-123" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := a.Seal("alpha", "API_KEY", []byte("sk-live-123"))
	if bytes.Equal(again.Box, v.Box) || bytes.Equal(again.Nonce, v.Nonce) {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	for _, c := range []struct{ slug, name string }{{"beta", "API_KEY"}, {"alpha", "OTHER"}, {"alph", "aAPI_KEY"}, {"alpha\x00API", "KEY"}} {
		if _, err := a.Open(c.slug, c.name, v); !errors.Is(err, store.ErrSecretTampered) {
			t.Errorf("Open as %s/%s = %v, want ErrSecretTampered", c.slug, c.name, err)
		}
	}
	flipped := v
	flipped.Box = append([]byte(nil), v.Box...)
	flipped.Box[0] ^= 1
	if _, err := a.Open("alpha", "API_KEY", flipped); !errors.Is(err, store.ErrSecretTampered) {
		t.Errorf("Open of a changed value = %v, want ErrSecretTampered", err)
	}
	short := v
	short.Nonce = v.Nonce[:4]
	if _, err := a.Open("alpha", "API_KEY", short); !errors.Is(err, store.ErrSecretTampered) {
		t.Errorf("Open with a short nonce = %v, want ErrSecretTampered", err)
	}

	b := sealer(t, keyB, "")
	if b.KeyID() == a.KeyID() {
		t.Fatal("two secret keys have one key ID")
	}
	if _, err := b.Open("alpha", "API_KEY", v); !errors.Is(err, store.ErrSecretKeyLost) {
		t.Errorf("Open with another key = %v, want ErrSecretKeyLost", err)
	}
	// A forged key ID does not make another key open it.
	forged := v
	forged.KeyID = b.KeyID()
	if _, err := b.Open("alpha", "API_KEY", forged); !errors.Is(err, store.ErrSecretTampered) {
		t.Errorf("Open under a forged key ID = %v, want ErrSecretTampered", err)
	}
	// After a change of SECRET_KEY, the previous key still opens it.
	rotated := sealer(t, keyB, keyA)
	if got, err := rotated.Open("alpha", "API_KEY", v); err != nil || string(got) != "sk-live-123" {
		t.Errorf("Open with the previous key = %q, %v", got, err)
	}
	if st := rotated.KeyState(v); st != uploadapi.SecretKeyPrevious {
		t.Errorf("KeyState = %q, want previous", st)
	}
	if _, err := store.NewSealer("", ""); err == nil {
		t.Error("NewSealer without a key succeeded")
	}
}

// The repository: created then replaced, listed without values, the limit
// held under simultaneous creations, values bound to their _id, removed
// alone and with the experiment, and sealed again after a key change.
func TestSecretsRepository(t *testing.T) {
	s := open(t, testenv.Start(t), nil, "secrets_test")
	if err := s.EnsureIndexes(ctx(t), store.ExperimentSecrets); err != nil {
		t.Fatal(err)
	}
	r := s.Secrets(sealer(t, keyA, ""))
	sec, created, err := r.Put(ctx(t), "alpha", "API_KEY", "first-value", "ann@example.com", 4)
	if err != nil || !created || sec.Name != "API_KEY" || sec.Size != len("first-value") || sec.CreatedBy != "ann@example.com" || sec.Key != uploadapi.SecretKeyCurrent {
		t.Fatalf("Put = %+v, %v, %v", sec, created, err)
	}
	sec2, created, err := r.Put(ctx(t), "alpha", "API_KEY", "second", "root@example.com", 4)
	if err != nil || created || sec2.UpdatedBy != "root@example.com" || sec2.CreatedBy != "ann@example.com" || !sec2.CreatedAt.Equal(sec.CreatedAt) || sec2.Size != 6 {
		t.Fatalf("Put again = %+v, %v, %v", sec2, created, err)
	}
	if v, found, err := r.Reveal(ctx(t), "alpha", "API_KEY"); err != nil || !found || v != "second" {
		t.Fatalf("Reveal = %q, %v, %v", v, found, err)
	}
	if _, found, err := r.Reveal(ctx(t), "alpha", "NOPE"); err != nil || found {
		t.Fatalf("Reveal of an unset name: found %v, %v", found, err)
	}
	if _, found, err := r.Reveal(ctx(t), "beta", "API_KEY"); err != nil || found {
		t.Fatalf("Reveal from another experiment: found %v, %v", found, err)
	}

	// Nothing stored holds the value in the clear.
	raw, err := s.Collection(store.ExperimentSecrets).Find(ctx(t), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := raw.All(ctx(t), &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if bytes.Contains(d, []byte("second")) || bytes.Contains(d, []byte("first-value")) {
			t.Fatalf("a stored document holds a value: %s", d)
		}
	}

	// The limit, with eight simultaneous creations for two free places.
	if _, _, err := r.Put(ctx(t), "alpha", "B", "b", "ann@example.com", 4); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = r.Put(ctx(t), "alpha", fmt.Sprintf("N%d", i), "v", "ann@example.com", 4) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTooManySecrets):
			t.Fatalf("Put over the limit: %v", err)
		}
	}
	list, err := r.List(ctx(t), "alpha")
	if err != nil || len(list) > 4 || len(list) != 2+ok {
		t.Fatalf("after racing creations: %d accepted, list %+v, %v", ok, list, err)
	}
	if list[0].Name != "API_KEY" {
		t.Errorf("List is not by name: %+v", list)
	}
	// Replacing stays possible at the limit.
	for len(list) < 4 {
		if _, _, err := r.Put(ctx(t), "alpha", fmt.Sprintf("FILL%d", len(list)), "v", "ann@example.com", 4); err != nil {
			t.Fatal(err)
		}
		list, _ = r.List(ctx(t), "alpha")
	}
	if _, _, err := r.Put(ctx(t), "alpha", "API_KEY", "third", "ann@example.com", 4); err != nil {
		t.Fatalf("replace at the limit: %v", err)
	}
	if _, _, err := r.Put(ctx(t), "alpha", "FIFTH", "v", "ann@example.com", 4); !errors.Is(err, store.ErrTooManySecrets) {
		t.Fatalf("a fifth secret: %v, want ErrTooManySecrets", err)
	}

	// A sealed value moved to another experiment's or name's record does
	// not open there.
	if _, _, err := r.Put(ctx(t), "beta", "API_KEY", "beta-value", "bob@example.com", 4); err != nil {
		t.Fatal(err)
	}
	var alpha bson.M
	if err := s.Collection(store.ExperimentSecrets).FindOne(ctx(t), bson.D{{Key: "_id", Value: "alpha/API_KEY"}}).Decode(&alpha); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collection(store.ExperimentSecrets).UpdateOne(ctx(t), bson.D{{Key: "_id", Value: "beta/API_KEY"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "nonce", Value: alpha["nonce"]}, {Key: "sealed", Value: alpha["sealed"]}, {Key: "key_id", Value: alpha["key_id"]}}}}); err != nil {
		t.Fatal(err)
	}
	if v, found, err := r.Reveal(ctx(t), "beta", "API_KEY"); !found || !errors.Is(err, store.ErrSecretTampered) || v != "" {
		t.Fatalf("Reveal of a value moved from alpha = %q, %v, %v; want ErrSecretTampered", v, found, err)
	}
	// Even with its slug and name fields rewritten to match.
	if _, err := s.Collection(store.ExperimentSecrets).InsertOne(ctx(t), bson.D{
		{Key: "_id", Value: "beta/MOVED"}, {Key: "slug", Value: "beta"}, {Key: "name", Value: "MOVED"},
		{Key: "nonce", Value: alpha["nonce"]}, {Key: "sealed", Value: alpha["sealed"]}, {Key: "key_id", Value: alpha["key_id"]},
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Reveal(ctx(t), "beta", "MOVED"); !errors.Is(err, store.ErrSecretTampered) {
		t.Fatalf("Reveal of a value copied under another name: %v, want ErrSecretTampered", err)
	}

	// A key change: the new key alone loses the values; with the previous
	// one they open, Reseal moves them to the new key, and after that the
	// new key alone opens them.
	lostView := s.Secrets(sealer(t, keyB, ""))
	if _, _, err := lostView.Reveal(ctx(t), "alpha", "API_KEY"); !errors.Is(err, store.ErrSecretKeyLost) {
		t.Fatalf("Reveal after a key change without the previous key: %v, want ErrSecretKeyLost", err)
	}
	if l, _ := lostView.List(ctx(t), "alpha"); l[0].Key != uploadapi.SecretKeyLost {
		t.Errorf("key state with the key lost: %+v", l[0])
	}
	rotated := s.Secrets(sealer(t, keyB, keyA))
	if v, _, err := rotated.Reveal(ctx(t), "alpha", "API_KEY"); err != nil || v != "third" {
		t.Fatalf("Reveal with the previous key = %q, %v", v, err)
	}
	n, lost, err := rotated.Reseal(ctx(t))
	// alpha's four open and move; beta's two hold alpha's moved value and
	// open nowhere.
	if err != nil || n != 4 || lost != 2 {
		t.Fatalf("Reseal = %d, %d not opened, %v; want 4 and 2", n, lost, err)
	}
	if v, _, err := lostView.Reveal(ctx(t), "alpha", "API_KEY"); err != nil || v != "third" {
		t.Fatalf("Reveal with the new key alone after Reseal = %q, %v", v, err)
	}
	if n, _, err := rotated.Reseal(ctx(t)); err != nil || n != 0 {
		t.Fatalf("a second Reseal = %d, %v; want nothing to do", n, err)
	}

	// Removal, alone and with the experiment.
	if gone, err := r.Remove(ctx(t), "beta", "API_KEY"); err != nil || gone == nil || gone.Name != "API_KEY" {
		t.Fatalf("Remove = %+v, %v", gone, err)
	}
	if gone, err := r.Remove(ctx(t), "beta", "API_KEY"); err != nil || gone != nil {
		t.Fatalf("Remove again = %+v, %v", gone, err)
	}
	if n, err := r.RemoveOf(ctx(t), "alpha"); err != nil || n != 4 {
		t.Fatalf("RemoveOf = %d, %v", n, err)
	}
	if names, err := store.SecretsOf(s.DB, nil).Names(ctx(t), "beta"); err != nil || strings.Join(names, ",") != "MOVED" {
		t.Fatalf("Names(beta) = %v, %v", names, err)
	}
}
