// Package actorapi is the contract of experiments' actors: the subject an
// actor answers on, its request and response envelopes
// (schemas/messages/actor-*.json), its state, lease and start job.
package actorapi

import (
	"time"

	"github.com/gnome-platform/gnome/libs/bundle"
)

// Actor states, as GET /experiments/{slug}/health shows them. StateNone is
// never stored: an experiment without a state in actor_state has none.
// StateIdle is an actor unloaded after ACTOR_IDLE_UNLOAD_SECONDS without
// calls: no worker holds it, and the next call starts it again.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFailed     = "failed"
	StateIdle       = "idle"
	StateNone       = "none"
)

// Subject is the NATS subject the actor of slug answers calls on.
func Subject(slug string) string { return "gnome.actor." + slug + ".call" }

// QueueGroup is the queue group of actor subscriptions: during a
// hand-over, a call reaches one instance only.
const QueueGroup = "actors"

// Headers of an actor call besides the trace context and request ID.
const (
	// HeaderDeadline is when the caller stops waiting, in Unix milliseconds;
	// a call still queued then is dropped.
	HeaderDeadline = "Gnome-Deadline"
	// HeaderRetryAfter accompanies an unavailable reply: seconds to wait.
	HeaderRetryAfter = "Retry-After"
	// HeaderNotServed marks a worker's refusal of a call it never ran (held
	// while the actor's instance started, or restarted, past the call's
	// deadline): the caller may send the call again.
	HeaderNotServed = "Gnome-Not-Served"
	// HeaderRun names the study-link run of a participant's call (the
	// caller's link.run): the worker marks the run started.
	HeaderRun = "Gnome-Run"
)

// HeaderScriptCookies is the response header in which an actor names,
// comma-separated, the cookies it sets that the page's scripts may read:
// the edge makes every other cookie an actor sets HttpOnly, and never sends
// the header on (docs/actors.md, section 4; the Go SDK spells it too).
const HeaderScriptCookies = "Gnome-Script-Cookies"

// Limits on the cookies one actor response sets: more, or larger, are
// dropped (RFC 6265 section 6.1 has browsers keep at least these sizes).
const (
	MaxCookies     = 20
	MaxCookieBytes = 4096
)

// Timeouts of one call into an actor: the manifest's timeout_ms within the
// platform's bounds (libs/actorhost enforces the same; a test keeps them equal).
const (
	DefaultTimeout = 2 * time.Second
	MaxTimeout     = 60 * time.Second
)

// Timeout is how long one call into the actor a may run.
func Timeout(a *bundle.Actor) time.Duration {
	if a == nil || a.TimeoutMS <= 0 {
		return DefaultTimeout
	}
	return min(time.Duration(a.TimeoutMS)*time.Millisecond, MaxTimeout)
}

// State is an actor's state in the actor_state bucket, under its slug,
// written by the worker instance that holds its lease.
type State struct {
	Slug     string `json:"slug"`
	State    string `json:"state"`
	Version  int    `json:"version"`
	Checksum string `json:"checksum"`
	// Seq is the experiment's Seq the actor was started from.
	Seq int64 `json:"seq"`
	// Worker is the actor-worker instance hosting it.
	Worker string `json:"worker"`
	// StartedAt is when the current instance began serving.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Restarts counts instances discarded after a trap, a timeout or
	// running out of memory, since this version was first started.
	Restarts    int        `json:"restarts"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Calls counts calls served since this version was first started.
	Calls int64 `json:"calls"`
	// RetryAt is when a failed start is tried again; absent when only a new
	// version or a change of the experiment can help.
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Lease is the value of an actor's lease in actor_leases: the worker
// instance that may run it. The key expires unless its holder renews it.
type Lease struct {
	Worker     string    `json:"worker"`
	Version    int       `json:"version"`
	Checksum   string    `json:"checksum"`
	AcquiredAt time.Time `json:"acquired_at"`
}

// StartJob is the payload of a job on jobs.actor.start.
type StartJob struct {
	Slug     string `json:"slug"`
	Version  int    `json:"version"`
	Checksum string `json:"checksum"`
	// Reason is one of the ActorStart constants.
	Reason string `json:"reason"`
	// Instance is which of the actor's instances (actor.instances in the
	// manifest) to start: 0, the first, when absent.
	Instance int `json:"instance,omitempty"`
}

// Why an actor start job was queued.
const (
	StartDeployed     = "deployed"
	StartOnDemand     = "on_demand"
	StartLeaseExpired = "lease_expired"
	StartRestart      = "restart"
)

// JobKind is the job kind of actor starts on JOBS_ACTOR.
const JobKind = "start"

// Request is the request envelope an edge sends to an actor
// (docs/actors.md, section 4; schemas/messages/actor-request.json).
type Request struct {
	Method string `json:"method"`
	// Path is below /experiments/{slug}/api, percent-decoded, from "/".
	Path string `json:"path"`
	// Query is the raw query string without "?".
	Query   string              `json:"query"`
	Headers map[string][]string `json:"headers"`
	// Body is base64 in JSON; never null.
	Body      []byte `json:"body"`
	Caller    Caller `json:"caller"`
	RequestID string `json:"request_id"`
}

// Caller is who asks, as the edge verified it.
type Caller struct {
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	Anonymous bool     `json:"anonymous"`
	// Kind is which kind of caller this is (CallerUser, ...); ID a stable
	// identifier of the caller within the experiment, "" for CallerAnonymous.
	Kind string `json:"kind,omitempty"`
	ID   string `json:"id,omitempty"`
	// Link is, for a participant who came through a study link, the link
	// and their run.
	Link *CallerLink `json:"link,omitempty"`
}

// CallerLink is the study link a participant opened and their run in it.
type CallerLink struct {
	// ID is the link's; Kind single, multi or personal; Label a personal
	// link's participant label.
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Label string `json:"label,omitempty"`
	// Run is the participant's run: the host operation run.finish takes it.
	Run string `json:"run"`
	// Params are the URL parameters the recruiter added to the link
	// (PROLIFIC_PID, STUDY_ID, SESSION_ID, workerId, assignmentId, hitId...).
	Params map[string]string `json:"params,omitempty"`
}

// Kinds of callers.
const (
	// CallerUser is a platform user, handed off to the experiment's origin.
	CallerUser = "user"
	// CallerExperimentUser is an account of this experiment alone (sub_auth).
	CallerExperimentUser = "experiment_user"
	// CallerDemo is a demo account of this experiment.
	CallerDemo = "demo"
	// CallerParticipant is an anonymous participant with a stable ID
	// (sub_auth anonymous_session, study links).
	CallerParticipant = "participant"
	// CallerAnonymous is a visitor the platform knows nothing of.
	CallerAnonymous = "anonymous"
)

// Response is an actor's response envelope
// (schemas/messages/actor-response.json).
type Response struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"`
}
