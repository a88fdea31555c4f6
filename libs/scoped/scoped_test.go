package scoped_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// fixture is a seeded database and the scopes of three experiments:
// exp-a may read exp-b and the shared collections, exp-c only itself.
type fixture struct {
	db *mongo.Database
	a  *scoped.Scope
	c  *scoped.Scope
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func connect(t *testing.T) *mongo.Database {
	t.Helper()
	env := testenv.Start(t)
	client, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database("scoped_test")
}

func newScope(t *testing.T, db *mongo.Database, slug string, dataScope []string, opts ...scoped.Option) *scoped.Scope {
	t.Helper()
	// The tests of reading allow every data_scope slug unless they say
	// otherwise (a later WithReadCheck wins).
	opts = append([]scoped.Option{scoped.WithReadCheck(func(context.Context, string) error { return nil })}, opts...)
	s, err := scoped.New(db, slug, dataScope, opts...)
	if err != nil {
		t.Fatalf("New(%q, %q): %v", slug, dataScope, err)
	}
	return s
}

// seed plants documents as if experiments' collections had collided: each
// experiment's collection also holds a document of another experiment, and
// one without experiment_id.
var seed = map[string][]string{
	scoped.CollectionName("exp-a", "clicks"): {
		`{"_id": "a1", "experiment_id": "exp-a", "x": 1, "g": "p", "tags": ["t1", "t2"]}`,
		`{"_id": "a2", "experiment_id": "exp-a", "x": 2, "g": "q", "tags": ["t3"]}`,
		`{"_id": "b-in-a", "experiment_id": "exp-b", "x": 3, "g": "p"}`,
		`{"_id": "none-in-a", "x": 4, "g": "p"}`,
	},
	scoped.CollectionName("exp-b", "clicks"): {
		`{"_id": "b1", "experiment_id": "exp-b", "x": 10}`,
		`{"_id": "b2", "experiment_id": "exp-b", "x": 20}`,
		`{"_id": "b3", "experiment_id": "exp-b", "x": 30}`,
		`{"_id": "a-in-b", "experiment_id": "exp-a", "x": 40}`,
	},
	scoped.CollectionName("exp-c", "clicks"): {
		`{"_id": "c1", "experiment_id": "exp-c", "x": 100}`,
	},
	"shared_countries": {
		`{"_id": "fr", "name": "France"}`,
		`{"_id": "de", "name": "Germany", "experiment_id": "shared"}`,
	},
	"clicks": {
		`{"_id": "unscoped", "experiment_id": "exp-a", "x": 1000}`,
	},
}

func setup(t *testing.T) *fixture {
	t.Helper()
	db := connect(t)
	for coll, docs := range seed {
		for _, j := range docs {
			if _, err := db.Collection(coll).InsertOne(ctxT(t), doc(t, j)); err != nil {
				t.Fatalf("seed %s: %v", coll, err)
			}
		}
	}
	return &fixture{
		db: db,
		a:  newScope(t, db, "exp-a", []string{"self", "exp-b", "shared"}),
		c:  newScope(t, db, "exp-c", []string{"self"}),
	}
}

func doc(t testing.TB, j string) bson.D {
	t.Helper()
	d, err := scoped.ParseDocument([]byte(j))
	if err != nil {
		t.Fatalf("parse %s: %v", j, err)
	}
	return d
}

func arr(t testing.TB, j string) bson.A {
	t.Helper()
	a, err := scoped.ParseArray([]byte(j))
	if err != nil {
		t.Fatalf("parse %s: %v", j, err)
	}
	return a
}

// snapshot is every document of the database, in a stable text form.
func snapshot(t *testing.T, db *mongo.Database) string {
	t.Helper()
	names, err := db.ListCollectionNames(ctxT(t), bson.D{})
	if err != nil {
		t.Fatalf("list collections: %v", err)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctxT(t), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctxT(t), &docs); err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		b.WriteString(n + ":\n")
		for _, d := range docs {
			j, _ := bson.MarshalExtJSON(d, true, false)
			b.WriteString("  " + string(j) + "\n")
		}
	}
	return b.String()
}

func wantCode(t *testing.T, err error, code apierr.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	var e *apierr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *apierr.Error, want %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("code %s (%v), want %s", e.Code, err, code)
	}
	if !e.Code.Known() {
		t.Fatalf("code %s is not in the catalogue", e.Code)
	}
}

func ids(t *testing.T, docs []bson.Raw) []string {
	t.Helper()
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		id, ok := d.Lookup("_id").StringValueOK()
		if !ok {
			id = d.Lookup("_id").String()
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func experimentIDs(docs []bson.Raw) []string {
	var out []string
	for _, d := range docs {
		v, _ := d.Lookup(scoped.Field).StringValueOK()
		out = append(out, v)
	}
	return out
}

func rawFind(t *testing.T, db *mongo.Database, coll, filter string) []bson.Raw {
	t.Helper()
	cur, err := db.Collection(coll).Find(ctxT(t), doc(t, filter))
	if err != nil {
		t.Fatalf("find in %s: %v", coll, err)
	}
	var out []bson.Raw
	if err := cur.All(ctxT(t), &out); err != nil {
		t.Fatalf("find in %s: %v", coll, err)
	}
	return out
}

func TestNewValidatesSlugAndDataScope(t *testing.T) {
	db := connect(t)
	for _, tc := range []struct {
		slug      string
		dataScope []string
		ok        bool
	}{
		{"exp-a", nil, true},
		{"a_b-9", []string{"self", "shared", "exp-b"}, true},
		{strings.Repeat("a", 64), nil, true},
		{"", nil, false},
		{"Exp", nil, false},
		{"a.b", nil, false},
		{"a/b", nil, false},
		{"a$b", nil, false},
		{"a b", nil, false},
		{"a\x00b", nil, false},
		{"exp-é", nil, false},
		{strings.Repeat("a", 65), nil, false},
		{"self", nil, false},
		// A slug "shared" or "shared_x" would own the shared collections'
		// names, which every experiment with "shared" reads unfiltered.
		{"shared", nil, false},
		{"shared_x", nil, false},
		// These would name the platform's own collections (export_logs,
		// data_versions, ...).
		{"export", nil, false},
		{"data", nil, false},
		{"experiments", nil, false},
		{"exports", nil, true},
		{"exp-a", []string{"Exp-B"}, false},
		{"exp-a", []string{"exp.b"}, false},
		{"exp-a", []string{""}, false},
		{"exp-a", []string{"shared_countries"}, false},
		{"exp-a", []string{"exp-b", "exp-a", "self"}, true},
	} {
		_, err := scoped.New(db, tc.slug, tc.dataScope)
		if tc.ok && err != nil {
			t.Errorf("New(%q, %q): %v", tc.slug, tc.dataScope, err)
		}
		if !tc.ok {
			if err == nil {
				t.Errorf("New(%q, %q) accepted", tc.slug, tc.dataScope)
				continue
			}
			var e *apierr.Error
			if !errors.As(err, &e) || e.Code != apierr.CodeValidationFailed {
				t.Errorf("New(%q, %q): %v, want validation_failed", tc.slug, tc.dataScope, err)
			}
		}
	}
	s := newScope(t, db, "exp-a", []string{"shared", "exp-z", "self", "exp-b"})
	if got := s.ReadScope(); !slices.Equal(got, []string{"exp-a", "exp-b", "exp-z", "shared"}) {
		t.Errorf("ReadScope = %q", got)
	}
	if s.Slug() != "exp-a" {
		t.Errorf("Slug = %q", s.Slug())
	}
}

func TestCollectionMapping(t *testing.T) {
	db := connect(t)
	a := newScope(t, db, "exp-a", []string{"self", "exp-b", "shared"})
	c := newScope(t, db, "exp-c", nil)
	for _, tc := range []struct {
		scope *scoped.Scope
		ref   scoped.Ref
		want  string
		code  apierr.Code
	}{
		{a, scoped.Own("clicks"), scoped.CollectionName("exp-a", "clicks"), ""},
		{a, scoped.From("self", "clicks"), "x.exp-a.clicks", ""},
		{a, scoped.From("exp-a", "clicks"), "x.exp-a.clicks", ""},
		{a, scoped.From("exp-b", "clicks"), "x.exp-b.clicks", ""},
		{a, scoped.From("shared", "countries"), "shared_countries", ""},
		{a, scoped.Own("_"), "x.exp-a._", ""},
		{a, scoped.Own("Clicks_2024"), "x.exp-a.Clicks_2024", ""},
		{a, scoped.Own(strings.Repeat("x", 64)), "x.exp-a." + strings.Repeat("x", 64), ""},
		// Another experiment's full collection name is just a base name.
		{c, scoped.Own("exp_a_clicks"), "x.exp-c.exp_a_clicks", ""},
		{a, scoped.Own("shared_countries"), "x.exp-a.shared_countries", ""},
		{a, scoped.Own("exp-b_clicks"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("exp-b.clicks"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("clicks.sub"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("system.users"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("$cmd"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("a$b"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("../clicks"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("a/b"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("a b"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("a\x00b"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("clicks\n"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("clïcks"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own("ｃlicks"), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own(""), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.Own(strings.Repeat("x", 65)), "", apierr.CodeScopeInvalidCollection},
		{a, scoped.From("exp-c", "clicks"), "", apierr.CodeScopeForbidden},
		{a, scoped.From("Exp-B", "clicks"), "", apierr.CodeScopeForbidden},
		{a, scoped.From("exp-b_clicks", "x"), "", apierr.CodeScopeForbidden},
		{a, scoped.From("../exp-b", "clicks"), "", apierr.CodeScopeForbidden},
		{c, scoped.From("exp-a", "clicks"), "", apierr.CodeScopeForbidden},
		{c, scoped.From("shared", "countries"), "", apierr.CodeScopeForbidden},
	} {
		got, err := tc.scope.CollectionName(tc.ref)
		if tc.code == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: CollectionName(%+v) = %q, %v; want %q", tc.scope.Slug(), tc.ref, got, err, tc.want)
			}
			continue
		}
		t.Run(tc.scope.Slug()+"/"+tc.ref.Slug+"/"+tc.ref.Name, func(t *testing.T) { wantCode(t, err, tc.code) })
	}
}

func TestInsertsCarryTheOwnExperimentID(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	id, err := f.a.InsertOne(ctx, scoped.Own("events"), doc(t, `{"_id": "e1", "kind": "view"}`))
	if err != nil || id != "e1" {
		t.Fatalf("InsertOne = %v, %v", id, err)
	}
	if _, err := f.a.InsertOne(ctx, scoped.Own("events"), bson.M{"_id": "e2", "experiment_id": "exp-a"}); err != nil {
		t.Fatalf("InsertOne with the own experiment_id: %v", err)
	}
	got, err := f.a.InsertMany(ctx, scoped.Own("events"), []any{
		map[string]any{"_id": "e3", "n": 1},
		bson.D{{Key: "_id", Value: "e4"}, {Key: "nested", Value: bson.M{"experiment_id": "exp-b"}}},
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("InsertMany = %v, %v", got, err)
	}
	if _, err := f.a.InsertMany(ctx, scoped.Own("events"), arr(t, `[{"_id": "e5", "at": {"$date": "2024-05-01T00:00:00Z"}}]`)); err != nil {
		t.Fatalf("InsertMany from Extended JSON: %v", err)
	}
	stored := rawFind(t, f.db, scoped.CollectionName("exp-a", "events"), `{}`)
	if len(stored) != 5 {
		t.Fatalf("%d documents stored, want 5", len(stored))
	}
	for _, d := range stored {
		if e, _ := d.Lookup(scoped.Field).StringValueOK(); e != "exp-a" {
			t.Errorf("stored %s without experiment_id exp-a", d)
		}
	}
	if n := len(rawFind(t, f.db, "events", `{}`)); n != 0 {
		t.Errorf("%d documents in the unscoped collection events", n)
	}
	// A base name that is another experiment's full collection name stays
	// inside the own prefix.
	if _, err := f.c.InsertOne(ctx, scoped.Own("exp_a_clicks"), bson.M{"_id": "c-x"}); err != nil {
		t.Fatal(err)
	}
	if len(rawFind(t, f.db, scoped.CollectionName("exp-c", "exp_a_clicks"), `{"_id": "c-x", "experiment_id": "exp-c"}`)) != 1 {
		t.Error("the document is not in exp-c_exp_a_clicks")
	}
}

func TestReadsSeeOnlyTheirExperiment(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		name   string
		ref    scoped.Ref
		filter string
		want   []string
		eid    string // every result's experiment_id; "-" for the shared collections
	}{
		{"own", scoped.Own("clicks"), `{}`, []string{"a1", "a2"}, "exp-a"},
		{"own by value", scoped.Own("clicks"), `{"x": {"$gte": 2}}`, []string{"a2"}, "exp-a"},
		{"another experiment_id", scoped.Own("clicks"), `{"experiment_id": "exp-b"}`, nil, ""},
		{"experiment_id $ne", scoped.Own("clicks"), `{"experiment_id": {"$ne": "exp-a"}}`, nil, ""},
		{"experiment_id $in", scoped.Own("clicks"), `{"experiment_id": {"$in": ["exp-a", "exp-b"]}}`, []string{"a1", "a2"}, "exp-a"},
		{"experiment_id missing", scoped.Own("clicks"), `{"experiment_id": {"$exists": false}}`, nil, ""},
		{"experiment_id regex", scoped.Own("clicks"), `{"experiment_id": {"$regex": "^exp"}}`, []string{"a1", "a2"}, "exp-a"},
		{"$or with another experiment_id", scoped.Own("clicks"), `{"$or": [{"experiment_id": "exp-b"}, {"x": {"$gte": 0}}]}`, []string{"a1", "a2"}, "exp-a"},
		{"$or with no experiment_id", scoped.Own("clicks"), `{"$or": [{"experiment_id": {"$exists": false}}, {"g": "p"}]}`, []string{"a1"}, "exp-a"},
		{"$nor of the own", scoped.Own("clicks"), `{"$nor": [{"experiment_id": "exp-a"}]}`, nil, ""},
		{"$and with another", scoped.Own("clicks"), `{"$and": [{"experiment_id": "exp-b"}]}`, nil, ""},
		{"nested $and with another", scoped.Own("clicks"), `{"$and": [{"$or": [{"experiment_id": "exp-b"}, {"experiment_id": null}]}]}`, nil, ""},
		{"data scope", scoped.From("exp-b", "clicks"), `{}`, []string{"b1", "b2", "b3"}, "exp-b"},
		{"data scope asking for the own", scoped.From("exp-b", "clicks"), `{"experiment_id": "exp-a"}`, nil, ""},
		{"shared, unfiltered", scoped.From("shared", "countries"), `{}`, []string{"de", "fr"}, "-"},
		{"empty collection", scoped.Own("nothing"), `{}`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			docs, err := f.a.Find(ctx, tc.ref, doc(t, tc.filter), scoped.FindOptions{})
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if got := ids(t, docs); !slices.Equal(got, tc.want) {
				t.Errorf("Find = %q, want %q", got, tc.want)
			}
			if tc.eid != "-" {
				for _, e := range experimentIDs(docs) {
					if e != tc.eid {
						t.Errorf("a result has experiment_id %q", e)
					}
				}
			}
			n, err := f.a.Count(ctx, tc.ref, doc(t, tc.filter))
			if err != nil || n != int64(len(tc.want)) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(tc.want))
			}
			one, err := f.a.FindOne(ctx, tc.ref, doc(t, tc.filter), scoped.FindOptions{})
			if err != nil || (one == nil) != (len(tc.want) == 0) {
				t.Errorf("FindOne = %s, %v", one, err)
			}
			agg, err := f.a.Aggregate(ctx, tc.ref, bson.A{bson.M{"$match": doc(t, tc.filter)}})
			if err != nil {
				t.Fatalf("Aggregate: %v", err)
			}
			if got := ids(t, agg); !slices.Equal(got, tc.want) {
				t.Errorf("Aggregate = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadsOutsideTheDataScopeAreRefused(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	for _, ref := range []scoped.Ref{scoped.From("exp-a", "clicks"), scoped.From("exp-b", "clicks"), scoped.From("shared", "countries")} {
		_, err := f.c.Find(ctx, ref, nil, scoped.FindOptions{})
		wantCode(t, err, apierr.CodeScopeForbidden)
		_, err = f.c.FindOne(ctx, ref, nil, scoped.FindOptions{})
		wantCode(t, err, apierr.CodeScopeForbidden)
		_, err = f.c.Count(ctx, ref, nil)
		wantCode(t, err, apierr.CodeScopeForbidden)
		_, err = f.c.Aggregate(ctx, ref, bson.A{})
		wantCode(t, err, apierr.CodeScopeForbidden)
	}
}

// refusal is an operation that must fail with code and change nothing.
type refusal struct {
	name string
	code apierr.Code
	op   func(ctx context.Context, t *testing.T, f *fixture) error
}

func runRefusals(t *testing.T, cases []refusal) {
	f := setup(t)
	before := snapshot(t, f.db)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.op(ctxT(t), t, f), tc.code)
			if after := snapshot(t, f.db); after != before {
				t.Fatalf("the database changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

func find(filter string) func(context.Context, *testing.T, *fixture) error {
	return func(ctx context.Context, t *testing.T, f *fixture) error {
		_, err := f.a.Find(ctx, scoped.Own("clicks"), doc(t, filter), scoped.FindOptions{})
		return err
	}
}

func aggregate(pipeline string) func(context.Context, *testing.T, *fixture) error {
	return func(ctx context.Context, t *testing.T, f *fixture) error {
		_, err := f.a.Aggregate(ctx, scoped.Own("clicks"), arr(t, pipeline))
		return err
	}
}

func updateMany(filter, update string, upsert bool) func(context.Context, *testing.T, *fixture) error {
	return func(ctx context.Context, t *testing.T, f *fixture) error {
		_, err := f.a.UpdateMany(ctx, scoped.Own("clicks"), doc(t, filter), doc(t, update), scoped.UpdateOptions{Upsert: upsert})
		return err
	}
}

const jsFunction = `{"$function": {"body": "function() { return db.getSiblingDB('admin') }", "args": [], "lang": "js"}}`

// nest wraps inner in n levels of {"$and": [...]}.
func nest(n int, inner string) string {
	return strings.Repeat(`{"$and": [`, n) + inner + strings.Repeat(`]}`, n)
}

func TestFiltersThatEscapeAreRefused(t *testing.T) {
	runRefusals(t, []refusal{
		{"$where", apierr.CodeScopeForbiddenOperator, find(`{"$where": "true"}`)},
		{"$where in other letter case", apierr.CodeScopeForbiddenOperator, find(`{"$WhErE": "true"}`)},
		{"$where in $and/$or", apierr.CodeScopeForbiddenOperator, find(`{"$and": [{"x": 1}, {"$or": [{"g": "p"}, {"$where": "sleep(1000)"}]}]}`)},
		{"$where in $nor", apierr.CodeScopeForbiddenOperator, find(`{"$nor": [{"$where": "true"}]}`)},
		{"$where in $not", apierr.CodeScopeForbiddenOperator, find(`{"x": {"$not": {"$where": "true"}}}`)},
		{"$where in $elemMatch", apierr.CodeScopeForbiddenOperator, find(`{"tags": {"$elemMatch": {"$where": "true"}}}`)},
		{"$where 30 levels deep", apierr.CodeScopeForbiddenOperator, find(nest(30, `{"$where": "true"}`))},
		{"$function in $expr", apierr.CodeScopeForbiddenOperator, find(`{"$expr": ` + jsFunction + `}`)},
		{"$function deep in $expr", apierr.CodeScopeForbiddenOperator, find(`{"$expr": {"$and": [{"$eq": [1, 1]}, {"$or": [false, {"$not": [` + jsFunction + `]}]}]}}`)},
		{"$accumulator in $expr", apierr.CodeScopeForbiddenOperator, find(`{"$expr": {"$accumulator": {}}}`)},
		{"$lookup as a key", apierr.CodeScopeForbiddenOperator, find(`{"$expr": {"$lookup": {"from": "exp-b_clicks"}}}`)},
		{"JavaScript value", apierr.CodeScopeForbiddenOperator, find(`{"x": {"$code": "function() { return 1 }"}}`)},
		{"JavaScript value in $in", apierr.CodeScopeForbiddenOperator, find(`{"x": {"$in": [1, {"$code": "1", "$scope": {}}]}}`)},
		{"too deep", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			var d any = bson.M{"x": 1}
			for range 80 {
				d = bson.M{"$and": bson.A{d}}
			}
			_, err := f.a.Find(ctx, scoped.Own("clicks"), d, scoped.FindOptions{})
			return err
		}},
		{"too deep as JSON", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := scoped.ParseDocument([]byte(nest(40, `{"x": 1}`)))
			return err
		}},
		{"NUL in a key", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), bson.M{"$or": bson.A{bson.M{"experiment_id\x00": "exp-b"}}}, scoped.FindOptions{})
			return err
		}},
		{"NUL in a key from JSON", apierr.CodeBadRequest, find(`{"experiment_id\u0000x": "exp-b"}`)},
		{"over the size limit", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), bson.M{"x": strings.Repeat("y", 2<<20)}, scoped.FindOptions{})
			return err
		}},
		{"not a document", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), "x", scoped.FindOptions{})
			return err
		}},
		{"$function in a projection", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{Projection: doc(t, `{"y": `+jsFunction+`}`)})
			return err
		}},
		{"$where in a sort", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{Sort: doc(t, `{"$where": 1}`)})
			return err
		}},
		{"$where in a count", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Count(ctx, scoped.Own("clicks"), doc(t, `{"$or": [{"$where": "true"}]}`))
			return err
		}},
		{"$where in a data scope read", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.From("exp-b", "clicks"), doc(t, `{"$where": "true"}`), scoped.FindOptions{})
			return err
		}},
		{"$where in a delete", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.DeleteMany(ctx, scoped.Own("clicks"), doc(t, `{"$and": [{"$where": "true"}]}`))
			return err
		}},
		{"limit over the maximum", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{Limit: 1001})
			return err
		}},
		{"negative skip", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{Skip: -1})
			return err
		}},
	})
}

func TestPipelinesThatEscapeAreRefused(t *testing.T) {
	runRefusals(t, []refusal{
		{"$lookup", apierr.CodeScopeForbiddenStage, aggregate(`[{"$lookup": {"from": "exp-b_clicks", "localField": "x", "foreignField": "x", "as": "j"}}]`)},
		{"$lookup after $match", apierr.CodeScopeForbiddenStage, aggregate(`[{"$match": {}}, {"$lookup": {"from": "exp-b_clicks", "pipeline": [], "as": "j"}}]`)},
		{"$graphLookup", apierr.CodeScopeForbiddenStage, aggregate(`[{"$graphLookup": {"from": "exp-b_clicks", "startWith": "$x", "connectFromField": "x", "connectToField": "x", "as": "j"}}]`)},
		{"$unionWith", apierr.CodeScopeForbiddenStage, aggregate(`[{"$unionWith": "exp-b_clicks"}]`)},
		{"$out", apierr.CodeScopeForbiddenStage, aggregate(`[{"$out": "exp-b_clicks"}]`)},
		{"$out to another database", apierr.CodeScopeForbiddenStage, aggregate(`[{"$out": {"db": "admin", "coll": "x"}}]`)},
		{"$merge", apierr.CodeScopeForbiddenStage, aggregate(`[{"$match": {}}, {"$merge": {"into": "exp-b_clicks"}}]`)},
		{"$LOOKUP", apierr.CodeScopeForbiddenStage, aggregate(`[{"$LOOKUP": {"from": "exp-b_clicks", "as": "j"}}]`)},
		{"$lookup in $facet", apierr.CodeScopeForbiddenStage, aggregate(`[{"$facet": {"a": [{"$lookup": {"from": "exp-b_clicks", "as": "j"}}]}}]`)},
		{"$unionWith in $facet", apierr.CodeScopeForbiddenStage, aggregate(`[{"$facet": {"a": [{"$unionWith": "exp-b_clicks"}]}}]`)},
		{"$sample", apierr.CodeScopeForbiddenStage, aggregate(`[{"$sample": {"size": 1}}]`)},
		{"$collStats", apierr.CodeScopeForbiddenStage, aggregate(`[{"$collStats": {}}]`)},
		{"$documents", apierr.CodeScopeForbiddenStage, aggregate(`[{"$documents": [{"experiment_id": "exp-b"}]}]`)},
		{"$currentOp", apierr.CodeScopeForbiddenStage, aggregate(`[{"$currentOp": {}}]`)},
		{"$indexStats", apierr.CodeScopeForbiddenStage, aggregate(`[{"$indexStats": {}}]`)},
		{"$replaceRoot", apierr.CodeScopeForbiddenStage, aggregate(`[{"$replaceRoot": {"newRoot": "$x"}}]`)},
		{"$unset", apierr.CodeScopeForbiddenStage, aggregate(`[{"$unset": "x"}]`)},
		{"$accumulator in $group", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$group": {"_id": null, "a": {"$accumulator": {"init": "function() { return 0 }", "accumulate": "function(s) { return s }", "accumulateArgs": [], "merge": "function(a, b) { return a }", "lang": "js"}}}}]`)},
		{"$function in $match $expr", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$match": {"$expr": ` + jsFunction + `}}]`)},
		{"$where in $match", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$match": {"$or": [{"$where": "true"}]}}]`)},
		{"$function in $project", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$project": {"y": ` + jsFunction + `}}]`)},
		{"$function in $set deep", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$set": {"y": {"$let": {"vars": {"v": 1}, "in": {"$cond": [true, ` + jsFunction + `, 0]}}}}}]`)},
		{"$lookup key in $addFields", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$addFields": {"y": {"$lookup": {}}}}]`)},
		{"JavaScript value in $match", apierr.CodeScopeForbiddenOperator, aggregate(`[{"$match": {"x": {"$code": "1"}}}]`)},
		{"two stage names in one", apierr.CodeBadRequest, aggregate(`[{"$match": {}, "$out": "exp-b_clicks"}]`)},
		{"a stage that is not a document", apierr.CodeBadRequest, aggregate(`["$out"]`)},
		{"not a list", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Aggregate(ctx, scoped.Own("clicks"), doc(t, `{"$out": "x"}`))
			return err
		}},
		{"too many stages", apierr.CodeScopeLimit, aggregate(`[` + strings.Repeat(`{"$match": {}},`, 32) + `{"$match": {}}]`)},
		{"too deep", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			var d any = bson.M{"x": 1}
			for range 40 {
				d = bson.M{"$and": bson.A{d}}
			}
			_, err := f.a.Aggregate(ctx, scoped.Own("clicks"), bson.A{bson.M{"$match": d}})
			return err
		}},
		{"a data scope slug is still checked", apierr.CodeScopeForbiddenStage, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Aggregate(ctx, scoped.From("exp-b", "clicks"), arr(t, `[{"$out": "exp-a_clicks"}]`))
			return err
		}},
		{"shared is still checked", apierr.CodeScopeForbiddenStage, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.Aggregate(ctx, scoped.From("shared", "countries"), arr(t, `[{"$merge": {"into": "shared_countries"}}]`))
			return err
		}},
	})
}

func TestWritesThatEscapeAreRefused(t *testing.T) {
	own := scoped.Own("clicks")
	runRefusals(t, []refusal{
		{"$set experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$set": {"experiment_id": "exp-b"}}`, false)},
		{"$set experiment_id to the own slug", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$set": {"experiment_id": "exp-a"}}`, false)},
		{"$set inside experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$set": {"experiment_id.x": 1}}`, false)},
		{"$set beside experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$set": {"x": 5, "experiment_id": "exp-b"}}`, false)},
		{"$unset experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$unset": {"experiment_id": ""}}`, false)},
		{"$rename to experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$rename": {"g": "experiment_id"}}`, false)},
		{"$rename into experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$rename": {"g": "experiment_id.g"}}`, false)},
		{"$rename experiment_id away", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$rename": {"experiment_id": "eid"}}`, false)},
		{"$inc experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$inc": {"experiment_id": 1}}`, false)},
		{"$currentDate experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$currentDate": {"experiment_id": true}}`, false)},
		{"$push to experiment_id", apierr.CodeScopeForbidden, updateMany(`{}`, `{"$push": {"experiment_id": "exp-b"}}`, false)},
		{"$setOnInsert experiment_id", apierr.CodeScopeForbidden, updateMany(`{"x": 99}`, `{"$set": {"y": 1}, "$setOnInsert": {"experiment_id": "exp-b"}}`, true)},
		{"upsert with experiment_id in the filter", apierr.CodeScopeForbidden, updateMany(`{"experiment_id": "exp-b", "x": 99}`, `{"$set": {"y": 1}}`, true)},
		{"upsert with experiment_id deep in the filter", apierr.CodeScopeForbidden, updateMany(`{"$or": [{"experiment_id": "exp-b"}]}`, `{"$set": {"y": 1}}`, true)},
		{"replacement document through an update", apierr.CodeBadRequest, updateMany(`{}`, `{"experiment_id": "exp-b", "x": 1}`, false)},
		{"operators mixed with fields", apierr.CodeBadRequest, updateMany(`{}`, `{"$set": {"x": 1}, "experiment_id": "exp-b"}`, false)},
		{"empty update", apierr.CodeBadRequest, updateMany(`{}`, `{}`, false)},
		{"unknown update operator", apierr.CodeScopeForbiddenOperator, updateMany(`{}`, `{"$setField": {"x": 1}}`, false)},
		{"$where as an update operator", apierr.CodeScopeForbiddenOperator, updateMany(`{}`, `{"$where": "true"}`, false)},
		{"$where in $pull", apierr.CodeScopeForbiddenOperator, updateMany(`{}`, `{"$pull": {"tags": {"$where": "true"}}}`, false)},
		{"$where in the filter", apierr.CodeScopeForbiddenOperator, updateMany(`{"$or": [{"$where": "true"}]}`, `{"$set": {"x": 1}}`, false)},
		{"update pipeline", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.UpdateOne(ctx, own, nil, arr(t, `[{"$set": {"experiment_id": "exp-b"}}]`), scoped.UpdateOptions{})
			return err
		}},
		{"replacement with another experiment_id", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.ReplaceOne(ctx, own, doc(t, `{"_id": "a1"}`), doc(t, `{"experiment_id": "exp-b", "x": 1}`), scoped.UpdateOptions{})
			return err
		}},
		{"replacement with a non-string experiment_id", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.ReplaceOne(ctx, own, doc(t, `{"_id": "a1"}`), doc(t, `{"experiment_id": ["exp-a", "exp-b"]}`), scoped.UpdateOptions{})
			return err
		}},
		{"replacement with operators", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.ReplaceOne(ctx, own, doc(t, `{"_id": "a1"}`), doc(t, `{"$set": {"experiment_id": "exp-b"}}`), scoped.UpdateOptions{})
			return err
		}},
		{"insert with another experiment_id", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"experiment_id": "exp-b"}`))
			return err
		}},
		{"insert with a null experiment_id", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"experiment_id": null}`))
			return err
		}},
		{"insert many with one other experiment_id", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertMany(ctx, own, arr(t, `[{"x": 1}, {"x": 2, "experiment_id": "exp-b"}]`))
			return err
		}},
		{"insert with a $ field", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"x": {"$set": 1}}`))
			return err
		}},
		{"insert with a dotted field", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"experiment_id.x": 1}`))
			return err
		}},
		{"insert with $where", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"x": [{"$where": "true"}]}`))
			return err
		}},
		{"insert of JavaScript", apierr.CodeScopeForbiddenOperator, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, doc(t, `{"x": {"$code": "1"}}`))
			return err
		}},
		{"insert over the size limit", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, own, bson.M{"x": strings.Repeat("y", 2<<20)})
			return err
		}},
		{"insert of too many", apierr.CodeScopeLimit, func(ctx context.Context, t *testing.T, f *fixture) error {
			docs := make([]any, 1001)
			for i := range docs {
				docs[i] = bson.M{"i": i}
			}
			_, err := f.a.InsertMany(ctx, own, docs)
			return err
		}},
		{"insert of nothing", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertMany(ctx, own, []any{})
			return err
		}},
		{"insert of a non-document", apierr.CodeBadRequest, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertMany(ctx, own, []any{bson.M{"x": 1}, "x"})
			return err
		}},
		{"insert into a dotted name", apierr.CodeScopeInvalidCollection, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, scoped.Own("clicks.x"), bson.M{"x": 1})
			return err
		}},
		{"insert into system.users", apierr.CodeScopeInvalidCollection, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, scoped.Own("system.users"), bson.M{"x": 1})
			return err
		}},
		{"insert into another experiment's full name", apierr.CodeScopeInvalidCollection, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.InsertOne(ctx, scoped.Own("exp-b_clicks"), bson.M{"x": 1})
			return err
		}},
		{"delete in a name with $", apierr.CodeScopeInvalidCollection, func(ctx context.Context, t *testing.T, f *fixture) error {
			_, err := f.a.DeleteMany(ctx, scoped.Own("$cmd"), nil)
			return err
		}},
	})
}

func TestDataScopeIsReadOnly(t *testing.T) {
	var cases []refusal
	for _, ref := range []scoped.Ref{scoped.From("exp-b", "clicks"), scoped.From("shared", "countries"), scoped.From("exp-c", "clicks")} {
		name := ref.Slug + " "
		cases = append(cases,
			refusal{name + "InsertOne", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.InsertOne(ctx, ref, bson.M{"x": 1})
				return err
			}},
			refusal{name + "InsertMany", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.InsertMany(ctx, ref, []any{bson.M{"x": 1}})
				return err
			}},
			refusal{name + "UpdateOne", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.UpdateOne(ctx, ref, nil, doc(t, `{"$set": {"x": 0}}`), scoped.UpdateOptions{})
				return err
			}},
			refusal{name + "UpdateMany upsert", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.UpdateMany(ctx, ref, doc(t, `{"x": 77}`), doc(t, `{"$set": {"y": 0}}`), scoped.UpdateOptions{Upsert: true})
				return err
			}},
			refusal{name + "ReplaceOne", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.ReplaceOne(ctx, ref, nil, bson.M{"x": 0}, scoped.UpdateOptions{})
				return err
			}},
			refusal{name + "DeleteOne", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.DeleteOne(ctx, ref, nil)
				return err
			}},
			refusal{name + "DeleteMany", apierr.CodeScopeForbidden, func(ctx context.Context, t *testing.T, f *fixture) error {
				_, err := f.a.DeleteMany(ctx, ref, nil)
				return err
			}},
		)
	}
	runRefusals(t, cases)
}

func TestWritesTouchOnlyTheOwnDocuments(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	own := scoped.Own("clicks")
	untouched := func(t *testing.T) {
		t.Helper()
		for _, d := range rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{"_id": {"$in": ["b-in-a", "none-in-a"]}}`) {
			if _, err := d.LookupErr("seen"); err == nil {
				t.Errorf("another experiment's document was changed: %s", d)
			}
		}
		if n := len(rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{"_id": {"$in": ["b-in-a", "none-in-a"]}}`)); n != 2 {
			t.Errorf("%d of the other documents are left, want 2", n)
		}
	}

	res, err := f.a.UpdateMany(ctx, own, nil, doc(t, `{"$set": {"seen": true}}`), scoped.UpdateOptions{})
	if err != nil || res.Matched != 2 || res.Modified != 2 {
		t.Fatalf("UpdateMany({}) = %+v, %v; want 2 matched", res, err)
	}
	untouched(t)
	res, err = f.a.UpdateOne(ctx, own, doc(t, `{"experiment_id": "exp-b"}`), doc(t, `{"$set": {"seen": 2}}`), scoped.UpdateOptions{})
	if err != nil || res.Matched != 0 {
		t.Fatalf("UpdateOne(experiment_id: exp-b) = %+v, %v; want none matched", res, err)
	}
	res, err = f.a.UpdateMany(ctx, own, doc(t, `{"$or": [{"experiment_id": "exp-b"}, {"_id": "b-in-a"}]}`), doc(t, `{"$set": {"seen": 3}}`), scoped.UpdateOptions{})
	if err != nil || res.Matched != 0 {
		t.Fatalf("UpdateMany($or other) = %+v, %v; want none matched", res, err)
	}
	untouched(t)

	// Upserts get the own experiment_id and keep their equality conditions.
	res, err = f.a.UpdateOne(ctx, own, doc(t, `{"k": "new", "n": {"$eq": 5}}`), doc(t, `{"$set": {"v": 1}, "$setOnInsert": {"created": true}}`), scoped.UpdateOptions{Upsert: true})
	if err != nil || res.UpsertedID == nil {
		t.Fatalf("upsert = %+v, %v", res, err)
	}
	got := rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{"k": "new"}`)
	if len(got) != 1 || experimentIDs(got)[0] != "exp-a" || got[0].Lookup("v").Int32() != 1 || got[0].Lookup("n").Int32() != 5 || !got[0].Lookup("created").Boolean() {
		t.Fatalf("upserted %s", got)
	}
	res, err = f.a.UpdateMany(ctx, own, doc(t, `{"k": "new"}`), doc(t, `{"$inc": {"v": 1}}`), scoped.UpdateOptions{Upsert: true})
	if err != nil || res.Matched != 1 || res.UpsertedID != nil {
		t.Fatalf("second upsert = %+v, %v; want the first matched", res, err)
	}
	res, err = f.a.ReplaceOne(ctx, own, doc(t, `{"k": "r"}`), doc(t, `{"k": "r", "v": 2}`), scoped.UpdateOptions{Upsert: true})
	if err != nil || res.UpsertedID == nil {
		t.Fatalf("replace upsert = %+v, %v", res, err)
	}
	res, err = f.a.ReplaceOne(ctx, own, doc(t, `{"_id": "a2"}`), doc(t, `{"x": 22, "experiment_id": "exp-a"}`), scoped.UpdateOptions{})
	if err != nil || res.Modified != 1 {
		t.Fatalf("replace = %+v, %v", res, err)
	}
	res, err = f.a.ReplaceOne(ctx, own, doc(t, `{"_id": "b-in-a"}`), doc(t, `{"x": 0}`), scoped.UpdateOptions{})
	if err != nil || res.Matched != 0 {
		t.Fatalf("replace of another experiment's document = %+v, %v", res, err)
	}
	for _, d := range rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{"_id": {"$nin": ["b-in-a", "none-in-a"]}}`) {
		if e, _ := d.Lookup(scoped.Field).StringValueOK(); e != "exp-a" {
			t.Errorf("%s lacks experiment_id exp-a", d)
		}
	}
	untouched(t)

	n, err := f.a.DeleteMany(ctx, own, doc(t, `{"experiment_id": "exp-b"}`))
	if err != nil || n != 0 {
		t.Fatalf("DeleteMany(experiment_id: exp-b) = %d, %v", n, err)
	}
	n, err = f.a.DeleteOne(ctx, own, doc(t, `{"_id": "a1"}`))
	if err != nil || n != 1 {
		t.Fatalf("DeleteOne = %d, %v", n, err)
	}
	n, err = f.a.DeleteMany(ctx, own, nil)
	if err != nil || n != 3 {
		t.Fatalf("DeleteMany({}) = %d, %v; want the 3 own documents", n, err)
	}
	untouched(t)
	if left := ids(t, rawFind(t, f.db, scoped.CollectionName("exp-a", "clicks"), `{}`)); !slices.Equal(left, []string{"b-in-a", "none-in-a"}) {
		t.Errorf("left in exp-a_clicks: %q", left)
	}
	for _, coll := range []string{scoped.CollectionName("exp-b", "clicks"), "shared_countries", "clicks", scoped.CollectionName("exp-c", "clicks")} {
		if got, want := len(rawFind(t, f.db, coll, `{}`)), len(seed[coll]); got != want {
			t.Errorf("%s has %d documents, want %d", coll, got, want)
		}
	}
}

// Slug "a" with base "b_c" and slug "a_b" with base "c" shared the
// collection a_b_c under the old naming; now each has its own, so neither a
// unique index nor a chosen _id of one tells anything of the other.
func TestCollidingCollectionNamesStayApart(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	a := newScope(t, db, "a", nil)
	ab := newScope(t, db, "a_b", nil)
	na, _ := a.CollectionName(scoped.Own("b_c"))
	nab, _ := ab.CollectionName(scoped.Own("c"))
	if na == nab {
		t.Fatalf("both map to %q", na)
	}
	if _, err := a.InsertMany(ctx, scoped.Own("b_c"), []any{bson.M{"_id": 1, "v": "a"}, bson.M{"_id": 2, "v": "a"}}); err != nil {
		t.Fatal(err)
	}
	// The same _id in the other experiment's collection is no duplicate:
	// no insert of one can fail, or probe, because of the other's data.
	if _, err := ab.InsertOne(ctx, scoped.Own("c"), bson.M{"_id": 1, "v": "ab"}); err != nil {
		t.Fatalf("a_b's insert of _id 1 failed because of a's document: %v", err)
	}
	docs, err := ab.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{})
	if err != nil || len(docs) != 1 {
		t.Fatalf("a_b sees %d documents, %v; want its 1", len(docs), err)
	}
	if n, err := ab.DeleteMany(ctx, scoped.Own("c"), nil); err != nil || n != 1 {
		t.Fatalf("a_b deleted %d, %v", n, err)
	}
	docs, err = a.Find(ctx, scoped.Own("b_c"), bson.M{"v": "a"}, scoped.FindOptions{})
	if err != nil || len(docs) != 2 {
		t.Fatalf("a has %d documents, %v; want its 2 unchanged", len(docs), err)
	}
	if n := len(rawFind(t, db, nab, `{}`)); n != 0 {
		t.Errorf("a_b's collection holds %d documents after its delete", n)
	}
}

func TestAggregate(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name     string
		ref      scoped.Ref
		pipeline string
		want     string // results as relaxed Extended JSON
	}{
		{"empty", scoped.Own("clicks"), `[]`, ""},
		{"group", scoped.Own("clicks"), `[{"$group": {"_id": "$g", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]`,
			`[{"_id":"p","n":1},{"_id":"q","n":1}]`},
		{"group by experiment_id", scoped.Own("clicks"), `[{"$group": {"_id": "$experiment_id", "total": {"$sum": "$x"}}}]`,
			`[{"_id":"exp-a","total":3}]`},
		{"$match on another experiment_id", scoped.Own("clicks"), `[{"$match": {"experiment_id": "exp-b"}}]`, `[]`},
		{"$match on no experiment_id", scoped.Own("clicks"), `[{"$match": {"$or": [{"experiment_id": {"$exists": false}}, {"experiment_id": "exp-b"}]}}]`, `[]`},
		{"$count", scoped.Own("clicks"), `[{"$count": "n"}]`, `[{"n":2}]`},
		{"$unwind, $sort, $skip, $limit, $project", scoped.Own("clicks"),
			`[{"$unwind": "$tags"}, {"$sort": {"tags": -1}}, {"$skip": 1}, {"$limit": 1}, {"$project": {"_id": 0, "tags": 1}}]`,
			`[{"tags":"t2"}]`},
		{"$set with an expression", scoped.Own("clicks"), `[{"$set": {"y": {"$sum": ["$x", 10]}}}, {"$project": {"y": 1}}, {"$sort": {"y": 1}}]`,
			`[{"_id":"a1","y":11},{"_id":"a2","y":12}]`},
		{"$addFields with a constant", scoped.Own("clicks"), `[{"$addFields": {"c": 7}}, {"$project": {"c": 1}}, {"$sort": {"_id": 1}}]`,
			`[{"_id":"a1","c":7},{"_id":"a2","c":7}]`},
		{"data scope", scoped.From("exp-b", "clicks"), `[{"$group": {"_id": null, "total": {"$sum": "$x"}}}]`,
			`[{"_id":null,"total":60}]`},
		{"shared", scoped.From("shared", "countries"), `[{"$sort": {"_id": 1}}, {"$project": {"name": 1}}]`,
			`[{"_id":"de","name":"Germany"},{"_id":"fr","name":"France"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := f.a.Aggregate(ctx, tc.ref, arr(t, tc.pipeline))
			if err != nil {
				t.Fatalf("Aggregate: %v", err)
			}
			j, err := scoped.MarshalResults(docs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && string(j) != tc.want {
				t.Errorf("Aggregate = %s, want %s", j, tc.want)
			}
			if tc.want == "" && len(docs) != 2 {
				t.Errorf("Aggregate([]) = %s, want the 2 own documents", j)
			}
		})
	}
}

func TestResultLimits(t *testing.T) {
	db := connect(t)
	ctx := ctxT(t)
	s := newScope(t, db, "exp", nil, scoped.WithLimits(scoped.Limits{MaxDocs: 3, MaxResultBytes: 400}))
	docs := []any{}
	for i := range 5 {
		docs = append(docs, bson.M{"_id": i, "pad": strings.Repeat("p", 50)})
	}
	if _, err := s.InsertMany(ctx, scoped.Own("c"), docs[:3]); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{}); err != nil || len(got) != 3 {
		t.Fatalf("Find of 3 = %d, %v", len(got), err)
	}
	_, err := s.InsertMany(ctx, scoped.Own("c"), docs)
	wantCode(t, err, apierr.CodeScopeLimit)
	if _, err := s.InsertMany(ctx, scoped.Own("c"), docs[3:]); err != nil {
		t.Fatal(err)
	}
	_, err = s.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{})
	wantCode(t, err, apierr.CodeScopeLimit)
	_, err = s.Aggregate(ctx, scoped.Own("c"), bson.A{})
	wantCode(t, err, apierr.CodeScopeLimit)
	_, err = s.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{Limit: 4})
	wantCode(t, err, apierr.CodeScopeLimit)
	got, err := s.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{Limit: 2, Skip: 1, Sort: bson.D{{Key: "_id", Value: -1}}, Projection: bson.M{"pad": 0}})
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := scoped.MarshalResults(got); string(j) != `[{"_id":3,"experiment_id":"exp"},{"_id":2,"experiment_id":"exp"}]` {
		t.Errorf("Find with sort, skip, limit and projection = %s", j)
	}
	if got, err := s.Aggregate(ctx, scoped.Own("c"), arr(t, `[{"$limit": 3}]`)); err != nil || len(got) != 3 {
		t.Fatalf("Aggregate with $limit 3 = %d, %v", len(got), err)
	}
	// Three documents fit the count but not the bytes.
	big := newScope(t, db, "exp", nil, scoped.WithLimits(scoped.Limits{MaxDocs: 3, MaxResultBytes: 150}))
	_, err = big.Find(ctx, scoped.Own("c"), nil, scoped.FindOptions{Limit: 3})
	wantCode(t, err, apierr.CodeScopeLimit)
	if one, err := s.FindOne(ctx, scoped.Own("c"), bson.M{"_id": 99}, scoped.FindOptions{}); err != nil || one != nil {
		t.Errorf("FindOne of nothing = %s, %v; want nil, nil", one, err)
	}
}

func TestTheCallersContextIsUsed(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.a.Find(ctx, scoped.Own("clicks"), nil, scoped.FindOptions{})
	wantCode(t, err, apierr.CodeTimeout)
	_, err = f.a.InsertOne(ctx, scoped.Own("clicks"), bson.M{"x": 1})
	wantCode(t, err, apierr.CodeTimeout)
}

func TestStoreErrorsAreCatalogued(t *testing.T) {
	f := setup(t)
	ctx := ctxT(t)
	_, err := f.a.InsertOne(ctx, scoped.Own("clicks"), bson.M{"_id": "a1"})
	wantCode(t, err, apierr.CodeConflict)
	_, err = f.a.Find(ctx, scoped.Own("clicks"), doc(t, `{"x": {"$nosuchoperator": 1}}`), scoped.FindOptions{})
	wantCode(t, err, apierr.CodeBadRequest)
	if strings.Contains(apierr.From(err).Message, "scoped_test.") {
		t.Errorf("the message names the database: %s", apierr.From(err).Message)
	}
}
