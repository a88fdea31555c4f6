package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"DEBUG":    slog.LevelDebug,
		"debug":    slog.LevelDebug,
		"INFO":     slog.LevelInfo,
		"":         slog.LevelInfo,
		"verbose":  slog.LevelInfo,
		"WARNING":  slog.LevelWarn,
		"warn":     slog.LevelWarn,
		"ERROR":    slog.LevelError,
		"CRITICAL": telemetry.LevelCritical,
		"critical": telemetry.LevelCritical,
	} {
		if got := telemetry.ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
	if telemetry.LevelCritical <= slog.LevelError {
		t.Error("CRITICAL is not above ERROR")
	}
}

func TestRequestIDContext(t *testing.T) {
	ctx := context.Background()
	if telemetry.RequestID(ctx) != "" {
		t.Error("empty context has a request ID")
	}
	if got := telemetry.RequestID(telemetry.WithRequestID(ctx, "abc-123")); got != "abc-123" {
		t.Errorf("RequestID = %q", got)
	}
}

// spanContext is a context carrying a remote span with a known trace ID.
func spanContext(t *testing.T) (context.Context, string) {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), sc), tid.String()
}

func TestJSONLoggerCarriesRequestAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "INFO", "json")
	ctx, traceID := spanContext(t)
	ctx = telemetry.WithRequestID(ctx, "req-0001")

	log.InfoContext(ctx, "hello", "n", 1)
	log.With("component", "x").InfoContext(ctx, "with attrs")
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d:\n%s", len(lines), buf.String())
	}
	for i, line := range lines[:2] {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		if rec["request_id"] != "req-0001" || rec["trace_id"] != traceID {
			t.Errorf("line %d: request_id=%v trace_id=%v, want req-0001 and %s", i, rec["request_id"], rec["trace_id"], traceID)
		}
	}
	var rec map[string]any
	_ = json.Unmarshal([]byte(lines[2]), &rec)
	if _, ok := rec["request_id"]; ok {
		t.Errorf("a line without context has a request_id: %s", lines[2])
	}
	if _, ok := rec["trace_id"]; ok {
		t.Errorf("a line without context has a trace_id: %s", lines[2])
	}
}

func TestTextLoggerCarriesRequestAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "DEBUG", "text")
	ctx, traceID := spanContext(t)
	log.DebugContext(telemetry.WithRequestID(ctx, "req-0002"), "hello")
	out := buf.String()
	for _, want := range []string{"request_id=req-0002", "trace_id=" + traceID, "level=DEBUG", "msg=hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("text line %q lacks %q", out, want)
		}
	}
}

func TestLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "ERROR", "json")
	log.Info("dropped")
	log.Warn("dropped too")
	log.Error("kept")
	log.Log(context.Background(), telemetry.LevelCritical, "on fire")
	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("lines below ERROR were written: %s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "CRITICAL" {
		t.Errorf("critical line has level %v, want CRITICAL", rec["level"])
	}
}

func TestNewWithSpanExporter(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	var buf bytes.Buffer
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		Service: "unit", Version: "1.2.3", LogLevel: "INFO", LogFormat: "json", LogWriter: &buf,
		SpanExporter: exp, Getenv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	if !tel.Exporting {
		t.Error("Exporting is false with an exporter")
	}
	ctx, span := tel.Tracer("libs/test").Start(context.Background(), "work")
	tel.Logger.InfoContext(ctx, "inside")
	span.End()

	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "work" {
		t.Fatalf("exported spans: %v", spans)
	}
	if got := spans[0].InstrumentationScope.Name; got != "github.com/gnome-platform/gnome/libs/test" {
		t.Errorf("tracer scope %q", got)
	}
	var svcName string
	for _, kv := range spans[0].Resource.Attributes() {
		if kv.Key == "service.name" {
			svcName = kv.Value.AsString()
		}
	}
	if svcName != "unit" {
		t.Errorf("service.name = %q, want unit", svcName)
	}
	if !strings.Contains(buf.String(), spans[0].SpanContext.TraceID().String()) {
		t.Errorf("log line lacks the span's trace ID: %s", buf.String())
	}

	// The global propagator speaks W3C trace context.
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if !strings.Contains(carrier["traceparent"], spans[0].SpanContext.TraceID().String()) {
		t.Errorf("traceparent %q does not carry the trace", carrier["traceparent"])
	}

	// The registry has the Go and process collectors.
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if !names["go_goroutines"] {
		t.Errorf("registry lacks go_goroutines: %v", names)
	}
}

func TestNewExporterChoice(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		exporting bool
		fails     bool
	}{
		{"nothing set", nil, false, false},
		{"endpoint set", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, false},
		{"traces endpoint set", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, false},
		{"exporter otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, false},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false, false},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false, false},
		{"grpc refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, err := telemetry.New(context.Background(), telemetry.Options{
				Service: "unit", LogWriter: &bytes.Buffer{},
				Getenv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
			})
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
					t.Fatalf("err = %v, want one naming OTEL_EXPORTER_OTLP_PROTOCOL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tel.Shutdown(context.Background()) }()
			if tel.Exporting != tc.exporting {
				t.Errorf("Exporting = %v, want %v", tel.Exporting, tc.exporting)
			}
		})
	}
}

func TestShutdownOfNothing(t *testing.T) {
	var tel *telemetry.Telemetry
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of nil: %v", err)
	}
}

func TestRegisterReturnsTheExistingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "gnome_test_things_total", Help: "Things."}
	first := telemetry.Register(reg, prometheus.NewCounter(opts))
	second := telemetry.Register(reg, prometheus.NewCounter(opts))
	second.Inc()
	second.Inc()
	if got := testutil.ToFloat64(first); got != 2 {
		t.Errorf("the first collector counts %v, want 2: the second registration made a new one", got)
	}

	vopts := prometheus.GaugeOpts{Name: "gnome_test_level", Help: "Level."}
	v1 := telemetry.Register(reg, prometheus.NewGaugeVec(vopts, []string{"k"}))
	v2 := telemetry.Register(reg, prometheus.NewGaugeVec(vopts, []string{"k"}))
	if v1 != v2 {
		t.Error("a second GaugeVec registration returned a different vector")
	}
	if n := testutil.CollectAndCount(reg, "gnome_test_things_total"); n != 1 {
		t.Errorf("registry holds %d series of the counter, want 1", n)
	}
}

func TestRegisterPanicsOnAConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "gnome_test_clash", Help: "A."}))
	defer func() {
		if recover() == nil {
			t.Error("registering a different metric under the same name did not panic")
		}
	}()
	telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "gnome_test_clash", Help: "B."}))
}

func TestLoggerIsSafeForConcurrentUse(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := telemetry.NewLogger(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), "INFO", "json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.InfoContext(telemetry.WithRequestID(context.Background(), "r"), "line", "i", i)
		}()
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "\n"); n != 8 {
		t.Errorf("%d lines, want 8", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
