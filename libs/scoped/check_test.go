package scoped

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// checkOnly is a Scope for the checks, which need no database.
func checkOnly() *Scope {
	return &Scope{slug: "exp-a", reads: map[string]bool{"exp-b": true}, limits: DefaultLimits}
}

func asAPI(t *testing.T, err error) *apierr.Error {
	t.Helper()
	var e *apierr.Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is not an *apierr.Error", err)
	}
	return e
}

// The refusal names the operator and where it was found, as text and as a
// JSON pointer.
func TestRefusalsSayWhatAndWhere(t *testing.T) {
	s := checkOnly()
	for _, tc := range []struct {
		name    string
		err     func() error
		code    apierr.Code
		message []string
		field   string
	}{
		{"$where deep in a filter", func() error {
			d, _ := ParseDocument([]byte(`{"$and": [{"x": 1}, {"$or": [{"g": "p"}, {"$where": "sleep(1000)"}]}]}`))
			_, err := s.filter("filter", d)
			return err
		}, apierr.CodeScopeForbiddenOperator, []string{`"$where"`, "filter.$and[1].$or[1].$where", "JavaScript"}, "/filter/$and/1/$or/1/$where"},
		{"$accumulator in $group", func() error {
			a, _ := ParseArray([]byte(`[{"$match": {}}, {"$group": {"_id": null, "a": {"$accumulator": {}}}}]`))
			_, err := s.pipeline(a)
			return err
		}, apierr.CodeScopeForbiddenOperator, []string{`"$accumulator"`, "pipeline[1].$group.a.$accumulator"}, "/pipeline/1/$group/a/$accumulator"},
		{"$lookup stage", func() error {
			a, _ := ParseArray([]byte(`[{"$match": {}}, {"$lookup": {}}]`))
			_, err := s.pipeline(a)
			return err
		}, apierr.CodeScopeForbiddenStage, []string{`"$lookup"`, "pipeline[1]", "another collection"}, "/pipeline/1"},
		{"stage outside the allowlist", func() error {
			a, _ := ParseArray([]byte(`[{"$facet": {}}]`))
			_, err := s.pipeline(a)
			return err
		}, apierr.CodeScopeForbiddenStage, []string{`"$facet"`, "$match, $project"}, "/pipeline/0"},
		{"$rename to experiment_id", func() error {
			d, _ := ParseDocument([]byte(`{"$set": {"a": 1}, "$rename": {"g": "experiment_id"}}`))
			_, err := s.updateDoc(d, false)
			return err
		}, apierr.CodeScopeForbidden, []string{"experiment_id", "update.$rename.g"}, "/update/$rename/g"},
		{"a key with a slash and a tilde", func() error {
			_, err := s.filter("filter", bson.M{"a/b~c": bson.M{"$function": 1}})
			return err
		}, apierr.CodeScopeForbiddenOperator, []string{"filter.a/b~c.$function"}, "/filter/a~1b~0c/$function"},
		{"a key with a newline", func() error {
			_, err := s.filter("filter", bson.M{"a\nb": bson.M{"$where": 1}})
			return err
		}, apierr.CodeScopeForbiddenOperator, []string{`filter.a\nb.$where`}, "/filter/a\nb/$where"},
		{"a read outside the data scope", func() error {
			_, err := s.resolve(context.Background(), Ref{Slug: "exp-z", Name: "c"}, false)
			return err
		}, apierr.CodeScopeForbidden, []string{`"exp-z"`, "data scope"}, ""},
		{"a write to the data scope", func() error {
			_, err := s.resolve(context.Background(), Ref{Slug: "exp-b", Name: "c"}, true)
			return err
		}, apierr.CodeScopeForbidden, []string{`"exp-b"`, "read-only"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := asAPI(t, tc.err())
			if e.Code != tc.code {
				t.Fatalf("code %s (%v), want %s", e.Code, e, tc.code)
			}
			for _, m := range tc.message {
				if !strings.Contains(e.Message, m) {
					t.Errorf("message %q lacks %q", e.Message, m)
				}
			}
			if e.Field != tc.field {
				t.Errorf("field %q, want %q", e.Field, tc.field)
			}
		})
	}
}

func TestCodesHaveTheirStatus(t *testing.T) {
	for code, status := range map[apierr.Code]int{
		apierr.CodeScopeForbidden:         403,
		apierr.CodeScopeInvalidCollection: 422,
		apierr.CodeScopeForbiddenOperator: 400,
		apierr.CodeScopeForbiddenStage:    400,
		apierr.CodeScopeLimit:             413,
		apierr.CodeStoreUnsupported:       501,
	} {
		if !code.Known() || code.Status() != status {
			t.Errorf("%s: known %v, status %d; want %d", code, code.Known(), code.Status(), status)
		}
	}
}

// The filter sent to the store always has experiment_id = the slug at its
// top level; the caller's filter can only narrow it.
func TestBind(t *testing.T) {
	s := checkOnly()
	for _, tc := range []struct{ filter, want string }{
		{`{}`, `{"experiment_id": "exp-a"}`},
		{`{"x": 1, "$or": [{"y": 2}]}`, `{"experiment_id": "exp-a", "x": 1, "$or": [{"y": 2}]}`},
		{`{"x": 1, "experiment_id": "exp-b"}`, `{"experiment_id": "exp-a", "$and": [{"x": 1, "experiment_id": "exp-b"}]}`},
		{`{"experiment_id": {"$ne": "exp-a"}}`, `{"experiment_id": "exp-a", "$and": [{"experiment_id": {"$ne": "exp-a"}}]}`},
	} {
		d, err := ParseDocument([]byte(tc.filter))
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.filter("filter", d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bson.Marshal(target{coll: "exp-a_c", slug: "exp-a"}.bind(f))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ParseDocument([]byte(tc.want))
		wb, _ := bson.Marshal(want)
		if string(b) != string(wb) {
			t.Errorf("bind(%s) = %s, want %s", tc.filter, bson.Raw(b), tc.want)
		}
	}
	f, _ := s.filter("filter", bson.M{"x": 1})
	if got := (target{coll: "shared_c"}).bind(f); len(got) != 1 || got[0].Key != "x" {
		t.Errorf("shared bind = %v, want the filter unchanged", got)
	}
}

func TestUpsertGetsTheOwnExperimentID(t *testing.T) {
	s := checkOnly()
	for _, tc := range []struct {
		update string
		upsert bool
		want   string
	}{
		{`{"$set": {"a": 1}}`, false, `{"$set": {"a": 1}}`},
		{`{"$set": {"a": 1}}`, true, `{"$set": {"a": 1}, "$setOnInsert": {"experiment_id": "exp-a"}}`},
		{`{"$setOnInsert": {"c": 1}, "$inc": {"n": 1}}`, true, `{"$setOnInsert": {"c": 1, "experiment_id": "exp-a"}, "$inc": {"n": 1}}`},
	} {
		d, _ := ParseDocument([]byte(tc.update))
		u, err := s.updateDoc(d, tc.upsert)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := bson.Marshal(u)
		want, _ := ParseDocument([]byte(tc.want))
		wb, _ := bson.Marshal(want)
		if string(b) != string(wb) {
			t.Errorf("updateDoc(%s, %v) = %s, want %s", tc.update, tc.upsert, bson.Raw(b), tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	d, err := ParseDocument([]byte(` {"_id": {"$oid": "5f1d7a3c9d1e8a2b3c4d5e6f"}, "n": {"$numberLong": "7"}, "t": {"$date": "2024-01-02T03:04:05Z"}, "s": "a\"{["}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d[0].Value.(bson.ObjectID); !ok || d[1].Value != int64(7) {
		t.Errorf("ParseDocument = %#v", d)
	}
	if _, ok := d[2].Value.(bson.DateTime); !ok {
		t.Errorf("$date decoded as %T", d[2].Value)
	}
	a, err := ParseArray([]byte(`[{"$match": {"x": 1}}, 2, [3]]`))
	if err != nil || len(a) != 3 {
		t.Fatalf("ParseArray = %#v, %v", a, err)
	}
	if _, ok := a[0].(bson.D); !ok {
		t.Errorf("a document in an array decoded as %T", a[0])
	}
	if a, err := ParseArray([]byte(`[]`)); err != nil || a == nil || len(a) != 0 {
		t.Errorf("ParseArray([]) = %#v, %v", a, err)
	}
	for _, tc := range []struct {
		in    string
		array bool
		code  apierr.Code
	}{
		{`[1]`, false, apierr.CodeInvalidJson},
		{`"x"`, false, apierr.CodeInvalidJson},
		{``, false, apierr.CodeInvalidJson},
		{`{"a": }`, false, apierr.CodeInvalidJson},
		{`{"a": 1} {"b": 2}`, false, apierr.CodeInvalidJson},
		{`{"a": {"$oid": "nothex"}}`, false, apierr.CodeInvalidJson},
		{`{"a": 1}`, true, apierr.CodeInvalidJson},
		{`[1], "v": [2]`, true, apierr.CodeInvalidJson},
		{`[1]}, {"w": [2]`, true, apierr.CodeInvalidJson},
		{strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70), false, apierr.CodeScopeLimit},
		{strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70), true, apierr.CodeScopeLimit},
		{`{"a": "` + strings.Repeat("x", MaxJSONBytes) + `"}`, false, apierr.CodeScopeLimit},
	} {
		var err error
		if tc.array {
			_, err = ParseArray([]byte(tc.in))
		} else {
			_, err = ParseDocument([]byte(tc.in))
		}
		if err == nil {
			t.Errorf("%.40s: accepted", tc.in)
			continue
		}
		if e := asAPI(t, err); e.Code != tc.code {
			t.Errorf("%.40s: %v, want %s", tc.in, err, tc.code)
		}
	}
	// Brackets inside strings do not count as nesting.
	if _, err := ParseDocument([]byte(`{"a": "` + strings.Repeat(`{[`, 100) + `"}`)); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
}

func TestMarshalResults(t *testing.T) {
	d1, _ := bson.Marshal(bson.M{"a": int64(1)})
	d2, _ := bson.Marshal(bson.M{"t": bson.NewDateTimeFromTime(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))})
	j, err := MarshalResults([]bson.Raw{d1, d2})
	if err != nil || string(j) != `[{"a":1},{"t":{"$date":"2024-01-02T03:04:05Z"}}]` {
		t.Errorf("MarshalResults = %s, %v", j, err)
	}
	if j, _ := MarshalResults(nil); string(j) != `[]` {
		t.Errorf("MarshalResults(nil) = %s", j)
	}
}

// accepted asserts that nothing refused anywhere survived the checks.
func accepted(t *testing.T, v bson.RawValue, depth int) {
	switch v.Type {
	case bson.TypeJavaScript, bson.TypeCodeWithScope:
		t.Fatalf("JavaScript passed the checks")
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		if depth > DefaultLimits.MaxDepth {
			t.Fatalf("nesting of %d passed the checks", depth)
		}
		elems, _ := bson.Raw(v.Value).Elements()
		for _, e := range elems {
			if _, bad := forbidden[strings.ToLower(e.Key())]; bad {
				t.Fatalf("%s passed the checks", e.Key())
			}
			accepted(t, e.Value(), depth+1)
		}
	}
}

func FuzzFilter(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"x": 1}`, `{"$where": "1"}`, `{"$and": [{"$or": [{"$WHERE": 1}]}]}`,
		`{"$expr": {"$function": {"body": "", "args": []}}}`, `{"a": {"$code": "x"}}`,
		`{"a": {"$elemMatch": {"b": {"$lookup": 1}}}}`, `{"experiment_id": "x"}`,
	} {
		f.Add([]byte(seed))
	}
	s := checkOnly()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDocument(data)
		if err != nil {
			return
		}
		raw, err := s.filter("filter", d)
		if err != nil {
			asAPI(t, err)
			return
		}
		accepted(t, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}, 1)
	})
}

func FuzzPipeline(f *testing.F) {
	for _, seed := range []string{
		`[]`, `[{"$match": {}}]`, `[{"$lookup": {}}]`, `[{"$facet": {"a": [{"$out": "x"}]}}]`,
		`[{"$group": {"_id": null, "a": {"$accumulator": {}}}}]`, `[{"$set": {"y": "$x"}}]`,
		`[{"$project": {"a": {"b": 1}}}]`, `[{"$group": {"_id": 1, "a": {"$sum": 1}, "b": {"$sum": 1}}}]`,
	} {
		f.Add([]byte(seed))
	}
	s := checkOnly()
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseArray(data)
		if err != nil {
			return
		}
		stages, err := s.pipeline(a)
		if err != nil {
			asAPI(t, err)
			return
		}
		for _, st := range stages {
			if !stageAllowed[st.Index(0).Key()] {
				t.Fatalf("stage %s passed the checks", st.Index(0).Key())
			}
			accepted(t, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: st}, 2)
		}
		if err := checkEmbeddedPipeline(stages); err != nil {
			asAPI(t, err)
		}
	})
}
