// Package telemetry sets up the three signals every service emits: slog logs
// carrying request and trace IDs, OpenTelemetry traces (exported over OTLP when
// the standard OTEL_* variables ask for it), and Prometheus metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configure New.
type Options struct {
	// Service names the process in traces ("gnome" for the all-in-one server).
	Service   string
	Version   string
	LogLevel  string // DEBUG, INFO, WARNING, ERROR, CRITICAL
	LogFormat string // text or json
	LogWriter io.Writer
	// SpanExporter, when set, receives every span (tests use an in-memory
	// one); otherwise OTLP is used when OTEL_EXPORTER_OTLP_* is set.
	SpanExporter sdktrace.SpanExporter
	// Getenv reads OTEL_* variables; os.LookupEnv when nil.
	Getenv func(string) (string, bool)
}

// Telemetry holds the process's logger, tracer provider and metrics registry.
type Telemetry struct {
	Logger         *slog.Logger
	TracerProvider *sdktrace.TracerProvider
	Registry       *prometheus.Registry
	// Exporting tells whether spans leave the process.
	Exporting bool
}

// New builds the logger, the tracer provider (installed as the global one,
// with W3C trace-context propagation) and a registry with Go and process
// collectors.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	if o.LogWriter == nil {
		o.LogWriter = os.Stderr
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	t := &Telemetry{Logger: NewLogger(o.LogWriter, o.LogLevel, o.LogFormat)}

	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", envOr(o.Getenv, "OTEL_SERVICE_NAME", o.Service)),
		attribute.String("service.version", o.Version),
	))
	if err != nil {
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exp := o.SpanExporter
	if exp == nil && otlpWanted(o.Getenv) {
		if p := envOr(o.Getenv, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"); p != "http/protobuf" && p != "http/json" {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported; use http/protobuf", p)
		}
		exp, err = otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("create OTLP exporter: %w", err)
		}
	}
	if exp != nil {
		t.Exporting = true
		if o.SpanExporter != nil {
			popts = append(popts, sdktrace.WithSyncer(exp))
		} else {
			popts = append(popts, sdktrace.WithBatcher(exp))
		}
	}
	if exp == nil {
		// Nothing would read a recorded span: record only what an upstream
		// caller asked to sample. Unsampled spans still carry IDs, so logs
		// keep their trace_id and the context still propagates.
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	t.TracerProvider = sdktrace.NewTracerProvider(popts...)
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	t.Registry = prometheus.NewRegistry()
	t.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return t, nil
}

// Shutdown flushes spans still buffered.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.TracerProvider == nil {
		return nil
	}
	return t.TracerProvider.Shutdown(ctx)
}

// Tracer is the tracer a package of the platform uses.
func (t *Telemetry) Tracer(name string) trace.Tracer {
	return t.TracerProvider.Tracer("github.com/gnome-platform/gnome/" + name)
}

func otlpWanted(get func(string) (string, bool)) bool {
	if v, _ := get("OTEL_TRACES_EXPORTER"); strings.EqualFold(v, "none") {
		return false
	}
	if v, _ := get("OTEL_SDK_DISABLED"); strings.EqualFold(v, "true") {
		return false
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if v, ok := get(k); ok && v != "" {
			return true
		}
	}
	v, _ := get("OTEL_TRACES_EXPORTER")
	return strings.EqualFold(v, "otlp")
}

func envOr(get func(string) (string, bool), k, def string) string {
	if v, ok := get(k); ok && v != "" {
		return v
	}
	return def
}

// Register adds c to reg, or returns the collector already registered under
// the same description, so that two instances of a service in one process
// (as in tests) share their metrics.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register metric: %v", err))
	}
	return c
}
