// Package apitest drives the platform's HTTP API as its users do: the real
// services in process, on the embedded NATS server and store, over real
// HTTP, one scenario table per area.
package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/actorworker"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/edge"
	"github.com/gnome-platform/gnome/services/export"
	"github.com/gnome-platform/gnome/services/upload"
)

const (
	adminEmail    = "root@example.com"
	adminPassword = "an-admin-passphrase-for-tests"
)

// platform is the services running for one test, with any number of edge
// instances, each on its own connections as separate processes would be.
type platform struct {
	env   *testenv.Env
	deps  *svc.Deps
	edges []*edge.Service
}

func startPlatform(t *testing.T, edges int, set map[string]string) *platform {
	t.Helper()
	env := testenv.Start(t)
	vars := map[string]string{
		"ADMIN_EMAIL": adminEmail, "ADMIN_PASSWORD": adminPassword,
		// Tests speak for many clients through X-Forwarded-For.
		"TRUSTED_PROXIES": "127.0.0.1/32",
	}
	for k, v := range set {
		vars[k] = v
	}
	cfg := env.Config(t, vars)
	d := env.Deps(t, cfg)
	// Each service on the bus as its own user, held to its permissions,
	// as in gnome serve; d (the admin's) is the tests' own.
	as := func(name string) *svc.Deps { return env.DepsAs(t, d, name) }
	testenv.Run(t, d, auth.New(as("auth")), upload.New(as("upload")), export.New(as("export")), actorworker.New(as("actorworker")))
	p := &platform{env: env, deps: d}
	for i := 0; i < edges; i++ {
		ed := env.DepsAs(t, env.Deps(t, cfg), "edge")
		e := edge.New(ed)
		testenv.Run(t, ed, e)
		p.edges = append(p.edges, e)
	}
	return p
}

var ipSeq atomic.Uint32

// newIP is a client address no other client of the test run uses, so that
// per-IP limits of one scenario never touch another.
func newIP() string {
	n := ipSeq.Add(1)
	return fmt.Sprintf("198.51.%d.%d", 100+n/250, n%250+1)
}

// client is one browser or script: a cookie jar and an address.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	ip   string
}

func (p *platform) client(t *testing.T, edge int) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: "http://" + p.edges[edge].Addr, ip: newIP(), http: &http.Client{
		Jar: jar, Timeout: 15 * time.Second, Transport: testenv.LocalhostTransport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// on returns a client sharing this one's cookies and address but talking to
// another edge instance.
func (c *client) on(p *platform, edge int) *client {
	cp := *c
	cp.base = "http://" + p.edges[edge].Addr
	return &cp
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return m
}

func (r response) errorCode() string {
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// do sends a request; a string body goes as is, anything else as JSON.
func (c *client) do(method, path string, body any, hdr map[string]string) response {
	c.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case url.Values:
		rd = strings.NewReader(b.Encode())
		ct = "application/x-www-form-urlencoded"
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
		ct = "application/json"
	}
	target := c.base + path
	if slug := experimentOf(path); slug != "" {
		// An experiment's paths are served on its own origin, where the
		// visitor arrives through the platform's hand-off, as in a browser.
		target = c.experimentURL(slug, path)
		if c.sessionOn(slug) == "" {
			c.enter(slug)
		}
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("X-Forwarded-For", c.ip)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

var slugPath = regexp.MustCompile(`^/experiments/([a-z0-9_-]{1,64})(/|$)`)

// experimentOf is the slug of an experiment's path, or "".
func experimentOf(path string) string {
	if m := slugPath.FindStringSubmatch(path); m != nil {
		return m[1]
	}
	return ""
}

// experimentURL is path on slug's origin, on the edge this client talks to.
func (c *client) experimentURL(slug, path string) string {
	return testenv.ExperimentURL(strings.TrimPrefix(c.base, "http://"), slug, path)
}

// sessionOn is the client's session cookie on slug's origin, if any.
func (c *client) sessionOn(slug string) string {
	u, _ := url.Parse(c.experimentURL(slug, "/"))
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "gnome_session" {
			return ck.Value
		}
	}
	return ""
}

// enter goes through the hand-off to slug's origin as a browser would:
// the platform's /auth/experiment, then the code back on the experiment's
// origin, which sets its session cookie. A visitor the platform sends to
// sign in first comes back without a session.
func (c *client) enter(slug string) {
	c.t.Helper()
	target := c.base + "/auth/experiment?" + url.Values{"slug": {slug}, "next": {"/experiments/" + slug + "/"}}.Encode()
	for range 2 {
		req, err := http.NewRequest("GET", target, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", c.ip)
		resp, err := c.http.Do(req)
		if err != nil {
			c.t.Fatalf("hand-off to %s: %v", slug, err)
		}
		resp.Body.Close()
		target = resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(target, "/_gnome/session?") {
			return
		}
	}
}

// login signs in with JSON and fails the test if that does not work.
func (c *client) login(email, password string) {
	c.t.Helper()
	r := c.do("POST", "/auth/login", map[string]string{"email": email, "password": password}, nil)
	if r.status != 200 {
		c.t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
}

// cookie is the value of a cookie the client holds for the edge.
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// eventually polls cond until it holds and returns how long that took.
// within is what the caller expects; the wait goes on to at least a minute
// before failing, so that a machine busy with other work (two test runs at
// once on two cores) fails no test: how long it took is returned and
// logged by the callers that care, and speed is measured by make bench.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
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
