// Package events is the contract of the platform's domain events: the
// subjects on the EVENTS stream, their payloads, and the message ID that
// makes a publication idempotent. libs/svc follows them; libs/bus
// publishes them.
package events

import (
	"fmt"
	"time"
)

// Experiment event subjects.
const (
	ExperimentUpdated = "events.experiment.updated"
	ExperimentDeleted = "events.experiment.deleted"
	// ExperimentAll matches every experiment event.
	ExperimentAll = "events.experiment.>"
)

// Experiment announces a change of an experiment: a new version, a change of
// status or manifest, or its deletion.
type Experiment struct {
	Slug       string    `json:"slug"`
	Version    int       `json:"version"`
	Checksum   string    `json:"checksum"`
	Status     string    `json:"status"`
	OwnerEmail string    `json:"owner_email"`
	HasActor   bool      `json:"has_actor"`
	Seq        int64     `json:"seq"`
	Reason     string    `json:"reason"` // upload, rollback, update, delete
	At         time.Time `json:"at"`
	RequestID  string    `json:"request_id,omitempty"`
}

// ExperimentMsgID is the message ID of an experiment's event on the stream,
// so that the same change announced twice (a retried publication) is stored
// once. A slug deleted and uploaded again starts its sequence anew: its
// creation time tells its lives apart within the duplicate window.
func ExperimentMsgID(subject, slug string, created time.Time, seq int64) string {
	return fmt.Sprintf("%s-%s-%d-%d", subject, slug, created.UnixMilli(), seq)
}
