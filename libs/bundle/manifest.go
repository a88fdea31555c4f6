package bundle

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// schemaJSON is a copy of schemas/manifest.schema.json, the one definition
// of manifest.json; a test keeps the two identical.
//
//go:embed manifest.schema.json
var schemaJSON []byte

// ManifestSchema returns the JSON Schema of manifest.json, as published to
// experiment authors.
func ManifestSchema() []byte { return bytes.Clone(schemaJSON) }

// Statuses of an experiment.
const (
	StatusActive   = "active"
	StatusDraft    = "draft"
	StatusArchived = "archived"
	StatusInactive = "inactive"
)

// Index types of managed_indexes.
const (
	IndexRegular      = "regular"
	IndexTTL          = "ttl"
	IndexPartial      = "partial"
	IndexText         = "text"
	IndexGeospatial   = "geospatial"
	IndexVectorSearch = "vectorSearch"
	IndexSearch       = "search"
	IndexHybrid       = "hybrid"
)

// Manifest is manifest.json: the Python platform's schema 2.0 and the actor.
// Numbers inside free-form objects (options, definition, settings, config)
// are float64, as encoding/json decodes them; RawManifest keeps the text.
type Manifest struct {
	SchemaVersion string `json:"schema_version,omitempty"`
	Slug          string `json:"slug"`
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	// Status is one of the Status constants; StatusDraft when not given.
	Status string `json:"status"`
	// AuthRequired is the shorthand of AuthPolicy.Required from manifests
	// that predate auth_policy; nil when not given.
	AuthRequired *bool       `json:"auth_required,omitempty"`
	AuthPolicy   *AuthPolicy `json:"auth_policy,omitempty"`
	// DataScope lists the experiments whose data the actor may read: "self",
	// "shared" (the platform's shared collections) or another slug.
	DataScope []string `json:"data_scope,omitempty"`
	// ManagedIndexes are the indexes to keep, by collection base name.
	ManagedIndexes map[string][]IndexSpec `json:"managed_indexes,omitempty"`
	// CollectionSettings are settings (validation rules...) by collection
	// base name, passed to the store.
	CollectionSettings map[string]map[string]any `json:"collection_settings,omitempty"`
	// DeveloperID is the owner's email, stored as owner_email.
	DeveloperID string `json:"developer_id,omitempty"`
	Actor       *Actor `json:"actor,omitempty"`

	// SubAuth is the experiment's own participants and accounts; nil when
	// not given.
	SubAuth *SubAuth `json:"sub_auth,omitempty"`

	// Fields only the Python platform used: accepted, ignored, and reported
	// in Bundle.Warnings.
	RuntimeS3URI   *string  `json:"runtime_s3_uri,omitempty"`
	RuntimePipDeps []string `json:"runtime_pip_deps,omitempty"`
}

// AuthPolicy says who may open the experiment and use its API. A nil
// boolean was not given.
type AuthPolicy struct {
	Required       *bool    `json:"required,omitempty"`
	AllowAnonymous *bool    `json:"allow_anonymous,omitempty"`
	OwnerCanAccess *bool    `json:"owner_can_access,omitempty"`
	AllowedRoles   []string `json:"allowed_roles,omitempty"`
	AllowedUsers   []string `json:"allowed_users,omitempty"`
	DeniedUsers    []string `json:"denied_users,omitempty"`
	// RequiredPermissions are "resource:action" pairs the user must all hold.
	RequiredPermissions []string `json:"required_permissions,omitempty"`
	CustomResource      string   `json:"custom_resource,omitempty"`
	CustomActions       []string `json:"custom_actions,omitempty"`
}

// IndexSpec is one managed index. Whether the store can build its Type is
// decided where indexes are built, not here.
type IndexSpec struct {
	Name string `json:"name"`
	// Type is one of the Index constants; IndexRegular when not given.
	Type string `json:"type"`
	// Keys are given for every type but the search types.
	Keys IndexKeys `json:"keys,omitempty"`
	// Options are passed to the store: unique, sparse, expireAfterSeconds,
	// partialFilterExpression...
	Options map[string]any `json:"options,omitempty"`
	// Definition is given for the search types (vectorSearch, search, hybrid).
	Definition map[string]any `json:"definition,omitempty"`
}

// IndexKeys are an index's fields in order. manifest.json gives them as
// [[field, direction], ...] or as {field: direction, ...}; both keep their
// order here, and they are written back in the first form.
type IndexKeys []IndexKey

// IndexKey is one indexed field: Direction 1 or -1, or a special index kind
// ("text", "2dsphere", "2d", "geoHaystack", "hashed") in Kind.
type IndexKey struct {
	Field     string
	Direction int
	Kind      string
}

// Value is the key's value in a store index specification.
func (k IndexKey) Value() any {
	if k.Kind != "" {
		return k.Kind
	}
	return k.Direction
}

// UnmarshalJSON reads either form of the keys.
func (ks *IndexKeys) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	*ks = nil
	switch tok {
	case json.Delim('['):
		for dec.More() {
			var pair []json.RawMessage
			if err := dec.Decode(&pair); err != nil {
				return err
			}
			if len(pair) != 2 {
				return errors.New("index key: want [field, direction]")
			}
			var k IndexKey
			if err := json.Unmarshal(pair[0], &k.Field); err != nil {
				return err
			}
			if err := k.setValue(pair[1]); err != nil {
				return err
			}
			*ks = append(*ks, k)
		}
	case json.Delim('{'):
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return err
			}
			k := IndexKey{Field: t.(string)}
			if err := k.setValue(v); err != nil {
				return err
			}
			*ks = append(*ks, k)
		}
	default:
		return errors.New("index keys: want an array or an object")
	}
	_, err = dec.Token()
	return err
}

func (k *IndexKey) setValue(raw json.RawMessage) error {
	if len(raw) > 0 && raw[0] == '"' {
		return json.Unmarshal(raw, &k.Kind)
	}
	var err error
	k.Direction, err = integer(raw)
	return err
}

// integer decodes a JSON number that is integral, as the schema's "integer"
// type has it: 32.0 is 32.
func integer(raw []byte) (int, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s is not an integer", raw)
	}
	return int(f), nil
}

// MarshalJSON writes the keys as [[field, direction], ...].
func (ks IndexKeys) MarshalJSON() ([]byte, error) {
	pairs := make([][2]any, len(ks))
	for i, k := range ks {
		pairs[i] = [2]any{k.Field, k.Value()}
	}
	return json.Marshal(pairs)
}

// Actor is the experiment's backend: a WebAssembly module, or a JavaScript
// script run by the platform's JavaScript runtime (exactly one of the two).
type Actor struct {
	// Module is the module's path in the bundle, relative to its root; ""
	// for a JavaScript actor.
	Module string `json:"module,omitempty"`
	// Script is the entry script's path in the bundle (actorscript.go); ""
	// for a WebAssembly actor.
	Script string `json:"script,omitempty"`
	// MemoryMB and TimeoutMS are 0 when not given (the platform's defaults).
	MemoryMB  int `json:"memory_mb,omitempty"`
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// Instances is actor.instances, how many instances serve its calls
	// side by side (1 to 8); 0 when not given: one.
	Instances int            `json:"instances,omitempty"`
	Config    map[string]any `json:"config,omitempty"`
	// HTTP is actor.http, the outbound HTTP it may send (actorhttp.go);
	// nil when not given: none.
	HTTP *ActorHTTP `json:"http,omitempty"`
	// Schedule is actor.schedule, the timer events it receives
	// (schedule.go); nil when not given.
	Schedule []Schedule `json:"schedule,omitempty"`
}

// MaxInstances bounds actor.instances.
const MaxInstances = 8

// InstanceCount is how many instances serve the actor's calls: 1 when the
// manifest does not say.
func (a *Actor) InstanceCount() int {
	return min(max(a.Instances, 1), MaxInstances)
}

// UnmarshalJSON takes integral numbers in any JSON spelling (32.0).
func (a *Actor) UnmarshalJSON(data []byte) error {
	type plain Actor
	var v struct {
		plain
		MemoryMB  json.RawMessage `json:"memory_mb"`
		TimeoutMS json.RawMessage `json:"timeout_ms"`
		Instances json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*a = Actor(v.plain)
	for _, f := range []struct {
		raw json.RawMessage
		to  *int
	}{{v.MemoryMB, &a.MemoryMB}, {v.TimeoutMS, &a.TimeoutMS}, {v.Instances, &a.Instances}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		n, err := integer(f.raw)
		if err != nil {
			return err
		}
		*f.to = n
	}
	return nil
}

// pythonOnly are the fields only the Python platform used.
var pythonOnly = []struct{ field, why string }{
	{"runtime_pip_deps", "pip packages of the Python runtime"},
	{"runtime_s3_uri", "where the Python runtime's code was kept"},
}

// maxJSONDepth bounds the nesting of manifest.json.
const maxJSONDepth = 64

// maxListedErrors bounds the schema errors a message lists.
const maxListedErrors = 20

var printer = message.NewPrinter(language.English)

var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("parse manifest schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("manifest.schema.json", doc); err != nil {
		return nil, fmt.Errorf("load manifest schema: %w", err)
	}
	s, err := c.Compile("manifest.schema.json")
	if err != nil {
		return nil, fmt.Errorf("compile manifest schema: %w", err)
	}
	return s, nil
})

// ParseManifest validates manifest.json against the schema and decodes it.
// Open calls it; it is exported for manifests that arrive without a bundle
// (an edit of the manifest fields, say). The errors are *apierr.Error.
func ParseManifest(raw []byte) (*Manifest, []Warning, error) {
	m, _, w, err := parseManifest(raw)
	return m, w, err
}

func parseManifest(raw []byte) (*Manifest, []byte, []Warning, error) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(raw) {
		return nil, nil, nil, apierr.New(apierr.CodeManifestMalformed, "manifest.json is not valid UTF-8")
	}
	doc, err := decodeStrict(raw)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkSubAuth(doc); err != nil {
		return nil, nil, nil, err
	}
	if err := checkActorHTTP(doc); err != nil {
		return nil, nil, nil, err
	}
	if err := checkActorSchedule(doc); err != nil {
		return nil, nil, nil, err
	}
	if err := checkActorCode(doc); err != nil {
		return nil, nil, nil, err
	}
	schema, err := compiledSchema()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := schema.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return nil, nil, nil, fmt.Errorf("validate manifest: %w", err)
		}
		return nil, nil, nil, schemaError(ve)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		// The schema admits only what the struct can hold; this is a bug.
		return nil, nil, nil, fmt.Errorf("decode validated manifest: %w", err)
	}
	if m.Status == "" {
		m.Status = StatusDraft
	}
	for _, specs := range m.ManagedIndexes {
		for i := range specs {
			if specs[i].Type == "" {
				specs[i].Type = IndexRegular
			}
		}
	}
	if m.SubAuth != nil {
		m.SubAuth.setDefaults()
	}
	var warnings []Warning
	obj := doc.(map[string]any)
	warnings = append(warnings, m.SubAuth.warnings()...)
	for _, p := range pythonOnly {
		if _, ok := obj[p.field]; ok {
			warnings = append(warnings, Warning{
				Field:   "/" + p.field,
				Message: fmt.Sprintf("%s (%s) was used only by the Python platform; it is accepted and ignored", p.field, p.why),
			})
		}
	}
	return &m, raw, warnings, nil
}

// decodeStrict decodes JSON as the schema validator wants it (numbers as
// json.Number), refusing what encoding/json lets pass: a repeated key (which
// of the two would count?), excessive nesting, and data after the value.
func decodeStrict(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, "", 0)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err == nil {
		return v, nil
	}
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return nil, ae
	}
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err, off = errors.New("unexpected end of JSON input"), int64(len(raw))
	}
	line, col := position(raw, off)
	return nil, apierr.New(apierr.CodeManifestMalformed, "manifest.json is not valid JSON: line %d, column %d: %v", line, col, err)
}

func decodeValue(dec *json.Decoder, ptr string, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, apierr.New(apierr.CodeManifestMalformed, "manifest.json nests more than %d levels deep at %s", maxJSONDepth, ptr).OnField(ptr)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := t.(string)
			if !ok {
				return nil, errors.New("object key is not a string")
			}
			kp := ptr + "/" + escapePointer(key)
			if _, dup := obj[key]; dup {
				return nil, apierr.New(apierr.CodeManifestMalformed, "manifest.json repeats the key %q at %s", key, kp).OnField(kp)
			}
			if obj[key], err = decodeValue(dec, kp, depth+1); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return obj, nil
	case json.Delim('['):
		arr := []any{}
		for i := 0; dec.More(); i++ {
			v, err := decodeValue(dec, fmt.Sprintf("%s/%d", ptr, i), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	if n, ok := tok.(json.Number); ok {
		// Valid JSON, but no number the platform can hold.
		if _, err := strconv.ParseFloat(string(n), 64); err != nil {
			return nil, apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: the number %s is out of range", ptr, n).OnField(ptr)
		}
	}
	return tok, nil
}

func position(raw []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(raw)))
	before := raw[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func pointer(loc []string) string {
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		b.WriteString(escapePointer(p))
	}
	return b.String()
}

// schemaError turns the validator's tree of errors into one refusal that
// names the field of each: the leaves of the tree, where missing and unknown
// properties point at the property itself rather than at its object.
func schemaError(ve *jsonschema.ValidationError) error {
	var list []Warning
	collectLeaves(ve, &list)
	sort.Slice(list, func(i, j int) bool {
		if list[i].Field != list[j].Field {
			return list[i].Field < list[j].Field
		}
		return list[i].Message < list[j].Message
	})
	list = dedupe(list)
	if len(list) == 0 {
		list = []Warning{{Field: "", Message: ve.Error()}}
	}
	var b strings.Builder
	b.WriteString("manifest.json is invalid: ")
	for i, e := range list {
		if i == maxListedErrors {
			fmt.Fprintf(&b, "; and %d more", len(list)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		field := e.Field
		if field == "" {
			field = "(the document)"
		}
		fmt.Fprintf(&b, "%s: %s", field, e.Message)
	}
	return apierr.New(apierr.CodeManifestInvalid, "%s", b.String()).OnField(list[0].Field)
}

func collectLeaves(ve *jsonschema.ValidationError, out *[]Warning) {
	causes := ve.Causes
	if _, ok := ve.ErrorKind.(*kind.OneOf); ok {
		causes = matchingBranches(ve)
	}
	if len(causes) > 0 {
		for _, c := range causes {
			collectLeaves(c, out)
		}
		return
	}
	at := pointer(ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, p := range k.Missing {
			*out = append(*out, Warning{Field: at + "/" + escapePointer(p), Message: "is required"})
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			*out = append(*out, Warning{Field: at + "/" + escapePointer(p), Message: "is not an accepted name"})
		}
	default:
		*out = append(*out, Warning{Field: at, Message: ve.ErrorKind.LocalizedString(printer)})
	}
}

// matchingBranches keeps, of the failed alternatives of a oneOf, those whose
// type fits the value: when keys is an object, the complaint that it is not
// an array says nothing useful.
func matchingBranches(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	var kept []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		if !onlyTypeMismatch(c, len(ve.InstanceLocation)) {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return ve.Causes
	}
	return kept
}

func onlyTypeMismatch(ve *jsonschema.ValidationError, depth int) bool {
	if len(ve.Causes) == 0 {
		_, ok := ve.ErrorKind.(*kind.Type)
		return ok && len(ve.InstanceLocation) == depth
	}
	for _, c := range ve.Causes {
		if onlyTypeMismatch(c, depth) {
			return true
		}
	}
	return false
}

func dedupe(list []Warning) []Warning {
	out := list[:0]
	for i, e := range list {
		if i > 0 && e == list[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}
