package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// bigJSON is a JSON body well over CompressMinBytes.
var bigJSON = `{"items":"` + strings.Repeat("experiment ", 300) + `"}`

// syncBuffer is a log sink safe for the server's goroutines.
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

// lines are the JSON log records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", l)
		}
		out = append(out, m)
	}
	return out
}

type appOptions struct {
	production   bool
	trusted      []string
	metricsOK    []string
	metricsToken string
	logLevel     string
	publicURL    string
	canonical    func(c *fiber.Ctx) string
	isExperiment func(c *fiber.Ctx) bool
	formTargets  []string
	// bodyLimit, when set, is the chain's declared-body limit.
	bodyLimit httpx.BodyLimitFunc
}

// testReadTimeout is the server's read timeout in tests that must show an
// answer came without waiting for it.
const testReadTimeout = 20 * time.Second

// testApp is an app built the way the edge builds its own: the standard
// chain, the shared error handler, and routes that show what the chain
// decided.
type testApp struct {
	app      *fiber.App
	logs     *syncBuffer
	reg      *prometheus.Registry
	metrics  *httpx.Metrics
	mu       sync.Mutex
	internal []error // errors the error handler logged as internal
}

func prefixes(t *testing.T, ss []string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func newApp(t *testing.T, o appOptions) *testApp {
	t.Helper()
	if o.logLevel == "" {
		o.logLevel = "DEBUG"
	}
	ta := &testApp{logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	log := telemetry.NewLogger(ta.logs, o.logLevel, "json")
	ta.metrics = httpx.NewMetrics(ta.reg)
	eh := httpx.ErrorHandler(func(c *fiber.Ctx, err error) {
		ta.mu.Lock()
		ta.internal = append(ta.internal, err)
		ta.mu.Unlock()
	})
	// Configured as the edge configures its own: bodies stream, a request
	// has a bounded time to arrive.
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true, ErrorHandler: eh, StrictRouting: true,
		BodyLimit: 64 << 10, StreamRequestBody: true, DisablePreParseMultipartForm: true,
		ReadTimeout: testReadTimeout, WriteTimeout: testReadTimeout, IdleTimeout: testReadTimeout,
	})
	httpx.Install(app, httpx.ChainOptions{
		Log: log, Metrics: ta.metrics, TrustedProxies: prefixes(t, o.trusted), Production: o.production, ErrorHandler: eh,
		PublicURL: o.publicURL, CanonicalOrigin: o.canonical, BodyLimit: o.bodyLimit,
		IsExperiment: o.isExperiment, FormTargets: o.formTargets,
	})
	app.Get("/health", func(c *fiber.Ctx) error {
		if c.Query("down") != "" {
			return apierr.New(apierr.CodeUnavailable, "down")
		}
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/metrics", httpx.MetricsHandler(ta.reg, prefixes(t, o.metricsOK), httpx.WithMetricsToken(o.metricsToken)))
	app.Get("/page", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		n := httpx.CSPNonce(c)
		return c.SendString(`<!doctype html><style nonce="` + n + `">p{}</style><script nonce="` + n + `">1</script><p>page`)
	})
	app.Get("/plain-page", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.SendString(`<!doctype html><p>no inline code`)
	})
	// upload reads the whole streamed body and tells its size; over 1 MiB
	// it stops reading and refuses, as the edge's upload does.
	app.Post("/upload", func(c *fiber.Ctx) error {
		r := c.Request().BodyStream()
		if r == nil {
			return c.JSON(fiber.Map{"bytes": len(c.Body())})
		}
		n, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20+1))
		if err != nil {
			return apierr.Wrap(apierr.CodeBadRequest, err, "the body could not be read")
		}
		if n > 1<<20 {
			return apierr.New(apierr.CodeBundleTooLarge, "counted over the limit")
		}
		return c.JSON(fiber.Map{"bytes": n})
	})
	// actor answers as an experiment's actor may: HTML with a policy of its own.
	app.Get("/actor", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderContentSecurityPolicy, "script-src 'self' 'unsafe-inline'")
		return c.SendString(`<script>alert(1)</script>`)
	})
	app.Post("/echo", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"bytes": len(c.Body())}) })
	app.Get("/small", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"ok": true}) })
	app.Post("/small", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"posted": true}) })
	app.Get("/big", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderETag, `"v1"`)
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(bigJSON)
	})
	app.Get("/png", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "image/png")
		return c.Send(bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 600))
	})
	app.Get("/items/:id", func(c *fiber.Ctx) error { return c.SendString("item " + c.Params("id")) })
	app.Get("/info", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{
			"scheme": httpx.Scheme(c), "host": httpx.Host(c), "client_ip": httpx.ClientIP(c).String(),
			"peer_ip": httpx.PeerIP(c).String(), "request_id": httpx.GetRequestID(c),
			"ctx_request_id": telemetry.RequestID(c.UserContext()),
		})
	})
	app.Get("/experiments/:slug/*", func(c *fiber.Ctx) error { return c.SendString("slug=" + httpx.Slug(c)) })
	app.Get("/experiments/:slug", func(c *fiber.Ctx) error { return c.SendString("slug=" + httpx.Slug(c)) })
	app.Get("/experiments", func(c *fiber.Ctx) error { return c.SendString("slug=" + httpx.Slug(c)) })
	app.Get("/api/experiments/:slug/*", func(c *fiber.Ctx) error { return c.SendString("slug=" + httpx.Slug(c)) })
	app.Get("/conflict", func(c *fiber.Ctx) error {
		return apierr.New(apierr.CodeConflict, "slug demo is taken").OnField("/slug")
	})
	app.Get("/api/conflict", func(c *fiber.Ctx) error { return apierr.New(apierr.CodeConflict, "taken") })
	app.Get("/boom", func(c *fiber.Ctx) error { return errors.New("mongo: password=hunter2 rejected") })
	app.Get("/limited", func(c *fiber.Ctx) error {
		return &apierr.Error{Code: apierr.CodeRateLimited, Message: "slow down", RetryAfter: 7}
	})
	app.Get("/xss", func(c *fiber.Ctx) error { return apierr.New(apierr.CodeBadRequest, "<script>alert(1)</script>") })
	app.Get("/partial", func(c *fiber.Ctx) error {
		_ = c.SendString("half-written body")
		return apierr.New(apierr.CodeUnavailable, "gave up")
	})
	app.Get("/teapot", func(c *fiber.Ctx) error { return fiber.NewError(fiber.StatusTeapot, "short and stout") })
	app.Get("/gateway", func(c *fiber.Ctx) error { return fiber.NewError(fiber.StatusBadGateway, "upstream said 10.0.0.7") })
	ta.app = app
	return ta
}

func (ta *testApp) internalErrors() []error {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return append([]error(nil), ta.internal...)
}

// request describes one request served straight through the app's handler
// from a chosen peer address, as fasthttp would after accepting it.
type request struct {
	method  string
	target  string
	peer    string // ip:port; 127.0.0.1:40000 when empty
	headers [][2]string
	body    string
}

func (ta *testApp) do(t *testing.T, r request) *fasthttp.Response {
	t.Helper()
	if r.method == "" {
		r.method = fiber.MethodGet
	}
	if r.peer == "" {
		r.peer = "127.0.0.1:40000"
	}
	var req fasthttp.Request
	req.Header.SetMethod(r.method)
	req.SetRequestURI(r.target)
	req.Header.SetHost("example.test")
	for _, h := range r.headers {
		req.Header.Add(h[0], h[1])
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	addr, err := net.ResolveTCPAddr("tcp", r.peer)
	if err != nil {
		t.Fatalf("peer %q: %v", r.peer, err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, addr, nil)
	ta.app.Handler()(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp
}

func header(resp *fasthttp.Response, name string) string { return string(resp.Header.Peek(name)) }

// errorBody decodes the contract's error shape, failing on anything else.
func errorBody(t *testing.T, resp *fasthttp.Response) apierr.BodyError {
	t.Helper()
	if ct := header(resp, fiber.HeaderContentType); !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		t.Fatalf("error content type %q, want JSON; body %s", ct, resp.Body())
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(resp.Body(), &raw); err != nil {
		t.Fatalf("error body is not JSON: %s", resp.Body())
	}
	if len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("error body %s is not {\"error\": {...}}", resp.Body())
	}
	var be apierr.BodyError
	if err := json.Unmarshal(raw["error"], &be); err != nil {
		t.Fatal(err)
	}
	if be.Code == "" || be.Message == "" || be.RequestID == "" {
		t.Errorf("error body %s lacks code, message or request_id", resp.Body())
	}
	if be.RequestID != header(resp, httpx.HeaderRequestID) {
		t.Errorf("body request_id %q differs from the X-Request-ID header %q", be.RequestID, header(resp, httpx.HeaderRequestID))
	}
	return be
}

func jsonBody(t *testing.T, resp *fasthttp.Response) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(resp.Body(), &m); err != nil {
		t.Fatalf("body %s: %v", resp.Body(), err)
	}
	return m
}

func discard() *slog.Logger { return telemetry.NewLogger(io.Discard, "ERROR", "text") }

// installTracing installs the platform's tracer provider with an in-memory
// exporter, as the process does at start; apps must be built after it.
func installTracing(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{Service: "httpx-test", LogWriter: io.Discard, SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return exp
}

// serve runs the app on a loopback listener, wrapped as the edge wraps its
// own, until the test ends; it returns the address.
func (ta *testApp) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = ta.app.Listener(httpx.Listener(ln)) }()
	t.Cleanup(func() {
		_ = ta.app.ShutdownWithTimeout(5 * time.Second)
		<-done
	})
	return ln.Addr().String()
}
