package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream resources of the platform. schemas/asyncapi.yaml documents
// each; the service named beside it owns and provisions it at start, and any
// service that uses it ensures it too, so start order never matters.
const (
	// StreamEvents carries domain events (events.experiment.updated, ...);
	// limits retention, so every interested service reads it through its own
	// durable consumer. Owner: upload.
	StreamEvents = "EVENTS"
	// StreamExportJobs is the export job work queue. Owner: export.
	StreamExportJobs = "JOBS_EXPORT"
	// StreamActorJobs is the actor start job work queue. Owner: actorworker.
	StreamActorJobs = "JOBS_ACTOR"
	// StreamActorLogs holds actors' log lines for a day, one subject per
	// experiment (actorapi.LogSubject). Owner: actorworker.
	StreamActorLogs = "ACTOR_LOGS"

	SubjectEvents     = "events.>"
	SubjectExportJobs = "jobs.export.>"
	SubjectActorJobs  = "jobs.actor.>"
	SubjectActorLogs  = "gnome.logs.actor.*"

	// Buckets.
	BucketRateLimit     = "ratelimit"      // owner: edge
	BucketRevokedTokens = "revoked_tokens" // owner: auth
	BucketAuthKeys      = "auth_keys"      // owner: auth
	BucketUserVersions  = "user_versions"  // owner: auth
	BucketActorLeases   = "actor_leases"   // owner: actorworker
	BucketActorState    = "actor_state"    // owner: actorworker
	BucketActorKV       = "actor_kv"       // owner: actorworker
	// BucketActorTimers holds actors' pending timers ({slug}.once.{id})
	// and the last firing of each manifest schedule ({slug}.sched.{name}).
	BucketActorTimers = "actor_timers" // owner: actorworker
	// BucketDataGrants holds a key reader.data (uploadapi.AccessKey) exactly
	// while experiment reader may read experiment data's data; actorworkers
	// watch it, so a revocation reaches running actors at once.
	BucketDataGrants = "data_grants" // owner: upload
	// BucketHandoffs holds the single-use codes that carry a visitor's
	// identity from the platform's origin to an experiment's (30 s at most).
	BucketHandoffs = "handoffs" // owner: edge
	// BucketUploadRuns holds, per staged upload, the lease of the upload
	// instance processing it ({id}.lease, renewed every second, gone 5 s
	// after its holder) and its outcome ({id}.done, kept an hour), so that
	// asking again for an upload joins or answers the first processing.
	BucketUploadRuns = "upload_runs" // owner: upload

	// Object stores.
	ObjectUploads = "uploads" // owner: upload (staging of incoming ZIPs)
	ObjectBundles = "bundles" // owner: upload (normalised experiment versions)
	ObjectExports = "exports" // owner: export
)

// Topology provisions the platform's JetStream resources with one set of
// durability settings.
type Topology struct {
	JS jetstream.JetStream
	// Replicas of every stream, bucket and object store: 1 on a single
	// server, 3 on a production cluster.
	Replicas int
	// Service is the bus user provisioning (see access.go): it creates what
	// is missing but changes an existing configuration only of what it
	// owns, which is all its bus permissions allow. Empty or Admin: it
	// changes any.
	Service string
	// Bound is how long one Ensure call keeps retrying a resource that
	// cannot be provisioned yet (PROVISION_TIMEOUT_SECONDS); 0 means
	// DefaultProvisionBound.
	Bound time.Duration
	// Attempt bounds one attempt; 0 means provisionAttempt.
	Attempt time.Duration
	// Retrying, when set, hears of every attempt that failed and will be
	// repeated (services log them: a cluster that is slow to form shows).
	Retrying func(kind, name string, attempt int, err error)
}

// DefaultProvisionBound is how long provisioning retries by default: long
// enough for a cluster whose nodes start with the services to elect its
// leaders.
const DefaultProvisionBound = 60 * time.Second

// provisionAttempt bounds one attempt: on a clustered JetStream, creating
// one replicated resource from several clients at once can take long or
// never answer (nats.go issue #949), and the next attempt may find it made.
const provisionAttempt = 5 * time.Second

func (t Topology) bound() time.Duration {
	if t.Bound <= 0 {
		return DefaultProvisionBound
	}
	return t.Bound
}

// Retry runs attempt as provisioning does (back-off with jitter, each
// attempt bounded, "already exists" retried at once) for up to
// DefaultProvisionBound or until ctx ends: for what is made at start
// besides the topology, such as durable consumers. kind and name name the
// resource in the error.
func Retry(ctx context.Context, kind, name string, attempt func(ctx context.Context) error) error {
	return Topology{}.provision(ctx, kind, name, attempt)
}

// ProvisionError is a resource that could not be provisioned within the
// bound; it names the resource.
type ProvisionError struct {
	Kind, Name string
	Attempts   int
	Err        error
}

func (e *ProvisionError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("provision %s %s: %v (gave up after %d attempts)", e.Kind, e.Name, e.Err, e.Attempts)
	}
	return fmt.Sprintf("provision %s %s: %v", e.Kind, e.Name, e.Err)
}

func (e *ProvisionError) Unwrap() error { return e.Err }

// provision runs attempt until it succeeds, fails for a reason retrying
// cannot mend, or the bound (or ctx) ends. Attempts are spaced by an
// exponential back-off with full jitter, so instances started together do
// not ask again together. "Already exists" from a resource another
// instance created meanwhile is retried at once: the next attempt finds it
// and checks or updates its configuration.
func (t Topology) provision(ctx context.Context, kind, name string, attempt func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, t.bound())
	defer cancel()
	backoff := 100 * time.Millisecond
	for n := 1; ; n++ {
		actx, acancel := context.WithTimeout(ctx, cmp.Or(t.Attempt, provisionAttempt))
		err := attempt(actx)
		acancel()
		if err == nil {
			return nil
		}
		raced := errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) ||
			errors.Is(err, jetstream.ErrConsumerExists) || errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse)
		if !raced && !IsUnavailable(err) {
			return &ProvisionError{Kind: kind, Name: name, Attempts: n, Err: err}
		}
		if t.Retrying != nil {
			t.Retrying(kind, name, n, err)
		}
		wait := time.Duration(0)
		if !raced || n > 3 {
			wait = time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
			backoff = min(2*backoff, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return &ProvisionError{Kind: kind, Name: name, Attempts: n, Err: err}
		case <-time.After(wait):
		}
	}
}

// mayUpdate reports whether t changes the existing configuration of the
// JetStream stream named stream.
func (t Topology) mayUpdate(stream string) bool {
	return t.Service == "" || t.Service == Admin || Owner(stream) == t.Service
}

// Durability: every resource is file-backed. The embedded server fsyncs every
// write (SyncAlways, see embedded.NATS); on a cluster, replicas give the
// durability and the operator's server config decides fsync.

func (t Topology) replicas() int {
	if t.Replicas < 1 {
		return 1
	}
	return t.Replicas
}

// Stream returns the configuration of one of the platform's streams.
func (t Topology) Stream(name string) (jetstream.StreamConfig, error) {
	base := jetstream.StreamConfig{
		Name:       name,
		Storage:    jetstream.FileStorage,
		Replicas:   t.replicas(),
		Duplicates: 10 * time.Minute,
		Discard:    jetstream.DiscardOld,
	}
	switch name {
	case StreamEvents:
		base.Subjects = []string{SubjectEvents}
		base.Retention = jetstream.LimitsPolicy
		base.MaxAge = 7 * 24 * time.Hour
		base.Description = "domain events (experiment.updated, experiment.deleted, ...)"
	case StreamExportJobs:
		base.Subjects = []string{SubjectExportJobs}
		base.Retention = jetstream.WorkQueuePolicy
		base.MaxAge = 24 * time.Hour
		base.Discard = jetstream.DiscardNew
		base.MaxMsgs = 100_000
		base.Description = "export generation jobs"
	case StreamActorJobs:
		base.Subjects = []string{SubjectActorJobs}
		base.Retention = jetstream.WorkQueuePolicy
		base.MaxAge = 24 * time.Hour
		base.Discard = jetstream.DiscardNew
		base.MaxMsgs = 100_000
		base.Description = "actor start jobs"
	case StreamActorLogs:
		// Bounded three ways: a day, a total size, and a count per
		// experiment so that one chatty actor cannot push out every other
		// experiment's lines. The worker's output budgets bound the rate.
		base.Subjects = []string{SubjectActorLogs}
		base.Retention = jetstream.LimitsPolicy
		base.MaxAge = 24 * time.Hour
		base.MaxBytes = 256 << 20
		base.MaxMsgsPerSubject = 20_000
		base.MaxMsgSize = 64 << 10
		base.Description = "actors' log lines, by experiment"
	default:
		return base, fmt.Errorf("unknown stream %q", name)
	}
	return base, nil
}

// EnsureStreams creates or updates the named streams, retrying each within
// the bound while JetStream cannot answer yet (provision).
func (t Topology) EnsureStreams(ctx context.Context, names ...string) error {
	for _, n := range names {
		cfg, err := t.Stream(n)
		if err != nil {
			return err
		}
		err = t.provision(ctx, "stream", n, func(ctx context.Context) error {
			if t.mayUpdate(n) {
				_, err := t.JS.CreateOrUpdateStream(ctx, cfg)
				return err
			}
			if _, err := t.JS.CreateStream(ctx, cfg); !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return err
			}
			return nil // its owner's configuration stands
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// KeyValue returns the configuration of one of the platform's buckets.
func (t Topology) KeyValue(name string) (jetstream.KeyValueConfig, error) {
	cfg := jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.FileStorage, Replicas: t.replicas(), History: 1}
	switch name {
	case BucketRateLimit:
		cfg.Description = "rate-limit windows, updated by compare-and-set"
		cfg.TTL = time.Hour
		cfg.LimitMarkerTTL = time.Minute
	case BucketRevokedTokens:
		cfg.Description = "deny-list of signed-out token IDs; entries expire with the token"
		cfg.TTL = 25 * time.Hour
		cfg.LimitMarkerTTL = time.Minute
	case BucketAuthKeys:
		cfg.Description = "token verification keys, by key ID"
	case BucketUserVersions:
		cfg.Description = "each user's current token version; older tokens are refused"
	case BucketActorLeases:
		cfg.Description = "actor placement leases, one key per actor instance (the slug; slug.i1 and on for more instances)"
		// Holders renew every second; a dead holder's lease is gone within
		// 3 s, and the marker it leaves tells watchers at once.
		cfg.TTL = 3 * time.Second
		cfg.LimitMarkerTTL = time.Minute
	case BucketActorState:
		cfg.Description = "actor state per actor instance (the slug; slug.i1 and on), readable from any edge"
	case BucketActorKV:
		cfg.Description = "per-experiment key-value store of actors"
		cfg.MaxValueSize = 1 << 20
	case BucketActorTimers:
		cfg.Description = "pending timers of actors and the last firing of their schedules"
		// A timer's payload (16 KiB of JSON) and its fields.
		cfg.MaxValueSize = 32 << 10
		// Fired and cancelled timers are purged with a marker that
		// expires, so that markers do not pile up.
		cfg.LimitMarkerTTL = time.Minute
	case BucketHandoffs:
		cfg.Description = "single-use hand-off codes to experiment origins, by hashed code"
		cfg.TTL = 30 * time.Second
		cfg.LimitMarkerTTL = time.Minute
		cfg.MaxValueSize = 8 << 10
	case BucketDataGrants:
		cfg.Description = "active grants of experiments' data to other experiments' reads, by reader.data"
		cfg.MaxValueSize = 4 << 10
	case BucketUploadRuns:
		cfg.Description = "who processes each staged upload (a lease with a TTL) and its outcome, by upload ID"
		// Outcomes are asked for again only while their upload's client
		// still waits; leases carry their own TTL (a few seconds).
		cfg.TTL = time.Hour
		cfg.LimitMarkerTTL = time.Minute
		cfg.MaxValueSize = 256 << 10
	default:
		return cfg, fmt.Errorf("unknown bucket %q", name)
	}
	return cfg, nil
}

// EnsureBuckets creates or updates the named key-value buckets, retrying
// each within the bound (provision).
func (t Topology) EnsureBuckets(ctx context.Context, names ...string) error {
	for _, n := range names {
		cfg, err := t.KeyValue(n)
		if err != nil {
			return err
		}
		err = t.provision(ctx, "bucket", n, func(ctx context.Context) error {
			if t.mayUpdate("KV_" + n) {
				_, err := t.JS.CreateOrUpdateKeyValue(ctx, cfg)
				return err
			}
			if _, err := t.JS.CreateKeyValue(ctx, cfg); !errors.Is(err, jetstream.ErrBucketExists) {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ObjectStore returns the configuration of one of the platform's object stores.
func (t Topology) ObjectStore(name string) (jetstream.ObjectStoreConfig, error) {
	cfg := jetstream.ObjectStoreConfig{Bucket: name, Storage: jetstream.FileStorage, Replicas: t.replicas(), Compression: false}
	switch name {
	case ObjectUploads:
		cfg.Description = "incoming experiment ZIPs, kept until checked"
		cfg.TTL = 24 * time.Hour
	case ObjectBundles:
		cfg.Description = "experiment bundles by version, content-addressed"
	case ObjectExports:
		cfg.Description = "export packages"
	default:
		return cfg, fmt.Errorf("unknown object store %q", name)
	}
	return cfg, nil
}

// EnsureObjectStores creates or updates the named object stores, retrying
// each within the bound (provision).
func (t Topology) EnsureObjectStores(ctx context.Context, names ...string) error {
	for _, n := range names {
		cfg, err := t.ObjectStore(n)
		if err != nil {
			return err
		}
		err = t.provision(ctx, "object store", n, func(ctx context.Context) error {
			if t.mayUpdate("OBJ_" + n) {
				_, err := t.JS.CreateOrUpdateObjectStore(ctx, cfg)
				return err
			}
			if _, err := t.JS.CreateObjectStore(ctx, cfg); !errors.Is(err, jetstream.ErrBucketExists) {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Retry runs attempt as provisioning does, within t's bound: for what a
// service sets up at start besides its resources (a watch of buckets).
func (t Topology) Retry(ctx context.Context, kind, name string, attempt func(ctx context.Context) error) error {
	return t.provision(ctx, kind, name, attempt)
}

// Bucket opens the named key-value bucket, retrying within the bound as
// provisioning does: at start, just after EnsureBuckets, the lookup can
// time out on a busy cluster as the creation can, and a service must not
// exit on it.
func (t Topology) Bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := t.provision(ctx, "bucket", name, func(ctx context.Context) (err error) {
		kv, err = t.JS.KeyValue(ctx, name)
		return err
	})
	return kv, err
}

// Objects opens the named object store, retrying within the bound as
// Bucket does.
func (t Topology) Objects(ctx context.Context, name string) (jetstream.ObjectStore, error) {
	var obs jetstream.ObjectStore
	err := t.provision(ctx, "object store", name, func(ctx context.Context) (err error) {
		obs, err = t.JS.ObjectStore(ctx, name)
		return err
	})
	return obs, err
}

// IsNotFound reports whether err means a stream, consumer, key or object is absent.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrObjectNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound)
}
