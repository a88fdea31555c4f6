package edge_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/edge"
)

func startEdge(t *testing.T, env *testenv.Env) *edge.Service {
	t.Helper()
	cfg := env.Config(t, nil)
	d := env.Deps(t, cfg)
	e := edge.New(d)
	testenv.Run(t, d, e)
	return e
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// world is one edge on the real NATS and store, and what its tests need to
// stand in for the rest of the platform: a signing key the edge trusts (as
// the auth service publishes its own), the shared policy, experiments'
// records and bundles, and services answering on the bus.
type world struct {
	t    *testing.T
	env  *testenv.Env
	cfg  *config.Config
	d    *svc.Deps // the test's own connections
	base string
	addr string
	// always are headers every request carries (a production world's
	// requests come through a TLS proxy).
	always map[string]string
	signer *authn.Signer
	policy *authz.Enforcer
	http   *http.Client
}

func startWorld(t *testing.T, set map[string]string) *world {
	t.Helper()
	env := testenv.Start(t)
	// Every request comes from an address of its own (see do), so that
	// per-client rate limits meet only the scenarios that mean to.
	vars := map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}
	for k, v := range set {
		vars[k] = v
	}
	cfg := env.Config(t, vars)
	ed := env.Deps(t, cfg)
	e := edge.New(ed)
	testenv.Run(t, ed, e)
	d := env.Deps(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, err := authn.DeriveKey(cfg.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	signer := authn.NewSigner(key)
	kv, err := d.JS.KeyValue(ctx, bus.BucketAuthKeys)
	if err != nil {
		t.Fatal(err)
	}
	kid, pub := signer.Public()
	if err := authn.PublishKey(ctx, kv, kid, pub); err != nil {
		t.Fatal(err)
	}
	policy, err := authz.New(ctx, d.Store.DB, d.NC, d.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(policy.Close)
	if err := policy.Seed(); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, env: env, cfg: cfg, d: d, base: "http://" + e.Addr, addr: e.Addr, signer: signer, policy: policy, http: &http.Client{
		Transport:     testenv.LocalhostTransport(),
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if cfg.IsProduction() {
		w.always = map[string]string{"X-Forwarded-Proto": "https"}
	}
	probe := w.token("probe@example.com", authz.RoleUser)
	eventually(t, 10*time.Second, "the edge to trust the signing key", func() bool {
		return w.do("GET", "/api/me", probe, nil, "").status == http.StatusOK
	})
	return w
}

// token is a Bearer token for email with roles, as the auth service mints
// them at sign-in.
func (w *world) token(email string, roles ...string) string {
	w.t.Helper()
	tok, _, err := w.signer.Mint(authn.Subject{ID: "u-" + email, Email: email, Roles: roles}, time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// admin is a token of an administrator, once the edge's copy of the shared
// policy lets them into the admin panel.
func (w *world) admin(email string) string {
	w.t.Helper()
	if err := w.policy.SetRoles(email, []string{authz.RoleAdmin}); err != nil {
		w.t.Fatal(err)
	}
	tok := w.token(email, authz.RoleAdmin)
	// An out-of-range limit is refused by the handler itself, past the
	// admin check and before any service is asked.
	eventually(w.t, 10*time.Second, "the edge to see "+email+" as an admin", func() bool {
		return w.do("GET", "/admin/api/exports?limit=0", tok, nil, "").code() == "validation_failed"
	})
	return tok
}

// developer is a token of a developer in the shared policy.
func (w *world) developer(email string) string {
	w.t.Helper()
	if err := w.policy.SetRoles(email, []string{authz.RoleDeveloper}); err != nil {
		w.t.Fatal(err)
	}
	return w.token(email, authz.RoleDeveloper)
}

// experiment stores an experiment's record and its bundle (manifest.json
// and files) as the upload service would, and has the edge read it.
func (w *world) experiment(slug, owner, status, manifest string, files map[string]string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files["manifest.json"] = manifest
	for name, content := range files {
		f, err := zw.Create(name)
		if err != nil {
			w.t.Fatal(err)
		}
		_, _ = f.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		w.t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	checksum := hex.EncodeToString(sum[:])
	obs, err := w.d.JS.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, experiments.BundleObject(slug, checksum), buf.Bytes()); err != nil {
		w.t.Fatal(err)
	}
	now := time.Now().UTC()
	cfg := experiments.Config{
		Slug: slug, SlugField: slug, Name: strings.ToUpper(slug[:1]) + slug[1:], OwnerEmail: owner, Status: status,
		Version: 1, Checksum: checksum, Manifest: manifest, CreatedAt: now, UpdatedAt: now, Seq: 1,
		Versions: []experiments.Version{{Version: 1, Checksum: checksum, Size: int64(buf.Len()), Files: len(files), Manifest: manifest, UploadedBy: owner, CreatedAt: now}},
	}
	if _, err := w.d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, cfg); err != nil {
		w.t.Fatal(err)
	}
	// The edge learns of a slug it does not know on the first request
	// naming it, whoever asks and whatever it answers them.
	if r := w.do("GET", "/api/experiments/"+slug, w.token("reader@example.com"), nil, ""); r.status == http.StatusServiceUnavailable {
		w.t.Fatalf("the edge could not read experiment %s: %s", slug, r.body)
	}
}

// standIn answers service's endpoints on the bus in the test's stead, so
// that the edge's side of a call is seen whole: what it sends, and what it
// makes of the answer.
func (w *world) standIn(service string, regs ...bus.Registration) {
	w.t.Helper()
	srv, err := bus.NewServer(w.d.NC, bus.ServerOptions{Name: service, Version: "0.0.0-test", InstanceID: "stand-in", Log: w.d.Log})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := srv.Register(regs...); err != nil {
		w.t.Fatal(err)
	}
	// The edge's connection must see the subscriptions before it asks.
	if err := w.d.NC.Flush(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// code is the contract's error code of the body, "" when it is no error.
func (r reply) code() string {
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

var ipSeq atomic.Uint32

// do sends a request with a Bearer token when token is set, from a client
// address no other request used unless header sets X-Forwarded-For.
//
// Paths of an experiment (/experiments/{slug}/...) go to that experiment's
// origin, where they are served; onPlatform sends them to the platform's.
func (w *world) do(method, path, token string, header map[string]string, body string) reply {
	w.t.Helper()
	return w.send(method, w.urlOf(path), token, header, body)
}

// onPlatform is do on the platform's origin, whatever the path.
func (w *world) onPlatform(method, path, token string, header map[string]string, body string) reply {
	w.t.Helper()
	return w.send(method, w.base+path, token, header, body)
}

// urlOf is where path is served: an experiment's paths on its own origin.
func (w *world) urlOf(path string) string {
	if rest, ok := strings.CutPrefix(path, "/experiments/"); ok {
		slug, _, _ := strings.Cut(rest, "/")
		if httpx.SlugPattern.MatchString(slug) {
			return testenv.ExperimentURL(w.addr, slug, path)
		}
	}
	return w.base + path
}

func (w *world) send(method, url, token string, header map[string]string, body string) reply {
	w.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	n := ipSeq.Add(1)
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", 100+n/250, n%250+1))
	for k, v := range w.always {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// jsonType is the header of a JSON body.
var jsonType = map[string]string{"Content-Type": "application/json"}

// scenario is one request and what must come of it.
type scenario struct {
	name   string
	method string
	path   string
	token  string
	header map[string]string
	body   string

	status int
	// code is the contract's error code; a scenario without one expects
	// no error body.
	code string
	// want are fragments of the body, in any order.
	want []string
	// wantHeader are fragments of response headers' values.
	wantHeader map[string]string
}

// run plays the scenarios in order: later ones may rely on earlier ones.
func (w *world) run(scenarios []scenario) {
	w.t.Helper()
	for _, sc := range scenarios {
		method := sc.method
		if method == "" {
			method = "GET"
		}
		r := w.do(method, sc.path, sc.token, sc.header, sc.body)
		if r.status != sc.status || r.code() != sc.code {
			w.t.Errorf("%s: %s %s = %d %q, want %d %q: %s", sc.name, method, sc.path, r.status, r.code(), sc.status, sc.code, r.body)
			continue
		}
		for _, frag := range sc.want {
			if !bytes.Contains(r.body, []byte(frag)) {
				w.t.Errorf("%s: the body lacks %s: %s", sc.name, frag, r.body)
			}
		}
		for name, frag := range sc.wantHeader {
			if !strings.Contains(r.header.Get(name), frag) {
				w.t.Errorf("%s: header %s = %q, want it to hold %q", sc.name, name, r.header.Get(name), frag)
			}
		}
	}
}

func TestUnknownRouteIsContractError(t *testing.T) {
	env := testenv.Start(t)
	e := startEdge(t, env)
	req, _ := http.NewRequest("GET", "http://"+e.Addr+"/nope", nil)
	req.Header.Set("X-Request-ID", "client-chosen-id-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var shape map[string]map[string]string
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if resp.StatusCode != 404 || shape["error"]["code"] != "not_found" || shape["error"]["message"] == "" ||
		shape["error"]["request_id"] != "client-chosen-id-123" || resp.Header.Get("X-Request-ID") != "client-chosen-id-123" {
		t.Fatalf("got %d %s (X-Request-ID %q)", resp.StatusCode, raw, resp.Header.Get("X-Request-ID"))
	}
}
