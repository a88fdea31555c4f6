package bus

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// The bus's outages are unavailable wherever they surface (apierr.From):
// a handler that wraps one with %w answers 503 without knowing NATS.
func init() { apierr.RegisterUnavailable(IsUnavailable) }

// IsUnavailable reports whether err means the bus could not be reached or
// did not answer in time: no responders, a timeout or a deadline on a bus
// call, a connection closed or reconnecting, JetStream without a leader or
// temporarily unavailable. Retrying later may succeed; the request itself
// was not at fault.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{
		context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed,
		nats.ErrConnectionReconnecting, nats.ErrConnectionDraining, nats.ErrDisconnected, nats.ErrNoServers,
		nats.ErrStaleConnection, jetstream.ErrNoStreamResponse, jetstream.ErrNoHeartbeat,
		jetstream.ErrConnectionClosed, jetstream.ErrAsyncPublishTimeout, jetstream.ErrJetStreamPublisherClosed,
		jetstream.ErrConsumerLeadershipChanged, jetstream.ErrJetStreamNotEnabled, ErrNoResponders, ErrReaderLost,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		// 503 is JetStream's "not now": no leader yet, the system or a
		// cluster temporarily unavailable, not enough peers to place the
		// replicas (while a cluster forms). A sequence mismatch answers
		// 503 as well but is a conflict, not an outage.
		return api.Code == 503 && api.ErrorCode != 10063
	}
	return false
}
