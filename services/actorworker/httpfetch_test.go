package actorworker

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// names is a resolver of fixed answers: what an attacker who controls an
// allowed name's DNS can make it answer. Names it does not know do not
// resolve.
type names map[string][]netip.Addr

func (n names) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := n[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// remote is the outside world of the tests: a server on loopback that the
// fetch state is told it may reach (at its port only), and an "internal"
// server on loopback that it may not, which counts every request reaching
// it.
type remote struct {
	srv, internal *httptest.Server
	port, inPort  string
	hits          atomic.Int64 // requests that reached internal
	slowStarted   chan struct{}
	release       chan struct{}

	mu   sync.Mutex
	seen []*http.Request // requests to /echo, with their bodies read
	body [][]byte
}

func newRemote(t *testing.T) *remote {
	r := &remote{slowStarted: make(chan struct{}, 16), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen = append(r.seen, req)
		r.body = append(r.body, b)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Remote", "yes")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": req.Method, "query": req.URL.RawQuery, "body": string(b),
			"authorization": req.Header.Get("Authorization"), "host": req.Host})
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, req *http.Request) {
		code, _ := strconv.Atoi(req.URL.Query().Get("code"))
		if code == 0 {
			code = http.StatusFound
		}
		http.Redirect(w, req, req.URL.Query().Get("to"), code)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, req *http.Request) { http.Redirect(w, req, "/loop", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, req *http.Request) {
		n, _ := strconv.Atoi(req.URL.Query().Get("n"))
		if req.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		} else {
			w.(http.Flusher).Flush() // no Content-Length: the size shows only while reading
		}
		_, _ = w.Write(bytes.Repeat([]byte("x"), n))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, req *http.Request) {
		r.slowStarted <- struct{}{}
		select {
		case <-req.Context().Done():
		case <-r.release:
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, req *http.Request) {
		code, _ := strconv.Atoi(req.URL.Query().Get("code"))
		http.Error(w, "as asked", code)
	})
	r.srv = httptest.NewServer(mux)
	r.internal = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.hits.Add(1)
		_, _ = io.WriteString(w, "internal secrets")
	}))
	t.Cleanup(func() {
		close(r.release)
		r.srv.Close()
		r.internal.Close()
	})
	r.port = r.srv.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):]
	r.inPort = r.internal.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):]
	return r
}

// hooks opens the remote server's address to f and gives it the names of
// the tests.
func (r *remote) hooks(f *fetchState) {
	f.testAllow = map[netip.AddrPort]bool{r.srv.Listener.Addr().(*net.TCPAddr).AddrPort(): true}
	f.testResolver = names{
		"api.test":                     addrs("127.0.0.1"),
		"other.svc.test":               addrs("127.0.0.1"),
		"loop.svc.test":                addrs("127.0.0.1"),
		"meta.svc.test":                addrs("169.254.169.254"),
		"meta6.svc.test":               addrs("fd00:ec2::254"),
		"private.svc.test":             addrs("10.0.0.7"),
		"private6.svc.test":            addrs("fd12:3456::1"),
		"mapped.svc.test":              addrs("::ffff:127.0.0.1"),
		"mapped-meta.svc.test":         addrs("::ffff:169.254.169.254"),
		"nat64-meta.svc.test":          addrs("64:ff9b::a9fe:a9fe"),
		"cgnat.svc.test":               addrs("100.64.0.1"),
		"linklocal6.svc.test":          addrs("fe80::1"),
		"unspecified.svc.test":         addrs("0.0.0.0"),
		"multicast.svc.test":           addrs("224.0.0.1"),
		"all-internal.svc.test":        addrs("10.0.0.1", "192.168.1.1", "127.0.0.1"),
		"public-then-private.svc.test": addrs("10.0.0.9", "127.0.0.1"),
	}
}

// url is the remote server's path p under the name host.
func (r *remote) url(host, p string) string { return "http://" + host + ":" + r.port + p }

// internalURL is the internal server under the name host.
func (r *remote) internalURL(host string) string { return "http://" + host + ":" + r.inPort + "/" }

// fetchHost is a host of the actor "fetcher" with actor.http cfg, on a
// worker in env (development or production) that has not started: the
// fetch path needs no bus or store. logs receives the worker's log lines.
func fetchHost(t *testing.T, env string, cfg *bundle.ActorHTTP, hooks func(*fetchState)) (h *host, logs *fetchLogBuffer, reg *prometheus.Registry) {
	logs = &fetchLogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg = prometheus.NewRegistry()
	d := &svc.Deps{Config: &config.Config{Env: env}, Log: log, Telemetry: &telemetry.Telemetry{Logger: log, Registry: reg}}
	s := New(d)
	s.metrics = newMetrics(reg)
	if hooks != nil {
		hooks(&s.fetch)
	}
	return &host{s: s, slug: "fetcher", log: log.With("slug", "fetcher"), http: cfg}, logs, reg
}

type fetchLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *fetchLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *fetchLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fetch calls http.fetch with req (a JSON object) as a guest would.
func fetch(t *testing.T, h *host, req string) (map[string]any, *apierr.Error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.Call(ctx, "http.fetch", []byte(req))
	if err != nil {
		return nil, apierr.From(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, out)
	}
	return m, nil
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

var testAllowList = &bundle.ActorHTTP{Allow: []string{"api.test", "*.svc.test"}, RequestsPerMinute: 600, MaxConcurrent: 16}

// Every address class actors may not reach is refused, in every spelling
// (IPv4-mapped, NAT64, 6to4); public addresses are not.
func TestForbiddenAddresses(t *testing.T) {
	for a, want := range map[string]string{
		"127.0.0.1": "loopback", "127.255.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.0.1": "private",
		"fc00::1": "private", "fd12::1": "private", "::ffff:10.0.0.1": "private",
		"169.254.169.254": "cloud metadata", "::ffff:169.254.169.254": "cloud metadata", "fd00:ec2::254": "cloud metadata",
		"64:ff9b::a9fe:a9fe": "cloud metadata", "168.63.129.16": "cloud metadata",
		"169.254.1.1": "link-local", "fe80::1": "link-local",
		"0.0.0.0": "unspecified", "0.1.2.3": "unspecified", "::": "unspecified",
		"100.64.0.1": "shared (CGNAT)", "100.127.255.254": "shared (CGNAT)", "100.100.100.200": "cloud metadata",
		"224.0.0.1": "multicast", "ff02::1": "multicast", "ff01::1": "multicast", "239.1.2.3": "multicast",
		"255.255.255.255": "reserved", "240.0.0.1": "reserved", "192.0.0.170": "reserved",
		"192.0.2.1": "documentation", "2001:db8::1": "documentation", "198.18.0.1": "benchmarking",
		"::7f00:1": "IPv4-compatible", "2002:7f00:1::": "loopback", "2002:a9fe:a9fe::": "cloud metadata",
		"2001::1": "Teredo", "64:ff9b:1::1": "local NAT64", "fec0::1": "site-local", "100::1": "discard",
		"8.8.8.8": "", "1.1.1.1": "", "2606:4700:4700::1111": "", "::ffff:8.8.8.8": "", "64:ff9b::808:808": "",
		"2002:808:808::": "", "100.63.255.255": "", "100.128.0.0": "", "172.32.0.1": "", "169.253.255.255": "",
	} {
		if got := forbiddenAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("forbiddenAddr(%s) = %q, want %q", a, got, want)
		}
	}
	if forbiddenAddr(netip.Addr{}) == "" {
		t.Error("the zero address must be forbidden")
	}
}

// Every refusal of http.fetch, before sending and after resolving, as an
// actor probing for the platform's own network would try them. None
// reaches the internal server.
func TestFetchRefusals(t *testing.T) {
	r := newRemote(t)
	h, logs, _ := fetchHost(t, config.Development, testAllowList, r.hooks)
	in := r.internalURL
	for _, tc := range []struct {
		name, req string
		code      apierr.Code
		says      string
	}{
		{"host not listed", `{"url": "https://example.com/"}`, apierr.CodeHttpForbiddenHost, `"example.com"`},
		{"apex of a wildcard", `{"url": ` + q(r.url("svc.test", "/")) + `}`, apierr.CodeHttpForbiddenHost, "svc.test"},
		{"suffix trick", `{"url": ` + q(r.url("api.test.evil.example", "/")) + `}`, apierr.CodeHttpForbiddenHost, "api.test.evil.example"},
		{"IPv4 literal", `{"url": ` + q("http://127.0.0.1:"+r.port+"/echo") + `}`, apierr.CodeHttpForbiddenHost, "IP address"},
		{"metadata literal", `{"url": "http://169.254.169.254/latest/meta-data/"}`, apierr.CodeHttpForbiddenHost, "IP address"},
		{"IPv6 literal", `{"url": "http://[::1]:` + r.port + `/"}`, apierr.CodeHttpForbiddenHost, "IP address"},
		{"mapped IPv6 literal", `{"url": "http://[::ffff:127.0.0.1]:` + r.port + `/"}`, apierr.CodeHttpForbiddenHost, "IP address"},
		{"file scheme", `{"url": "file:///etc/passwd"}`, apierr.CodeBadRequest, "absolute"},
		{"ftp scheme", `{"url": "ftp://api.test/x"}`, apierr.CodeHttpForbiddenScheme, "ftp"},
		{"gopher scheme", `{"url": "gopher://api.test:70/_x"}`, apierr.CodeHttpForbiddenScheme, "gopher"},
		{"relative URL", `{"url": "/echo"}`, apierr.CodeBadRequest, "absolute"},
		{"no URL", `{}`, apierr.CodeBadRequest, "url is required"},
		{"credentials in the URL", `{"url": ` + q("http://user:pw@api.test:"+r.port+"/echo") + `}`, apierr.CodeBadRequest, "credentials"},
		{"host header", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"Host": ["internal"]}}`, apierr.CodeBadRequest, "Host"},
		{"lower-case host header", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"host": ["internal"]}}`, apierr.CodeBadRequest, "Host"},
		{"transfer-encoding", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"Transfer-Encoding": ["chunked"]}}`, apierr.CodeBadRequest, "Transfer-Encoding"},
		{"proxy header", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"Proxy-Foo": ["x"]}}`, apierr.CodeBadRequest, "Proxy-Foo"},
		{"header injection", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"X-A": ["1\r\nHost: internal"]}}`, apierr.CodeBadRequest, "line break"},
		{"bad header name", `{"url": ` + q(r.url("api.test", "/echo")) + `, "headers": {"X A": ["1"]}}`, apierr.CodeBadRequest, "header name"},
		{"CONNECT", `{"method": "CONNECT", "url": ` + q(r.url("api.test", "/")) + `}`, apierr.CodeBadRequest, "method"},
		{"bad method", `{"method": "GE T", "url": ` + q(r.url("api.test", "/")) + `}`, apierr.CodeBadRequest, "method"},
		{"unknown field", `{"url": ` + q(r.url("api.test", "/")) + `, "follow": true}`, apierr.CodeBadRequest, "follow"},
		{"not JSON", `{"url": `, apierr.CodeInvalidJson, "JSON"},
		{"negative timeout", `{"url": ` + q(r.url("api.test", "/")) + `, "timeout_ms": -1}`, apierr.CodeBadRequest, "negative"},
		{"resolves to metadata", `{"url": "http://meta.svc.test/latest/meta-data/"}`, apierr.CodeHttpForbiddenAddress, "cloud metadata"},
		{"resolves to IPv6 metadata", `{"url": "http://meta6.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "cloud metadata"},
		{"resolves to a mapped metadata address", `{"url": "http://mapped-meta.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "cloud metadata"},
		{"resolves to NAT64 of metadata", `{"url": "http://nat64-meta.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "cloud metadata"},
		{"resolves to private", `{"url": "http://private.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "private"},
		{"resolves to private IPv6", `{"url": "http://private6.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "private"},
		{"resolves to CGNAT", `{"url": "http://cgnat.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "CGNAT"},
		{"resolves to IPv6 link-local", `{"url": "http://linklocal6.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "link-local"},
		{"resolves to unspecified", `{"url": "http://unspecified.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "unspecified"},
		{"resolves to multicast", `{"url": "http://multicast.svc.test/"}`, apierr.CodeHttpForbiddenAddress, "multicast"},
		{"resolves to loopback", `{"url": ` + q(in("loop.svc.test")) + `}`, apierr.CodeHttpForbiddenAddress, "loopback"},
		{"resolves to mapped loopback", `{"url": ` + q(in("mapped.svc.test")) + `}`, apierr.CodeHttpForbiddenAddress, "loopback"},
		{"resolves to internal addresses only", `{"url": ` + q(in("all-internal.svc.test")) + `}`, apierr.CodeHttpForbiddenAddress, "private"},
		{"does not resolve", `{"url": "http://nx.svc.test/"}`, apierr.CodeHttpFailed, "does not resolve"},
		{"redirect to loopback", `{"url": ` + q(r.url("api.test", "/redirect?to="+url.QueryEscape(in("loop.svc.test")))) + `}`, apierr.CodeHttpForbiddenAddress, "loopback"},
		{"redirect (307) to metadata", `{"url": ` + q(r.url("api.test", "/redirect?code=307&to="+url.QueryEscape("http://meta.svc.test/"))) + `}`, apierr.CodeHttpForbiddenAddress, "cloud metadata"},
		{"redirect to an IP literal", `{"url": ` + q(r.url("api.test", "/redirect?to="+url.QueryEscape(in("127.0.0.1")))) + `}`, apierr.CodeHttpForbiddenHost, "redirect names the IP address"},
		{"redirect to a host not listed", `{"url": ` + q(r.url("api.test", "/redirect?to="+url.QueryEscape("http://localhost:"+r.inPort+"/"))) + `}`, apierr.CodeHttpForbiddenHost, `redirect names the host "localhost"`},
		{"redirect to another scheme", `{"url": ` + q(r.url("api.test", "/redirect?to="+url.QueryEscape("ftp://api.test/"))) + `}`, apierr.CodeHttpForbiddenScheme, "redirect"},
		{"redirect loop", `{"url": ` + q(r.url("api.test", "/loop")) + `}`, apierr.CodeHttpFailed, "redirects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, ae := fetch(t, h, tc.req)
			if ae == nil {
				t.Fatalf("fetched %v, want %s", res, tc.code)
			}
			if ae.Code != tc.code || !strings.Contains(ae.Message, tc.says) {
				t.Errorf("%s: %s, want %s saying %q", ae.Code, ae.Message, tc.code, tc.says)
			}
		})
	}
	if n := r.hits.Load(); n != 0 {
		t.Errorf("the internal server was reached %d times", n)
	}
	// A name answering an internal address and an allowed one is
	// connected to only through the allowed one.
	if res, ae := fetch(t, h, `{"url": `+q(r.url("public-then-private.svc.test", "/echo"))+`}`); ae != nil || res["status"] != 200.0 {
		t.Errorf("mixed answer: %v %v", res, ae)
	}
	// The refusals after resolving are in the log, with host and address
	// and without the URL's path.
	if l := logs.String(); !strings.Contains(l, `"host":"meta.svc.test"`) || !strings.Contains(l, `"addr":"169.254.169.254"`) || strings.Contains(l, "meta-data") {
		t.Errorf("log of refusals: %s", l)
	}
}

// Without actor.http the actor reaches no host at all.
func TestFetchWithoutManifestEntry(t *testing.T) {
	r := newRemote(t)
	h, _, _ := fetchHost(t, config.Development, nil, r.hooks)
	if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/echo"))+`}`); ae == nil || ae.Code != apierr.CodeHttpForbiddenHost || !strings.Contains(ae.Message, "actor.http.allow") {
		t.Fatalf("fetch without actor.http: %v", ae)
	}
}

// Requests reach the allowed server with method, headers and body; the
// response comes back whole, 4xx included; redirects within the allowed
// hosts are followed (without the Authorization header across hosts) or,
// when asked, handed back.
func TestFetchHappyPath(t *testing.T) {
	r := newRemote(t)
	h, _, _ := fetchHost(t, config.Development, testAllowList, r.hooks)

	res, ae := fetch(t, h, `{"method": "post", "url": `+q(r.url("API.test", "/echo?k=v#frag"))+`, "headers": {"Authorization": ["Bearer k1"], "content-type": ["application/json"]}, "body": "eyJhIjoxfQ=="}`)
	if ae != nil {
		t.Fatal(ae)
	}
	if res["status"] != 200.0 || res["headers"].(map[string]any)["X-Remote"].([]any)[0] != "yes" {
		t.Fatalf("result %v", res)
	}
	body, _ := base64Decode(res["body"])
	var echo map[string]any
	_ = json.Unmarshal(body, &echo)
	if echo["method"] != "POST" || echo["body"] != `{"a":1}` || echo["query"] != "k=v" || echo["authorization"] != "Bearer k1" || !strings.HasPrefix(echo["host"].(string), "api.test:") {
		t.Errorf("the server saw %v", echo)
	}
	r.mu.Lock()
	seen := r.seen[len(r.seen)-1]
	r.mu.Unlock()
	if seen.Header.Get("Content-Type") != "application/json" {
		t.Errorf("content type sent: %q", seen.Header.Get("Content-Type"))
	}

	if res, ae = fetch(t, h, `{"url": `+q(r.url("api.test", "/status?code=404"))+`}`); ae != nil || res["status"] != 404.0 {
		t.Errorf("a 404 is a response, not a refusal: %v %v", res, ae)
	}

	to := r.url("other.svc.test", "/echo")
	res, ae = fetch(t, h, `{"url": `+q(r.url("api.test", "/redirect?to="+url.QueryEscape(to)))+`, "headers": {"Authorization": ["Bearer k1"]}}`)
	if ae != nil || res["status"] != 200.0 || res["url"] != to {
		t.Fatalf("redirect within the allowed hosts: %v %v", res, ae)
	}
	body, _ = base64Decode(res["body"])
	if strings.Contains(string(body), "k1") {
		t.Errorf("Authorization followed a redirect to another host: %s", body)
	}

	res, ae = fetch(t, h, `{"url": `+q(r.url("api.test", "/redirect?to="+url.QueryEscape(r.internalURL("loop.svc.test"))))+`, "no_redirects": true}`)
	if ae != nil || res["status"] != 302.0 || !strings.Contains(fmt.Sprint(res["headers"]), "loop.svc.test") {
		t.Errorf("no_redirects: %v %v", res, ae)
	}
	if r.hits.Load() != 0 {
		t.Error("the internal server was reached")
	}
}

func base64Decode(v any) ([]byte, error) {
	var b []byte
	raw, _ := json.Marshal(v)
	err := json.Unmarshal(raw, &b)
	return b, err
}

// Every bound: request and response size, time, concurrency and rate.
func TestFetchLimits(t *testing.T) {
	r := newRemote(t)
	cfg := &bundle.ActorHTTP{Allow: []string{"api.test"}, MaxRequestBytes: 10, MaxResponseBytes: 100, TimeoutMS: 300, MaxConcurrent: 1, RequestsPerMinute: 600}
	h, _, _ := fetchHost(t, config.Development, cfg, r.hooks)
	echo := q(r.url("api.test", "/echo"))

	if _, ae := fetch(t, h, `{"method": "POST", "url": `+echo+`, "body": "MDEyMzQ1Njc4OQ=="}`); ae != nil {
		t.Errorf("a body of exactly the limit: %v", ae)
	}
	if _, ae := fetch(t, h, `{"method": "POST", "url": `+echo+`, "body": "MDEyMzQ1Njc4OTA="}`); ae == nil || ae.Code != apierr.CodePayloadTooLarge || ae.Field != "/body" {
		t.Errorf("a body over the limit: %v", ae)
	}
	if res, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/big?n=100"))+`}`); ae != nil || res["status"] != 200.0 {
		t.Errorf("a response of exactly the limit: %v", ae)
	}
	for _, p := range []string{"/big?n=101", "/big?n=5000000", "/big?n=101&chunked=1", "/big?n=5000000&chunked=1"} {
		if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", p))+`}`); ae == nil || ae.Code != apierr.CodeHttpResponseTooLarge {
			t.Errorf("response %s: %v, want http_response_too_large", p, ae)
		}
	}

	start := time.Now()
	if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/slow"))+`}`); ae == nil || ae.Code != apierr.CodeTimeout || !strings.Contains(ae.Message, "actor.http.timeout_ms") {
		t.Errorf("a request over actor.http.timeout_ms: %v", ae)
	}
	<-r.slowStarted
	if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/slow"))+`, "timeout_ms": 50}`); ae == nil || ae.Code != apierr.CodeTimeout {
		t.Errorf("a request over its own timeout_ms: %v", ae)
	}
	<-r.slowStarted
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeouts took %v", d)
	}
	// The call's own time limit is shorter than the request's: the request
	// ends first, leaving the actor time to answer.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	_, err := h.Call(ctx, "http.fetch", []byte(`{"url": `+q(r.url("api.test", "/slow"))+`}`))
	cancel()
	if ae := apierr.From(err); ae.Code != apierr.CodeTimeout || !strings.Contains(ae.Message, "call time limit") {
		t.Errorf("a request over the call's time limit: %v", err)
	}
	<-r.slowStarted

	// max_concurrent 1: a second request while one is in flight is refused.
	done := make(chan *apierr.Error)
	go func() {
		_, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/slow"))+`, "timeout_ms": 10000}`)
		done <- ae
	}()
	<-r.slowStarted
	if _, ae := fetch(t, h, `{"url": `+echo+`}`); ae == nil || ae.Code != apierr.CodeRateLimited || !strings.Contains(ae.Message, "max_concurrent") {
		t.Errorf("a request over max_concurrent: %v", ae)
	}
	r.release <- struct{}{}
	if ae := <-done; ae != nil {
		t.Errorf("the request in flight: %v", ae)
	}
	if _, ae := fetch(t, h, `{"url": `+echo+`}`); ae != nil {
		t.Errorf("a request once the first ended: %v", ae)
	}

	// requests_per_minute 3, for an experiment of its own: the fourth in a
	// minute is refused, and refusals before sending use none.
	rated, _, _ := fetchHost(t, config.Development, &bundle.ActorHTTP{Allow: []string{"api.test"}, RequestsPerMinute: 3}, r.hooks)
	for i := range 3 {
		if _, ae := fetch(t, rated, `{"url": "https://not-listed.example/"}`); ae == nil || ae.Code != apierr.CodeHttpForbiddenHost {
			t.Fatalf("refusal %d: %v", i, ae)
		}
		if _, ae := fetch(t, rated, `{"url": `+echo+`}`); ae != nil {
			t.Fatalf("request %d of 3: %v", i+1, ae)
		}
	}
	if _, ae := fetch(t, rated, `{"url": `+echo+`}`); ae == nil || ae.Code != apierr.CodeRateLimited || !strings.Contains(ae.Message, "requests_per_minute") {
		t.Errorf("request 4 of 3 per minute: %v", ae)
	}
	// The budget is the experiment's on the worker, not the host's: a new
	// instance of the actor (a restart) does not get a fresh one.
	again := &host{s: rated.s, slug: rated.slug, log: rated.log, http: rated.http}
	if _, ae := fetch(t, again, `{"url": `+echo+`}`); ae == nil || ae.Code != apierr.CodeRateLimited {
		t.Errorf("a new instance's request over the rate: %v", ae)
	}
	other := &host{s: rated.s, slug: "another", log: rated.log, http: rated.http}
	if _, ae := fetch(t, other, `{"url": `+echo+`}`); ae != nil {
		t.Errorf("another experiment's request: %v", ae)
	}
}

// In production only https is sent, and certificates are verified.
func TestFetchProductionIsHTTPSOnly(t *testing.T) {
	r := newRemote(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "secure") }))
	t.Cleanup(tlsSrv.Close)
	ap := tlsSrv.Listener.Addr().(*net.TCPAddr).AddrPort()
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	hooks := func(f *fetchState) {
		r.hooks(f)
		f.testAllow[ap] = true
		f.testResolver.(names)["api.example.com"] = addrs("127.0.0.1")
		f.testResolver.(names)["wrong.svc.test"] = addrs("127.0.0.1")
		f.testRoots = roots
	}
	cfg := &bundle.ActorHTTP{Allow: []string{"api.test", "api.example.com", "wrong.svc.test"}}
	h, _, _ := fetchHost(t, config.Production, cfg, hooks)
	if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/echo"))+`}`); ae == nil || ae.Code != apierr.CodeHttpForbiddenScheme || !strings.Contains(ae.Message, "https only") {
		t.Errorf("http in production: %v", ae)
	}
	port := strconv.Itoa(int(ap.Port()))
	res, ae := fetch(t, h, `{"url": "https://api.example.com:`+port+`/"}`)
	if ae != nil || res["status"] != 200.0 {
		t.Fatalf("https in production: %v %v", res, ae)
	}
	if b, _ := base64Decode(res["body"]); string(b) != "secure" {
		t.Errorf("body %q", b)
	}
	if _, ae := fetch(t, h, `{"url": "https://wrong.svc.test:`+port+`/"}`); ae == nil || ae.Code != apierr.CodeHttpFailed || !strings.Contains(ae.Message, "certificate") {
		t.Errorf("a certificate for another name: %v", ae)
	}
	// The system's authorities do not know the test's: without testRoots
	// the same server is refused.
	plain, _, _ := fetchHost(t, config.Production, cfg, func(f *fetchState) { hooks(f); f.testRoots = nil })
	if _, ae := fetch(t, plain, `{"url": "https://api.example.com:`+port+`/"}`); ae == nil || ae.Code != apierr.CodeHttpFailed {
		t.Errorf("an unknown authority: %v", ae)
	}
}

// Each request sent is a client span and counted by outcome; no key sent
// in a header or query reaches spans, metrics or logs.
func TestFetchIsObservedWithoutSecrets(t *testing.T) {
	r := newRemote(t)
	h, logs, reg := fetchHost(t, config.Development, testAllowList, r.hooks)
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	const secret = "sk-live-0123456789"
	if _, ae := fetch(t, h, `{"url": `+q(r.url("api.test", "/echo?key="+secret))+`, "headers": {"Authorization": ["Bearer `+secret+`"]}}`); ae != nil {
		t.Fatal(ae)
	}
	if _, ae := fetch(t, h, `{"url": `+q("http://meta.svc.test/?key="+secret)+`, "headers": {"Authorization": ["Bearer `+secret+`"]}}`); ae == nil {
		t.Fatal("metadata reached")
	}
	_, _ = fetch(t, h, `{"url": "https://not-listed.example/"}`)

	var client []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = append(client, s)
		}
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), secret) {
				t.Errorf("span %s has the secret in %s", s.Name(), a.Key)
			}
		}
		if strings.Contains(s.Status().Description, secret) {
			t.Errorf("span %s has the secret in its status", s.Name())
		}
	}
	if len(client) != 2 || client[0].Name() != "HTTP GET" {
		t.Fatalf("client spans: %v", client)
	}
	attrs := map[string]string{}
	for _, a := range client[0].Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["server.address"] != "api.test" || attrs["http.response.status_code"] != "200" || attrs["gnome.slug"] != "fetcher" {
		t.Errorf("span attributes %v", attrs)
	}
	if got := testutil.ToFloat64(h.s.fetch.requests.WithLabelValues("2xx")); got != 1 {
		t.Errorf("2xx requests counted: %v", got)
	}
	if got := testutil.ToFloat64(h.s.fetch.requests.WithLabelValues("http_forbidden_address")); got != 1 {
		t.Errorf("forbidden addresses counted: %v", got)
	}
	if got := testutil.ToFloat64(h.s.fetch.requests.WithLabelValues("http_forbidden_host")); got != 1 {
		t.Errorf("forbidden hosts counted: %v", got)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if strings.Contains(mf.String(), secret) {
			t.Errorf("metric %s has the secret", mf.GetName())
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log has the secret: %s", logs.String())
	}
}

// fetchGuest is testdata/fetch (an actor of the SDK) built for the sandbox.
func fetchGuest(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/fetch") }

// A real actor, started by a worker from an uploaded manifest, fetches
// through the SDK: JSON APIs with a key, and the refusals as the SDK's
// HostError.
func TestFetchThroughActor(t *testing.T) {
	r := newRemote(t)
	w := newWorld(t)
	d := w.env.Deps(t, w.env.Config(t, nil))
	s := New(d)
	s.tune = w.tune
	r.hooks(&s.fetch)
	testenv.Run(t, d, s)
	w.deploy("fetcher", map[string]any{"actor": map[string]any{"module": "actor.wasm", "timeout_ms": 10000,
		"http": map[string]any{"allow": []string{"api.test", "*.svc.test"}, "max_response_bytes": 1000}}}, fetchGuest(t))
	w.deploy("offline", nil, fetchGuest(t))
	w.serving("fetcher", 30*time.Second)
	w.serving("offline", 30*time.Second)

	type result struct {
		Response *struct {
			Status int                 `json:"status"`
			Header map[string][]string `json:"headers"`
			Body   string              `json:"body"`
			URL    string              `json:"url"`
		} `json:"response"`
		Out   map[string]any `json:"out"`
		Error *struct {
			Code, Message string
		} `json:"error"`
	}
	call := func(slug, path string, req any) result {
		t.Helper()
		b, _ := json.Marshal(req)
		rep := w.call(slug, "POST", path, "", b)
		if rep.err != nil || rep.status != 200 {
			t.Fatalf("call %s: %v", path, rep)
		}
		var res result
		if err := json.Unmarshal(rep.body, &res); err != nil {
			t.Fatalf("%v: %s", err, rep.body)
		}
		return res
	}

	res := call("fetcher", "/json", map[string]any{"url": r.url("api.test", "/echo"), "in": map[string]any{"prompt": "hello"}})
	if res.Error != nil || res.Out["authorization"] != "Bearer test-key" || res.Out["body"] != `{"prompt":"hello"}` || res.Out["method"] != "POST" {
		t.Errorf("FetchJSON: %+v", res)
	}
	res = call("fetcher", "/fetch", map[string]any{"url": r.url("api.test", "/echo?x=1")})
	if res.Response == nil || res.Response.Status != 200 || res.Response.Header["X-Remote"][0] != "yes" || !strings.Contains(res.Response.Body, `"query":"x=1"`) {
		t.Errorf("Fetch: %+v", res)
	}
	for _, tc := range []struct {
		slug, url, code string
	}{
		{"fetcher", "http://meta.svc.test/latest/meta-data/", "http_forbidden_address"},
		{"fetcher", r.url("api.test", "/redirect?to="+url.QueryEscape(r.internalURL("loop.svc.test"))), "http_forbidden_address"},
		{"fetcher", "http://example.com/", "http_forbidden_host"},
		{"fetcher", r.url("api.test", "/big?n=1001"), "http_response_too_large"},
		{"offline", r.url("api.test", "/echo"), "http_forbidden_host"},
	} {
		if res := call(tc.slug, "/fetch", map[string]any{"url": tc.url}); res.Error == nil || res.Error.Code != tc.code {
			t.Errorf("%s fetching %s: %+v, want %s", tc.slug, tc.url, res, tc.code)
		}
	}
	if r.hits.Load() != 0 {
		t.Error("the internal server was reached")
	}
}

// The socket's last check refuses what the resolution step would have: a
// connection that reached the dialer by any other path still stops there.
func TestDialControlRefusesForbiddenAddresses(t *testing.T) {
	var f fetchState
	f.testAllow = map[netip.AddrPort]bool{netip.MustParseAddrPort("127.0.0.1:8080"): true}
	check := f.control("api.test")
	for addr, refused := range map[string]bool{
		"127.0.0.1:8080": false, "[::ffff:127.0.0.1]:8080": false, "127.0.0.1:8081": true, "[::1]:8080": true,
		"169.254.169.254:80": true, "[fd00:ec2::254]:80": true, "10.0.0.1:443": true, "8.8.8.8:443": false, "not an address": true,
	} {
		if err := check("tcp", addr, nil); (err != nil) != refused {
			t.Errorf("control(%s) = %v, want refused %v", addr, err, refused)
		}
	}
}
