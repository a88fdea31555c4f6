package exportpkg_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// kvBucket is an actor_kv-like bucket on an embedded NATS server.
func kvBucket(t *testing.T, env *testenv.Env, name string) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctxT(t), jetstream.KeyValueConfig{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func seedAccounts(t *testing.T, f *fixture) []store.ExpAccount {
	t.Helper()
	now := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	accs := []store.ExpAccount{
		{Slug: slug, Email: "ann@example.com", UID: "u-ann", PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", TokenVersion: 2, CreatedAt: now, UpdatedAt: now},
		{Slug: slug, Email: "bob@example.com", UID: "u-bob", PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$Ym9i", Disabled: true, CreatedAt: now, UpdatedAt: now},
		// A demo account: no password, a role and data of its own.
		{Slug: slug, Email: "demo@example.com", UID: "u-demo", Kind: "demo", Role: "staff", ExtraData: map[string]any{"desk": "3"}, CreatedAt: now, UpdatedAt: now},
		// Another experiment's account: never in shop's package.
		{Slug: "shop_x", Email: "eve@example.com", UID: "u-eve", PasswordHash: "h", CreatedAt: now, UpdatedAt: now},
	}
	repo := (&store.Store{Client: f.client, DB: f.db}).ExpAccounts()
	for i := range accs {
		if err := repo.Create(ctxT(t), &accs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return accs[:3]
}

func TestAccountsAndKVRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	f := newFixture(t)
	accs := seedAccounts(t, f)
	src := kvBucket(t, env, "actor_kv")
	ctx := ctxT(t)
	for k, v := range map[string]string{"last_click": `{"at":"2025-01-02"}`, "a.b=c": "dots"} {
		if _, err := src.Put(ctx, exportpkg.KVBucketKey(slug, k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Keys of another experiment whose slug starts the same, and one no
	// actor could have made: neither is shop's.
	if _, err := src.Put(ctx, exportpkg.KVBucketKey("shop_x", "last_click"), []byte("not shop's")); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Put(ctx, "shop.AA", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	f.src.KV = exportpkg.BucketKV{KV: src}

	// Upload-ready packages carry none of it.
	up, _ := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	names, _ := entries(t, up)
	for _, n := range names {
		if n == exportpkg.AccountsFile || n == exportpkg.KVFile {
			t.Errorf("upload-ready package holds %s", n)
		}
	}

	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	if sum.Meta.Format != 2 || sum.Meta.Accounts == nil || sum.Meta.Accounts.Entries != 3 || sum.Meta.KV == nil || sum.Meta.KV.Entries != 2 {
		t.Fatalf("meta %+v accounts %+v kv %+v", sum.Meta, sum.Meta.Accounts, sum.Meta.KV)
	}
	_, files := entries(t, pkg)
	if body := read(t, files[exportpkg.AccountsFile]); strings.Contains(body, "eve@") || !strings.Contains(body, "password_hash") {
		t.Errorf("accounts.jsonl:\n%s", body)
	}
	p := open(t, pkg)
	defer p.Close()
	var got []string
	if err := p.ReadKV(func(k string, v []byte) error { got = append(got, k+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if strings.Join(got, ";") != `a.b=c=dots;last_click={"at":"2025-01-02"}` {
		t.Errorf("kv read back %q", got)
	}

	// Import into a fresh database and bucket: same accounts, same keys.
	fresh := f.client.Database("people_fresh")
	dst := kvBucket(t, env, "actor_kv_fresh")
	s, err := exportpkg.Import(ctx, fresh, p, exportpkg.ImportOptions{KV: exportpkg.BucketKV{KV: dst}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Accounts != 3 || s.Keys != 2 {
		t.Errorf("summary %+v", s)
	}
	repo := (&store.Store{Client: f.client, DB: fresh}).ExpAccounts()
	for _, want := range accs {
		a, err := repo.ByEmail(ctx, slug, want.Email)
		if err != nil || a == nil {
			t.Fatalf("account %s: %v, %v", want.Email, a, err)
		}
		if a.UID != want.UID || a.PasswordHash != want.PasswordHash || a.Disabled != want.Disabled || a.TokenVersion != want.TokenVersion || !a.CreatedAt.Equal(want.CreatedAt) ||
			a.Kind != want.Kind || a.Role != want.Role || fmt.Sprint(a.ExtraData) != fmt.Sprint(want.ExtraData) {
			t.Errorf("account %+v, want %+v", *a, want)
		}
	}
	e, err := dst.Get(ctx, exportpkg.KVBucketKey(slug, "last_click"))
	if err != nil || string(e.Value()) != `{"at":"2025-01-02"}` {
		t.Fatalf("last_click: %v", err)
	}

	// A restart keeps what changed since: a new value, a disabled account.
	if _, err := dst.Put(ctx, exportpkg.KVBucketKey(slug, "last_click"), []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.SetDisabled(ctx, slug, "u-ann", true); err != nil {
		t.Fatal(err)
	}
	s, err = exportpkg.Import(ctx, fresh, p, exportpkg.ImportOptions{KV: exportpkg.BucketKV{KV: dst}})
	if err != nil || s.Accounts != 0 || s.AccountsExisting != 3 || s.Keys != 0 || s.KeysExisting != 2 {
		t.Fatalf("second import %+v, %v", s, err)
	}
	if e, _ := dst.Get(ctx, exportpkg.KVBucketKey(slug, "last_click")); string(e.Value()) != "newer" {
		t.Errorf("last_click after a second import: %q", e.Value())
	}
	if a, _ := repo.ByID(ctx, slug, "u-ann"); a == nil || !a.Disabled {
		t.Errorf("ann after a second import: %+v", a)
	}
}

// TestOldFormatImports: a package of format 1 (no accounts, no keys) opens
// and imports as before.
func TestOldFormatImports(t *testing.T) {
	f := newFixture(t)
	pkg, _ := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	old := rezip(t, pkg, func(name, body string) (string, bool) {
		if name == exportpkg.MetaFile {
			body = strings.Replace(body, `"format": 2`, `"format": 1`, 1)
		}
		return body, true
	})
	p := open(t, old)
	defer p.Close()
	if p.Meta.Format != 1 {
		t.Fatalf("format %d", p.Meta.Format)
	}
	s, err := exportpkg.Import(ctxT(t), f.client.Database("old_fresh"), p, exportpkg.ImportOptions{})
	if err != nil || s.Documents == 0 || s.Accounts != 0 {
		t.Errorf("import %+v, %v", s, err)
	}
}

// TestPeopleRefused: hostile accounts and keys are refused with
// ErrInvalidPackage, and nothing of them is imported.
func TestPeopleRefused(t *testing.T) {
	f := newFixture(t)
	seedAccounts(t, f)
	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	accLine := func(edit func(m map[string]any)) string {
		_, files := entries(t, pkg)
		first := strings.SplitN(read(t, files[exportpkg.AccountsFile]), "\n", 2)[0]
		var m map[string]any
		if err := json.Unmarshal([]byte(first), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		return string(b) + "\n"
	}
	// withEntry replaces an entry and rewrites export.json to match it, as
	// an attacker who builds a package would.
	withEntry := func(name, body string, entries int64) []byte {
		meta := sum.Meta
		x := &exportpkg.Extra{File: name, Entries: entries, SHA256: sha(body)}
		if name == exportpkg.AccountsFile {
			meta.Accounts = x
		} else {
			meta.KV = x
		}
		mj, _ := json.MarshalIndent(meta, "", "  ")
		return rezip(t, pkg, func(n, b string) (string, bool) {
			switch n {
			case name:
				return "", false
			case exportpkg.MetaFile:
				return string(mj) + "\n", true
			}
			return b, true
		}, zfile{name: name, body: body})
	}
	cases := map[string]struct {
		pkg  []byte
		want string
	}{
		"plain password": {withEntry(exportpkg.AccountsFile, accLine(func(m map[string]any) { m["password"] = "hunter2" }), 1), `field "password"`},
		"other experiment": {withEntry(exportpkg.AccountsFile, accLine(func(m map[string]any) {
			m["slug"], m["_id"] = "shop_x", "shop_x/ann@example.com"
		}), 1), `experiment "shop_x"`},
		"id not its email": {withEntry(exportpkg.AccountsFile, accLine(func(m map[string]any) { m["_id"] = "shop/admin@example.com" }), 1), "not its slug and email"},
		"no hash":          {withEntry(exportpkg.AccountsFile, accLine(func(m map[string]any) { m["password_hash"] = "" }), 1), "no password hash"},
		"count":            {withEntry(exportpkg.AccountsFile, accLine(func(map[string]any) {}), 2), "holds 1 entries"},
		"bad key":          {withEntry(exportpkg.KVFile, `{"key":"../x","value":"eA=="}`+"\n", 1), "is not 1 to 128"},
		"big value":        {withEntry(exportpkg.KVFile, `{"key":"k","value":"`+strings.Repeat("A", 90000)+`"}`+"\n", 1), "over the limit"},
		"unknown field":    {withEntry(exportpkg.KVFile, `{"key":"k","value":"eA==","slug":"other"}`+"\n", 1), "unknown field"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := open(t, c.pkg)
			defer p.Close()
			db := f.client.Database("refused_" + strings.ReplaceAll(name, " ", "_"))
			_, err := exportpkg.Import(ctxT(t), db, p, exportpkg.ImportOptions{KV: refuseKV{}})
			if !errors.Is(err, exportpkg.ErrInvalidPackage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("import: %v, want %q", err, c.want)
			}
			if n, _ := db.Collection(store.ExperimentUsersCollection).CountDocuments(ctxT(t), bson.D{{Key: "password", Value: bson.D{{Key: "$exists", Value: true}}}}); n != 0 {
				t.Errorf("%d accounts with a plain password imported", n)
			}
		})
	}
}

// refuseKV is a store that fails the test when written to: a refused line
// must not reach it.
type refuseKV struct{}

func (refuseKV) Each(context.Context, string, func(string, []byte) error) error { return nil }
func (refuseKV) Create(_ context.Context, key string, _ []byte) (bool, error) {
	return false, errors.New("a refused package wrote key " + key)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
