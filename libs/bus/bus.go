// Package bus is how services talk: a NATS connection, request/reply through
// nats.go/micro services in queue groups, and W3C trace context carried in
// NATS message headers so one trace spans every hop.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Header names the platform sets on messages besides the trace context.
const (
	HeaderRequestID = "X-Request-Id"
	// HeaderError carries an apierr code on a failed reply (nats.go/micro's
	// own error header, so generic micro tooling shows it too).
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// Connect dials the NATS cluster at url (comma-separated for several
// servers), reconnecting forever: a service outlives a NATS restart.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("nats async error", "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	return nc, nil
}

// carrier adapts NATS headers to OpenTelemetry's propagation. NATS header
// names are case-sensitive: it writes them exactly as the propagator names
// them (traceparent, tracestate, baggage), as every W3C-aware consumer in
// any language expects, and reads them in any case.
type carrier nats.Header

func (c carrier) Get(key string) string {
	if v := nats.Header(c)[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c carrier) Set(key, value string) { nats.Header(c)[key] = []string{value} }

func (c carrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

var _ propagation.TextMapCarrier = carrier{}

// Inject writes ctx's trace context and request ID into h.
func Inject(ctx context.Context, h nats.Header, requestID string) {
	otel.GetTextMapPropagator().Inject(ctx, carrier(h))
	if requestID != "" {
		http.Header(h).Set(HeaderRequestID, requestID)
	}
}

// Extract returns ctx joined to the trace found in h, and h's request ID.
func Extract(ctx context.Context, h nats.Header) (context.Context, string) {
	if h == nil {
		return ctx, ""
	}
	ctx = otel.GetTextMapPropagator().Extract(ctx, carrier(h))
	return ctx, http.Header(h).Get(HeaderRequestID)
}

// ErrNoResponders is returned when no instance of a service is listening.
var ErrNoResponders = errors.New("no service instance is listening")
