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
	neturl "net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/gnome-platform/gnome/libs/config"
)

// Header names the platform sets on messages besides the trace context.
const (
	HeaderRequestID = "X-Request-Id"
	// HeaderError carries an apierr code on a failed reply (nats.go/micro's
	// own error header, so generic micro tooling shows it too).
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// AckWait bounds the wait for JetStream's acknowledgement of one message
// published asynchronously when the caller's context allows longer: past
// it the storage is taken to be unavailable. An object's chunks are
// bounded by OpTimeout instead (PutObject).
const AckWait = 30 * time.Second

// Connect dials the NATS cluster at url (comma-separated for several
// servers), reconnecting forever: a service outlives a NATS restart. opts
// add to the defaults; AuthOptions gives the credentials.
func Connect(url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
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
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redact(url), err)
	}
	return nc, nil
}

// AuthOptions are the connection options of service user: its credentials
// (a user and password, a .creds file or an nkey seed file; none when a is
// empty) and its own reply inbox, InboxPrefix(user), the only inbox its bus
// permissions let it read.
func AuthOptions(a config.NATSAuth, user string) ([]nats.Option, error) {
	var opts []nats.Option
	if user != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(user)))
	}
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_SEED: %w", err)
		}
		opts = append(opts, o)
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	return opts, nil
}

// redact drops the passwords from URLs with credentials in them, for
// errors and logs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = neturl.User(u.User.Username())
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
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
