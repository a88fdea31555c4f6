package edge_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// wantOutage checks r is the contract's 503: code unavailable, with a
// Retry-After.
func wantOutage(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable || r.code() != "unavailable" {
		t.Errorf("%s: %d %s, want 503 unavailable", what, r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s <= 0 {
		t.Errorf("%s: Retry-After %q, want a number of seconds", what, r.header.Get("Retry-After"))
	}
}

// An upload service that meets an outage (its read of the staged upload
// timed out), and then the bus itself gone: both are 503 with a
// Retry-After, not 500, and the second within seconds.
func TestUploadOutagesAre503(t *testing.T) {
	w := startWorld(t, nil)
	dev := w.developer("dev@example.com")
	zip := map[string]string{"Content-Type": "application/zip"}
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointProcess, func(ctx context.Context, req uploadapi.ProcessUpload) (uploadapi.Result, error) {
		return uploadapi.Result{}, fmt.Errorf("read staged upload: %w", context.DeadlineExceeded)
	}))
	body := strings.Repeat("PK", 64<<10)
	wantOutage(t, "the upload service timed out reading", w.do("POST", "/api/experiments", dev, zip, body))

	w.env.NATS.Shutdown()
	began := time.Now()
	r := w.do("POST", "/api/experiments", dev, zip, body)
	wantOutage(t, "the bus is down", r)
	if took := time.Since(began); took > 14*time.Second {
		t.Errorf("the upload failed after %v, want within seconds", took)
	}
}

// The database stopped under a running edge: a read it needs answers 503
// with a Retry-After.
func TestStoreOutageIs503(t *testing.T) {
	w := startWorld(t, nil)
	reader := w.token("reader@example.com")
	w.env.Store.Shutdown()
	wantOutage(t, "the store is down", w.do("GET", "/api/experiments/not-seen-before", reader, nil, ""))
}
