package export

import (
	"bytes"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
)

// Standalone and docker packages carry the experiment's accounts and its
// actor's keys; upload-ready ones carry neither; and a new key or account
// makes a package stale as a data write does.
func TestPackagesCarryAccountsAndKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	w.deploy("shop", "first")
	ctx := ctxT(t)
	if err := w.d.Topology.EnsureBuckets(ctx, bus.BucketActorKV); err != nil {
		t.Fatal(err)
	}
	kv, err := w.d.JS.KeyValue(ctx, bus.BucketActorKV)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, exportpkg.KVBucketKey("shop", "last_click"), []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, exportpkg.KVBucketKey("other", "last_click"), []byte("not shop's")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	repo := w.d.Store.ExpAccounts()
	for _, a := range []store.ExpAccount{
		{Slug: "shop", Email: "ann@example.com", UID: "u-ann", PasswordHash: "$argon2id$hash-of-ann", CreatedAt: now, UpdatedAt: now},
		{Slug: "shop", Email: "bob@example.com", UID: "u-bob", PasswordHash: "$argon2id$hash-of-bob", Disabled: true, CreatedAt: now, UpdatedAt: now},
		{Slug: "other", Email: "eve@example.com", UID: "u-eve", PasswordHash: "$argon2id$hash-of-eve", CreatedAt: now, UpdatedAt: now},
	} {
		if err := repo.Create(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}

	open := func(l exportapi.Log) *exportpkg.Package {
		t.Helper()
		b := stored(t, s.files, l.StorageKey)
		p, err := exportpkg.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("open the stored package: %v", err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	for _, typ := range exportapi.Types {
		p := open(w.waitStatus(w.request("shop", typ, reader).Export.ID, exportapi.StatusReady))
		var accounts []string
		if err := p.ReadAccounts(func(a store.ExpAccount, _ bson.D) error {
			accounts = append(accounts, a.Email+"|"+a.UID+"|"+a.PasswordHash)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		keys := map[string]string{}
		if err := p.ReadKV(func(k string, v []byte) error { keys[k] = string(v); return nil }); err != nil {
			t.Fatal(err)
		}
		if !typ.HasData() {
			if len(accounts) != 0 || len(keys) != 0 || p.Meta.Accounts != nil || p.Meta.KV != nil {
				t.Errorf("%s package holds accounts %v, keys %v", typ, accounts, keys)
			}
			continue
		}
		want := []string{"ann@example.com|u-ann|$argon2id$hash-of-ann", "bob@example.com|u-bob|$argon2id$hash-of-bob"}
		if len(accounts) != 2 || accounts[0] != want[0] || accounts[1] != want[1] {
			t.Errorf("%s package accounts %v, want %v", typ, accounts, want)
		}
		if len(keys) != 1 || keys["last_click"] != `{"n":1}` {
			t.Errorf("%s package keys %v", typ, keys)
		}
	}

	// A new value is a new source: the ready standalone package is not
	// handed out again, and the new one has the value.
	if _, err := kv.Put(ctx, exportpkg.KVBucketKey("shop", "last_click"), []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	r := w.request("shop", exportapi.Standalone, reader)
	if r.Reused {
		t.Fatal("a standalone package was reused after the actor's store changed")
	}
	var got string
	if err := open(w.waitStatus(r.Export.ID, exportapi.StatusReady)).ReadKV(func(_ string, v []byte) error { got = string(v); return nil }); err != nil || got != `{"n":2}` {
		t.Errorf("last_click in the new package: %q, %v", got, err)
	}
	// So is a disabled account.
	if _, err := repo.SetDisabled(ctx, "shop", "u-ann", true); err != nil {
		t.Fatal(err)
	}
	if r := w.request("shop", exportapi.Standalone, reader); r.Reused {
		t.Error("a standalone package was reused after an account changed")
	}
	if r := w.request("shop", exportapi.UploadReady, reader); !r.Reused {
		t.Error("the upload-ready package was not reused: accounts and keys are not its source")
	}
}
