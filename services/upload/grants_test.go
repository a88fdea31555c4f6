package upload_test

import (
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

func scopeWarning(res uploadapi.Result, slug string) string {
	for _, w := range res.Warnings {
		if strings.HasPrefix(w.Field, "/data_scope") && strings.Contains(w.Message, `"`+slug+`"`) {
			return w.Message
		}
	}
	return ""
}

// Another owner's slug in data_scope waits for that owner's grant: the
// upload succeeds with a warning naming it, the grant is a record listed
// on both experiments and active at once, bad requests change nothing, and
// a revocation ends it.
func TestGrants(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)

	w.upload(ann, "alpha", nil)
	res := w.upload(bob, "beta", map[string]any{"data_scope": []string{"self", "alpha", "nowhere", "shared"}})
	if msg := scopeWarning(res, "alpha"); !strings.Contains(msg, "missing grant") {
		t.Errorf("upload of beta: no warning of the missing grant of alpha: %+v", res.Warnings)
	}
	if msg := scopeWarning(res, "nowhere"); !strings.Contains(msg, "no experiment") {
		t.Errorf("upload of beta: no warning of the unknown slug: %+v", res.Warnings)
	}
	if w.access("beta", "alpha") != nil {
		t.Fatal("beta may read alpha before any grant")
	}
	// One owner: granted without a record, and without a warning.
	res = w.upload(ann, "gamma", map[string]any{"data_scope": []string{"alpha"}})
	if msg := scopeWarning(res, "alpha"); msg != "" {
		t.Errorf("gamma (ann's) reading alpha (ann's) was warned: %s", msg)
	}
	if a := w.access("gamma", "alpha"); a == nil || a.Kind != uploadapi.ScopeOwner {
		t.Fatalf("gamma's access to alpha = %+v, want an owner access", a)
	}

	// Refusals change nothing.
	for _, c := range []struct {
		name string
		req  uploadapi.GrantRequest
		code apierr.Code
	}{
		{"no reader", uploadapi.GrantRequest{Slug: "alpha", Caller: ann}, apierr.CodeValidationFailed},
		{"a reader that is no slug", uploadapi.GrantRequest{Slug: "alpha", To: "Beta/../x", Caller: ann}, apierr.CodeValidationFailed},
		{"a reader with a dot", uploadapi.GrantRequest{Slug: "alpha", To: "beta.alpha", Caller: ann}, apierr.CodeValidationFailed},
		{"unknown data", uploadapi.GrantRequest{Slug: "nowhere", To: "beta", Caller: ann}, apierr.CodeNotFound},
		{"data that is no slug", uploadapi.GrantRequest{Slug: "../alpha", To: "beta", Caller: ann}, apierr.CodeNotFound},
		{"not the owner", uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: bob}, apierr.CodeForbidden},
		{"no caller", uploadapi.GrantRequest{Slug: "alpha", To: "beta"}, apierr.CodeUnauthenticated},
		{"a message claiming admin, its token not", uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: uploadapi.Caller{Email: "bob@example.com", Roles: []string{"admin"}, IsAdmin: true, Token: bob.Token}}, apierr.CodeForbidden},
		{"to itself", uploadapi.GrantRequest{Slug: "alpha", To: "alpha", Caller: ann}, apierr.CodeBadRequest},
		{"unknown reader", uploadapi.GrantRequest{Slug: "alpha", To: "nowhere", Caller: ann}, apierr.CodeNotFound},
		{"same owner", uploadapi.GrantRequest{Slug: "alpha", To: "gamma", Caller: ann}, apierr.CodeBadRequest},
	} {
		_, err := w.client.Grant(ctx, c.req)
		wantCode(t, c.name, err, c.code)
	}
	if n := w.count(store.DataGrants, bson.D{}); n != 0 || w.access("beta", "alpha") != nil || w.audits("experiment.grant") != 0 {
		t.Fatalf("refused grants left %d records, access %v", n, w.access("beta", "alpha"))
	}

	// The owner grants.
	g, err := w.client.Grant(ctx, uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: ann})
	if err != nil || !g.Created || g.Grant.From != "alpha" || g.Grant.To != "beta" || g.Grant.GrantedBy != ann.Email || g.Grant.GrantedAt.IsZero() {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	if a := w.access("beta", "alpha"); a == nil || a.Kind != uploadapi.ScopeGranted || a.GrantedBy != ann.Email {
		t.Fatalf("beta's access to alpha = %+v", a)
	}
	again, err := w.client.Grant(ctx, uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: ann})
	if err != nil || again.Created || !again.Grant.GrantedAt.Equal(g.Grant.GrantedAt) {
		t.Fatalf("granting again = %+v, %v; want the first grant unchanged", again, err)
	}
	if n := w.audits("experiment.grant"); n != 1 {
		t.Errorf("%d grant audit entries, want 1", n)
	}

	// Listed on both experiments, to their owners and admins only.
	mine, err := w.client.Grants(ctx, uploadapi.GrantsQuery{Slug: "alpha", Caller: ann})
	if err != nil || len(mine.Granted) != 1 || mine.Granted[0].To != "beta" || len(mine.Received) != 0 {
		t.Fatalf("alpha's grants = %+v, %v", mine, err)
	}
	theirs, err := w.client.Grants(ctx, uploadapi.GrantsQuery{Slug: "beta", Caller: bob})
	if err != nil || len(theirs.Received) != 1 || theirs.Received[0].From != "alpha" || len(theirs.Granted) != 0 {
		t.Fatalf("beta's grants = %+v, %v", theirs, err)
	}
	wantReq := []uploadapi.ScopeEntry{{Slug: "alpha", State: uploadapi.ScopeGranted}, {Slug: "nowhere", State: uploadapi.ScopeUnknown}}
	if !slices.Equal(theirs.Requested, wantReq) {
		t.Errorf("beta's requested = %+v, want %+v", theirs.Requested, wantReq)
	}
	_, err = w.client.Grants(ctx, uploadapi.GrantsQuery{Slug: "alpha", Caller: bob})
	wantCode(t, "bob listing alpha's grants", err, apierr.CodeForbidden)
	_, err = w.client.Grants(ctx, uploadapi.GrantsQuery{Slug: "nowhere", Caller: admin})
	wantCode(t, "listing an unknown experiment", err, apierr.CodeNotFound)
	if all, err := w.client.Grants(ctx, uploadapi.GrantsQuery{Slug: "alpha", Caller: admin}); err != nil || len(all.Granted) != 1 {
		t.Errorf("admin listing alpha: %+v, %v", all, err)
	}

	// A new version of beta no longer warns.
	res = w.upload(bob, "beta", map[string]any{"data_scope": []string{"self", "alpha"}})
	if msg := scopeWarning(res, "alpha"); msg != "" {
		t.Errorf("upload after the grant still warns: %s", msg)
	}

	// Revocation: by the owner only, of a grant that exists.
	_, err = w.client.Revoke(ctx, uploadapi.RevokeRequest{Slug: "alpha", Reader: "beta", Caller: bob})
	wantCode(t, "bob revoking ann's grant", err, apierr.CodeForbidden)
	_, err = w.client.Revoke(ctx, uploadapi.RevokeRequest{Slug: "alpha", Reader: "gamma", Caller: ann})
	wantCode(t, "revoking what was never granted", err, apierr.CodeNotFound)
	for _, reader := range []string{"*", ">", "beta.*", "", "BETA"} {
		_, err = w.client.Revoke(ctx, uploadapi.RevokeRequest{Slug: "alpha", Reader: reader, Caller: ann})
		wantCode(t, "revoking a reader "+reader, err, apierr.CodeNotFound)
	}
	if w.access("beta", "alpha") == nil || w.audits("experiment.revoke") != 0 {
		t.Fatal("a refused revocation changed the access")
	}
	gone, err := w.client.Revoke(ctx, uploadapi.RevokeRequest{Slug: "alpha", Reader: "beta", Caller: ann})
	if err != nil || gone.To != "beta" {
		t.Fatalf("revoke = %+v, %v", gone, err)
	}
	if w.access("beta", "alpha") != nil || w.count(store.DataGrants, bson.D{}) != 0 || w.audits("experiment.revoke") != 1 {
		t.Fatal("the revocation left the access or the record, or no audit entry")
	}
	_, err = w.client.Revoke(ctx, uploadapi.RevokeRequest{Slug: "alpha", Reader: "beta", Caller: ann})
	wantCode(t, "revoking twice", err, apierr.CodeNotFound)

	// An admin grants for the owner; deleting the reader ends the grant,
	// so that a new experiment of its slug starts with none.
	if g, err := w.client.Grant(ctx, uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: admin}); err != nil || g.Grant.GrantedBy != admin.Email {
		t.Fatalf("admin's grant = %+v, %v", g, err)
	}
	if err := w.client.Delete(ctx, uploadapi.Delete{Slug: "beta", Confirm: "beta", Caller: bob}); err != nil {
		t.Fatal(err)
	}
	if w.access("beta", "alpha") != nil || w.count(store.DataGrants, bson.D{}) != 0 {
		t.Fatal("the deleted reader keeps its grant")
	}
	w.upload(ann, "beta", map[string]any{"data_scope": []string{"alpha"}})
	if a := w.access("beta", "alpha"); a == nil || a.Kind != uploadapi.ScopeOwner {
		t.Fatalf("ann's new beta reading ann's alpha = %+v, want an owner access", a)
	}
	// The owner access follows the manifest.
	w.upload(ann, "beta", map[string]any{"data_scope": []string{"self"}})
	if w.access("beta", "alpha") != nil {
		t.Fatal("beta keeps its owner access to alpha after dropping it from data_scope")
	}
}

// A slug named in data_scope before it exists becomes readable when its
// owner, who owns the reader too, creates it; the data owner sees who asks
// for its data.
func TestScopeNamedBeforeItExists(t *testing.T) {
	w := newWorld(t)
	w.start()
	w.upload(ann, "reader", map[string]any{"data_scope": []string{"later"}})
	w.upload(bob, "asker", map[string]any{"data_scope": []string{"later"}})
	if w.access("reader", "later") != nil {
		t.Fatal("access to a slug nobody owns")
	}
	w.upload(ann, "later", nil)
	if a := w.access("reader", "later"); a == nil || a.Kind != uploadapi.ScopeOwner {
		t.Fatalf("access once it exists = %+v", a)
	}
	if w.access("asker", "later") != nil {
		t.Fatal("bob's experiment reads ann's without a grant")
	}
	list, err := w.client.Grants(ctxT(t), uploadapi.GrantsQuery{Slug: "later", Caller: ann})
	if err != nil || !slices.Equal(list.RequestedBy, []string{"asker"}) {
		t.Fatalf("later's requested_by = %+v, %v; want asker", list.RequestedBy, err)
	}
}

// At start the bucket is brought in line with the records: a key no grant
// gives is removed, a grant whose key was lost is active again.
func TestAccessFollowsTheRecordsAtStart(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)
	w.upload(ann, "alpha", nil)
	w.upload(bob, "beta", map[string]any{"data_scope": []string{"alpha"}})
	w.upload(bob, "delta", map[string]any{"data_scope": []string{"alpha"}})
	if _, err := w.client.Grant(ctx, uploadapi.GrantRequest{Slug: "alpha", To: "beta", Caller: ann}); err != nil {
		t.Fatal(err)
	}
	kv := w.accessKV()
	if err := kv.Delete(ctx, uploadapi.AccessKey("beta", "alpha")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, uploadapi.AccessKey("delta", "alpha"), []byte(`{"kind":"granted"}`)); err != nil {
		t.Fatal(err)
	}
	w.start()
	if w.access("beta", "alpha") == nil {
		t.Error("the recorded grant is not active after a start")
	}
	if w.access("delta", "alpha") != nil {
		t.Error("an access without a grant survived a start")
	}
}

// Managed indexes reach only the experiment's own collections: a manifest
// naming what would have been another experiment's collection under the
// old naming builds on its own.
func TestManagedIndexesStayOwn(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)
	w.upload(ann, "p", map[string]any{"managed_indexes": map[string]any{
		"x_notes": []any{map[string]any{"name": "one_id", "keys": map[string]any{"n": 1}, "options": map[string]any{"unique": true}}},
	}})
	res := w.upload(bob, "p_x", nil)
	if !res.Created {
		t.Fatal("p_x was not created")
	}
	specs, err := w.d.Store.Collection(scoped.CollectionName("p", "x_notes")).Indexes().ListSpecifications(ctx)
	if err != nil || !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == "one_id" }) {
		t.Fatalf("p's x_notes indexes: %v, %v", specs, err)
	}
	// p_x's notes are another collection: the unique index of p does not
	// refuse, or reveal, anything there.
	c := w.d.Store.Collection(scoped.CollectionName("p_x", "notes"))
	for range 2 {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "n", Value: 1}, {Key: "experiment_id", Value: "p_x"}}); err != nil {
			t.Fatalf("p_x's insert met p's unique index: %v", err)
		}
	}
}

// At start, data of the old naming moves to the new names, and the
// managed indexes are built there.
func TestOldCollectionsMigrateAtStart(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	manifest := `{"schema_version": "2.0", "slug": "mig", "name": "Mig", "status": "active", "managed_indexes": {"notes": [{"name": "by_n", "keys": {"n": 1}}]}}`
	if _, err := w.d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, experiments.Config{
		Slug: "mig", SlugField: "mig", Name: "Mig", OwnerEmail: ann.Email, Status: "active", Version: 1, Manifest: manifest, Seq: 1,
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []bson.D{
		{{Key: "_id", Value: 1}, {Key: "experiment_id", Value: "mig"}, {Key: "n", Value: 1}},
		{{Key: "_id", Value: 2}, {Key: "experiment_id", Value: "mig_x"}, {Key: "n", Value: 2}},
	} {
		if _, err := w.d.Store.Collection("mig_x_notes").InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.d.Store.Collection("mig_notes").InsertOne(ctx, bson.D{{Key: "_id", Value: 3}, {Key: "experiment_id", Value: "mig"}}); err != nil {
		t.Fatal(err)
	}
	w.start()
	if n := w.count(scoped.CollectionName("mig", "notes"), bson.D{}); n != 1 {
		t.Errorf("mig's notes hold %d documents, want 1", n)
	}
	if n := w.count(scoped.CollectionName("mig", "x_notes"), bson.D{}); n != 1 {
		t.Errorf("mig's x_notes hold %d documents, want 1", n)
	}
	if n := w.count(scoped.CollectionName("mig_x", "notes"), bson.D{}); n != 1 {
		t.Errorf("mig_x's notes hold %d documents, want 1", n)
	}
	specs, err := w.d.Store.Collection(scoped.CollectionName("mig", "notes")).Indexes().ListSpecifications(ctx)
	if err != nil || !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == "by_n" }) {
		t.Errorf("mig's notes indexes after the migration: %v, %v", specs, err)
	}
	if n := w.count(store.DataMigrations, bson.D{{Key: "_id", Value: scoped.NamingMigration}, {Key: "state", Value: scoped.MigrationDone}}); n != 1 {
		t.Error("the migration is not recorded as done")
	}
}
