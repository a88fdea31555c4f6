package actorworker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// secretsGuest is testdata/secrets (the SDK's actorsdk.Secret) built for
// the sandbox.
func secretsGuest(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/secrets") }

// syncBuffer is a log sink tests read while the worker writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// errorCode is the code of a refused call's error envelope, or "".
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	if r.err != nil {
		return string(r.err.Code)
	}
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// An actor reads its own experiment's secrets through secret.get, from
// the next call after every change, and never another experiment's. The
// value reaches the guest and nothing else: no log line of the worker at
// debug level, no span attribute or event, no error message.
func TestSecretGetFromARealActor(t *testing.T) {
	w := newWorld(t)
	logs := &syncBuffer{}
	d := w.env.Deps(t, w.env.Config(t, nil))
	d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(d)
	s.tune = w.tune
	testenv.Run(t, d, s)

	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	w.deploy("alpha", nil, secretsGuest(t))
	w.deploy("beta", nil, secretsGuest(t))
	w.serving("alpha", 20*time.Second)
	w.serving("beta", 20*time.Second)

	ctx := ctxT(t)
	if err := w.d.Store.EnsureIndexes(ctx, store.ExperimentSecrets); err != nil {
		t.Fatal(err)
	}
	sl, err := store.NewSealer(testenv.SecretKey, "")
	if err != nil {
		t.Fatal(err)
	}
	secrets := w.d.Store.Secrets(sl)
	const value = "sk-actor-5f4e3d2c1b0a"
	if _, _, err := secrets.Put(ctx, "alpha", "API_KEY", value, "ann@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}

	r := w.call("alpha", "GET", "/secret/API_KEY", "", nil)
	if r.status != 200 || r.json(t)["value"] != value {
		t.Fatalf("alpha reads its secret: %v", r)
	}
	// Another experiment's actor asks for the same name: its own, unset.
	if r := w.call("beta", "GET", "/secret/API_KEY", "", nil); r.status != 404 || r.errorCode(t) != "not_found" {
		t.Fatalf("beta reads alpha's secret: %v", r)
	}
	for _, c := range []struct{ path, code string }{
		{"/secret/NOT_SET", "not_found"},
		{"/secret/api_key", "validation_failed"},
		{"/secret/" + strings.Repeat("A", 65), "validation_failed"},
		{"/secret/A.B", "validation_failed"},
	} {
		if got := w.call("alpha", "GET", c.path, "", nil).errorCode(t); got != c.code {
			t.Errorf("GET %s: %q, want %s", c.path, got, c.code)
		}
	}

	// A new value holds from the next call; a deletion too.
	if _, _, err := secrets.Put(ctx, "alpha", "API_KEY", value+"-v2", "ann@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	if r := w.call("alpha", "GET", "/secret/API_KEY", "", nil); r.json(t)["value"] != value+"-v2" {
		t.Fatalf("after a change: %v", r)
	}
	if _, err := secrets.Remove(ctx, "alpha", "API_KEY"); err != nil {
		t.Fatal(err)
	}
	if r := w.call("alpha", "GET", "/has/API_KEY", "", nil); r.status != 200 || r.json(t)["set"] != false {
		t.Fatalf("after a deletion: %v", r)
	}

	// A value sealed with a key the worker does not have is gone; one moved
	// here from beta's record does not open (internal, logged without it).
	other, _ := store.NewSealer("a-key-this-platform-never-had-0123456789", "")
	if _, _, err := w.d.Store.Secrets(other).Put(ctx, "alpha", "OLD_KEY", value, "ann@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	if got := w.call("alpha", "GET", "/secret/OLD_KEY", "", nil).errorCode(t); got != "gone" {
		t.Errorf("a secret of a lost key: %q, want gone", got)
	}
	if _, _, err := secrets.Put(ctx, "beta", "MOVED", value, "bob@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	var moved bson.M
	if err := w.d.Store.Collection(store.ExperimentSecrets).FindOne(ctx, bson.D{{Key: "_id", Value: "beta/MOVED"}}).Decode(&moved); err != nil {
		t.Fatal(err)
	}
	moved["_id"], moved["slug"] = "alpha/MOVED", "alpha"
	if _, err := w.d.Store.Collection(store.ExperimentSecrets).InsertOne(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if r := w.call("alpha", "GET", "/secret/MOVED", "", nil); r.status != 500 || strings.Contains(string(r.body), value) {
		t.Errorf("a value moved from beta: %v", r)
	}
	if r := w.call("beta", "GET", "/secret/MOVED", "", nil); r.json(t)["value"] != value {
		t.Errorf("beta's own MOVED: %v", r)
	}

	// The value went nowhere else.
	spans := 0
	for _, sp := range rec.Ended() {
		if sp.Name() == "actor host secret.get" {
			spans++
		}
		for _, a := range sp.Attributes() {
			if strings.Contains(a.Value.Emit(), "sk-actor") {
				t.Errorf("span %s has the value in attribute %s", sp.Name(), a.Key)
			}
		}
		for _, e := range sp.Events() {
			for _, a := range e.Attributes {
				if strings.Contains(a.Value.Emit(), "sk-actor") {
					t.Errorf("span %s has the value in event %s", sp.Name(), e.Name)
				}
			}
		}
		if strings.Contains(sp.Status().Description, "sk-actor") {
			t.Errorf("span %s has the value in its status", sp.Name())
		}
	}
	if spans < 10 {
		t.Errorf("%d secret.get spans recorded, want every call's", spans)
	}
	out := logs.String()
	if !strings.Contains(out, "actor host operation failed") || !strings.Contains(out, "secret.get") {
		t.Errorf("the moved value's failure was not logged; the check below would prove nothing:\n%s", out)
	}
	if strings.Contains(out, "sk-actor") {
		t.Errorf("the worker's log holds the value:\n%s", out)
	}
}

// Between a change of SECRET_KEY and the upload service's resealing, a
// worker with SECRET_KEY_PREVIOUS opens the values of the previous key, so
// actors keep working; without it they are gone until set again.
func TestSecretGetDuringRotation(t *testing.T) {
	const newKey = "the-new-secret-key-for-workers-0123456789"
	w := newWorld(t)
	d := w.env.Deps(t, w.env.Config(t, map[string]string{"SECRET_KEY": newKey, "SECRET_KEY_PREVIOUS": testenv.SecretKey}))
	s := New(d)
	s.tune = w.tune
	testenv.Run(t, d, s)
	w.deploy("alpha", nil, secretsGuest(t))
	w.serving("alpha", 20*time.Second)

	ctx := ctxT(t)
	old, _ := store.NewSealer(testenv.SecretKey, "")
	if _, _, err := w.d.Store.Secrets(old).Put(ctx, "alpha", "API_KEY", "sk-old-key-value", "ann@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	if r := w.call("alpha", "GET", "/secret/API_KEY", "", nil); r.status != 200 || r.json(t)["value"] != "sk-old-key-value" {
		t.Fatalf("a value of the previous key: %v", r)
	}
	cur, _ := store.NewSealer(newKey, "")
	if _, _, err := w.d.Store.Secrets(cur).Put(ctx, "alpha", "NEW_ONE", "sk-new-key-value", "ann@example.com", uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	if r := w.call("alpha", "GET", "/secret/NEW_ONE", "", nil); r.status != 200 || r.json(t)["value"] != "sk-new-key-value" {
		t.Fatalf("a value of the current key: %v", r)
	}
}
