package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// AuditEntry is one entry of the audit log: who did what to which target.
type AuditEntry struct {
	Who       string
	What      string
	Target    string
	RequestID string
	Details   map[string]any
}

// Audit writes one entry of the audit log, timed now.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	_, err := s.Collection(AuditLog).InsertOne(ctx, bson.M{
		"who": e.Who, "what": e.What, "target": e.Target, "when": time.Now().UTC(),
		"request_id": e.RequestID, "details": e.Details,
	})
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}
