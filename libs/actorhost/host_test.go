package actorhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// testHost is the Host of one experiment in these tests: the data
// operations go through the real libs/scoped to the embedded store; the
// key-value store is a map (the worker's is a NATS bucket, tested there).
// Every call it serves, and every result it gives, is checked against
// schemas/messages/actor-host-call.json.
type testHost struct {
	t      testing.TB
	scope  *scoped.Scope
	config map[string]any

	mu      sync.Mutex
	kv      map[string]kvEntry
	rev     uint64
	logs    []logLine
	largest int // the largest result served, in bytes

	calls atomic.Int64
}

type kvEntry struct {
	value []byte
	rev   uint64
}

type logLine struct {
	level int
	msg   string
}

func newTestHost(t testing.TB, db *mongo.Database, slug string, dataScope []string, config map[string]any) *testHost {
	t.Helper()
	// The test host grants every data_scope slug; the actorworker asks
	// the grants (scoped.WithReadCheck).
	s, err := scoped.New(db, slug, dataScope, scoped.WithReadCheck(func(context.Context, string) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	return &testHost{t: t, scope: s, config: config, kv: map[string]kvEntry{}}
}

func (h *testHost) Log(_ context.Context, level int, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, logLine{level, msg})
}

func (h *testHost) logged(substr string) (logLine, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		if strings.Contains(l.msg, substr) {
			return l, true
		}
	}
	return logLine{}, false
}

func (h *testHost) Call(ctx context.Context, op string, req []byte) ([]byte, error) {
	h.calls.Add(1)
	out, err := h.run(ctx, op, req)
	h.mu.Lock()
	h.largest = max(h.largest, len(out))
	h.mu.Unlock()
	if op != "config" || h.calls.Load() < 100 { // a flood is checked only at its start
		checkHostCall(h.t, op, req, out, err)
	}
	return out, err
}

func (h *testHost) run(ctx context.Context, op string, req []byte) ([]byte, error) {
	switch op {
	case "db.find", "db.find_one":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Filter     json.RawMessage `json:"filter"`
			Sort       json.RawMessage `json:"sort"`
			Projection json.RawMessage `json:"projection"`
			Limit      int64           `json:"limit"`
			Skip       int64           `json:"skip"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		if op == "db.find_one" && bytes.Contains(req, []byte(`"limit"`)) {
			return nil, apierr.New(apierr.CodeBadRequest, "db.find_one takes no limit").OnField("/limit")
		}
		o := scoped.FindOptions{Limit: r.Limit, Skip: r.Skip}
		filter, err := optDoc(r.Filter)
		if err != nil {
			return nil, err
		}
		if r.Sort != nil {
			if o.Sort, err = optDoc(r.Sort); err != nil {
				return nil, err
			}
		}
		if r.Projection != nil {
			if o.Projection, err = optDoc(r.Projection); err != nil {
				return nil, err
			}
		}
		ref := scoped.From(r.Slug, r.Collection)
		if op == "db.find_one" {
			doc, err := h.scope.FindOne(ctx, ref, filter, o)
			if err != nil {
				return nil, err
			}
			if doc == nil {
				return []byte(`{"document":null}`), nil
			}
			j, err := bson.MarshalExtJSON(doc, false, false)
			if err != nil {
				return nil, err
			}
			return append(append([]byte(`{"document":`), j...), '}'), nil
		}
		docs, err := h.scope.Find(ctx, ref, filter, o)
		if err != nil {
			return nil, err
		}
		return documents(docs)
	case "db.count":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Filter     json.RawMessage `json:"filter"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		filter, err := optDoc(r.Filter)
		if err != nil {
			return nil, err
		}
		n, err := h.scope.Count(ctx, scoped.From(r.Slug, r.Collection), filter)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int64{"count": n})
	case "db.aggregate":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Pipeline   json.RawMessage `json:"pipeline"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		p, err := scoped.ParseArray(r.Pipeline)
		if err != nil {
			return nil, err
		}
		docs, err := h.scope.Aggregate(ctx, scoped.From(r.Slug, r.Collection), p)
		if err != nil {
			return nil, err
		}
		return documents(docs)
	case "db.insert":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Documents  json.RawMessage `json:"documents"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		docs, err := scoped.ParseArray(r.Documents)
		if err != nil {
			return nil, err
		}
		ids, err := h.scope.InsertMany(ctx, scoped.From(r.Slug, r.Collection), docs)
		if err != nil {
			return nil, err
		}
		return bson.MarshalExtJSON(bson.D{{Key: "inserted_ids", Value: ids}}, false, false)
	case "db.update":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Filter     json.RawMessage `json:"filter"`
			Update     json.RawMessage `json:"update"`
			Many       bool            `json:"many"`
			Upsert     bool            `json:"upsert"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		filter, err := scoped.ParseDocument(r.Filter)
		if err != nil {
			return nil, err
		}
		update, err := scoped.ParseDocument(r.Update)
		if err != nil {
			return nil, err
		}
		f := h.scope.UpdateOne
		if r.Many {
			f = h.scope.UpdateMany
		}
		res, err := f(ctx, scoped.From(r.Slug, r.Collection), filter, update, scoped.UpdateOptions{Upsert: r.Upsert})
		if err != nil {
			return nil, err
		}
		d := bson.D{{Key: "matched", Value: res.Matched}, {Key: "modified", Value: res.Modified}}
		if res.UpsertedID != nil {
			d = append(d, bson.E{Key: "upserted_id", Value: res.UpsertedID})
		}
		return bson.MarshalExtJSON(d, false, false)
	case "db.delete":
		var r struct {
			Collection string          `json:"collection"`
			Slug       string          `json:"slug"`
			Filter     json.RawMessage `json:"filter"`
			Many       bool            `json:"many"`
		}
		if err := strict(req, &r); err != nil {
			return nil, err
		}
		filter, err := scoped.ParseDocument(r.Filter)
		if err != nil {
			return nil, err
		}
		f := h.scope.DeleteOne
		if r.Many {
			f = h.scope.DeleteMany
		}
		n, err := f(ctx, scoped.From(r.Slug, r.Collection), filter)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int64{"deleted": n})
	case "kv.get", "kv.put", "kv.delete":
		return h.kvOp(op, req)
	case "config":
		if err := strict(req, &struct{}{}); err != nil {
			return nil, err
		}
		if h.config == nil {
			return []byte("{}"), nil
		}
		return json.Marshal(h.config)
	}
	return nil, apierr.New(apierr.CodeBadRequest, "no host operation %q", op)
}

var kvKey = regexp.MustCompile(`^[A-Za-z0-9_.=-]{1,128}$`)

func (h *testHost) kvOp(op string, req []byte) ([]byte, error) {
	var r struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	if err := strict(req, &r); err != nil {
		return nil, err
	}
	if !kvKey.MatchString(r.Key) {
		return nil, apierr.New(apierr.CodeValidationFailed, "key %q is not 1 to 128 of A-Z a-z 0-9 _ . = -", r.Key).OnField("/key")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch op {
	case "kv.get":
		e, ok := h.kv[r.Key]
		if !ok {
			return []byte(`{"value":null,"revision":0}`), nil
		}
		return json.Marshal(map[string]any{"value": e.value, "revision": e.rev})
	case "kv.put":
		if r.Value == nil {
			return nil, apierr.New(apierr.CodeBadRequest, "value is missing").OnField("/value")
		}
		v, err := base64.StdEncoding.DecodeString(*r.Value)
		if err != nil {
			return nil, apierr.New(apierr.CodeBadRequest, "value is not base64").OnField("/value")
		}
		if len(v) > 64<<10 {
			return nil, apierr.New(apierr.CodePayloadTooLarge, "the value is %d bytes, over the limit of %d", len(v), 64<<10).OnField("/value")
		}
		h.rev++
		h.kv[r.Key] = kvEntry{v, h.rev}
		return json.Marshal(map[string]uint64{"revision": h.rev})
	}
	delete(h.kv, r.Key)
	return []byte("{}"), nil
}

// strict decodes a host call's request, refusing unknown fields as the
// worker does.
func strict(req []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(req))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return apierr.New(apierr.CodeInvalidJson, "the request is not JSON: %v", err)
		}
		return apierr.New(apierr.CodeBadRequest, "the request is malformed: %v", err)
	}
	return nil
}

// optDoc is an optional Extended JSON document: nil (not a nil bson.D,
// which the scope would take for a document) when absent.
func optDoc(raw json.RawMessage) (any, error) {
	if raw == nil {
		return nil, nil
	}
	return scoped.ParseDocument(raw)
}

func documents(docs []bson.Raw) ([]byte, error) {
	j, err := scoped.MarshalResults(docs)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(`{"documents":`), j...), '}'), nil
}

// Schemas.

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// schema is schemas/messages/name.json, compiled.
func schema(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	schemasOnce.Do(func() {
		dir := filepath.Join(repoRoot(t), "schemas", "messages")
		c := jsonschema.NewCompiler()
		schemas = map[string]*jsonschema.Schema{}
		for _, n := range []string{"actor-init", "actor-request", "actor-response", "actor-host-call", "actor-host-call#/$defs/errorEnvelope"} {
			file, frag, _ := strings.Cut(n, "#")
			u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, file+".json"))}).String()
			if frag != "" {
				u += "#" + frag
			}
			s, err := c.Compile(u)
			if err != nil {
				schemasErr = fmt.Errorf("compile %s: %w", n, err)
				return
			}
			schemas[n] = s
		}
	})
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemas[name]
}

// valid checks data against the schema name.
func valid(t testing.TB, name string, data []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not JSON: %v: %.200s", name, err, data)
		return
	}
	if err := schema(t, name).Validate(v); err != nil {
		t.Errorf("%s: %.300s: %v", name, data, err)
	}
}

// checkHostCall checks one host call, and the result envelope the guest
// gets for it, against actor-host-call.json. Requests the platform refused
// are checked only for the error envelope: a hostile guest sends what it
// likes.
func checkHostCall(t testing.TB, op string, req, out []byte, err error) {
	t.Helper()
	if err != nil {
		valid(t, "actor-host-call#/$defs/errorEnvelope", errorEnvelope(err))
		return
	}
	env := append(append([]byte(`{"ok":`), out...), '}')
	valid(t, "actor-host-call", mustJSON(t, map[string]any{"op": op, "request": json.RawMessage(req), "result": json.RawMessage(env)}))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// database is a database on an embedded store of the test's own.
func database(t *testing.T) *mongo.Database {
	t.Helper()
	env := testenv.Start(t)
	client, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database("actorhost_test")
}
