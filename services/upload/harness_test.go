package upload_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/upload"
)

// Callers of the tests.
var (
	admin = testenv.Caller("root@example.com", "admin")
	ann   = testenv.Caller("ann@example.com", "developer")
	bob   = testenv.Caller("bob@example.com", "developer")
)

// world is NATS and the store with an upload service, and the tests' own
// connection and client.
type world struct {
	t      *testing.T
	env    *testenv.Env
	cfg    *config.Config
	d      *svc.Deps
	client uploadapi.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := testenv.Start(t)
	w := &world{t: t, env: env, cfg: env.Config(t, nil)}
	w.d = env.Deps(t, w.cfg)
	return w
}

// start runs an upload service instance on connections of its own until
// the test's end, and points the client at it.
func (w *world) start() {
	w.t.Helper()
	cfg := *w.cfg
	d := w.env.Deps(w.t, &cfg)
	testenv.Run(w.t, d, upload.New(d))
	uploads, err := w.d.JS.ObjectStore(ctxT(w.t), bus.ObjectUploads)
	if err != nil {
		w.t.Fatal(err)
	}
	w.client = uploadapi.Client{T: bus.Client{NC: w.d.NC}, Staging: bus.ObjectStaging{Store: uploads}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// zipOf is an experiment ZIP with manifest m (slug and status added) and a
// page.
func zipOf(t *testing.T, slug string, m map[string]any) []byte {
	t.Helper()
	full := map[string]any{"schema_version": "2.0", "slug": slug, "name": "Experiment " + slug, "status": "active"}
	for k, v := range m {
		full[k] = v
	}
	raw, _ := json.Marshal(full)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{"manifest.json": string(raw), "index.html": "<!doctype html><title>" + slug + "</title>"} {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload sends an experiment as caller and returns the service's answer.
func (w *world) upload(caller uploadapi.Caller, slug string, m map[string]any) uploadapi.Result {
	w.t.Helper()
	res, err := w.client.Upload(ctxT(w.t), bytes.NewReader(zipOf(w.t, slug, m)), caller)
	if err != nil {
		w.t.Fatalf("upload %s: %v", slug, err)
	}
	return res
}

func wantCode(t *testing.T, what string, err error, code apierr.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	if ae := apierr.From(err); ae.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// accessKV is the data_grants bucket.
func (w *world) accessKV() jetstream.KeyValue {
	w.t.Helper()
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketDataGrants)
	if err != nil {
		w.t.Fatal(err)
	}
	return kv
}

// access is the bucket's entry of reader.data, or nil.
func (w *world) access(reader, data string) *uploadapi.Access {
	w.t.Helper()
	e, err := w.accessKV().Get(ctxT(w.t), uploadapi.AccessKey(reader, data))
	if err != nil {
		return nil
	}
	var a uploadapi.Access
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		w.t.Fatal(err)
	}
	return &a
}

// count is the number of documents of a collection matching filter.
func (w *world) count(coll string, filter bson.D) int64 {
	w.t.Helper()
	n, err := w.d.Store.Collection(coll).CountDocuments(ctxT(w.t), filter)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) audits(what string) int64 {
	return w.count(store.AuditLog, bson.D{{Key: "what", Value: what}})
}
