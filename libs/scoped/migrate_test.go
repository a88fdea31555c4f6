package scoped_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// oldData is a database as the old naming {slug}_{base} left it: p_x_notes
// holds slug p's x_notes and slug p_x's notes, one document has no
// experiment_id, and the platform's collections sit beside them.
var oldData = map[string][]string{
	"p_x_notes": {
		`{"_id": 1, "experiment_id": "p", "who": "p"}`,
		`{"_id": 2, "experiment_id": "p", "who": "p"}`,
		`{"_id": 1.5, "experiment_id": "p_x", "who": "p_x"}`,
		`{"_id": "stray", "who": "nobody"}`,
	},
	"p_x_clicks": {
		`{"_id": 3, "experiment_id": "p_x", "who": "p_x"}`,
	},
	"shared_countries":       {`{"_id": "fr", "experiment_id": "shared_countries"}`},
	store.ExperimentsConfig:  {`{"_id": "p", "slug": "p"}`},
	store.DataVersions:       {`{"_id": "p", "seq": 4}`},
	"x.p_x.notes":            {`{"_id": 9, "experiment_id": "p_x", "who": "new"}`},
	"casbin_rules":           {`{"_id": "r", "experiment_id": "casbin"}`},
	"audit_log":              {`{"_id": "a", "experiment_id": "audit"}`},
	"standalone_imports":     {`{"_id": "p", "package": "x"}`},
	"export_logs":            {`{"_id": "e", "experiment_id": "export"}`},
	"users":                  {`{"_id": "u", "email": "a@example.com"}`},
	"data_grants":            {`{"_id": "p/q", "data": "p", "reader": "q"}`},
	"experiments_config_old": {`{"_id": "o", "experiment_id": "experiments"}`},
}

func plant(t *testing.T, db *mongo.Database, data map[string][]string) {
	t.Helper()
	for coll, docs := range data {
		for _, j := range docs {
			if _, err := db.Collection(coll).InsertOne(ctxT(t), doc(t, j)); err != nil {
				t.Fatalf("plant %s: %v", coll, err)
			}
		}
	}
}

func whos(t *testing.T, db *mongo.Database, coll string) []string {
	t.Helper()
	var out []string
	for _, d := range rawFind(t, db, coll, `{}`) {
		w, _ := d.Lookup("who").StringValueOK()
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// The old ambiguous collections are split by experiment_id into the new
// names; the platform's own are left alone; the migration is recorded, and
// a second run does nothing.
func TestMigrateNamesSplitsOldCollections(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	plant(t, db, oldData)
	rec, ran, err := scoped.MigrateNames(ctx, db, nil)
	if err != nil || !ran || rec.State != scoped.MigrationDone || rec.FinishedAt == nil {
		t.Fatalf("MigrateNames = %+v, %v, %v", rec, ran, err)
	}
	if got := whos(t, db, scoped.CollectionName("p", "x_notes")); !slices.Equal(got, []string{"p", "p"}) {
		t.Errorf("p's x_notes: %q", got)
	}
	// p_x's note joins the one written under the new name meanwhile.
	if got := whos(t, db, scoped.CollectionName("p_x", "notes")); !slices.Equal(got, []string{"new", "p_x"}) {
		t.Errorf("p_x's notes: %q", got)
	}
	if got := whos(t, db, scoped.CollectionName("p_x", "clicks")); !slices.Equal(got, []string{"p_x"}) {
		t.Errorf("p_x's clicks: %q", got)
	}
	// What fits no experiment stays, and is recorded; an emptied old
	// collection is gone.
	if got := whos(t, db, "p_x_notes"); !slices.Equal(got, []string{"nobody"}) {
		t.Errorf("left in p_x_notes: %q", got)
	}
	// experiments_config_old names the reserved slug "experiments": never
	// an experiment's, so left where it is, and recorded.
	if !slices.Equal(rec.Left, []scoped.Left{{Collection: "experiments_config_old", Documents: 1}, {Collection: "p_x_notes", Documents: 1}}) {
		t.Errorf("recorded as left: %+v", rec.Left)
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "p_x_clicks") {
		t.Error("the emptied p_x_clicks was not dropped")
	}
	// The platform's collections, and shared_*, are as they were.
	for coll, docs := range oldData {
		if _, _, isNew := scoped.ParseCollectionName(coll); isNew || coll == "p_x_notes" || coll == "p_x_clicks" {
			continue
		}
		if n := len(rawFind(t, db, coll, `{}`)); n != len(docs) {
			t.Errorf("%s has %d documents, want its %d untouched", coll, n, len(docs))
		}
	}
	var moved int64
	for _, m := range rec.Moved {
		moved += m.Documents
	}
	if moved != 4 {
		t.Errorf("recorded %d documents moved, want 4: %+v", moved, rec.Moved)
	}
	stored, err := store.FindByID[scoped.Migration](ctx, db.Collection(store.DataMigrations), scoped.NamingMigration)
	if err != nil || stored == nil || stored.State != scoped.MigrationDone || len(stored.Moved) != len(rec.Moved) {
		t.Fatalf("the record: %+v, %v", stored, err)
	}

	// A second start does nothing, even with an old-style collection in
	// sight (made by hand: nothing of the platform makes them now).
	plant(t, db, map[string][]string{"q_r": {`{"_id": 1, "experiment_id": "q", "who": "q"}`}})
	again, ran, err := scoped.MigrateNames(ctx, db, nil)
	if err != nil || ran || again.State != scoped.MigrationDone {
		t.Fatalf("second MigrateNames = %+v, ran %v, %v", again, ran, err)
	}
	if n := len(rawFind(t, db, "q_r", `{}`)); n != 1 {
		t.Error("a second run moved documents")
	}
}

// A run that stopped half-way (the record says running, some documents
// are copied and still in the old collection) resumes: nothing is lost or
// doubled, and a copy changed since is kept.
func TestMigrateNamesResumes(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	plant(t, db, map[string][]string{
		"p_x_notes": {
			`{"_id": 1, "experiment_id": "p", "who": "old"}`,
			`{"_id": 2, "experiment_id": "p", "who": "p"}`,
		},
		// The interrupted run had copied _id 1, and the actor changed it.
		"x.p.x_notes":        {`{"_id": 1, "experiment_id": "p", "who": "changed"}`},
		store.DataMigrations: {`{"_id": "collection-names-v2", "state": "running", "started_at": {"$date": "2026-01-01T00:00:00Z"}, "moved": [], "left": []}`},
	})
	rec, ran, err := scoped.MigrateNames(ctx, db, nil)
	if err != nil || !ran || rec.State != scoped.MigrationDone {
		t.Fatalf("MigrateNames = %+v, %v, %v", rec, ran, err)
	}
	if got := whos(t, db, scoped.CollectionName("p", "x_notes")); !slices.Equal(got, []string{"changed", "p"}) {
		t.Errorf("p's x_notes after resuming: %q", got)
	}
	if rec.StartedAt.Year() != 2026 || rec.StartedAt.Month() != 1 {
		t.Errorf("the resumed record lost its start: %v", rec.StartedAt)
	}
}

// Several upload instances start at once and all run the migration: every
// one succeeds (a race to create the record is not an error), and the data
// ends in its place once.
func TestMigrateNamesConcurrently(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	plant(t, db, map[string][]string{
		"p_x_notes": {`{"_id": 1, "experiment_id": "p", "who": "p"}`, `{"_id": 2, "experiment_id": "p_x", "who": "p_x"}`},
	})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, _, err := scoped.MigrateNames(ctx, db, nil)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("a concurrent migration failed: %v", err)
		}
	}
	if got := whos(t, db, scoped.CollectionName("p", "x_notes")); !slices.Equal(got, []string{"p"}) {
		t.Errorf("p's x_notes: %q", got)
	}
	if got := whos(t, db, scoped.CollectionName("p_x", "notes")); !slices.Equal(got, []string{"p_x"}) {
		t.Errorf("p_x's notes: %q", got)
	}
	rec, ran, err := scoped.MigrateNames(ctx, db, nil)
	if err != nil || ran || rec.State != scoped.MigrationDone {
		t.Errorf("after the concurrent runs: %+v ran=%v %v", rec, ran, err)
	}
}

// Deleting an experiment drops its collections and no other's, the one
// whose names shared its prefix under the old naming included.
func TestDeleteAllTakesOnlyTheExperiments(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	a := newScope(t, db, "a", nil)
	ab := newScope(t, db, "a_b", nil)
	if _, err := a.InsertOne(ctx, scoped.Own("b_c"), bson.M{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ab.InsertOne(ctx, scoped.Own("c"), bson.M{"v": 2}); err != nil {
		t.Fatal(err)
	}
	plant(t, db, map[string][]string{"a_old": {`{"_id": "1", "experiment_id": "a"}`, `{"_id": "2", "experiment_id": "a_x"}`}})
	if err := scoped.DeleteAll(ctx, db, "a"); err != nil {
		t.Fatal(err)
	}
	if n := len(rawFind(t, db, scoped.CollectionName("a", "b_c"), `{}`)); n != 0 {
		t.Errorf("a's b_c keeps %d documents", n)
	}
	if n := len(rawFind(t, db, scoped.CollectionName("a_b", "c"), `{}`)); n != 1 {
		t.Errorf("a_b's c has %d documents, want its 1", n)
	}
	if got := ids(t, rawFind(t, db, "a_old", `{}`)); !slices.Equal(got, []string{"2"}) {
		t.Errorf("left in a_old: %q", got)
	}
}

// The read check is asked on every read of another experiment's slug, and
// only there: a revoked grant refuses reads of a scope made before it.
func TestReadCheckGuardsOtherSlugs(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	allowed := true
	asked := []string{}
	s := newScope(t, f.db, "exp-a", []string{"self", "exp-b", "shared"}, scoped.WithReadCheck(func(_ context.Context, slug string) error {
		asked = append(asked, slug)
		if !allowed {
			return apierr.New(apierr.CodeScopeForbidden, "%q has not granted reads", slug)
		}
		return nil
	}))
	if docs, err := s.Find(ctx, scoped.From("exp-b", "clicks"), nil, scoped.FindOptions{}); err != nil || len(docs) != 3 {
		t.Fatalf("granted read: %d, %v", len(docs), err)
	}
	allowed = false
	for name, op := range map[string]func() error{
		"find": func() error {
			_, err := s.Find(ctx, scoped.From("exp-b", "clicks"), nil, scoped.FindOptions{})
			return err
		},
		"count":     func() error { _, err := s.Count(ctx, scoped.From("exp-b", "clicks"), nil); return err },
		"aggregate": func() error { _, err := s.Aggregate(ctx, scoped.From("exp-b", "clicks"), bson.A{}); return err },
	} {
		err := op()
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.CodeScopeForbidden {
			t.Errorf("%s after revocation: %v, want scope_forbidden", name, err)
		}
	}
	// Without a read check, reads of another experiment are refused.
	bare, err := scoped.New(f.db, "exp-a", []string{"exp-b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Find(ctx, scoped.From("exp-b", "clicks"), nil, scoped.FindOptions{}); apierr.From(err).Code != apierr.CodeScopeForbidden {
		t.Errorf("read without a read check: %v, want scope_forbidden", err)
	}
	// The own data and the shared collections ask nothing.
	n := len(asked)
	if _, err := s.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Find(ctx, scoped.From("shared", "countries"), nil, scoped.FindOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != n || n != 4 {
		t.Errorf("asked %q: want exp-b four times, for the reads of it only", asked)
	}
}
