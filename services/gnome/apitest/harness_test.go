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
	testenv.Run(t, d, auth.New(d), upload.New(d), export.New(d), actorworker.New(d))
	p := &platform{env: env, deps: d}
	for i := 0; i < edges; i++ {
		ed := env.Deps(t, cfg)
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
		Jar: jar, Timeout: 15 * time.Second,
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
	req, err := http.NewRequest(method, c.base+path, rd)
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

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
