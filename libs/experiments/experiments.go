// Package experiments is the experiment as every service sees it: its stored
// configuration and the access rules that decide who may open it. The
// services' contracts about it are uploadapi (uploads and changes), events
// (what announces a change) and actorapi (its actor); the repository every
// service reads and changes it through is experiments/repo.
package experiments

import (
	"time"
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
	// UploadID is the staged upload the version was made from: a second
	// processing of the same upload (its first instance lost) finds it and
	// makes no second version.
	UploadID string `bson:"upload_id,omitempty" json:"-"`
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
