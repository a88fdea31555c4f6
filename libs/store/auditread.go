package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func init() {
	// The audit log is read newest first, by time alone or narrowed to
	// who acted, what they did or what they did it to (AuditEntries).
	coreIndexes[AuditLog] = []index{
		{name: "when", keys: bson.D{{Key: "when", Value: -1}, {Key: "_id", Value: -1}}},
		{name: "who_when", keys: bson.D{{Key: "who", Value: 1}, {Key: "when", Value: -1}}},
		{name: "target_when", keys: bson.D{{Key: "target", Value: 1}, {Key: "when", Value: -1}}},
		{name: "what_when", keys: bson.D{{Key: "what", Value: 1}, {Key: "when", Value: -1}}},
	}
}

// AuditQuery selects entries of the audit log. Who and Target match whole
// values and WhatPrefix the start of What; all three are plain text (a
// value is never read as an operator or a pattern). Since is inclusive,
// Until exclusive; zero times do not bound. After, when set, is the last
// entry of the page before: the page continues after it.
type AuditQuery struct {
	Who, WhatPrefix, Target string
	Since, Until            time.Time
	After                   *AuditPosition
	Limit                   int
}

// AuditPosition is an entry's place in the log's order (newest first):
// its time and its ID (24 hex digits).
type AuditPosition struct {
	When time.Time
	ID   string
}

// ErrAuditPosition is a position whose ID is none the log gives.
var ErrAuditPosition = errors.New("not a position in the audit log")

// AuditRecord is an entry of the audit log as stored.
type AuditRecord struct {
	ID        bson.ObjectID `bson:"_id"`
	When      time.Time     `bson:"when"`
	Who       string        `bson:"who"`
	What      string        `bson:"what"`
	Target    string        `bson:"target"`
	RequestID string        `bson:"request_id"`
	Details   bson.RawValue `bson:"details"`
}

// DetailsMap is the entry's details as plain JSON values (relaxed
// Extended JSON: a date reads {"$date": "..."}), or nil when it has none.
func (r AuditRecord) DetailsMap() map[string]any {
	doc, ok := r.Details.DocumentOK()
	if !ok {
		return nil
	}
	b, err := bson.MarshalExtJSON(doc, false, false)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	return m
}

// AuditEntries reads the entries q selects, newest first.
func (s *Store) AuditEntries(ctx context.Context, q AuditQuery) ([]AuditRecord, error) {
	filter := bson.D{}
	if q.Who != "" {
		filter = append(filter, bson.E{Key: "who", Value: bson.D{{Key: "$eq", Value: q.Who}}})
	}
	if q.Target != "" {
		filter = append(filter, bson.E{Key: "target", Value: bson.D{{Key: "$eq", Value: q.Target}}})
	}
	if q.WhatPrefix != "" {
		// Quoted, so that what the caller typed is matched as text.
		filter = append(filter, bson.E{Key: "what", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(q.WhatPrefix)}}})
	}
	when := bson.D{}
	if !q.Since.IsZero() {
		when = append(when, bson.E{Key: "$gte", Value: q.Since.UTC()})
	}
	if !q.Until.IsZero() {
		when = append(when, bson.E{Key: "$lt", Value: q.Until.UTC()})
	}
	if len(when) > 0 {
		filter = append(filter, bson.E{Key: "when", Value: when})
	}
	if q.After != nil {
		id, err := bson.ObjectIDFromHex(q.After.ID)
		if err != nil {
			return nil, ErrAuditPosition
		}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "when", Value: bson.D{{Key: "$lt", Value: q.After.When.UTC()}}}},
			bson.D{{Key: "when", Value: q.After.When.UTC()}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: id}}}},
		}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "when", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(q.Limit))
	cur, err := s.Collection(AuditLog).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out := []AuditRecord{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
