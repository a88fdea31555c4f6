package httpx

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

// fiberCarrier reads propagation headers straight from the request.
type fiberCarrier struct{ c *fiber.Ctx }

func (f fiberCarrier) Get(key string) string { return f.c.Get(key) }
func (f fiberCarrier) Set(key, value string) { f.c.Request().Header.Set(key, value) }
func (f fiberCarrier) Keys() []string        { return []string{"traceparent", "tracestate", "baggage"} }

var _ propagation.TextMapCarrier = fiberCarrier{}

// Metrics are the edge's HTTP metrics.
type Metrics struct {
	Requests    *prometheus.CounterVec
	Duration    *prometheus.HistogramVec
	RateLimited *prometheus.CounterVec
}

// NewMetrics registers (or reuses) the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		Requests: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"})),
		Duration: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gnome_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"})),
		RateLimited: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_http_rate_limited_total", Help: "Requests answered 429, by route template.",
		}, []string{"route"})),
	}
}

// quietPaths are probed constantly; their successful requests are logged at
// debug level only.
var quietPaths = map[string]bool{"/health": true, "/health/detailed": true, "/metrics": true}

// Observe wraps each request in a server span joined to an incoming W3C
// traceparent, counts it by route template and status, and writes one log
// line with request_id and trace_id. It must run after RequestID.
func Observe(log *slog.Logger, m *Metrics, errorHandler fiber.ErrorHandler) fiber.Handler {
	tracer := otel.Tracer("github.com/gnome-platform/gnome/libs/httpx")
	prop := otel.GetTextMapPropagator()
	return func(c *fiber.Ctx) error {
		start := time.Now()
		// Fiber's strings alias fasthttp's reused buffers; labels and span
		// attributes outlive the request, so they get copies.
		method, path := strings.Clone(c.Method()), strings.Clone(c.Path())
		ctx := c.UserContext()
		if c.Get("Traceparent") != "" || c.Get("Baggage") != "" {
			ctx = prop.Extract(ctx, fiberCarrier{c})
		}
		ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.path", path),
				attribute.String("gnome.request_id", GetRequestID(c))))
		defer span.End()
		c.SetUserContext(ctx)

		err := c.Next()
		if err != nil {
			// Render now, so the status below is the one sent.
			if herr := errorHandler(c, err); herr != nil {
				c.Status(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		route := c.Route().Path
		if r, ok := c.Locals(LocalRoute).(string); ok && r != "" {
			route = r
		}
		if route == "" || route == "/" && path != "/" {
			route = "unmatched"
		}
		m.Requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.Duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		if status == fiber.StatusTooManyRequests {
			m.RateLimited.WithLabelValues(route).Inc()
		}
		span.SetName(method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		level := slog.LevelInfo
		if quietPaths[path] && status < 400 {
			level = slog.LevelDebug
		}
		if log.Enabled(ctx, level) {
			log.Log(ctx, level, "request", "method", method, "path", path, "route", route, "status", status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "client_ip", ClientIP(c).String())
		}
		return nil
	}
}
