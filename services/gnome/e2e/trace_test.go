package e2e

import (
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a minimal OTLP/HTTP trace endpoint on loopback that keeps
// every span it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	srv   *http.Server
	addr  string
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ex coltracepb.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &ex) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	})}
	go func() { _ = r.srv.Serve(l) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *otlpReceiver) inTrace(traceID []byte) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if string(s.TraceId) == string(traceID) {
			out = append(out, s)
		}
	}
	return out
}

// With the standard OTEL_EXPORTER_OTLP_ENDPOINT set, gnome serve exports
// spans over OTLP/HTTP, and one incoming W3C trace continues from the edge
// across NATS into the services that answer it.
func TestTraceCrossesTheBusAndIsExported(t *testing.T) {
	rcv := startReceiver(t)
	httpAddr := freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, freeAddr(t), freeAddr(t))
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://" + rcv.addr
	env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
	p := start(t, "gnome", env, "serve")
	base := "http://" + httpAddr
	waitHealthy(t, base, p)

	traceHex := "4bf92f3577b34da6a3ce929d0e0e4736"
	traceID, _ := hex.DecodeString(traceHex)
	req, _ := http.NewRequest("GET", base+"/health/detailed", nil)
	req.Header.Set("Traceparent", "00-"+traceHex+"-00f067aa0ba902b7-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := map[string]tracepb.Span_SpanKind{
		"GET /health/detailed": tracepb.Span_SPAN_KIND_SERVER,
	}
	for _, s := range allServices {
		want["gnome."+s+".status"] = tracepb.Span_SPAN_KIND_SERVER
	}
	var spans []*tracepb.Span
	waitFor(t, 20*time.Second, "the request's spans to be exported", func() bool {
		spans = rcv.inTrace(traceID)
		found := 0
		for name, kind := range want {
			for _, s := range spans {
				if s.Name == name && s.Kind == kind {
					found++
					break
				}
			}
		}
		return found == len(want)
	})
	// The edge's server span is the child of the caller's span.
	for _, s := range spans {
		if s.Name == "GET /health/detailed" && hex.EncodeToString(s.ParentSpanId) != "00f067aa0ba902b7" {
			t.Errorf("edge span's parent = %x, want the incoming span", s.ParentSpanId)
		}
	}
	p.stop(t)
}
