// Package exportapi is the export as every service sees it: its log record
// in export_logs, the export service's contract on the bus with a typed
// client, the progress it publishes, and the job it queues. The edge asks,
// the export service decides and builds; nothing else writes export_logs.
package exportapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
)

// Statuses of an export. Queued and running are live; the rest are final,
// except that a ready export may still become invalidated.
const (
	StatusQueued      = "queued"
	StatusRunning     = "running"
	StatusReady       = "ready"
	StatusFailed      = "failed"
	StatusInvalidated = "invalidated"
)

// Live reports whether status is one a job may still change.
func Live(status string) bool { return status == StatusQueued || status == StatusRunning }

// Log is an export's document in export_logs. Its _id is the export ID (so
// every lookup by ID is an _id lookup on any store); ExportID repeats it
// under a unique index of its own. The original platform's fields keep
// their names: slug_id, export_type, user_email, file_size, checksum,
// b2_file_name (the storage key), invalidated, created_at.
type Log struct {
	ID          string    `bson:"_id" json:"id"`
	ExportID    string    `bson:"export_id" json:"-"`
	Slug        string    `bson:"slug_id" json:"slug"`
	Type        Type      `bson:"export_type" json:"type"`
	UserEmail   string    `bson:"user_email" json:"user_email"`
	FileSize    int64     `bson:"file_size" json:"size"`
	Checksum    string    `bson:"checksum" json:"checksum"`
	StorageKey  string    `bson:"b2_file_name" json:"-"`
	FileName    string    `bson:"file_name" json:"file_name"`
	Invalidated bool      `bson:"invalidated" json:"invalidated"`
	CreatedAt   time.Time `bson:"created_at" json:"created_at"`

	Status   string  `bson:"status" json:"status"`
	Progress float64 `bson:"progress" json:"progress"`
	Step     string  `bson:"step" json:"step"`
	Error    string  `bson:"error,omitempty" json:"error,omitempty"`

	InvalidatedAt *time.Time `bson:"invalidated_at,omitempty" json:"invalidated_at,omitempty"`
	InvalidatedBy string     `bson:"invalidated_by,omitempty" json:"invalidated_by,omitempty"`

	// Version and VersionChecksum are the experiment version exported
	// (VersionChecksum is the bundle's SHA-256, experiments.Config.Checksum);
	// ConfigSeq and DataSeq the experiment's configuration and data state
	// when the job was queued. Together with the type they are the source
	// key: a ready export with the experiment's current source key is
	// reused instead of building again.
	Version         int    `bson:"version" json:"version"`
	VersionChecksum string `bson:"version_checksum" json:"version_checksum"`
	ConfigSeq       int64  `bson:"config_seq" json:"-"`
	DataSeq         int64  `bson:"data_seq" json:"-"`
	SourceKey       string `bson:"source_key" json:"-"`
	// ReusedFrom names the export whose file this one shares.
	ReusedFrom string `bson:"reused_from,omitempty" json:"reused_from,omitempty"`

	// Data is what a research-data export (type ResearchData) holds.
	Data *DataQuery `bson:"data,omitempty" json:"data,omitempty"`

	Documents int64 `bson:"documents" json:"documents"`
	Attempts  int   `bson:"attempts" json:"attempts"`
	// Worker is the export service instance (svc.Deps.InstanceID) that ran
	// the latest attempt.
	Worker    string     `bson:"worker,omitempty" json:"worker,omitempty"`
	StartedAt *time.Time `bson:"started_at,omitempty" json:"started_at,omitempty"`
	// HeartbeatAt is the last sign of life of the job building it.
	HeartbeatAt *time.Time `bson:"heartbeat_at,omitempty" json:"-"`
	FinishedAt  *time.Time `bson:"finished_at,omitempty" json:"finished_at,omitempty"`
	// ExpiresAt is when a ready export stops being downloadable; the
	// clean-up then deletes its file and sets Expired.
	ExpiresAt *time.Time `bson:"expires_at,omitempty" json:"expires_at,omitempty"`
	Expired   bool       `bson:"expired" json:"expired"`
	UpdatedAt time.Time  `bson:"updated_at" json:"updated_at"`
}

// Downloadable reports whether the export's file may be handed out at now.
func (l *Log) Downloadable(now time.Time) bool {
	return l.Status == StatusReady && !l.Invalidated && !l.Expired && (l.ExpiresAt == nil || now.Before(*l.ExpiresAt))
}

// StorageKey is where an export's package is stored.
func StorageKey(id string) string { return "exports/" + id + ".zip" }

// idPattern is what NewID makes; anything else is no export of ours.
var idPattern = regexp.MustCompile(`^ex-[0-9a-f]{32}$`)

// NewID makes an export ID.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "ex-" + hex.EncodeToString(b)
}

// DerivedID is the export ID made from a requester, a source key and a
// generation (how many exports of that source the requester had before): the
// same inputs always give the same ID, of NewID's shape.
func DerivedID(email, sourceKey string, generation int64) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("export\x00%s\x00%s\x00%d", email, sourceKey, generation)))
	return "ex-" + hex.EncodeToString(h[:16])
}

// ValidID reports whether id has the shape of an export ID.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Type is the kind of package.
type Type string

// The package types.
const (
	UploadReady Type = "upload-ready"
	Standalone  Type = "standalone"
	Docker      Type = "docker"
)

// Types are every package type, in the order the platform offers them.
var Types = []Type{Standalone, UploadReady, Docker}

// ParseType reads a type as requests name it; anything else is a
// validation_failed error on /type.
func ParseType(s string) (Type, error) {
	switch t := Type(s); t {
	case UploadReady, Standalone, Docker:
		return t, nil
	}
	return "", apierr.New(apierr.CodeValidationFailed, "unknown export type %q: use standalone, upload-ready or docker", s).OnField("/type")
}

// HasData reports whether packages of the type carry the experiment's data
// and configuration.
func (t Type) HasData() bool { return t == Standalone || t == Docker }

// Service is the export service's name on the bus.
const Service = "export"

// Endpoints of the export service, on gnome.export.<name>.
var (
	// EndpointRequest asks for an export: it reuses a ready one of the
	// same source, joins one being built, or queues a job.
	EndpointRequest = contract.Endpoint[Request, Requested]{Service: Service, Name: "request"}
	// EndpointGet returns one export's log.
	EndpointGet = contract.Endpoint[Get, Log]{Service: Service, Name: "get"}
	// EndpointList lists export logs, newest first; admins only.
	EndpointList = contract.Endpoint[List, Listed]{Service: Service, Name: "list"}
	// EndpointInvalidate invalidates an export; admins only.
	EndpointInvalidate = contract.Endpoint[Invalidate, Log]{Service: Service, Name: "invalidate"}
	// EndpointDownload tells where an export's file is.
	EndpointDownload = contract.Endpoint[Get, Download]{Service: Service, Name: "download"}
)

// Client calls the export service.
type Client struct{ T contract.Transport }

// Request asks for an export.
func (c Client) Request(ctx context.Context, req Request) (Requested, error) {
	return EndpointRequest.Call(ctx, c.T, req)
}

// Get returns one export's log.
func (c Client) Get(ctx context.Context, req Get) (Log, error) {
	return EndpointGet.Call(ctx, c.T, req)
}

// List lists export logs.
func (c Client) List(ctx context.Context, req List) (Listed, error) {
	return EndpointList.Call(ctx, c.T, req)
}

// Invalidate invalidates an export.
func (c Client) Invalidate(ctx context.Context, req Invalidate) (Log, error) {
	return EndpointInvalidate.Call(ctx, c.T, req)
}

// Download tells where an export's file is.
func (c Client) Download(ctx context.Context, req Get) (Download, error) {
	return EndpointDownload.Call(ctx, c.T, req)
}

// Request asks for an export of the experiment's current version. The edge
// has already applied the experiment's access rules for the caller.
type Request struct {
	Slug string `json:"slug"`
	Type Type   `json:"type"`
	// Data is the collection, format and times of a ResearchData export;
	// no other type takes it.
	Data   *DataQuery      `json:"data,omitempty"`
	Caller contract.Caller `json:"caller"`
}

// Requested is the answer to Request: Reused is true when Export is a
// ready export of the same source (the edge answers 200), false when it is
// queued or being built (202).
type Requested struct {
	Export Log  `json:"export"`
	Reused bool `json:"reused"`
}

// Get names one export. Only its requester and admins see it; anyone else
// gets not_found, as if it did not exist.
type Get struct {
	ID     string          `json:"id"`
	Caller contract.Caller `json:"caller"`
}

// List asks for export logs, of one experiment when Slug is set.
type List struct {
	Slug   string          `json:"slug,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	Caller contract.Caller `json:"caller"`
}

// Listed is the answer to List.
type Listed struct {
	Exports []Log `json:"exports"`
}

// Invalidate marks an export invalidated, and deletes its file (and so
// invalidates every export sharing it) when DeleteFiles is set.
type Invalidate struct {
	ID          string          `json:"id"`
	DeleteFiles bool            `json:"delete_files"`
	Caller      contract.Caller `json:"caller"`
}

// Download tells the edge how to hand out an export's file: redirect to URL
// when it is set (a presigned link of S3-compatible storage, valid until
// URLExpires), else stream StorageKey from the exports object store.
type Download struct {
	Export     Log        `json:"export"`
	StorageKey string     `json:"storage_key"`
	URL        string     `json:"url,omitempty"`
	URLExpires *time.Time `json:"url_expires,omitempty"`
}

// ProgressSubject is where every change of an export's log is published
// (core NATS, not stored): the whole Log as JSON. Subscribers that may have
// missed one read the log again with Get.
func ProgressSubject(id string) string { return "exports.progress." + id }

// ProgressWildcard matches every export's progress.
const ProgressWildcard = "exports.progress.*"

// Job kinds on the JOBS_EXPORT stream (subjects jobs.export.<kind>).
const (
	JobPrefix = "jobs.export"
	JobBuild  = "build"
)

// BuildJob is the payload of a build job; the job ID is the export ID, so
// enqueueing it twice is de-duplicated by the stream.
type BuildJob struct {
	ID string `json:"id"`
	// What the export was asked for, for those who read the queue; the
	// worker goes by the log.
	Slug        string    `json:"slug"`
	Type        Type      `json:"type"`
	Version     int       `json:"version"`
	Checksum    string    `json:"checksum"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
}
