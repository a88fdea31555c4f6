// Package uploadapi is the upload service's contract on the bus: uploads
// and changes of experiments (schemas/messages/upload-*.json), with a typed
// client.
package uploadapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

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
	// The grants of experiments' data to other experiments' reads.
	EndpointGrants = contract.Endpoint[GrantsQuery, Grants]{Service: Service, Name: "grants"}
	EndpointGrant  = contract.Endpoint[GrantRequest, GrantResult]{Service: Service, Name: "grant"}
	EndpointRevoke = contract.Endpoint[RevokeRequest, Grant]{Service: Service, Name: "revoke"}
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

// ValidUploadID reports whether id may name a staged upload: letters,
// digits, '-' and '_', as NewUploadID makes them. It is also a key of the
// upload service's records, where '.', '*' or '>' would reach other keys.
func ValidUploadID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Processing an upload is asked for in short rounds, so that a lost
// instance or bus node is noticed within seconds, while processing itself
// may take minutes for a large bundle. The upload service records who
// processes each upload ID and its outcome: an ask that joins a processing
// under way waits for it, one after it gets the same outcome, and one whose
// processing instance died takes it over. No upload ID ever makes two
// versions.
const (
	// ProcessWait is how long the upload service holds an ask before it
	// answers that the upload is still being processed (Result.Pending).
	ProcessWait = 2 * time.Second
	// ProcessAttempt bounds one ask: ProcessWait and the round trips. An
	// ask that got no answer within it met a lost instance or node, and is
	// sent again.
	ProcessAttempt = ProcessWait + 5*time.Second
	// ProcessUnanswered bounds how long asks keep getting no answer at all
	// (no instance listening, none answering) before Process gives up with
	// unavailable: time for another instance to take the upload over.
	ProcessUnanswered = 10 * time.Second
)

// ProcessBound is the longest processing of a staged upload of size bytes
// may take: reading it, checking and normalising every entry, storing the
// bundle. The upload service stops a processing at it (the outcome is
// unavailable), and Process waits for no longer, plus ProcessUnanswered.
// A 95 MB bundle took 3 s on a shared two-core machine (embedded NATS and
// store); the bound, 30 s and a second per MB, leaves forty times that
// for a loaded cluster writing three replicas.
func ProcessBound(size int64) time.Duration {
	return 30*time.Second + time.Duration(max(size, 0)>>20)*time.Second
}

// Upload streams the ZIP read from r into staging, never holding it in
// memory, and asks the upload service to check and store it as a new
// version. Staging runs under ctx (a slow client may take long); the
// processing that follows gets its own bound (Process, ProcessBound),
// which ctx's cancellation ends but its deadline does not shorten. The
// service removes the staged ZIP once it has recorded the outcome; the
// uploads store's TTL removes one whose processing never finished.
func (c Client) Upload(ctx context.Context, r io.Reader, caller Caller) (Result, error) {
	id := NewUploadID()
	size, err := c.Staging.Put(ctx, id, r)
	if err != nil {
		// Whatever part of it was stored goes, in the background: the
		// answer (503 when the storage is down) does not wait for a
		// storage that may not answer.
		go func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = c.Staging.Delete(dctx, id)
		}()
		return Result{}, &StageError{err}
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})()
	return c.Process(pctx, ProcessUpload{UploadID: id, Size: size, Caller: caller})
}

// Process checks and stores an upload staged in the uploads object store,
// within ProcessBound(req.Size) plus ProcessUnanswered (or ctx's deadline,
// when sooner). It asks in rounds of at most ProcessAttempt and asks again
// while the service answers that the upload is pending or an ask gets no
// answer (contract.ErrUnanswered); an answer the service gave is final.
// When no ask is answered for ProcessUnanswered, or the bound passes, the
// error is unavailable: the upload may still have been stored, and
// uploading it again is safe (an unchanged bundle makes no version).
func (c Client) Process(ctx context.Context, req ProcessUpload) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, ProcessBound(req.Size)+ProcessUnanswered)
	defer cancel()
	var unanswered time.Time
	backoff := 100 * time.Millisecond
	for {
		asked := time.Now()
		actx, acancel := context.WithTimeout(ctx, ProcessAttempt)
		res, err := EndpointProcess.Call(actx, c.T, req)
		acancel()
		switch {
		case err == nil && !res.Pending:
			return res, nil
		case err == nil:
			// Processing goes on: ask again at once.
			unanswered, backoff = time.Time{}, 100*time.Millisecond
			continue
		case !errors.Is(err, contract.ErrUnanswered):
			return Result{}, err
		case ctx.Err() != nil:
			return Result{}, unavailable(req.UploadID, err)
		}
		if unanswered.IsZero() {
			unanswered = asked
		}
		if time.Since(unanswered) > ProcessUnanswered {
			return Result{}, unavailable(req.UploadID, err)
		}
		select {
		case <-ctx.Done():
			return Result{}, unavailable(req.UploadID, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// unavailable is the answer when processing could not be followed to its
// end: the last ask's error says why.
func unavailable(id string, last error) error {
	return fmt.Errorf("process upload %s: no answer from the upload service: %w", id, last)
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

// Grants lists the grants of an experiment's data to others and of
// others' data to it, and what its data_scope asks for.
func (c Client) Grants(ctx context.Context, req GrantsQuery) (Grants, error) {
	return EndpointGrants.Call(ctx, c.T, req)
}

// Grant lets another experiment read an experiment's data.
func (c Client) Grant(ctx context.Context, req GrantRequest) (GrantResult, error) {
	return EndpointGrant.Call(ctx, c.T, req)
}

// Revoke ends a grant; running actors lose the access within a second.
func (c Client) Revoke(ctx context.Context, req RevokeRequest) (Grant, error) {
	return EndpointRevoke.Call(ctx, c.T, req)
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
	// Unchanged says that an upload was the very bundle (and manifest)
	// of the current version: no version was made and nothing announced.
	Unchanged bool `json:"unchanged,omitempty"`
	// Message says so in words, for people reading the answer.
	Message string `json:"message,omitempty"`
	// Pending, alone in a reply of Process, says that the upload is still
	// being processed: ask again (Client.Process does).
	Pending bool `json:"pending,omitempty"`
}

// MarshalJSON writes a pending answer as the pending flag alone
// (schemas/messages/upload-result.json), and any other as its fields.
func (r Result) MarshalJSON() ([]byte, error) {
	if r.Pending {
		return []byte(`{"pending":true}`), nil
	}
	type plain Result
	return json.Marshal(plain(r))
}

// Warning is a manifest field accepted with a remark.
type Warning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Grant is the record of one experiment's owner (or an admin) letting
// another experiment read the first one's data: From is the experiment
// whose data is read, To the one whose data_scope names it.
type Grant struct {
	From      string    `json:"from" bson:"data"`
	To        string    `json:"to" bson:"reader"`
	GrantedBy string    `json:"granted_by" bson:"granted_by"`
	GrantedAt time.Time `json:"granted_at" bson:"granted_at"`
}

// GrantsQuery asks for the grants around one experiment.
type GrantsQuery struct {
	Slug   string `json:"slug"`
	Caller Caller `json:"caller"`
}

// States of a data_scope entry naming another experiment.
const (
	// ScopeOwner: both experiments have one owner, which grants the read.
	ScopeOwner = "owner"
	// ScopeGranted: the other experiment's owner granted it.
	ScopeGranted = "granted"
	// ScopeMissing: another owner's experiment that has granted nothing;
	// its reads are refused.
	ScopeMissing = "missing"
	// ScopeUnknown: no experiment has the slug; its reads are refused.
	ScopeUnknown = "unknown"
)

// ScopeEntry is a slug an experiment's data_scope names, and whether its
// reads are granted.
type ScopeEntry struct {
	Slug  string `json:"slug"`
	State string `json:"state"`
}

// Grants are the grants around one experiment, both ways.
type Grants struct {
	Slug string `json:"slug"`
	// Granted are the grants of this experiment's data to others.
	Granted []Grant `json:"granted"`
	// Received are the grants of others' data to this experiment.
	Received []Grant `json:"received"`
	// Requested are the other experiments this one's data_scope names,
	// each with its state.
	Requested []ScopeEntry `json:"requested"`
	// RequestedBy are the experiments of other owners whose data_scope
	// names this one and that it has not granted.
	RequestedBy []string `json:"requested_by"`
}

// GrantRequest lets experiment To read the data of experiment Slug.
type GrantRequest struct {
	Slug   string `json:"slug"`
	To     string `json:"to"`
	Caller Caller `json:"caller"`
}

// GrantResult is the grant, and whether this request made it (false: it
// existed already, and is unchanged).
type GrantResult struct {
	Grant   Grant `json:"grant"`
	Created bool  `json:"created"`
}

// RevokeRequest ends the grant of Slug's data to Reader. The reply is the
// grant that ended.
type RevokeRequest struct {
	Slug   string `json:"slug"`
	Reader string `json:"reader"`
	Caller Caller `json:"caller"`
}

// AccessKey is the key of the data_grants bucket (libs/bus) that is present
// exactly while experiment reader may read the data of experiment data: by
// a grant, or because one owner has both. Slugs hold no '.', so the key
// names one pair.
func AccessKey(reader, data string) string { return reader + "." + data }

// Access is the value under an AccessKey.
type Access struct {
	Reader string `json:"reader"`
	Data   string `json:"data"`
	// Kind is ScopeGranted or ScopeOwner.
	Kind      string    `json:"kind"`
	GrantedBy string    `json:"granted_by,omitempty"`
	GrantedAt time.Time `json:"granted_at,omitzero"`
}
