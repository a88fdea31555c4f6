package httpx_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/httpx"
)

func TestObserveLogsOneLinePerRequest(t *testing.T) {
	exp := installTracing(t)
	ta := newApp(t, appOptions{logLevel: "INFO"})
	resp := ta.do(t, request{target: "/items/42", peer: "198.51.100.9:1234"})
	rid := header(resp, httpx.HeaderRequestID)
	lines := ta.logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines for one request:\n%s", len(lines), ta.logs.String())
	}
	l := lines[0]
	for k, want := range map[string]any{
		"msg": "request", "method": "GET", "path": "/items/42", "route": "/items/:id",
		"status": float64(200), "client_ip": "198.51.100.9", "request_id": rid,
	} {
		if l[k] != want {
			t.Errorf("log %s = %v, want %v", k, l[k], want)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || l["trace_id"] != spans[0].SpanContext.TraceID().String() {
		t.Errorf("log trace_id %v, want the request span's trace (spans %d)", l["trace_id"], len(spans))
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Errorf("log duration_ms %v", l["duration_ms"])
	}
}

func TestObserveKeepsProbesQuiet(t *testing.T) {
	ta := newApp(t, appOptions{logLevel: "INFO"})
	ta.do(t, request{target: "/health"})
	ta.do(t, request{target: "/metrics"})
	if lines := ta.logs.lines(t); len(lines) != 0 {
		t.Errorf("successful probes logged at INFO: %v", lines)
	}
	ta.do(t, request{target: "/health?down=1"})
	lines := ta.logs.lines(t)
	if len(lines) != 1 || lines[0]["status"] != float64(503) {
		t.Errorf("a failing probe must be logged: %v", lines)
	}

	dbg := newApp(t, appOptions{logLevel: "DEBUG"})
	dbg.do(t, request{target: "/health"})
	if lines := dbg.logs.lines(t); len(lines) != 1 || lines[0]["level"] != "DEBUG" {
		t.Errorf("probes at DEBUG: %v", lines)
	}
}

func TestObserveCountsByRouteTemplate(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, p := range []string{"/items/1", "/items/2", "/items/3"} {
		ta.do(t, request{target: p})
	}
	ta.do(t, request{target: "/conflict"})
	ta.do(t, request{target: "/does/not/exist"})
	ta.do(t, request{target: "/limited"})
	for _, tc := range []struct {
		route, status string
		want          float64
	}{
		{"/items/:id", "200", 3},
		{"/conflict", "409", 1},
		{"unmatched", "404", 1},
		{"/limited", "429", 1},
	} {
		if got := testutil.ToFloat64(ta.metrics.Requests.WithLabelValues(tc.route, "GET", tc.status)); got != tc.want {
			t.Errorf("requests{route=%q,status=%s} = %v, want %v", tc.route, tc.status, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(ta.metrics.RateLimited.WithLabelValues("/limited")); got != 1 {
		t.Errorf("rate_limited{route=/limited} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(ta.metrics.Duration, "gnome_http_request_duration_seconds"); n != 4 {
		t.Errorf("duration series %d, want one per route (4)", n)
	}
	// Concrete paths never become labels.
	if n := testutil.CollectAndCount(ta.metrics.Requests, "gnome_http_requests_total"); n != 4 {
		t.Errorf("requests series %d, want 4", n)
	}
}

func TestObserveContinuesAnIncomingTrace(t *testing.T) {
	exp := installTracing(t)
	ta := newApp(t, appOptions{})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := ta.do(t, request{target: "/items/7", headers: [][2]string{
		{"traceparent", "00-" + traceID + "-" + parentID + "-01"}, {"tracestate", "vendor=1"},
	}})
	rid := header(resp, httpx.HeaderRequestID)
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != traceID {
		t.Errorf("span trace %s, want the incoming %s", s.SpanContext.TraceID(), traceID)
	}
	if s.Parent.SpanID().String() != parentID || !s.Parent.IsRemote() {
		t.Errorf("span parent %s (remote %v), want the incoming %s", s.Parent.SpanID(), s.Parent.IsRemote(), parentID)
	}
	if s.Parent.TraceState().Get("vendor") != "1" {
		t.Errorf("tracestate lost: %q", s.Parent.TraceState().String())
	}
	if s.Name != "GET /items/:id" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v", s.Name, s.SpanKind)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		attrs[kv.Key] = kv.Value
	}
	if attrs["http.route"].AsString() != "/items/:id" || attrs["http.response.status_code"].AsInt64() != 200 || attrs["gnome.request_id"].AsString() != rid {
		t.Errorf("span attributes %v", attrs)
	}
	if l := ta.logs.lines(t); len(l) != 1 || l[0]["trace_id"] != traceID {
		t.Errorf("log line does not carry the incoming trace: %v", l)
	}

	// Without a traceparent a new trace starts; a server error marks the span.
	exp.Reset()
	ta.do(t, request{target: "/boom"})
	spans = exp.GetSpans()
	if len(spans) != 1 || spans[0].SpanContext.TraceID().String() == traceID || spans[0].Parent.IsValid() {
		t.Fatalf("spans %v, want one root span of a new trace", spans)
	}
	if spans[0].Status.Code.String() != "Error" {
		t.Errorf("a 500 left the span status %v", spans[0].Status)
	}

	// A malformed traceparent is ignored.
	exp.Reset()
	ta.do(t, request{target: "/small", headers: [][2]string{{"traceparent", "garbage"}}})
	if spans = exp.GetSpans(); len(spans) != 1 || spans[0].Parent.IsValid() {
		t.Errorf("malformed traceparent: spans %v", spans)
	}
}
