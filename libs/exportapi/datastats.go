package exportapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// EndpointDataStats tells how large an experiment's collections are and
// which of its data operations were slow, for its owner and admins: the
// "Data" section of the experiment's page and GET
// /api/experiments/{slug}/data/stats.
var EndpointDataStats = contract.Endpoint[DataStatsRequest, DataStats]{Service: Service, Name: "data_stats"}

// DataStats asks for an experiment's data statistics.
func (c Client) DataStats(ctx context.Context, req DataStatsRequest) (DataStats, error) {
	return EndpointDataStats.Call(ctx, c.T, req)
}

// DataStatsRequest names the experiment.
type DataStatsRequest struct {
	Slug   string          `json:"slug"`
	Caller contract.Caller `json:"caller"`
}

func (r *DataStatsRequest) CallerOf() *contract.Caller { return &r.Caller }

// Stores a DataStats names.
const (
	StoreEmbedded = "embedded"
	StoreMongoDB  = "mongodb"
)

// DataStats is the answer to DataStatsRequest.
type DataStats struct {
	Slug string `json:"slug"`
	// Store is StoreEmbedded or StoreMongoDB.
	Store string `json:"store"`
	// SlowDocuments is the size, in documents, past which a collection is
	// slow on this store (0: none known, as on MongoDB).
	SlowDocuments int64 `json:"slow_documents"`
	// SlowMS is the duration from which an operation counts as slow.
	SlowMS int64 `json:"slow_ms"`
	// Collections are the experiment's own, sorted by name.
	Collections []DataStatsCollection `json:"collections"`
	// SlowOps are its most recent slow data operations, oldest first.
	SlowOps []DataSlowOp `json:"slow_ops"`
	// SizesAt is when the sizes were read (they are kept briefly).
	SizesAt time.Time `json:"sizes_at"`
}

// DataStatsCollection is one collection and its size.
type DataStatsCollection struct {
	Name      string `json:"name"`
	Documents int64  `json:"documents"`
	Bytes     int64  `json:"bytes"`
	// Slow is true when Documents is past SlowDocuments.
	Slow bool `json:"slow"`
}

// DataSlowOp is one slow data operation of the experiment's actor.
type DataSlowOp struct {
	Collection string    `json:"collection"`
	From       string    `json:"from,omitempty"`
	Op         string    `json:"op"`
	DurationMS int64     `json:"duration_ms"`
	Documents  int64     `json:"documents"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
}
