package uploadapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// An experiment's versions: every upload of a slug is a version, numbered
// from 1 and never renumbered; the last experiments.KeepVersions uploads
// are kept with their bundles. A rollback makes a kept version current
// again: the experiment's current version and checksum point at it, and
// the same event as an upload's (reason "rollback") makes every edge serve
// its files and the actor workers load its actor. It makes no new version,
// so a version number always names one bundle and one checksum
// (docs/experiments.md, "Versions and rollback").

// Endpoints of the upload service for versions.
var (
	EndpointVersions = contract.Endpoint[VersionsQuery, Versions]{Service: Service, Name: "versions"}
	EndpointRollback = contract.Endpoint[Rollback, RollbackResult]{Service: Service, Name: "rollback"}
)

// VersionsQuery asks for the kept versions of an experiment.
type VersionsQuery struct {
	Slug   string `json:"slug"`
	Caller Caller `json:"caller"`
}

// Versions are an experiment's kept versions, newest first.
type Versions struct {
	Slug string `json:"slug"`
	// Current is the version the experiment serves.
	Current int `json:"current"`
	// Keep is how many versions are kept (experiments.KeepVersions).
	Keep     int           `json:"keep"`
	Versions []VersionInfo `json:"versions"`
}

// VersionInfo is one kept version as listed.
type VersionInfo struct {
	Version  int    `json:"version"`
	Checksum string `json:"checksum"`
	// Size is the stored (normalised) bundle's size in bytes; Files its
	// number of files.
	Size       int64     `json:"size"`
	Files      int       `json:"files"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
	Current    bool      `json:"current"`
	// Available tells whether the version's bundle is still in the
	// bundles object store; one that is not cannot be made current.
	Available bool `json:"available"`
	// Name and Description are those of the version's manifest.
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Rollback makes the kept version Version of experiment Slug current.
type Rollback struct {
	Slug    string `json:"slug"`
	Version int    `json:"version"`
	Caller  Caller `json:"caller"`
}

// RollbackResult is the experiment after a rollback. Changed is false when
// the version was current already: nothing changed and nothing was
// announced.
type RollbackResult struct {
	Experiment experiments.Config `json:"experiment"`
	// From is the version that was current before.
	From     int       `json:"from"`
	Changed  bool      `json:"changed"`
	Warnings []Warning `json:"warnings"`
}

func (r *VersionsQuery) CallerOf() *Caller { return &r.Caller }
func (r *Rollback) CallerOf() *Caller      { return &r.Caller }

// Versions lists an experiment's kept versions.
func (c Client) Versions(ctx context.Context, req VersionsQuery) (Versions, error) {
	return EndpointVersions.Call(ctx, c.T, req)
}

// Rollback makes a kept version current again.
func (c Client) Rollback(ctx context.Context, req Rollback) (RollbackResult, error) {
	return EndpointRollback.Call(ctx, c.T, req)
}
