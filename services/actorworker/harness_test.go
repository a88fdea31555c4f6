package actorworker

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

var (
	guestsMu sync.Mutex
	guests   = map[string][]byte{}
)

// guest builds the Go package at pkg (relative to the repository's root)
// for the sandbox, once per test binary.
func guest(t *testing.T, pkg string) []byte {
	t.Helper()
	guestsMu.Lock()
	defer guestsMu.Unlock()
	if b, ok := guests[pkg]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), "actor.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guests[pkg] = b
	return b
}

// probe is testdata/probe built for the sandbox.
func probe(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/probe") }

// world is NATS and the store, with any number of worker instances on
// their own connections, as separate processes would be.
type world struct {
	t    *testing.T
	env  *testenv.Env
	d    *svc.Deps // the tests' own connection
	tune tuning
	// js, when set, is the JavaScript runtime module the workers run
	// (jsactor_test.go).
	js func() ([]byte, error)
}

func newWorld(t *testing.T) *world {
	env := testenv.Start(t)
	w := &world{t: t, env: env, tune: defaults}
	w.d = env.Deps(t, env.Config(t, nil))
	ctx := ctxT(t)
	if err := w.d.Topology.EnsureStreams(ctx, bus.StreamEvents, bus.StreamActorJobs); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Topology.EnsureObjectStores(ctx, bus.ObjectBundles); err != nil {
		t.Fatal(err)
	}
	if err := w.d.Topology.EnsureBuckets(ctx, bus.BucketActorLeases, bus.BucketActorState, bus.BucketActorKV); err != nil {
		t.Fatal(err)
	}
	return w
}

// worker starts one worker instance; it stops at the test's end unless
// stopped before.
func (w *world) worker() *Service {
	w.t.Helper()
	d := w.env.Deps(w.t, w.env.Config(w.t, nil))
	s := New(d)
	s.tune = w.tune
	if w.js != nil {
		s.js.source = w.js
	}
	testenv.Run(w.t, d, s)
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deploy stores a version of slug with the probe as its actor, as the
// upload service does, and announces it.
func (w *world) deploy(slug string, manifest map[string]any, wasm []byte) experiments.Config {
	w.t.Helper()
	m := map[string]any{"schema_version": "2.0", "slug": slug, "name": slug, "status": "active", "actor": map[string]any{"module": "actor.wasm"}}
	for k, v := range manifest {
		m[k] = v
	}
	return w.deployFiles(slug, m, map[string][]byte{"actor.wasm": wasm})
}

// deployFiles stores a version of slug with manifest m (whole) and files
// beside it, and announces it.
func (w *world) deployFiles(slug string, m map[string]any, files map[string][]byte) experiments.Config {
	w.t.Helper()
	ctx := ctxT(w.t)
	raw, _ := json.Marshal(m)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files["manifest.json"] = raw
	for name, data := range files {
		f, _ := zw.Create(name)
		_, _ = f.Write(data)
	}
	_ = zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	checksum := hex.EncodeToString(sum[:])
	obs, err := w.d.JS.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, experiments.BundleObject(slug, checksum), buf.Bytes()); err != nil {
		w.t.Fatal(err)
	}
	coll := w.d.Store.Collection(store.ExperimentsConfig)
	var cur experiments.Config
	_ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&cur)
	status, _ := m["status"].(string)
	cfg := experiments.Config{
		Slug: slug, SlugField: slug, Name: slug, OwnerEmail: "owner@example.com", Status: status,
		Version: cur.Version + 1, Checksum: checksum, Manifest: string(raw), Seq: cur.Seq + 1,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(),
	}
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: slug}}, cfg, options.Replace().SetUpsert(true)); err != nil {
		w.t.Fatal(err)
	}
	w.announce(cfg, events.ExperimentUpdated)
	return cfg
}

// setStatus changes an experiment's status and announces it.
func (w *world) setStatus(slug, status string) {
	w.t.Helper()
	ctx := ctxT(w.t)
	coll := w.d.Store.Collection(store.ExperimentsConfig)
	var cfg experiments.Config
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&cfg); err != nil {
		w.t.Fatal(err)
	}
	cfg.Status, cfg.Seq = status, cfg.Seq+1
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: slug}}, cfg); err != nil {
		w.t.Fatal(err)
	}
	w.announce(cfg, events.ExperimentUpdated)
}

// remove deletes an experiment and announces it.
func (w *world) remove(slug string) {
	w.t.Helper()
	ctx := ctxT(w.t)
	coll := w.d.Store.Collection(store.ExperimentsConfig)
	var cfg experiments.Config
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: slug}}).Decode(&cfg); err != nil {
		w.t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: slug}}); err != nil {
		w.t.Fatal(err)
	}
	cfg.Seq++
	w.announce(cfg, events.ExperimentDeleted)
}

func (w *world) announce(cfg experiments.Config, subject string) {
	w.t.Helper()
	m, _ := json.Marshal(events.Experiment{Slug: cfg.Slug, Version: cfg.Version, Checksum: cfg.Checksum, Status: cfg.Status, HasActor: true, Seq: cfg.Seq, At: time.Now().UTC()})
	if _, err := w.d.JS.Publish(ctxT(w.t), subject, m, jetstream.WithMsgID(fmt.Sprintf("%s-%s-%d", subject, cfg.Slug, cfg.Seq))); err != nil {
		w.t.Fatal(err)
	}
}

// reply is an actor's answer to a call: a response envelope, or an error.
type reply struct {
	status     int
	headers    map[string][]string
	body       []byte
	err        *apierr.Error
	retryAfter string
}

// call sends a request envelope to slug's actor as an edge would.
func (w *world) call(slug, method, path, query string, body []byte) reply {
	w.t.Helper()
	return w.callWithin(10*time.Second, slug, method, path, query, body)
}

func (w *world) callWithin(timeout time.Duration, slug, method, path, query string, body []byte) reply {
	w.t.Helper()
	return w.send(timeout, false, slug, method, path, query, body)
}

// callAsEdge calls slug's actor as an edge does: saying when it stops
// waiting, after timeout.
func (w *world) callAsEdge(timeout time.Duration, slug, method, path string) reply {
	w.t.Helper()
	path, query, _ := strings.Cut(path, "?")
	return w.send(timeout, true, slug, method, path, query, nil)
}

func (w *world) send(timeout time.Duration, withDeadline bool, slug, method, path, query string, body []byte) reply {
	w.t.Helper()
	if body == nil {
		body = []byte{}
	}
	env := actorapi.Request{Method: method, Path: path, Query: query, Headers: map[string][]string{"Accept": {"*/*"}}, Body: body,
		Caller: actorapi.Caller{Email: "ada@example.com", Roles: []string{"user"}}, RequestID: "req-" + path}
	data, _ := json.Marshal(env)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msg := nats.NewMsg(actorapi.Subject(slug))
	msg.Data = data
	bus.Inject(telemetry.WithRequestID(ctx, env.RequestID), msg.Header, env.RequestID)
	if withDeadline {
		deadline, _ := ctx.Deadline()
		msg.Header.Set(actorapi.HeaderDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	}
	m, err := w.d.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		code := apierr.CodeUnavailable
		if err == context.DeadlineExceeded {
			code = apierr.CodeTimeout
		}
		return reply{err: apierr.Wrap(code, err, err.Error())}
	}
	if code := m.Header.Get(bus.HeaderErrorCode); code != "" {
		var be apierr.BodyError
		_ = json.Unmarshal(m.Data, &be)
		return reply{err: apierr.FromBody(be), retryAfter: m.Header.Get(actorapi.HeaderRetryAfter)}
	}
	var res actorapi.Response
	if err := json.Unmarshal(m.Data, &res); err != nil {
		w.t.Fatalf("reply is not a response envelope: %v: %s", err, m.Data)
	}
	return reply{status: res.Status, headers: res.Headers, body: res.Body}
}

func (r reply) String() string {
	if r.err != nil {
		return fmt.Sprintf("error %s: %s", r.err.Code, r.err.Message)
	}
	return fmt.Sprintf("%d %s", r.status, r.body)
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	if r.err != nil {
		t.Fatalf("call failed: %v", r)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
	return m
}

// state is slug's actor state in actor_state, or nil.
func (w *world) state(slug string) *actorapi.State {
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketActorState)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := kv.Get(ctxT(w.t), slug)
	if err != nil {
		return nil
	}
	var st actorapi.State
	_ = json.Unmarshal(e.Value(), &st)
	return &st
}

// lease is slug's lease, or nil.
func (w *world) lease(slug string) *actorapi.Lease {
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketActorLeases)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := kv.Get(ctxT(w.t), slug)
	if err != nil {
		return nil
	}
	var l actorapi.Lease
	_ = json.Unmarshal(e.Value(), &l)
	return &l
}

// states records every state slug's actor passes through from now on.
func (w *world) states(slug string) func() []string {
	kv, err := w.d.JS.KeyValue(ctxT(w.t), bus.BucketActorState)
	if err != nil {
		w.t.Fatal(err)
	}
	watch, err := kv.Watch(context.Background(), slug, jetstream.UpdatesOnly())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = watch.Stop() })
	var mu sync.Mutex
	var seen []string
	go func() {
		for e := range watch.Updates() {
			if e == nil {
				continue
			}
			var st actorapi.State
			state := "deleted"
			if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &st) == nil {
				state = st.State
			}
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != state {
				seen = append(seen, state)
			}
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	// within is what the test expects; failing only after a minute keeps
	// a machine busy with other work (two test runs at once on two cores)
	// from failing a test that is merely slow there.
	within = max(within, time.Minute)
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// serving waits until slug's actor answers a call.
func (w *world) serving(slug string, within time.Duration) {
	w.t.Helper()
	var last reply
	start := time.Now()
	for {
		// A call sent to an instance as it dies is lost: wait for each
		// attempt only briefly.
		last = w.callWithin(2*time.Second, slug, "GET", "/init", "", nil)
		if last.err == nil && last.status == 200 {
			return
		}
		if time.Since(start) > within {
			w.t.Fatalf("%s did not answer within %v; last reply: %v", slug, within, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
