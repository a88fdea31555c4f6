package bundle_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// fullExample is the contract's example manifest, which uses every field.
const fullExample = "../../schemas/examples/manifest-v2-full.json"

func readExample(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(fullExample)
	if err != nil {
		t.Fatalf("read the example manifest: %v", err)
	}
	return raw
}

// TestManifestSchemaViolations: every error names its field as a JSON pointer.
func TestManifestSchemaViolations(t *testing.T) {
	for _, tc := range []struct {
		name     string
		manifest string
		field    string   // the error's Field: the first error's pointer
		mentions []string // pointers the message lists
	}{
		{"bad slug", `{"slug": "Not A Slug", "name": "X"}`, "/slug", []string{"/slug"}},
		{"slug with a slash", `{"slug": "a/b", "name": "X"}`, "/slug", nil},
		{"empty slug", `{"slug": "", "name": "X"}`, "/slug", nil},
		{"reserved slug", `{"slug": "shared", "name": "X"}`, "/slug", nil},
		{"slug of the platform's collections", `{"slug": "export", "name": "X"}`, "/slug", nil},
		{"missing slug", `{"name": "X"}`, "/slug", []string{"/slug: is required"}},
		{"missing name", `{"slug": "demo"}`, "/name", nil},
		{"bad status", `{"slug": "demo", "name": "X", "status": "live"}`, "/status", nil},
		{"status not a string", `{"slug": "demo", "name": "X", "status": 1}`, "/status", nil},
		{"unknown top-level field", `{"slug": "demo", "name": "X", "colour": "blue"}`, "/colour", []string{"/colour: is not an accepted name"}},
		{"unknown auth_policy field", `{"slug": "demo", "name": "X", "auth_policy": {"requird": true}}`, "/auth_policy/requird", nil},
		{"empty role", `{"slug": "demo", "name": "X", "auth_policy": {"allowed_roles": [""]}}`, "/auth_policy/allowed_roles/0", nil},
		{"role not a string", `{"slug": "demo", "name": "X", "auth_policy": {"allowed_roles": ["user", 7]}}`, "/auth_policy/allowed_roles/1", nil},
		{"permission without an action", `{"slug": "demo", "name": "X", "auth_policy": {"required_permissions": ["experiments"]}}`, "/auth_policy/required_permissions/0", nil},
		{"auth_required not a boolean", `{"slug": "demo", "name": "X", "auth_required": "yes"}`, "/auth_required", nil},
		{"data_scope not slugs", `{"slug": "demo", "name": "X", "data_scope": ["self", "Other One"]}`, "/data_scope/1", nil},
		{"developer_id not an email", `{"slug": "demo", "name": "X", "developer_id": "dev at example"}`, "/developer_id", nil},
		{"actor module not wasm", `{"slug": "demo", "name": "X", "actor": {"module": "actor.js"}}`, "/actor/module", nil},
		{"actor module climbs out", `{"slug": "demo", "name": "X", "actor": {"module": "../actor.wasm"}}`, "/actor/module", nil},
		{"actor module absolute", `{"slug": "demo", "name": "X", "actor": {"module": "/actor.wasm"}}`, "/actor/module", nil},
		{"actor module with a dot component", `{"slug": "demo", "name": "X", "actor": {"module": "./actor.wasm"}}`, "/actor/module", nil},
		{"actor module with a double slash", `{"slug": "demo", "name": "X", "actor": {"module": "wasm//actor.wasm"}}`, "/actor/module", nil},
		{"actor without a module", `{"slug": "demo", "name": "X", "actor": {"memory_mb": 16}}`, "/actor/module", nil},
		{"actor memory too large", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "memory_mb": 4096}}`, "/actor/memory_mb", nil},
		{"actor timeout not an integer", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "timeout_ms": 1.5}}`, "/actor/timeout_ms", nil},
		{"actor instances zero", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "instances": 0}}`, "/actor/instances", nil},
		{"actor instances negative", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "instances": -2}}`, "/actor/instances", nil},
		{"actor instances not an integer", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "instances": 1.5}}`, "/actor/instances", nil},
		{"actor instances a string", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "instances": "2"}}`, "/actor/instances", nil},
		{"actor instances over 8", `{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "instances": 9}}`, "/actor/instances", nil},
		{"index without keys", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i"}]}}`, "/managed_indexes/notes/0/keys", nil},
		{"index with a bad direction", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i", "keys": [["a", 2]]}]}}`, "/managed_indexes/notes/0/keys/0/1", nil},
		{"index with a bad kind", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i", "keys": {"a": "sideways"}}]}}`, "/managed_indexes/notes/0/keys/a", nil},
		{"index on an operator", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i", "keys": {"$where": 1}}]}}`, "/managed_indexes/notes/0/keys/$where", nil},
		{"ttl without expireAfterSeconds", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i", "type": "ttl", "keys": {"a": 1}, "options": {}}]}}`, "/managed_indexes/notes/0/options/expireAfterSeconds", nil},
		{"vector index without a definition", `{"slug": "demo", "name": "X", "managed_indexes": {"notes": [{"name": "i", "type": "vectorSearch"}]}}`, "/managed_indexes/notes/0/definition", nil},
		{"bad collection name", `{"slug": "demo", "name": "X", "managed_indexes": {"no tes": []}}`, "/managed_indexes/no tes", []string{"is not an accepted name"}},
		{"python field of the wrong type", `{"slug": "demo", "name": "X", "runtime_pip_deps": "requests"}`, "/runtime_pip_deps", nil},
		{"not an object", `["slug", "demo"]`, "", nil},
		{"several errors", `{"slug": "BAD", "name": "", "status": "x"}`, "/name", []string{"/name", "/slug", "/status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(zipOf(t, manifestFile(tc.manifest)), bundle.Limits{})
			ae := wantCode(t, err, apierr.CodeManifestInvalid, "")
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (message %q)", ae.Field, tc.field, ae.Message)
			}
			for _, m := range append(tc.mentions, tc.field) {
				if !strings.Contains(ae.Message, m) {
					t.Errorf("message %q does not list %q", ae.Message, m)
				}
			}
		})
	}
}

func TestManifestMalformedNamesTheKey(t *testing.T) {
	_, err := open(zipOf(t, manifestFile(`{"slug": "demo", "name": "X", "actor": {"module": "a.wasm", "module": "b.wasm"}}`)), bundle.Limits{})
	ae := wantCode(t, err, apierr.CodeManifestMalformed, "module")
	if ae.Field != "/actor/module" {
		t.Errorf("field %q, want /actor/module", ae.Field)
	}
}

func TestManifestTooDeep(t *testing.T) {
	deep := `{"slug": "demo", "name": "X", "sub_auth": ` + strings.Repeat(`{"a": `, 100) + "1" + strings.Repeat("}", 100) + "}"
	_, err := open(zipOf(t, manifestFile(deep)), bundle.Limits{})
	wantCode(t, err, apierr.CodeManifestMalformed, "levels")
}

// TestFullExampleManifest: the contract's example uses every field and must
// upload, with a warning for each field only the Python platform used.
func TestFullExampleManifest(t *testing.T) {
	raw := readExample(t)
	b, err := open(zipOf(t,
		manifestFile(string(raw)),
		zfile{name: "actor.wasm", body: "\x00asm\x01\x00\x00\x00"},
		zfile{name: "static/index.html", body: "<p>notes</p>"},
	), bundle.Limits{})
	if err != nil {
		t.Fatalf("the full example is refused: %v", err)
	}
	var warned []string
	for _, w := range b.Warnings {
		warned = append(warned, w.Field)
		if w.Message == "" {
			t.Errorf("warning %s has no message", w.Field)
		}
	}
	// sub_auth is disabled there: nothing to warn of.
	if want := []string{"/runtime_pip_deps", "/runtime_s3_uri"}; !slices.Equal(warned, want) {
		t.Errorf("warnings on %q, want %q", warned, want)
	}

	m := b.Manifest
	if m.SchemaVersion != "2.0" || m.Slug != "field-notes" || m.Name != "Field Notes" || m.Status != bundle.StatusActive || m.DeveloperID != "dev@example.com" {
		t.Errorf("top-level fields: %+v", m)
	}
	if !strings.HasPrefix(m.Description, "Collects short notes") {
		t.Errorf("description %q", m.Description)
	}
	p := m.AuthPolicy
	if p == nil || p.Required == nil || !*p.Required || p.AllowAnonymous == nil || *p.AllowAnonymous || p.OwnerCanAccess == nil || !*p.OwnerCanAccess {
		t.Fatalf("auth_policy booleans: %+v", p)
	}
	if !slices.Equal(p.AllowedRoles, []string{"user", "developer"}) || len(p.AllowedUsers) != 0 ||
		!slices.Equal(p.DeniedUsers, []string{"banned@example.com"}) || !slices.Equal(p.RequiredPermissions, []string{"experiments:view"}) ||
		p.CustomResource != "experiment:field-notes" || !slices.Equal(p.CustomActions, []string{"access", "read", "write"}) {
		t.Errorf("auth_policy lists: %+v", p)
	}
	if m.AuthRequired != nil {
		t.Errorf("auth_required = %v, not given", *m.AuthRequired)
	}
	if !slices.Equal(m.DataScope, []string{"self", "shared"}) {
		t.Errorf("data_scope %q", m.DataScope)
	}

	idx := m.ManagedIndexes["notes"]
	if len(idx) != 7 {
		t.Fatalf("%d indexes on notes, want 7", len(idx))
	}
	byName := map[string]bundle.IndexSpec{}
	for _, s := range idx {
		byName[s.Name] = s
	}
	keys := func(s bundle.IndexSpec) []bundle.IndexKey { return s.Keys }
	for _, tc := range []struct {
		name string
		typ  string
		keys []bundle.IndexKey
	}{
		{"by_author_time", bundle.IndexRegular, []bundle.IndexKey{{Field: "author", Direction: 1}, {Field: "created_at", Direction: -1}}},
		{"one_per_author_day", bundle.IndexRegular, []bundle.IndexKey{{Field: "author", Direction: 1}, {Field: "day", Direction: 1}}},
		{"expire_drafts", bundle.IndexTTL, []bundle.IndexKey{{Field: "draft_at", Direction: 1}}},
		{"only_published", bundle.IndexPartial, []bundle.IndexKey{{Field: "published_at", Direction: -1}}},
		{"note_text", bundle.IndexText, []bundle.IndexKey{{Field: "body", Kind: "text"}}},
		{"near", bundle.IndexGeospatial, []bundle.IndexKey{{Field: "location", Kind: "2dsphere"}}},
		{"note_vectors", bundle.IndexVectorSearch, nil},
	} {
		s, ok := byName[tc.name]
		if !ok {
			t.Errorf("no index %s", tc.name)
			continue
		}
		if s.Type != tc.typ || !slices.Equal(keys(s), tc.keys) {
			t.Errorf("%s: type %s keys %+v, want %s %+v", tc.name, s.Type, s.Keys, tc.typ, tc.keys)
		}
	}
	if byName["one_per_author_day"].Options["unique"] != true {
		t.Errorf("options of one_per_author_day: %v", byName["one_per_author_day"].Options)
	}
	if byName["expire_drafts"].Options["expireAfterSeconds"] != float64(86400) {
		t.Errorf("options of expire_drafts: %v", byName["expire_drafts"].Options)
	}
	if byName["note_vectors"].Definition["fields"] == nil {
		t.Errorf("definition of note_vectors: %v", byName["note_vectors"].Definition)
	}
	if v := m.CollectionSettings["notes"]["validationLevel"]; v != nil {
		t.Errorf("collection_settings read a nested field at the top: %v", v)
	}
	if m.CollectionSettings["notes"]["validation"] == nil {
		t.Errorf("collection_settings: %v", m.CollectionSettings)
	}
	if a := m.Actor; a == nil || a.Module != "actor.wasm" || a.MemoryMB != 32 || a.TimeoutMS != 1500 || a.Config["page_size"] != float64(20) {
		t.Errorf("actor: %+v", m.Actor)
	}
	if m.RuntimeS3URI == nil || *m.RuntimeS3URI != "" || !slices.Equal(m.RuntimePipDeps, []string{"requests>=2.31"}) || m.SubAuth == nil || m.SubAuth.On() {
		t.Errorf("python-only fields: %v %v %v", m.RuntimeS3URI, m.RuntimePipDeps, m.SubAuth)
	}
	if !json.Valid(b.RawManifest) || len(b.RawManifest) != len(raw) {
		t.Errorf("raw manifest not kept")
	}
}

func TestManifestDefaults(t *testing.T) {
	m, warnings, err := bundle.ParseManifest([]byte(`{"slug": "demo", "name": "Demo", "managed_indexes": {"c": [{"name": "i", "keys": [["a", 1]]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != bundle.StatusDraft {
		t.Errorf("status %q, want draft", m.Status)
	}
	if m.ManagedIndexes["c"][0].Type != bundle.IndexRegular {
		t.Errorf("index type %q, want regular", m.ManagedIndexes["c"][0].Type)
	}
	if len(warnings) != 0 || m.AuthPolicy != nil || m.Actor != nil || m.AuthRequired != nil {
		t.Errorf("fields appeared: %+v %v", m, warnings)
	}
}

// TestIndexKeysKeepTheirOrder: {field: direction} is an ordered list in the
// store, whatever Go maps do.
func TestIndexKeysKeepTheirOrder(t *testing.T) {
	var spec bundle.IndexSpec
	if err := json.Unmarshal([]byte(`{"name": "i", "keys": {"z": 1, "a": -1, "m": "hashed", "b.c": 1}}`), &spec); err != nil {
		t.Fatal(err)
	}
	want := bundle.IndexKeys{{Field: "z", Direction: 1}, {Field: "a", Direction: -1}, {Field: "m", Kind: "hashed"}, {Field: "b.c", Direction: 1}}
	if !slices.Equal(spec.Keys, want) {
		t.Fatalf("keys %+v, want %+v", spec.Keys, want)
	}
	out, err := json.Marshal(spec.Keys)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `[["z",1],["a",-1],["m","hashed"],["b.c",1]]` {
		t.Errorf("marshalled %s", out)
	}
	var back bundle.IndexKeys
	if err := json.Unmarshal(out, &back); err != nil || !slices.Equal(back, want) {
		t.Errorf("round trip %+v, %v", back, err)
	}
	if spec.Keys[2].Value() != "hashed" || spec.Keys[1].Value() != -1 {
		t.Errorf("values %v %v", spec.Keys[2].Value(), spec.Keys[1].Value())
	}
}

func TestCompatibleWithTheOriginalManifests(t *testing.T) {
	for _, m := range []string{
		// Schema 1.0 era: only the basic fields.
		`{"slug": "old_one", "name": "Old", "auth_required": true, "data_scope": ["self"], "status": "inactive"}`,
		// geoHaystack and wildcard keys, allowed by the original schema.
		`{"slug": "geo", "name": "Geo", "managed_indexes": {"places": [{"name": "hay", "type": "geospatial", "keys": [["pos", "geoHaystack"]]}, {"name": "all", "keys": [["$**", 1]]}]}}`,
		// Every status.
		`{"slug": "a", "name": "A", "status": "archived"}`,
	} {
		if _, _, err := bundle.ParseManifest([]byte(m)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}

// TestSchemaAvoidsPropertyNames: jsonschema v6.0.3 gives propertyNames
// errors an instance location that later validation overwrites, so the
// pointer of such an error can name the wrong field; the schema expresses
// name rules with patternProperties and additionalProperties instead.
func TestSchemaAvoidsPropertyNames(t *testing.T) {
	if bytes.Contains(bundle.ManifestSchema(), []byte(`"propertyNames"`)) {
		t.Fatal("the manifest schema uses propertyNames, whose errors point at the wrong field")
	}
}

// TestManifestNumbers: integers may be spelled as JSON allows, and numbers
// no float64 holds are refused at their field rather than failing later.
func TestManifestNumbers(t *testing.T) {
	m, _, err := bundle.ParseManifest([]byte(`{"slug": "a", "name": "A", "actor": {"module": "a.wasm", "memory_mb": 32.0, "timeout_ms": 1.5e3},
		"managed_indexes": {"c": [{"name": "i", "keys": [["x", 1.0], ["y", -1e0]]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Actor.MemoryMB != 32 || m.Actor.TimeoutMS != 1500 || m.Actor.InstanceCount() != 1 {
		t.Errorf("actor %+v", m.Actor)
	}
	if k := m.ManagedIndexes["c"][0].Keys; len(k) != 2 || k[0].Direction != 1 || k[1].Direction != -1 {
		t.Errorf("keys %+v", k)
	}
	m8, _, err := bundle.ParseManifest([]byte(`{"slug": "a", "name": "A", "actor": {"module": "a.wasm", "instances": 8.0}}`))
	if err != nil {
		t.Fatalf("instances 8.0: %v", err)
	}
	if m8.Actor.Instances != 8 || m8.Actor.InstanceCount() != 8 {
		t.Errorf("instances 8.0: %+v", m8.Actor)
	}

	_, _, err = bundle.ParseManifest([]byte(`{"slug": "a", "name": "A", "actor": {"module": "a.wasm", "config": {"x": [1, 1e400]}}}`))
	ae := wantCode(t, err, apierr.CodeManifestInvalid, "out of range")
	if ae.Field != "/actor/config/x/1" {
		t.Errorf("field %q", ae.Field)
	}
}
