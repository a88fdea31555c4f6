package actorworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/actorworker/jsruntime"
)

// jsWait bounds the first start of a JavaScript actor: a cold compilation
// of the runtime takes seconds, more on a busy machine.
const jsWait = 2 * time.Minute

// testJSRuntime is the JavaScript runtime module: the one this test binary
// embeds (make build, make test and make jsruntime write it), or, in a
// fresh clone where it was never built, one built here as make jsruntime
// builds it.
var testJSRuntime = sync.OnceValues(func() ([]byte, error) {
	b, err := jsruntime.Module()
	if !errors.Is(err, jsruntime.ErrNotBuilt) {
		return b, err
	}
	dir, err := os.MkdirTemp("", "gnome-jsruntime-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "jsruntime.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s", "-o", out, "./libs/actorjs/cmd/jsruntime")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the JavaScript runtime (make jsruntime): %v\n%s", err, b)
	}
	return os.ReadFile(out)
})

// jsCacheDir is a compilation cache the tests' workers share, kept across
// test runs: compiling the runtime cold takes seconds, and each world has
// a data directory of its own. The cache is keyed by the module's hash and
// wazero's version, so a stale entry is never used.
func jsCacheDir(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), "gnome-actorworker-test-compilation-cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// jsWorker starts a worker running JavaScript actors on source (nil: the
// test runtime), its logs also written to logs when given.
func (w *world) jsWorker(source func() ([]byte, error), logs *syncBuffer) *Service {
	w.t.Helper()
	return w.jsWorkerWith(source, logs, nil)
}

// jsWorkerWith is jsWorker with prepare run on the service before it
// starts.
func (w *world) jsWorkerWith(source func() ([]byte, error), logs *syncBuffer, prepare func(*Service)) *Service {
	w.t.Helper()
	d := w.env.Deps(w.t, w.env.Config(w.t, nil))
	if logs != nil {
		d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s := New(d)
	s.tune = w.tune
	if prepare != nil {
		prepare(s)
	}
	if source == nil {
		source = func() ([]byte, error) {
			b, err := testJSRuntime()
			if err != nil {
				w.t.Errorf("no JavaScript runtime for the tests: %v", err)
			}
			return b, err
		}
	}
	s.js.source = source
	eng, err := actorhost.NewEngine(jsCacheDir(w.t))
	if err != nil {
		w.t.Fatal(err)
	}
	s.engine = eng
	testenv.Run(w.t, d, s)
	return s
}

// deployJS stores a version of slug whose actor is script, among files,
// with the actor fields of extra and the manifest fields of top.
func (w *world) deployJS(slug, script string, files map[string]string, extra, top map[string]any) {
	w.t.Helper()
	actor := map[string]any{"script": script}
	for k, v := range extra {
		actor[k] = v
	}
	m := map[string]any{"schema_version": "2.0", "slug": slug, "name": slug, "status": "active", "actor": actor}
	for k, v := range top {
		m[k] = v
	}
	bs := map[string][]byte{}
	for name, src := range files {
		bs[name] = []byte(src)
	}
	w.deployFiles(slug, m, bs)
}

// failedWith waits for slug's actor to fail, and returns its last error.
func (w *world) failedWith(slug string) string {
	w.t.Helper()
	var st *actorapi.State
	eventually(w.t, jsWait, slug+" failed", func() bool {
		st = w.state(slug)
		return st != nil && st.State == actorapi.StateFailed
	})
	return st.LastError
}

// A build without the runtime fails every JavaScript actor's start at
// once, for good and saying why; WebAssembly actors run on.
func TestJavaScriptActorWithoutRuntime(t *testing.T) {
	w := newWorld(t)
	w.jsWorker(func() ([]byte, error) { return nil, jsruntime.ErrNotBuilt }, nil)
	w.deployJS("nojs", "actor.js", map[string]string{"actor.js": "gnome.route('GET', '/init', () => 'ok')"}, nil, nil)
	w.deploy("wasm", nil, probe(t))
	if msg := w.failedWith("nojs"); !strings.Contains(msg, "no JavaScript runtime") || !strings.Contains(msg, "make build") {
		t.Fatalf("last error %q", msg)
	}
	if r := w.call("nojs", "GET", "/init", "", nil); r.err == nil || r.err.Code != apierr.CodeUnavailable {
		t.Fatalf("a call to the failed actor: %v", r)
	}
	w.serving("wasm", 30*time.Second)
}

// The scripts a JavaScript actor receives are bounded; scripts over the
// worker's limit fail the start for good, before the runtime is needed.
func TestJavaScriptActorScriptsOverTheLimit(t *testing.T) {
	w := newWorld(t)
	w.tune.MaxModule = 4 << 10
	w.jsWorker(func() ([]byte, error) { return nil, errors.New("the runtime is not needed") }, nil)
	w.deployJS("big", "api/main.js", map[string]string{
		"api/main.js":      "require('./lib/data.js')",
		"api/lib/data.js":  "module.exports = '" + strings.Repeat("x", 5<<10) + "'",
		"static/other.js":  "// not the actor's",
		"api/notes.txt":    "not a script",
		"api/ignored.wasm": "\x00asm",
	}, nil, nil)
	if msg := w.failedWith("big"); !strings.Contains(msg, "api/") || !strings.Contains(msg, "over the limit") {
		t.Fatalf("last error %q", msg)
	}
}

// scriptsIn gives the runtime the entry's folder and below, and nothing
// else of the bundle.
func TestScriptsInTheEntrysFolder(t *testing.T) {
	w := newWorld(t)
	s := w.jsWorker(func() ([]byte, error) { return nil, errors.New("unused") }, nil)
	cfg := w.deployFilesOnly("pick", map[string]any{"script": "api/main.js"}, map[string]string{
		"api/main.js":        "//",
		"api/lib/util.cjs":   "//",
		"api/lib/x.mjs":      "//",
		"api/data.json":      "{}",
		"api/readme.md":      "no",
		"api/latin1.js":      "var s = '\xe9';",
		"static/app.js":      "// the page's",
		"apix/other.js":      "// a sibling folder",
		"index.html":         "<p>",
		"api/sub/deep/a.js":  "//",
		"api/sub/deep/b.txt": "no",
	})
	sp := specOf(&cfg)
	raw, err := s.fetchModule(ctxT(t), sp)
	if err != nil {
		t.Fatal(err)
	}
	var sc actorhost.Script
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range sc.Files {
		names = append(names, n)
	}
	want := "api/data.json api/lib/util.cjs api/lib/x.mjs api/main.js api/sub/deep/a.js"
	sort.Strings(names)
	if got := strings.Join(names, " "); got != want || sc.Entry != "api/main.js" {
		t.Fatalf("entry %q, files %s, want %s", sc.Entry, got, want)
	}

	// A stored bundle with names no upload keeps (written past the upload
	// service): the runtime gets none of them.
	cfg = w.deployFilesOnly("odd", map[string]any{"script": "main.js"}, map[string]string{
		"main.js": "//", "../up.js": "//", "/abs.js": "//", "a/../b.js": "//", "./dot.js": "//", "a//c.js": "//", "ok/x.js": "//",
	})
	raw, err = s.fetchModule(ctxT(t), specOf(&cfg))
	if err != nil {
		t.Fatal(err)
	}
	sc = actorhost.Script{}
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.Files) != 2 || sc.Files["main.js"] != "//" || sc.Files["ok/x.js"] != "//" {
		t.Fatalf("files of the odd bundle: %v", sc.Files)
	}
}

// deployFilesOnly stores a version of slug as deployJS does, without
// announcing it to a worker that could start it: the test reads it.
func (w *world) deployFilesOnly(slug string, actor map[string]any, files map[string]string) experiments.Config {
	w.t.Helper()
	m := map[string]any{"schema_version": "2.0", "slug": slug, "name": slug, "status": "active", "actor": actor}
	bs := map[string][]byte{}
	for name, src := range files {
		bs[name] = []byte(src)
	}
	return w.deployFiles(slug, m, bs)
}

// jsRequest calls slug's actor with a request envelope of the test's own.
func (w *world) jsRequest(slug string, req actorapi.Request) reply {
	w.t.Helper()
	if req.Body == nil {
		req.Body = []byte{}
	}
	if req.RequestID == "" {
		req.RequestID = "req-js"
	}
	data, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := nats.NewMsg(actorapi.Subject(slug))
	msg.Data = data
	bus.Inject(telemetry.WithRequestID(ctx, req.RequestID), msg.Header, req.RequestID)
	m, err := w.d.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return reply{err: apierr.Wrap(apierr.CodeUnavailable, err, err.Error())}
	}
	if code := m.Header.Get(bus.HeaderErrorCode); code != "" {
		var be apierr.BodyError
		_ = json.Unmarshal(m.Data, &be)
		return reply{err: apierr.FromBody(be)}
	}
	var res actorapi.Response
	if err := json.Unmarshal(m.Data, &res); err != nil {
		w.t.Fatalf("reply is not a response envelope: %v: %s", err, m.Data)
	}
	return reply{status: res.Status, headers: res.Headers, body: res.Body}
}
