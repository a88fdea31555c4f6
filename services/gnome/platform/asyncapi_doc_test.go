package platform_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
)

// repoRoot is the monorepo's root: the directory holding go.work.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test's directory")
		}
		dir = parent
	}
}

// newCompiler compiles the platform's schemas: formats are assertions, and
// schemas without $schema (those inline in the AsyncAPI document, whose
// default schema format is a superset of draft-07) are read as draft-07.
func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	return c
}

// fileURL is the file URL of path, which schema references resolve against.
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// decodeJSON reads a JSON value the way the validator expects it (numbers
// as json.Number). An empty body is null.
func decodeJSON(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(data))
}

// asyncAPI is schemas/asyncapi.yaml, loaded for lookups and validation.
type asyncAPI struct {
	path     string
	url      string
	root     map[string]any
	compiler *jsonschema.Compiler
	// channels with an address, in document order.
	channels []*channel
	// messages by their location in the document.
	messages map[string]*docMessage
	// headerNames are every header name the document spells out, for
	// case-insensitive lookups.
	headerNames []string
}

// channel is one addressed channel of the document.
type channel struct {
	key    string
	tokens []string
	// params maps a parameter to its allowed values; nil allows any token.
	params   map[string][]string
	stream   string
	messages []*docMessage
	// replies are the messages that may answer a request on the channel.
	replies []*docMessage
}

// docMessage is one message of the document with its compiled schemas.
type docMessage struct {
	name        string
	ptr         string
	node        map[string]any
	contentType string
	payload     *jsonschema.Schema
	headers     *jsonschema.Schema
}

func loadAsyncAPI(t testing.TB) *asyncAPI {
	t.Helper()
	path := filepath.Join(repoRoot(t), "schemas", "asyncapi.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	js, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("%s is not representable as JSON: %v", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: top level is not a mapping", path)
	}
	a := &asyncAPI{path: path, url: fileURL(path), root: root, compiler: newCompiler(), messages: map[string]*docMessage{}}
	if err := a.compiler.AddResource(a.url, doc); err != nil {
		t.Fatal(err)
	}
	if v := str(root["asyncapi"]); v != "3.0.0" {
		t.Fatalf("asyncapi version %q, want 3.0.0", v)
	}
	a.headerNames = collectHeaderNames(root)

	chans := mapAt(root, "channels")
	for _, key := range sortedKeys(chans) {
		cn, _, err := a.resolve(chans[key], "#/channels/"+escape(key))
		if err != nil {
			t.Fatalf("channel %s: %v", key, err)
		}
		addr, isString := cn["address"].(string)
		ch := &channel{key: key, params: map[string][]string{}, stream: str(cn["x-nats-stream"])}
		for _, ref := range sortedKeys(mapAt(cn, "messages")) {
			m, err := a.message(mapAt(cn, "messages")[ref], "#/channels/"+escape(key)+"/messages/"+escape(ref))
			if err != nil {
				t.Fatalf("channel %s message %s: %v", key, ref, err)
			}
			ch.messages = append(ch.messages, m)
		}
		if len(ch.messages) == 0 {
			t.Fatalf("channel %s lists no messages", key)
		}
		if !isString {
			continue // a reply inbox: its address is the request's reply subject
		}
		ch.tokens = strings.Split(addr, ".")
		params := mapAt(cn, "parameters")
		for _, tok := range ch.tokens {
			if !isParam(tok) {
				continue
			}
			name := tok[1 : len(tok)-1]
			p, _, err := a.resolve(params[name], "#/channels/"+escape(key)+"/parameters/"+escape(name))
			if err != nil {
				t.Fatalf("channel %s: parameter %s: %v", key, name, err)
			}
			var enum []string
			for _, v := range sliceOf(p["enum"]) {
				enum = append(enum, str(v))
			}
			ch.params[name] = enum
		}
		if len(params) != len(ch.params) {
			t.Fatalf("channel %s: parameters %v do not match the address %s", key, sortedKeys(params), addr)
		}
		a.channels = append(a.channels, ch)
	}

	ops := mapAt(root, "operations")
	for _, key := range sortedKeys(ops) {
		op, _, err := a.resolve(ops[key], "#/operations/"+escape(key))
		if err != nil {
			t.Fatalf("operation %s: %v", key, err)
		}
		_, chPtr, err := a.resolve(op["channel"], "")
		if err != nil {
			t.Fatalf("operation %s: channel: %v", key, err)
		}
		ch := a.channelAt(chPtr)
		reply, ok := op["reply"].(map[string]any)
		if !ok || ch == nil {
			continue
		}
		for i, r := range sliceOf(reply["messages"]) {
			m, err := a.message(r, fmt.Sprintf("#/operations/%s/reply/messages/%d", escape(key), i))
			if err != nil {
				t.Fatalf("operation %s reply: %v", key, err)
			}
			ch.replies = append(ch.replies, m)
		}
	}
	return a
}

func (a *asyncAPI) channelAt(ptr string) *channel {
	for _, c := range a.channels {
		if ptr == "#/channels/"+escape(c.key) {
			return c
		}
	}
	return nil
}

// message resolves a message reference and compiles its schemas once.
func (a *asyncAPI) message(node any, at string) (*docMessage, error) {
	n, ptr, err := a.resolve(node, at)
	if err != nil {
		return nil, err
	}
	if m, ok := a.messages[ptr]; ok {
		return m, nil
	}
	m := &docMessage{name: str(n["name"]), ptr: ptr, node: n, contentType: str(n["contentType"])}
	if m.name == "" {
		return nil, fmt.Errorf("message at %s has no name", ptr)
	}
	if m.contentType == "" {
		m.contentType = str(a.root["defaultContentType"])
	}
	if m.contentType != "application/json" && m.contentType != "text/plain" {
		return nil, fmt.Errorf("message %s: content type %q", m.name, m.contentType)
	}
	pl, ok := n["payload"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("message %s has no payload", m.name)
	}
	plPtr := ptr + "/payload"
	if _, multi := pl["schemaFormat"]; multi {
		if f := str(pl["schemaFormat"]); f != "application/schema+json;version=draft-2020-12" {
			return nil, fmt.Errorf("message %s: payload schema format %q", m.name, f)
		}
		plPtr += "/schema"
	}
	if m.payload, err = a.compiler.Compile(a.url + plPtr); err != nil {
		return nil, fmt.Errorf("message %s: payload: %w", m.name, err)
	}
	if _, ok := n["headers"]; !ok {
		return nil, fmt.Errorf("message %s documents no headers (trace context travels in them)", m.name)
	}
	if m.headers, err = a.compiler.Compile(a.url + ptr + "/headers"); err != nil {
		return nil, fmt.Errorf("message %s: headers: %w", m.name, err)
	}
	a.messages[ptr] = m
	return m, nil
}

// resolve follows local $refs from node (found at ptr) to the object they
// name, returning it and its location.
func (a *asyncAPI) resolve(node any, ptr string) (map[string]any, string, error) {
	for range 16 {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, ptr, fmt.Errorf("%s is not an object", ptr)
		}
		ref, isRef := m["$ref"].(string)
		if !isRef {
			return m, ptr, nil
		}
		if !strings.HasPrefix(ref, "#/") {
			return nil, ptr, fmt.Errorf("%s: reference %q leaves the document", ptr, ref)
		}
		v, err := lookup(a.root, ref)
		if err != nil {
			return nil, ptr, err
		}
		node, ptr = v, ref
	}
	return nil, ptr, fmt.Errorf("%s: reference cycle", ptr)
}

// lookup finds the value at a "#/..." JSON pointer.
func lookup(root any, ref string) (any, error) {
	cur := root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, fmt.Errorf("reference %s: no %q", ref, tok)
			}
			cur = next
		case []any:
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(v) {
				return nil, fmt.Errorf("reference %s: bad index %q", ref, tok)
			}
			cur = v[i]
		default:
			return nil, fmt.Errorf("reference %s: %q is inside a scalar", ref, tok)
		}
	}
	return cur, nil
}

// match finds the channel whose address matches subject.
func (a *asyncAPI) match(subject string) *channel {
	toks := strings.Split(subject, ".")
	for _, c := range a.channels {
		if len(c.tokens) != len(toks) {
			continue
		}
		ok := true
		for i, tok := range c.tokens {
			if isParam(tok) {
				enum := c.params[tok[1:len(tok)-1]]
				ok = toks[i] != "" && (enum == nil || slices.Contains(enum, toks[i]))
			} else {
				ok = tok == toks[i]
			}
			if !ok {
				break
			}
		}
		if ok {
			return c
		}
	}
	return nil
}

// headersValue renders NATS headers as the object header schemas describe:
// names in the document's spelling (compared case-insensitively, as the
// platform's readers do), one value each; a repeated header stays a list
// and fails its string schema.
func (a *asyncAPI) headersValue(h nats.Header) map[string]any {
	out := map[string]any{}
	for name, vals := range h {
		for _, known := range a.headerNames {
			if strings.EqualFold(name, known) {
				name = known
				break
			}
		}
		if len(vals) == 1 {
			out[name] = vals[0]
			continue
		}
		list := make([]any, len(vals))
		for i, v := range vals {
			list[i] = v
		}
		out[name] = list
	}
	return out
}

// validate checks a message against the candidates; it returns the one it
// matches, or the reasons none did.
func validate(candidates []*docMessage, headers map[string]any, data []byte) (*docMessage, error) {
	var errs []error
	for _, m := range candidates {
		if err := m.headers.Validate(headers); err != nil {
			errs = append(errs, fmt.Errorf("as %s: headers %v: %v", m.name, headers, err))
			continue
		}
		var body any = string(data)
		if m.contentType == "application/json" {
			var err error
			if body, err = decodeJSON(data); err != nil {
				errs = append(errs, fmt.Errorf("as %s: body is not JSON: %v (%q)", m.name, err, truncate(data)))
				continue
			}
		}
		if err := m.payload.Validate(body); err != nil {
			errs = append(errs, fmt.Errorf("as %s: payload %s: %v", m.name, truncate(data), err))
			continue
		}
		return m, nil
	}
	return nil, errors.Join(errs...)
}

// collectHeaderNames gathers the property names of every header schema.
func collectHeaderNames(root map[string]any) []string {
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch n := v.(type) {
		case map[string]any:
			for k, p := range mapAt(n, "properties") {
				_ = p
				seen[k] = true
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(mapAt(mapAt(root, "components"), "schemas"))
	for _, m := range mapAt(mapAt(root, "components"), "messages") {
		walk(mapAt(m.(map[string]any), "headers"))
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// leafPointers lists the JSON pointers of the innermost failures of err,
// naming the offending property for additionalProperties and required.
func leafPointers(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := append([]string(nil), e.InstanceLocation...)
		switch k := e.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, pointer(append(loc, p)))
			}
			return
		case *kind.Required:
			for _, p := range k.Missing {
				out = append(out, pointer(append(loc, p)))
			}
			return
		}
		out = append(out, pointer(loc))
	}
	walk(ve)
	sort.Strings(out)
	return out
}

func pointer(toks []string) string {
	var sb strings.Builder
	for _, t := range toks {
		sb.WriteString("/" + escape(t))
	}
	return sb.String()
}

func escape(tok string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok) }

func isParam(tok string) bool {
	return len(tok) > 2 && tok[0] == '{' && tok[len(tok)-1] == '}'
}

func mapAt(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func sliceOf(v any) []any { s, _ := v.([]any); return s }

func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
