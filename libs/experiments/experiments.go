// Package experiments is the experiment as every service sees it: its stored
// configuration, the events that announce its changes, the upload service's
// contract on the bus, and the access rules that decide who may open it.
package experiments

import (
	"encoding/json"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
)

// Statuses of an experiment.
const (
	StatusActive   = "active"
	StatusDraft    = "draft"
	StatusArchived = "archived"
	StatusInactive = "inactive"
)

// KeepVersions is how many versions of an experiment are kept.
const KeepVersions = 5

// Config is an experiment's document in experiments_config. Its _id is the
// slug, so every lookup by slug is an _id lookup on any store.
type Config struct {
	Slug        string `bson:"_id" json:"slug"`
	SlugField   string `bson:"slug" json:"-"`
	Name        string `bson:"name" json:"name"`
	Description string `bson:"description" json:"description"`
	OwnerEmail  string `bson:"owner_email" json:"owner_email"`
	Status      string `bson:"status" json:"status"`
	// Version and Checksum are the current version's.
	Version  int    `bson:"version" json:"version"`
	Checksum string `bson:"checksum" json:"checksum"`
	// Manifest is the current manifest.json, as JSON text.
	Manifest string `bson:"manifest" json:"-"`
	// Versions are the kept versions, newest last.
	Versions  []Version    `bson:"versions" json:"versions"`
	Indexes   []IndexState `bson:"indexes" json:"indexes"`
	CreatedAt time.Time    `bson:"created_at" json:"created_at"`
	UpdatedAt time.Time    `bson:"updated_at" json:"updated_at"`
	// Seq increases with every change; events carry it so that a reader can
	// tell a stale event from a fresh one.
	Seq int64 `bson:"seq" json:"seq"`
}

// Version is one kept version of an experiment's bundle.
type Version struct {
	Version    int       `bson:"version" json:"version"`
	Checksum   string    `bson:"checksum" json:"checksum"`
	Size       int64     `bson:"size" json:"size"`
	Files      int       `bson:"files" json:"files"`
	Manifest   string    `bson:"manifest" json:"-"`
	UploadedBy string    `bson:"uploaded_by" json:"uploaded_by"`
	CreatedAt  time.Time `bson:"created_at" json:"created_at"`
}

// IndexState is how a managed index fared on the store.
type IndexState struct {
	Collection string `bson:"collection" json:"collection"`
	Name       string `bson:"name" json:"name"`
	Type       string `bson:"type" json:"type"`
	// State is ready, building, "unsupported on this store" or "failed: reason".
	State string `bson:"state" json:"state"`
}

// Index states.
const (
	IndexReady       = "ready"
	IndexBuilding    = "building"
	IndexUnsupported = "unsupported on this store"
)

// BundleObject names a version's bundle in the bundles object store.
func BundleObject(slug, checksum string) string { return slug + "/" + checksum + ".zip" }

// Current is the current version's entry, if it is kept.
func (c *Config) Current() *Version {
	for i := range c.Versions {
		if c.Versions[i].Version == c.Version {
			return &c.Versions[i]
		}
	}
	return nil
}

// Event subjects.
const (
	SubjectUpdated = "events.experiment.updated"
	SubjectDeleted = "events.experiment.deleted"
)

// Event announces a change of an experiment: a new version, a change of
// status or manifest, or its deletion.
type Event struct {
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

// Upload service contract.
const (
	Service         = "upload"
	EndpointProcess = "process"
	EndpointUpdate  = "update"
	EndpointDelete  = "delete"
)

// Subject is the request subject of an upload service endpoint.
func Subject(endpoint string) string { return bus.Subject(Service, endpoint) }

// Caller is who asks, as the edge verified it.
type Caller struct {
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	IsAdmin   bool     `json:"is_admin"`
	RequestID string   `json:"request_id,omitempty"`
}

// ProcessUpload asks the upload service to check and store a staged upload.
type ProcessUpload struct {
	// UploadID names the staged ZIP in the uploads object store.
	UploadID string `json:"upload_id"`
	Size     int64  `json:"size"`
	Caller   Caller `json:"caller"`
}

// Update changes an experiment: make a kept version current, or change its
// status or manifest fields.
type Update struct {
	Slug    string          `json:"slug"`
	Version *int            `json:"version,omitempty"`
	Status  *string         `json:"status,omitempty"`
	Fields  json.RawMessage `json:"manifest,omitempty"`
	Caller  Caller          `json:"caller"`
}

// Delete removes an experiment and everything of it.
type Delete struct {
	Slug    string `json:"slug"`
	Confirm string `json:"confirm"`
	Caller  Caller `json:"caller"`
}

// Result is the upload service's answer: the experiment and what the
// uploader should know.
type Result struct {
	Experiment Config    `json:"experiment"`
	Warnings   []Warning `json:"warnings"`
	Created    bool      `json:"created"`
}

// Warning is a manifest field accepted with a remark.
type Warning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}
