package export

import (
	"bytes"
	"fmt"
	"strings"
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

// Standalone and docker packages carry the experiment's study links, with
// the claim of a used single-use link, and their runs; upload-ready ones
// carry none; and a new run, or a run's finish, makes a package stale.
func TestPackagesCarryStudyLinks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	w.deploy("shop", "first")
	ctx := ctxT(t)
	repo := w.d.Store.StudyLinks()
	now := time.Now().UTC().Truncate(time.Millisecond)
	single, multi := "single-link-0123456789", "multi-link-01234567890"
	if err := repo.Create(ctx, []store.StudyLink{
		{ID: single, Slug: "shop", Kind: store.LinkSingle, CreatedBy: "dev@example.com", CreatedAt: now},
		{ID: multi, Slug: "shop", Kind: store.LinkMulti, CreatedBy: "dev@example.com", CreatedAt: now.Add(time.Second)},
		{ID: "other-link-01234567890", Slug: "other", Kind: store.LinkMulti, CreatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	openRun := func(link, id string) {
		t.Helper()
		if _, _, err := repo.Open(ctx, "shop", link, func() store.StudyRun {
			return store.StudyRun{ID: id, Participant: "participant-" + id[:4], OpenedAt: now}
		}); err != nil {
			t.Fatal(err)
		}
	}
	openRun(single, "run1-0123456789abcdefg")
	if _, _, _, err := repo.Finish(ctx, "shop", "run1-0123456789abcdefg"); err != nil {
		t.Fatal(err)
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
	contents := func(p *exportpkg.Package) (links, runs []string) {
		t.Helper()
		if err := p.ReadLinks(func(l store.StudyLink) error {
			links = append(links, l.ID+"|"+l.Run)
			return nil
		}, func(r store.StudyRun) error {
			runs = append(runs, fmt.Sprintf("%s|%s|%t", r.ID, r.Link, r.Finished))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return links, runs
	}
	for _, typ := range exportapi.Types {
		p := open(w.waitStatus(w.request("shop", typ, reader).Export.ID, exportapi.StatusReady))
		links, runs := contents(p)
		if !typ.HasData() {
			if len(links)+len(runs) != 0 || p.Meta.Links != nil || p.Meta.Runs != nil {
				t.Errorf("%s package holds links %v, runs %v", typ, links, runs)
			}
			continue
		}
		if want := single + "|run1-0123456789abcdefg;" + multi + "|"; strings.Join(links, ";") != want {
			t.Errorf("%s package links %v, want %s", typ, links, want)
		}
		if len(runs) != 1 || runs[0] != "run1-0123456789abcdefg|"+single+"|true" {
			t.Errorf("%s package runs %v", typ, runs)
		}
	}

	// A new run is a new source: the ready standalone package is not
	// handed out again, and the new one has the run.
	openRun(multi, "run2-0123456789abcdefg")
	r := w.request("shop", exportapi.Standalone, reader)
	if r.Reused {
		t.Fatal("a standalone package was reused after a participant opened a link")
	}
	if _, runs := contents(open(w.waitStatus(r.Export.ID, exportapi.StatusReady))); len(runs) != 2 || runs[1] != "run2-0123456789abcdefg|"+multi+"|false" {
		t.Errorf("runs in the new package: %v", runs)
	}
	// So is its finish; another experiment's link is not.
	if _, _, _, err := repo.Finish(ctx, "shop", "run2-0123456789abcdefg"); err != nil {
		t.Fatal(err)
	}
	r = w.request("shop", exportapi.Standalone, reader)
	if r.Reused {
		t.Error("a standalone package was reused after a run finished")
	}
	w.waitStatus(r.Export.ID, exportapi.StatusReady)
	if _, _, err := repo.Open(ctx, "other", "other-link-01234567890", func() store.StudyRun {
		return store.StudyRun{ID: "run3-0123456789abcdefg", Participant: "participant-3", OpenedAt: now}
	}); err != nil {
		t.Fatal(err)
	}
	if r := w.request("shop", exportapi.Standalone, reader); !r.Reused {
		t.Error("shop's standalone package was not reused after another experiment's run")
	}
	if r := w.request("shop", exportapi.UploadReady, reader); !r.Reused {
		t.Error("the upload-ready package was not reused: links are not its source")
	}
}
