package store

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// The database's outages are unavailable wherever they surface
// (apierr.From): a repository that wraps one with %w answers 503.
func init() { apierr.RegisterUnavailable(IsUnavailable) }

// IsUnavailable reports whether err means the database could not be
// reached or did not answer in time: no server could be selected (the
// store stopped, a replica set without a primary), a network error or
// timeout, a client already disconnected, or a write the server marks
// retryable (a primary stepping down).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var sel topology.ServerSelectionError
	var le mongo.LabeledError
	return errors.As(err, &sel) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) ||
		errors.Is(err, mongo.ErrClientDisconnected) ||
		(errors.As(err, &le) && le.HasErrorLabel("RetryableWriteError"))
}
