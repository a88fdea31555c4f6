package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Callers of the tests.
var (
	admin  = testenv.Caller("root@example.com", "admin")
	reader = testenv.Caller("reader@example.com", "user")
	other  = testenv.Caller("other@example.com", "user")
	// otherAdmin is another requester who may export data: packages with
	// data are for the experiment's owner (reader, in these tests) and
	// admins only.
	otherAdmin = testenv.Caller("other@example.com", "admin")
)

// fast are options that keep the tests short: quick retries, frequent
// progress and heartbeats, and a clean-up the tests run themselves.
func fast() Options {
	return Options{
		AckWait: 3 * time.Second, MaxAttempts: 3, Backoff: []time.Duration{100 * time.Millisecond},
		ProgressEvery: 20 * time.Millisecond, HeartbeatEvery: 100 * time.Millisecond, CleanupEvery: time.Hour,
	}
}

// world is NATS and the store, with the resources the upload service would
// have made, and the tests' own connection.
type world struct {
	t   *testing.T
	env *testenv.Env
	cfg *config.Config
	d   *svc.Deps
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := testenv.Start(t)
	w := &world{t: t, env: env, cfg: env.Config(t, nil)}
	w.d = env.Deps(t, w.cfg)
	ctx := ctxT(t)
	if err := w.d.Topology.EnsureStreams(ctx, bus.StreamEvents, bus.StreamExportJobs); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Topology.EnsureObjectStores(ctx, bus.ObjectBundles, bus.ObjectExports); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Store.EnsureIndexes(ctx, store.ExperimentsConfig); err != nil {
		t.Fatal(err)
	}
	return w
}

// run starts s, built on deps of its own, until the test's end.
func (w *world) run(s *Service) {
	w.t.Helper()
	testenv.Run(w.t, s.d, s)
}

// service starts an export service instance on a connection of its own,
// as a separate process would have; it stops at the test's end.
func (w *world) service(o Options) *Service {
	w.t.Helper()
	cfg := *w.cfg
	d := w.env.Deps(w.t, &cfg)
	s := NewWith(d, o)
	testenv.Run(w.t, d, s)
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds, for up to limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// experimentZip is an experiment upload with the given page text.
func experimentZip(t *testing.T, slug, page string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	m, _ := json.Marshal(map[string]any{"schema_version": "2.0", "slug": slug, "name": "Experiment " + slug, "status": "active"})
	for _, f := range []struct{ name, body string }{
		{"manifest.json", string(m)},
		{"index.html", "<!doctype html><title>" + slug + "</title><p>" + page + "</p>\n"},
		{"static/app.js", "console.log(" + fmt.Sprintf("%q", page) + ")\n"},
	} {
		fw, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(fw, f.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deploy stores a new version of slug (page makes its content) as the
// upload service does: the normalised bundle in the bundles object store,
// the configuration, and the event.
func (w *world) deploy(slug, page string) experiments.Config {
	w.t.Helper()
	ctx := ctxT(w.t)
	raw := experimentZip(w.t, slug, page)
	b, err := bundle.Open(bytes.NewReader(raw), int64(len(raw)), bundle.Limits{})
	if err != nil {
		w.t.Fatal(err)
	}
	var norm bytes.Buffer
	sum, err := b.Normalise(&norm)
	if err != nil {
		w.t.Fatal(err)
	}
	obs, err := w.d.JS.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, experiments.BundleObject(slug, sum.Checksum), norm.Bytes()); err != nil {
		w.t.Fatal(err)
	}
	manifest, _ := json.Marshal(b.Manifest)
	at := now()
	cfg := w.config(slug)
	if cfg == nil {
		cfg = &experiments.Config{Slug: slug, SlugField: slug, OwnerEmail: reader.Email, CreatedAt: at, Indexes: []experiments.IndexState{}}
	}
	cfg.Name, cfg.Status, cfg.Manifest = b.Manifest.Name, experiments.StatusActive, string(manifest)
	cfg.Version++
	cfg.Checksum = sum.Checksum
	cfg.Versions = append(cfg.Versions, experiments.Version{Version: cfg.Version, Checksum: sum.Checksum, Size: sum.Size,
		Files: len(sum.Files), Manifest: string(manifest), UploadedBy: "dev@example.com", CreatedAt: at})
	w.save(cfg)
	w.announce(cfg, events.ExperimentUpdated, "upload")
	return *cfg
}

// setStatus changes the experiment's status only, as a PATCH does.
func (w *world) setStatus(slug, status string) experiments.Config {
	w.t.Helper()
	cfg := w.config(slug)
	cfg.Status = status
	w.save(cfg)
	w.announce(cfg, events.ExperimentUpdated, "update")
	return *cfg
}

// remove deletes the experiment as the upload service does.
func (w *world) remove(slug string) {
	w.t.Helper()
	ctx := ctxT(w.t)
	cfg := w.config(slug)
	if _, err := w.d.Store.Collection(store.ExperimentsConfig).DeleteOne(ctx, bson.D{{Key: "_id", Value: slug}}); err != nil {
		w.t.Fatal(err)
	}
	if err := scoped.BumpDataSeq(ctx, w.d.Store.DB, slug); err != nil {
		w.t.Fatal(err)
	}
	cfg.Seq++
	w.announce(cfg, events.ExperimentDeleted, "delete")
}

func (w *world) config(slug string) *experiments.Config {
	w.t.Helper()
	var cfg experiments.Config
	err := w.d.Store.Collection(store.ExperimentsConfig).FindOne(ctxT(w.t), bson.D{{Key: "_id", Value: slug}}).Decode(&cfg)
	if err != nil {
		return nil
	}
	return &cfg
}

func (w *world) save(cfg *experiments.Config) {
	w.t.Helper()
	cfg.Seq++
	cfg.UpdatedAt = now()
	_, err := w.d.Store.Collection(store.ExperimentsConfig).ReplaceOne(ctxT(w.t), bson.D{{Key: "_id", Value: cfg.Slug}}, cfg,
		options.Replace().SetUpsert(true))
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) announce(cfg *experiments.Config, subject, reason string) {
	w.t.Helper()
	ev := events.Experiment{Slug: cfg.Slug, Version: cfg.Version, Checksum: cfg.Checksum, Status: cfg.Status,
		OwnerEmail: cfg.OwnerEmail, Seq: cfg.Seq, Reason: reason, At: time.Now().UTC()}
	data, _ := json.Marshal(ev)
	id := fmt.Sprintf("%s-%s-%d-%d", subject, cfg.Slug, cfg.CreatedAt.UnixMilli(), cfg.Seq)
	if _, err := w.d.JS.Publish(ctxT(w.t), subject, data, jetstream.WithMsgID(id)); err != nil {
		w.t.Fatal(err)
	}
}

// write stores documents in the experiment's collection through its scope,
// as its actor would.
func (w *world) write(slug, coll string, docs ...bson.M) {
	w.t.Helper()
	sc, err := scoped.New(w.d.Store.DB, slug, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := sc.InsertOne(ctxT(w.t), scoped.Own(coll), d); err != nil {
			w.t.Fatal(err)
		}
	}
}

// call is a call of an export service endpoint, as the edge makes it.
func call[Req, Rep any](t *testing.T, nc *nats.Conn, e contract.Endpoint[Req, Rep], req Req) (Rep, error) {
	t.Helper()
	return e.Call(ctxT(t), bus.Client{NC: nc}, req)
}

func (w *world) request(slug string, typ exportapi.Type, c uploadapi.Caller) exportapi.Requested {
	w.t.Helper()
	r, err := call(w.t, w.d.NC, exportapi.EndpointRequest, exportapi.Request{Slug: slug, Type: typ, Caller: c})
	if err != nil {
		w.t.Fatalf("request %s export of %s: %v", typ, slug, err)
	}
	return r
}

func (w *world) get(id string, c uploadapi.Caller) (exportapi.Log, error) {
	return call(w.t, w.d.NC, exportapi.EndpointGet, exportapi.Get{ID: id, Caller: c})
}

// log reads an export's log straight from the store.
func (w *world) log(id string) exportapi.Log {
	w.t.Helper()
	var l exportapi.Log
	if err := w.d.Store.Collection(store.ExportLogs).FindOne(ctxT(w.t), bson.D{{Key: "_id", Value: id}}).Decode(&l); err != nil {
		w.t.Fatalf("read export %s: %v", id, err)
	}
	return l
}

// waitStatus waits until the export has one of the final statuses and
// returns it; it fails the test on any other final status than want.
func (w *world) waitStatus(id, want string) exportapi.Log {
	w.t.Helper()
	var l exportapi.Log
	eventually(w.t, 30*time.Second, "export "+id+" to be "+want, func() bool {
		l = w.log(id)
		return l.Status == want || (!exportapi.Live(l.Status) && l.Status != exportapi.StatusReady && want == exportapi.StatusReady)
	})
	if l.Status != want {
		w.t.Fatalf("export %s is %s (%s), want %s", id, l.Status, l.Error, want)
	}
	return l
}

// wantCode fails unless err is the catalogue error code.
func wantCode(t *testing.T, what string, err error, code apierr.Code) *apierr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	ae := apierr.From(err)
	if ae.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
	return ae
}

// stored reads a stored file whole, or nil when there is none.
func stored(t *testing.T, files exportstore.Store, key string) []byte {
	t.Helper()
	r, _, err := files.Open(ctxT(t), key)
	if err != nil {
		if apierr.From(err).Code == apierr.CodeNotFound {
			return nil
		}
		t.Fatalf("open %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objects lists the keys of the exports object store.
func (w *world) objects() []string {
	w.t.Helper()
	obs, err := w.d.JS.ObjectStore(ctxT(w.t), bus.ObjectExports)
	if err != nil {
		w.t.Fatal(err)
	}
	// A listing reads the bucket's metadata through a watcher of its own;
	// on a machine busy enough to delay its end-of-data marker it can miss
	// it, so a listing that does not end soon is tried again, a bounded
	// number of times.
	var infos []*jetstream.ObjectInfo
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		infos, err = obs.List(ctx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrNoObjectsFound) {
			break
		}
		if attempt == 5 || !errors.Is(err, context.DeadlineExceeded) {
			w.t.Fatal(err)
		}
	}
	var out []string
	for _, in := range infos {
		out = append(out, in.Name)
	}
	return out
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// progressRecorder collects what is published on an export's progress
// subject.
type progressRecorder struct {
	mu   sync.Mutex
	logs []exportapi.Log
}

func (w *world) recordProgress() *progressRecorder {
	w.t.Helper()
	r := &progressRecorder{}
	sub, err := w.d.NC.Subscribe(exportapi.ProgressWildcard, func(m *nats.Msg) {
		var l exportapi.Log
		if json.Unmarshal(m.Data, &l) == nil {
			r.mu.Lock()
			r.logs = append(r.logs, l)
			r.mu.Unlock()
		}
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := w.d.NC.Flush(); err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (r *progressRecorder) of(id string) []exportapi.Log {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exportapi.Log
	for _, l := range r.logs {
		if l.ID == id {
			out = append(out, l)
		}
	}
	return out
}
