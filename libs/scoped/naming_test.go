package scoped_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

const (
	slugChars = "abcdefghijklmnopqrstuvwxyz0123456789_-"
	baseChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
)

// randomName draws 1 to 64 characters of chars, biased towards the
// separator-like ones ('_', '-') that made the old naming ambiguous.
func randomName(r *rand.Rand, chars string) string {
	n := 1 + r.IntN(64)
	if r.IntN(2) == 0 {
		n = 1 + r.IntN(4)
	}
	var b strings.Builder
	for range n {
		if r.IntN(3) == 0 {
			b.WriteByte('_')
			continue
		}
		b.WriteByte(chars[r.IntN(len(chars))])
	}
	return b.String()
}

type pair struct{ slug, base string }

// The mapping is injective: every (slug, base) pair gets a name of its own,
// and the name gives the pair back. Random pairs, plus the cases that
// collided under {slug}_{base}.
func TestCollectionNamingIsInjective(t *testing.T) {
	pairs := []pair{
		{"p", "x_notes"}, {"p_x", "notes"},
		{"a", "b_c"}, {"a_b", "c"},
		{"a", "_b"}, {"a_", "b"}, {"a__", "_"}, {"a", "__"},
		{"a-b", "c"}, {"a", "b_c"},
		{"x", "x"}, {"x_x", "x"}, {"x", "x_x"},
		{"shared", "countries"}, {"system", "users"}, {"exp", "x"},
		{strings.Repeat("z", 64), strings.Repeat("Z", 64)},
		{"_", "_"}, {"-", "_"}, {"0", "0"},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		pairs = append(pairs, pair{randomName(r, slugChars), randomName(r, baseChars)})
	}
	seen := map[string]pair{}
	platform := map[string]bool{}
	for _, c := range []string{store.Users, store.ExperimentsConfig, store.ExportLogs, store.AuditLog, store.DataVersions,
		store.StandaloneImports, store.DataGrants, store.DataMigrations, "casbin_rules", "shared_countries"} {
		platform[c] = true
	}
	for _, p := range pairs {
		name := scoped.CollectionName(p.slug, p.base)
		if prev, ok := seen[name]; ok && prev != p {
			t.Fatalf("%+v and %+v both map to %q", prev, p, name)
		}
		seen[name] = p
		slug, base, ok := scoped.ParseCollectionName(name)
		if !ok || slug != p.slug || base != p.base {
			t.Fatalf("ParseCollectionName(%q) = %q, %q, %v; want %+v", name, slug, base, ok, p)
		}
		if platform[name] || strings.HasPrefix(name, "system.") || strings.HasPrefix(name, "shared_") {
			t.Fatalf("%+v maps to %q, a name of the platform or the store", p, name)
		}
		if !strings.HasPrefix(name, scoped.CollectionPrefix(p.slug)) {
			t.Fatalf("%q does not start with the prefix of %q", name, p.slug)
		}
	}
	// A prefix of one experiment never starts another's names.
	if strings.HasPrefix(scoped.CollectionName("a_b", "c"), scoped.CollectionPrefix("a")) {
		t.Error("the prefix of a matches a name of a_b")
	}
	for _, name := range []string{"users", "p_x_notes", "x.", "x.a", "x.a.", "x..b", "x.A.b", "x.a.b.c", "x.a.b-c", "y.a.b", "x.a.b\x00"} {
		if s, b, ok := scoped.ParseCollectionName(name); ok {
			t.Errorf("ParseCollectionName(%q) = %q, %q; want no experiment collection", name, s, b)
		}
	}
}

// The embedded store (FerretDB 1.24 on SQLite) takes the names, the
// longest included: documents, indexes, listing and dropping all work.
func TestEmbeddedStoreAcceptsCollectionNames(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	for _, p := range []pair{
		{"p", "x_notes"}, {"p_x", "notes"}, {"a-b_c-", "_"}, {"system", "users"},
		{strings.Repeat("s", 64), strings.Repeat("B", 64)},
		{strings.Repeat("-", 64), strings.Repeat("_", 64)},
	} {
		name := scoped.CollectionName(p.slug, p.base)
		c := db.Collection(name)
		if _, err := c.InsertOne(ctx, bson.M{"_id": p.slug + "/" + p.base, "experiment_id": p.slug}); err != nil {
			t.Fatalf("insert into %q: %v", name, err)
		}
		if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "experiment_id", Value: 1}}, Options: options.Index().SetName("by_exp").SetUnique(false)}); err != nil {
			t.Fatalf("index on %q: %v", name, err)
		}
		n, err := c.CountDocuments(ctx, bson.D{})
		if err != nil || n != 1 {
			t.Fatalf("count in %q = %d, %v", name, n, err)
		}
		names, err := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: name}})
		if err != nil || len(names) != 1 || names[0] != name {
			t.Fatalf("listing %q = %q, %v", name, names, err)
		}
	}
	// The two that collided under {slug}_{base} are apart.
	n, err := db.Collection(scoped.CollectionName("p", "x_notes")).CountDocuments(ctx, bson.D{{Key: "experiment_id", Value: "p_x"}})
	if err != nil || n != 0 {
		t.Fatalf("p's x_notes holds %d documents of p_x, %v", n, err)
	}
	if err := db.Collection(scoped.CollectionName("p", "x_notes")).Drop(ctx); err != nil {
		t.Fatal(err)
	}
}
