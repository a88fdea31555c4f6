package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/jobs"
)

// The actor call path: ANY /experiments/{slug}/api/* becomes a NATS request
// to the experiment's actor (actorapi.Subject), carrying the request
// envelope of docs/actors.md; the reply is the actor's response envelope or
// an error. Health reads the actor's state from actor_state.

const tracerName = "github.com/gnome-platform/gnome/services/edge"

// maxActorBody bounds the body of a request to an actor.
const maxActorBody = 1 << 20

// callSlack is how much longer than the actor's own time limit the edge
// waits, for queueing and transport.
const callSlack = time.Second

// failedRetryAfter is the Retry-After, in seconds, of a call to an actor
// whose module cannot load.
const failedRetryAfter = 30

// Request headers an actor never sees, and response headers it may not set
// (docs/actors.md, section 4).
var (
	hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	// Cookie and Set-Cookie pass through actorcookies.go's filters instead.
	dropIn  = headerSet(append([]string{"Cookie", "Authorization", "Proxy-Authorization"}, hopByHop...))
	dropOut = headerSet(append([]string{"Set-Cookie", "Content-Length", "X-Request-Id", "Strict-Transport-Security"}, hopByHop...))
)

func headerSet(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[textproto.CanonicalMIMEHeaderKey(n)] = true
	}
	return m
}

// actorBus is what one edge instance uses of the actors' resources, opened
// on first use.
type actorBus struct {
	states jetstream.KeyValue
	leases jetstream.KeyValue
	queue  *jobs.Queue

	// cache follows actor_state for the experiment lists.
	mu     sync.RWMutex
	cache  map[string]actorapi.State
	synced chan struct{}
}

// actorsAPI is the experiments' actors: their API calls and their health.
type actorsAPI struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	topology bus.Topology
	log      *slog.Logger
	// access applies an experiment's rules (experimentsAPI.access).
	access func(experiments.Action) fiber.Handler
	// production forces Secure on the cookies actors set.
	production bool

	// mu guards bus, opened on first use.
	mu  sync.Mutex
	bus *actorBus
}

// actorBus opens the buckets and queue once per edge instance.
func (a *actorsAPI) actorBus(ctx context.Context) (*actorBus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bus != nil {
		return a.bus, nil
	}
	if err := a.topology.EnsureBuckets(ctx, bus.BucketActorState, bus.BucketActorLeases); err != nil {
		return nil, err
	}
	if err := a.topology.EnsureStreams(ctx, bus.StreamActorJobs); err != nil {
		return nil, err
	}
	ab := &actorBus{cache: map[string]actorapi.State{}, synced: make(chan struct{}), queue: jobs.NewQueue(a.js, bus.StreamActorJobs, "jobs.actor")}
	var err error
	if ab.states, err = a.js.KeyValue(ctx, bus.BucketActorState); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bus.BucketActorState, err)
	}
	if ab.leases, err = a.js.KeyValue(ctx, bus.BucketActorLeases); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bus.BucketActorLeases, err)
	}
	// The watcher lives as long as the instance's connection.
	w, err := ab.states.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", bus.BucketActorState, err)
	}
	go ab.follow(w)
	a.bus = ab
	return ab, nil
}

func (ab *actorBus) follow(w jetstream.KeyWatcher) {
	for e := range w.Updates() {
		if e == nil {
			close(ab.synced)
			continue
		}
		ab.mu.Lock()
		var st actorapi.State
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &st) == nil {
			ab.cache[e.Key()] = st
		} else {
			delete(ab.cache, e.Key())
		}
		ab.mu.Unlock()
	}
}

// cached is slug's state as last seen by the watcher.
func (ab *actorBus) cached(slug string) (actorapi.State, bool) {
	select {
	case <-ab.synced:
	default:
		// Only the first use waits for the watcher's initial values.
		select {
		case <-ab.synced:
		case <-time.After(time.Second):
		}
	}
	ab.mu.RLock()
	defer ab.mu.RUnlock()
	st, ok := ab.cache[slug]
	return st, ok
}

// runsActor reports whether e should have an actor running.
func runsActor(e *entry) bool {
	return e.cfg.Status == experiments.StatusActive && e.manifest != nil && e.manifest.Actor != nil
}

// viewOf is the actor part of an experiment's view.
func (a *actorsAPI) viewOf(e *entry) actorView {
	if !runsActor(e) {
		return actorView{State: actorapi.StateNone}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ab, err := a.actorBus(ctx)
	if err != nil {
		return actorView{State: actorapi.StateStarting}
	}
	if st, ok := ab.cached(e.cfg.Slug); ok && st.State != "" {
		if st.State == actorapi.StateFailed && st.Checksum == e.cfg.Checksum {
			return actorView{State: st.State, LastError: st.LastError}
		}
		return actorView{State: st.State}
	}
	return actorView{State: actorapi.StateStarting}
}

// health answers GET /experiments/{slug}/health from actor_state: the
// state the worker holding the actor wrote, or starting when no worker
// holds it yet (a state left by a worker that died is stale until its
// lease expires and another takes over).
func (a *actorsAPI) health(c *fiber.Ctx) error {
	e := entryOf(c)
	if !runsActor(e) {
		return c.JSON(fiber.Map{"slug": e.cfg.Slug, "state": actorapi.StateNone, "version": e.cfg.Version})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	ab, err := a.actorBus(ctx)
	if err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the actor's state is unavailable right now")
	}
	st, err := getJSON[actorapi.State](ctx, ab.states, e.cfg.Slug)
	if err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the actor's state is unavailable right now")
	}
	if st == nil || (st.State == actorapi.StateFailed && st.Checksum != e.cfg.Checksum) {
		// Nothing yet, or the failure of a version no longer current.
		st = &actorapi.State{Slug: e.cfg.Slug, State: actorapi.StateStarting, Version: e.cfg.Version, Checksum: e.cfg.Checksum, Seq: e.cfg.Seq}
	} else if st.State != actorapi.StateFailed && st.State != actorapi.StateIdle {
		lease, err := getJSON[actorapi.Lease](ctx, ab.leases, e.cfg.Slug)
		if err != nil {
			return apierr.Wrap(apierr.CodeUnavailable, err, "the actor's state is unavailable right now")
		}
		if lease == nil || lease.Worker != st.Worker {
			st.State, st.StartedAt = actorapi.StateStarting, nil
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(st)
}

func getJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (*T, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return nil, nil
	}
	return &v, nil
}

// call hands /experiments/{slug}/api/* to the experiment's actor and sends
// back its response.
func (a *actorsAPI) call(c *fiber.Ctx) error {
	e := entryOf(c)
	slug := e.cfg.Slug
	if !runsActor(e) {
		return apierr.New(apierr.CodeUnavailable, "experiment %q has no actor running", slug)
	}
	// The body is read even when over the limit (limitBodies bounds it at
	// 4 MB), so that the client hears the 413 instead of a reset connection.
	body := c.Body()
	if len(body) > maxActorBody {
		return apierr.New(apierr.CodePayloadTooLarge, "the body is over the actor limit of %d bytes", maxActorBody)
	}
	rid := httpx.GetRequestID(c)
	rules := cookieRules{reserved: reservedFor(e), production: a.production}
	headers := actorHeaders(c)
	if ck := actorCookieHeader(c, rules.reserved); ck != "" {
		headers["Cookie"] = []string{ck}
	}
	caller := callerOf(c)
	req := actorapi.Request{
		Method:    c.Method(),
		Path:      actorPath(string(c.Request().URI().Path()), slug),
		Query:     string(c.Request().URI().QueryString()),
		Headers:   headers,
		Body:      append([]byte{}, body...),
		Caller:    caller,
		RequestID: rid,
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode actor request: %w", err)
	}
	if int64(len(data)) > a.nc.MaxPayload() {
		return apierr.New(apierr.CodePayloadTooLarge, "the request is over what the bus carries (%d bytes)", a.nc.MaxPayload())
	}

	timeout := actorapi.Timeout(e.manifest.Actor) + callSlack
	subject := actorapi.Subject(slug)
	ctx, span := otel.Tracer(tracerName).Start(c.UserContext(), "actor call", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gnome.slug", slug), attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", subject)))
	defer span.End()
	msg := nats.NewMsg(subject)
	msg.Data = data
	bus.Inject(ctx, msg.Header, rid)
	if caller.Link != nil {
		// The worker marks the run started without reading the body.
		msg.Header.Set(actorapi.HeaderRun, caller.Link.Run)
	}

	reply, err := a.request(ctx, msg, timeout)
	if errors.Is(err, nats.ErrNoResponders) || notServed(reply, err) {
		// An idle actor is started, or a lost worker's actor taken over,
		// and the call held meanwhile (actorwake.go).
		reply, err = a.wakeAndCall(ctx, e, msg, timeout)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return a.startOnDemand(c.UserContext(), e)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// A worker answers an actor that runs past its time limit
			// itself (504 timeout). No answer at all by the limit and
			// callSlack means the call or its answer was lost (the
			// worker or its NATS node gone) or the worker is too busy to
			// take it: unavailable, to be tried again.
			ae := apierr.Wrap(apierr.CodeUnavailable, err, fmt.Sprintf("the actor of %q did not answer: its worker or the bus did not carry the call through; try again", slug))
			ae.RetryAfter = 1
			return ae
		}
		return apierr.Wrap(apierr.CodeUnavailable, err, fmt.Sprintf("the actor of %q could not be reached", slug))
	}
	if ae := replyError(reply); ae != nil {
		span.SetStatus(codes.Error, string(ae.Code))
		return ae
	}
	var res actorapi.Response
	if err := json.Unmarshal(reply.Data, &res); err != nil || res.Status < 200 || res.Status > 599 {
		span.SetStatus(codes.Error, "malformed response")
		return apierr.New(apierr.CodeBadGateway, "the actor of %q answered with a malformed response", slug)
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
	var setCookies, script []string
	for name, values := range res.Headers {
		switch canon := textproto.CanonicalMIMEHeaderKey(name); {
		case canon == "Set-Cookie":
			setCookies = append(setCookies, values...)
			continue
		case canon == actorapi.HeaderScriptCookies:
			script = append(script, values...)
			continue
		case dropOut[canon]:
			continue
		}
		for _, v := range values {
			c.Response().Header.Add(name, v)
		}
	}
	for _, v := range rules.actorSetCookies(ctx, a.log, slug, setCookies, scriptCookies(script)) {
		c.Response().Header.Add(fiber.HeaderSetCookie, v)
	}
	return c.Status(res.Status).Send(res.Body)
}

// replyError is the error an actor's worker answered with (bus error
// headers, the error body, Retry-After), or nil for an answer.
func replyError(reply *nats.Msg) *apierr.Error {
	code := reply.Header.Get(bus.HeaderErrorCode)
	if code == "" {
		return nil
	}
	var be apierr.BodyError
	if json.Unmarshal(reply.Data, &be) != nil || be.Code == "" {
		be = apierr.BodyError{Code: apierr.Code(code), Message: reply.Header.Get(bus.HeaderError)}
	}
	ae := apierr.FromBody(be)
	ae.RetryAfter, _ = strconv.Atoi(reply.Header.Get(actorapi.HeaderRetryAfter))
	return ae
}

// callerOf is who asks, as the actor is told: a verified token's holder
// (a platform user, an account of this experiment alone, or a demo
// account), else an anonymous participant with a stable ID, else nobody
// the platform knows.
func callerOf(c *fiber.Ctx) actorapi.Caller {
	if cl := claimsOf(c); cl != nil {
		kind := actorapi.CallerUser
		switch cl.Kind {
		case authn.KindExperimentUser:
			kind = actorapi.CallerExperimentUser
		case authn.KindDemo:
			kind = actorapi.CallerDemo
		}
		// A platform user linked to an account of a hybrid experiment is
		// known to its actor by that account's ID.
		id := cl.Subject
		if cl.Linked != "" {
			id = cl.Linked
		}
		caller := actorapi.Caller{Kind: kind, ID: id, Email: cl.Email, Roles: append([]string{}, cl.Roles...)}
		if cl.Kind == authn.KindParticipant && cl.Run != nil {
			// A study link's participant: signed in by the link, known by
			// no email.
			caller.Kind, caller.Anonymous = actorapi.CallerParticipant, true
			caller.Link = &actorapi.CallerLink{ID: cl.Run.Link, Kind: cl.Run.Kind, Label: cl.Run.Label, Run: cl.Run.ID, Params: cl.Run.Params}
		}
		return caller
	}
	if id, _ := c.Locals(localParticipant).(string); id != "" {
		return actorapi.Caller{Kind: actorapi.CallerParticipant, ID: id, Roles: []string{}, Anonymous: true}
	}
	return actorapi.Caller{Kind: actorapi.CallerAnonymous, Roles: []string{}, Anonymous: true}
}

// actorPath is the request path below /experiments/{slug}/api, from "/".
func actorPath(path, slug string) string {
	p := strings.TrimPrefix(path, "/experiments/"+slug+"/api")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// actorHeaders are the request's headers an actor may see, by canonical
// name: without credentials and hop-by-hop headers, nor those the
// Connection header names.
func actorHeaders(c *fiber.Ctx) map[string][]string {
	out := map[string][]string{}
	drop := map[string]bool{}
	for _, f := range strings.Split(c.Get(fiber.HeaderConnection), ",") {
		if f = strings.TrimSpace(f); f != "" {
			drop[textproto.CanonicalMIMEHeaderKey(f)] = true
		}
	}
	c.Request().Header.VisitAll(func(k, v []byte) {
		name := textproto.CanonicalMIMEHeaderKey(string(k))
		if dropIn[name] || drop[name] {
			return
		}
		out[name] = append(out[name], string(v))
	})
	return out
}

// startOnDemand answers a call that found no actor running: unavailable,
// with the reason when the actor failed for good, and otherwise with
// Retry-After while a start job (at most one per experiment version every
// ten seconds) brings it up, unless a worker holds its lease already and
// is starting or restarting it.
func (a *actorsAPI) startOnDemand(ctx context.Context, e *entry) error {
	slug := e.cfg.Slug
	starting := apierr.New(apierr.CodeUnavailable, "the actor of %q is not running yet; it is being started", slug)
	starting.RetryAfter = 1
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	ab, err := a.actorBus(ctx)
	if err != nil {
		return starting
	}
	if lease, err := getJSON[actorapi.Lease](ctx, ab.leases, slug); err != nil || lease != nil {
		return starting
	}
	st, err := getJSON[actorapi.State](ctx, ab.states, slug)
	if err != nil {
		return starting
	}
	if st != nil && st.State == actorapi.StateFailed && st.Seq == e.cfg.Seq {
		failed := apierr.New(apierr.CodeUnavailable, "the actor of %q failed to start: %s", slug, st.LastError)
		if st.RetryAt != nil {
			if time.Now().Before(*st.RetryAt) {
				failed.RetryAfter = int(math.Ceil(time.Until(*st.RetryAt).Seconds()))
				return failed
			}
		} else {
			// A module that cannot load stays failed until a new version
			// or manifest; callers are still told when to look again
			// (docs/actors.md, section 6).
			failed.RetryAfter = failedRetryAfter
			return failed
		}
	}
	id := fmt.Sprintf("%s@%d:%s:%d", slug, e.cfg.Version, actorapi.StartOnDemand, time.Now().Unix()/10)
	job := actorapi.StartJob{Slug: slug, Version: e.cfg.Version, Checksum: e.cfg.Checksum, Reason: actorapi.StartOnDemand}
	if _, err := ab.queue.Enqueue(ctx, actorapi.JobKind, id, job); err != nil {
		a.log.WarnContext(ctx, "queue actor start failed", "slug", slug, "err", err)
	}
	return starting
}
