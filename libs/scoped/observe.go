package scoped

import (
	"context"
	"time"
)

// Names of the operations an Observer is told of.
const (
	OpFind      = "find"
	OpCount     = "count"
	OpAggregate = "aggregate"
	OpInsert    = "insert"
	OpUpdate    = "update"
	OpReplace   = "replace"
	OpDelete    = "delete"
)

// Op is one data operation of a Scope, as its Observer sees it after it
// ended: enough to tell which experiment's request on which collection was
// slow, without the filter (which may hold participants' data).
type Op struct {
	// Slug is the experiment whose scope ran the operation.
	Slug string
	// From is the experiment whose collection was read, when not the own
	// one: a data_scope slug, or "shared".
	From string
	// Collection is the base name, as the experiment named it.
	Collection string
	// Name is one of the Op* names.
	Name     string
	Duration time.Duration
	// Documents is how many documents the operation returned (reads) or
	// wrote (inserted, matched for updates, deleted).
	Documents int64
	Err       error
}

// WithObserver has f told of every operation after it ended, errors
// included; f runs on the caller's goroutine, so it must be quick (the
// platform keeps the slow ones: services/actorworker).
func WithObserver(f func(ctx context.Context, op Op)) Option {
	return func(s *Scope) { s.observe = f }
}

// begin starts timing an operation on ref; the function it returns tells
// the observer, if any, how it ended.
func (s *Scope) begin(ctx context.Context, name string, ref Ref) func(n int64, err error) {
	if s.observe == nil {
		return func(int64, error) {}
	}
	start := time.Now()
	return func(n int64, err error) {
		from := ref.Slug
		if from == Self || from == s.slug {
			from = ""
		}
		s.observe(ctx, Op{Slug: s.slug, From: from, Collection: ref.Name, Name: name, Duration: time.Since(start), Documents: n, Err: err})
	}
}
