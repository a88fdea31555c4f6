// Package uploadapi is the upload service's contract on the bus: uploads
// and changes of experiments (schemas/messages/upload-*.json), with a typed
// client.
package uploadapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"

	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// Service is the upload service's name on the bus.
const Service = "upload"

// Endpoints of the upload service.
var (
	EndpointProcess = contract.Endpoint[ProcessUpload, Result]{Service: Service, Name: "process"}
	EndpointUpdate  = contract.Endpoint[Update, Result]{Service: Service, Name: "update"}
	EndpointDelete  = contract.Endpoint[Delete, Result]{Service: Service, Name: "delete"}
)

// Client calls the upload service.
type Client struct {
	T contract.Transport
	// Staging is where Upload puts a ZIP for the service to read: the
	// uploads object store (libs/bus.ObjectStaging).
	Staging Staging
}

// Staging holds uploads until the upload service has read them.
type Staging interface {
	Put(ctx context.Context, name string, r io.Reader) (size int64, err error)
	Delete(ctx context.Context, name string) error
}

// StageError is an upload that could not be staged: its reader failed (a
// client gone, a size limit) or the store refused it. Nothing was kept.
type StageError struct{ Err error }

func (e *StageError) Error() string { return "stage the upload: " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// NewUploadID names a staged upload.
func NewUploadID() string { return "up-" + rand.Text() }

// Upload streams the ZIP read from r into staging, never holding it in
// memory, and asks the upload service to check and store it as a new
// version. The service removes the staged ZIP once it has read it.
func (c Client) Upload(ctx context.Context, r io.Reader, caller Caller) (Result, error) {
	id := NewUploadID()
	size, err := c.Staging.Put(ctx, id, r)
	if err != nil {
		_ = c.Staging.Delete(context.WithoutCancel(ctx), id)
		return Result{}, &StageError{err}
	}
	return c.Process(ctx, ProcessUpload{UploadID: id, Size: size, Caller: caller})
}

// Process checks and stores an upload staged in the uploads object store.
func (c Client) Process(ctx context.Context, req ProcessUpload) (Result, error) {
	return EndpointProcess.Call(ctx, c.T, req)
}

// Update makes a kept version current, or changes status or manifest fields.
func (c Client) Update(ctx context.Context, req Update) (Result, error) {
	return EndpointUpdate.Call(ctx, c.T, req)
}

// Delete removes an experiment and everything of it.
func (c Client) Delete(ctx context.Context, req Delete) error {
	_, err := EndpointDelete.Call(ctx, c.T, req)
	return err
}

// Caller is who asks, as the edge verified it.
type Caller = contract.Caller

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
	Experiment experiments.Config `json:"experiment"`
	Warnings   []Warning          `json:"warnings"`
	Created    bool               `json:"created"`
}

// Warning is a manifest field accepted with a remark.
type Warning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}
