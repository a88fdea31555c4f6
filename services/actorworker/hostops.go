package actorworker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The host operations of docs/actors.md, section 5. Each runs with the
// call's context (its deadline is the call's time limit), bounded further
// by HostCall, in a span of its own.

// maxLogLines bounds the log lines one call may write; more are dropped.
const maxLogLines = 100

// maxKVValue bounds a value of the key-value store.
const maxKVValue = 64 << 10

var kvKeySyntax = regexp.MustCompile(`^[A-Za-z0-9_.=-]{1,128}$`)

// host is what one actor instance reaches. Calls into an instance are
// serialised, so its fields need no lock.
type host struct {
	s      *Service
	slug   string
	scope  *scoped.Scope
	config json.RawMessage
	log    *slog.Logger
	lines  int
	http   *bundle.ActorHTTP // actor.http, for http.fetch (httpfetch.go)
}

var storeKinds sync.Map // *mongo.Database -> scoped.StoreKind

func (s *Service) newHost(ctx context.Context, sp *spec, log *slog.Logger) (*host, error) {
	var opts []scoped.Option
	db := s.d.Store.DB
	if k, ok := storeKinds.Load(db); ok {
		opts = append(opts, scoped.WithStore(k.(scoped.StoreKind)))
	} else if k, err := scoped.DetectStore(ctx, db); err == nil {
		storeKinds.Store(db, k)
		opts = append(opts, scoped.WithStore(k))
	}
	opts = append(opts, scoped.WithReadCheck(s.grants.check(sp.slug)))
	opts = append(opts, scoped.WithObserver(s.slow.observe(log)))
	scope, err := scoped.New(db, sp.slug, sp.scope, opts...)
	if err != nil {
		return nil, permanent("data scope: %w", err)
	}
	cfg := sp.actor.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, permanent("actor config: %w", err)
	}
	return &host{s: s, slug: sp.slug, scope: scope, config: raw, log: log, http: sp.actor.HTTP}, nil
}

// grantWait bounds how long a read of another experiment waits for the
// worker's first view of the grants, at its start.
const grantWait = 5 * time.Second

// grantWatch is the worker's view of the data_grants bucket: the keys
// reader.data (uploadapi.AccessKey) present exactly while reader may read
// data's data. Every read of another experiment's slug asks it, so a
// revocation reaches running actors as soon as the bucket's change does
// (milliseconds), and a grant needs no new upload. Until the first full
// view has arrived such reads wait, then are refused: never allowed on a
// guess. Its zero value is ready to use.
type grantWatch struct {
	mu    sync.RWMutex
	keys  map[string]bool
	ready chan struct{}
	done  bool
}

func (g *grantWatch) readyChan() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ready == nil {
		g.ready = make(chan struct{})
	}
	return g.ready
}

func (g *grantWatch) set(key string, present bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keys == nil {
		g.keys = map[string]bool{}
	}
	if present {
		g.keys[key] = true
	} else {
		delete(g.keys, key)
	}
}

func (g *grantWatch) markReady() {
	ch := g.readyChan()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		g.done = true
		close(ch)
	}
}

func (g *grantWatch) has(key string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.keys[key]
}

// check is the read check of reader's scope (scoped.WithReadCheck).
func (g *grantWatch) check(reader string) func(ctx context.Context, data string) error {
	return func(ctx context.Context, data string) error {
		ready := g.readyChan()
		select {
		case <-ready:
		default:
			t := time.NewTimer(grantWait)
			defer t.Stop()
			select {
			case <-ready:
			case <-ctx.Done():
				return apierr.New(apierr.CodeUnavailable, "the grants of the data scope are not known yet; try again")
			case <-t.C:
				return apierr.New(apierr.CodeUnavailable, "the grants of the data scope are not known yet; try again")
			}
		}
		if g.has(uploadapi.AccessKey(reader, data)) {
			return nil
		}
		return apierr.New(apierr.CodeScopeForbidden,
			"%q has not granted its data to %q: its owner grants it with POST /api/experiments/%s/grants {\"to\": %q}", data, reader, data, reader)
	}
}

// watchGrants follows the data_grants bucket into s.grants until bg stops.
func (s *Service) watchGrants(bg *svc.Background) error {
	kv, err := s.d.JS.KeyValue(bg.Context(), bus.BucketDataGrants)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", bus.BucketDataGrants, err)
	}
	w, err := kv.WatchAll(bg.Context())
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketDataGrants, err)
	}
	bg.Go(func(ctx context.Context) {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					// The end of the bucket's current keys.
					s.grants.markReady()
					continue
				}
				s.grants.set(e.Key(), e.Operation() == jetstream.KeyValuePut)
			}
		}
	})
	return nil
}

// beginCall starts counting the log lines of a new call.
func (h *host) beginCall() { h.lines = 0 }

// Log writes a line the guest logged, with the slug and, during a call,
// the request ID and trace ID from ctx.
func (h *host) Log(ctx context.Context, level int, msg string) {
	h.lines++
	switch {
	case h.lines == maxLogLines+1:
		h.log.WarnContext(ctx, "actor log lines dropped: more than the limit in one call", "limit", maxLogLines)
		return
	case h.lines > maxLogLines:
		return
	}
	lv := slog.LevelInfo
	switch level {
	case 0:
		lv = slog.LevelDebug
	case 2:
		lv = slog.LevelWarn
	case 3:
		lv = slog.LevelError
	}
	h.log.Log(ctx, lv, "actor log", "text", msg)
}

type hostOp func(h *host, ctx context.Context, req []byte) (any, error)

var hostOps = map[string]hostOp{
	"db.find":      (*host).dbFind,
	"db.find_one":  (*host).dbFindOne,
	"db.count":     (*host).dbCount,
	"db.aggregate": (*host).dbAggregate,
	"db.insert":    (*host).dbInsert,
	"db.update":    (*host).dbUpdate,
	"db.delete":    (*host).dbDelete,
	"kv.get":       (*host).kvGet,
	"kv.put":       (*host).kvPut,
	"kv.delete":    (*host).kvDelete,
	"config":       (*host).configOp,
	"run.finish":   (*host).runFinish,
	"secret.get":   (*host).secretGet,
	"http.fetch":   (*host).httpFetch,
	"timer.set":    (*host).timerSet,
	"timer.cancel": (*host).timerCancel,
	"live.send":    (*host).liveSend,
	"live.close":   (*host).liveClose,
	"room.join":    (*host).roomJoin,
	"room.leave":   (*host).roomLeave,
	"room.publish": (*host).roomPublish,
}

// Call runs one host operation.
func (h *host) Call(ctx context.Context, op string, req []byte) ([]byte, error) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "actor host "+op, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("gnome.slug", h.slug), attribute.String("gnome.host.op", op)))
	defer span.End()
	res, err := h.call(ctx, op, req)
	outcome := "ok"
	if err != nil {
		ae := apierr.From(err)
		outcome = string(ae.Code)
		span.SetStatus(codes.Error, outcome)
		if ae.Code == apierr.CodeInternal {
			span.RecordError(err)
			h.log.ErrorContext(ctx, "actor host operation failed", "op", op, "err", err)
		}
	}
	h.s.metrics.hostCalls.WithLabelValues(metricOp(op), outcome).Inc()
	return res, err
}

func metricOp(op string) string {
	if _, ok := hostOps[op]; ok {
		return op
	}
	return "unknown"
}

// answerMargin is how much of the time left in a call a host operation
// leaves the actor to answer once the operation gives up: a quarter of
// it, at most 250 ms.
func answerMargin(left time.Duration) time.Duration {
	return min(left/4, 250*time.Millisecond)
}

func (h *host) call(ctx context.Context, op string, req []byte) ([]byte, error) {
	fn, ok := hostOps[op]
	if !ok {
		return nil, apierr.New(apierr.CodeBadRequest, "there is no host operation %q", op)
	}
	bound := opBound(op, h.s.tune.HostCall)
	if d, ok := ctx.Deadline(); ok && op != "http.fetch" {
		// An operation on the platform that cannot finish (the store
		// stopped, a NATS node lost) gives up answerMargin before the
		// call's time limit (http.fetch ends itself before it), so that
		// the actor still answers, with unavailable (503) for the caller to
		// try again, instead of being stopped at the limit (504).
		bound = min(bound, time.Until(d)-answerMargin(time.Until(d)))
	}
	octx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	res, err := fn(h, octx, req)
	if err != nil {
		switch {
		case octx.Err() != nil && ctx.Err() == nil:
			ae := apierr.Wrap(apierr.CodeUnavailable, err, op+" did not finish in time: the store or the bus is not answering; try again shortly")
			ae.RetryAfter = 1
			return nil, ae
		case octx.Err() != nil && apierr.From(err).Code == apierr.CodeInternal:
			return nil, apierr.Wrap(apierr.CodeTimeout, err, op+" did not finish before the call's time limit")
		}
		return nil, err
	}
	if raw, ok := res.(json.RawMessage); ok {
		return raw, nil
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode the result of %s: %w", op, err)
	}
	return out, nil
}

// decode reads a request object strictly: unknown fields, wrong types and
// anything after the object are bad_request.
func decode(req []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(req))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return apierr.Wrap(apierr.CodeInvalidJson, err, "the request is not valid JSON")
		case errors.As(err, &ute):
			field := "/" + strings.ReplaceAll(ute.Field, ".", "/")
			return apierr.New(apierr.CodeBadRequest, "the request's %s is not of the right type (want %s)", strings.TrimPrefix(field, "/"), ute.Type).OnField(field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return apierr.New(apierr.CodeBadRequest, "the operation takes no field %q", name).OnField("/" + name)
		}
		return apierr.Wrap(apierr.CodeBadRequest, err, "the request is not an object of the operation's fields")
	}
	if dec.More() {
		return apierr.New(apierr.CodeInvalidJson, "the request has data after its object")
	}
	return nil
}

// ext is an Extended JSON value of a request: an object (or, for
// pipelines and documents, an array).
type ext json.RawMessage

func (e *ext) UnmarshalJSON(b []byte) error { *e = append((*e)[:0], b...); return nil }

func (e ext) given() bool { return len(e) > 0 && string(e) != "null" }

// doc parses an Extended JSON object; absent is nil.
func (e ext) doc(field string) (bson.D, error) {
	if !e.given() {
		return nil, nil
	}
	d, err := scoped.ParseDocument(e)
	if err != nil {
		return nil, onField(err, field)
	}
	return d, nil
}

func (e ext) array(field string) (bson.A, error) {
	if !e.given() {
		return nil, apierr.New(apierr.CodeBadRequest, "%s is required", field).OnField("/" + field)
	}
	a, err := scoped.ParseArray(e)
	if err != nil {
		return nil, onField(err, field)
	}
	return a, nil
}

func onField(err error, field string) error {
	if ae := apierr.From(err); ae.Field == "" {
		ae.Field = "/" + field
		return ae
	}
	return err
}

func required(field string, e ext) error {
	if !e.given() {
		return apierr.New(apierr.CodeBadRequest, "%s is required", field).OnField("/" + field)
	}
	return nil
}

// ref names the collection of a request; collection is required.
func (h *host) ref(collection, slug string) (scoped.Ref, error) {
	if collection == "" {
		return scoped.Ref{}, apierr.New(apierr.CodeBadRequest, "collection is required").OnField("/collection")
	}
	return scoped.From(slug, collection), nil
}

type readReq struct {
	Collection string `json:"collection"`
	Slug       string `json:"slug"`
	Filter     ext    `json:"filter"`
	Sort       ext    `json:"sort"`
	Projection ext    `json:"projection"`
}

type findReq struct {
	readReq
	Limit int64 `json:"limit"`
	Skip  int64 `json:"skip"`
}

type findOneReq struct {
	readReq
	Skip int64 `json:"skip"`
}

func (h *host) findOptions(r readReq, skip, limit int64) (any, scoped.FindOptions, error) {
	filter, err := r.Filter.doc("filter")
	if err != nil {
		return nil, scoped.FindOptions{}, err
	}
	o := scoped.FindOptions{Skip: skip, Limit: limit}
	if sort, err := r.Sort.doc("sort"); err != nil {
		return nil, o, err
	} else if sort != nil {
		o.Sort = sort
	}
	if proj, err := r.Projection.doc("projection"); err != nil {
		return nil, o, err
	} else if proj != nil {
		o.Projection = proj
	}
	var f any
	if filter != nil {
		f = filter
	}
	return f, o, nil
}

func (h *host) dbFind(ctx context.Context, req []byte) (any, error) {
	var r findReq
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	f, o, err := h.findOptions(r.readReq, r.Skip, r.Limit)
	if err != nil {
		return nil, err
	}
	docs, err := h.scope.Find(ctx, ref, f, o)
	if err != nil {
		return nil, err
	}
	return documents("documents", docs)
}

func (h *host) dbFindOne(ctx context.Context, req []byte) (any, error) {
	var r findOneReq
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	f, o, err := h.findOptions(r.readReq, r.Skip, 0)
	if err != nil {
		return nil, err
	}
	doc, err := h.scope.FindOne(ctx, ref, f, o)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return json.RawMessage(`{"document":null}`), nil
	}
	j, err := bson.MarshalExtJSON(doc, false, false)
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeInternal, err, "internal error")
	}
	return json.RawMessage(append(append([]byte(`{"document":`), j...), '}')), nil
}

func (h *host) dbCount(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug"`
		Filter     ext    `json:"filter"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	filter, err := r.Filter.doc("filter")
	if err != nil {
		return nil, err
	}
	var f any
	if filter != nil {
		f = filter
	}
	n, err := h.scope.Count(ctx, ref, f)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"count": n}, nil
}

func (h *host) dbAggregate(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug"`
		Pipeline   ext    `json:"pipeline"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	p, err := r.Pipeline.array("pipeline")
	if err != nil {
		return nil, err
	}
	docs, err := h.scope.Aggregate(ctx, ref, p)
	if err != nil {
		return nil, err
	}
	return documents("documents", docs)
}

func (h *host) dbInsert(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug"`
		Documents  ext    `json:"documents"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	docs, err := r.Documents.array("documents")
	if err != nil {
		return nil, err
	}
	ids, err := h.scope.InsertMany(ctx, ref, docs)
	if err != nil {
		return nil, err
	}
	return extJSON(bson.D{{Key: "inserted_ids", Value: bson.A(ids)}})
}

func (h *host) dbUpdate(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug"`
		Filter     ext    `json:"filter"`
		Update     ext    `json:"update"`
		Many       bool   `json:"many"`
		Upsert     bool   `json:"upsert"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	if err := required("filter", r.Filter); err != nil {
		return nil, err
	}
	if err := required("update", r.Update); err != nil {
		return nil, err
	}
	filter, err := r.Filter.doc("filter")
	if err != nil {
		return nil, err
	}
	update, err := r.Update.doc("update")
	if err != nil {
		return nil, err
	}
	o := scoped.UpdateOptions{Upsert: r.Upsert}
	var res scoped.UpdateResult
	if r.Many {
		res, err = h.scope.UpdateMany(ctx, ref, filter, update, o)
	} else {
		res, err = h.scope.UpdateOne(ctx, ref, filter, update, o)
	}
	if err != nil {
		return nil, err
	}
	out := bson.D{{Key: "matched", Value: res.Matched}, {Key: "modified", Value: res.Modified}}
	if res.UpsertedID != nil {
		out = append(out, bson.E{Key: "upserted_id", Value: res.UpsertedID})
	}
	return extJSON(out)
}

func (h *host) dbDelete(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug"`
		Filter     ext    `json:"filter"`
		Many       bool   `json:"many"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	ref, err := h.ref(r.Collection, r.Slug)
	if err != nil {
		return nil, err
	}
	if err := required("filter", r.Filter); err != nil {
		return nil, err
	}
	filter, err := r.Filter.doc("filter")
	if err != nil {
		return nil, err
	}
	var n int64
	if r.Many {
		n, err = h.scope.DeleteMany(ctx, ref, filter)
	} else {
		n, err = h.scope.DeleteOne(ctx, ref, filter)
	}
	if err != nil {
		return nil, err
	}
	return map[string]int64{"deleted": n}, nil
}

// documents renders {"<field>": [documents...]} in relaxed Extended JSON.
func documents(field string, docs []bson.Raw) (any, error) {
	arr, err := scoped.MarshalResults(docs)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(arr)+len(field)+5)
	out = append(out, `{"`...)
	out = append(out, field...)
	out = append(out, `":`...)
	out = append(out, arr...)
	return json.RawMessage(append(out, '}')), nil
}

// extJSON renders d in relaxed Extended JSON, where result values may be
// ObjectIds or other BSON types.
func extJSON(d bson.D) (any, error) {
	j, err := bson.MarshalExtJSON(d, false, false)
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeInternal, err, "internal error")
	}
	return json.RawMessage(j), nil
}

// The key-value store: one actor_kv bucket for all experiments, each key
// stored as "<slug>.<key in base64url>" (a key may hold dots, which would
// make empty subject tokens as they are), so no experiment reaches
// another's keys.

func (h *host) kvKey(key string) (string, error) {
	if !kvKeySyntax.MatchString(key) {
		return "", apierr.New(apierr.CodeValidationFailed, "key must be 1 to 128 characters of A-Z a-z 0-9 _ . = -").OnField("/key")
	}
	return kvPrefix(h.slug) + base64.RawURLEncoding.EncodeToString([]byte(key)), nil
}

func kvPrefix(slug string) string { return slug + "." }

func kvError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return apierr.Wrap(apierr.CodeTimeout, err, "the key-value store did not answer in time")
	}
	return apierr.Wrap(apierr.CodeUnavailable, err, "the key-value store is not available")
}

func (h *host) kvGet(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Key string `json:"key"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	k, err := h.kvKey(r.Key)
	if err != nil {
		return nil, err
	}
	// Through the bucket's leader (bus.LeaderKV, see provision): an
	// actor reads its own writes, whichever replica a direct get would ask.
	e, err := h.s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return json.RawMessage(`{"value":null,"revision":0}`), nil
	}
	if err != nil {
		return nil, kvError(err)
	}
	return struct {
		Value    []byte `json:"value"`
		Revision uint64 `json:"revision"`
	}{append([]byte{}, e.Value()...), e.Revision()}, nil
}

func (h *host) kvPut(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	k, err := h.kvKey(r.Key)
	if err != nil {
		return nil, err
	}
	if r.Value == nil {
		return nil, apierr.New(apierr.CodeBadRequest, "value is required").OnField("/value")
	}
	if base64.StdEncoding.DecodedLen(len(*r.Value)) > maxKVValue+3 {
		return nil, apierr.New(apierr.CodePayloadTooLarge, "the value is over %d bytes", maxKVValue).OnField("/value")
	}
	v, err := base64.StdEncoding.Strict().DecodeString(*r.Value)
	if err != nil {
		return nil, apierr.New(apierr.CodeBadRequest, "value is not base64").OnField("/value")
	}
	if len(v) > maxKVValue {
		return nil, apierr.New(apierr.CodePayloadTooLarge, "the value is %d bytes, over the limit of %d", len(v), maxKVValue).OnField("/value")
	}
	rev, err := h.s.kv.Put(ctx, k, v)
	if err != nil {
		return nil, kvError(err)
	}
	return map[string]uint64{"revision": rev}, nil
}

func (h *host) kvDelete(ctx context.Context, req []byte) (any, error) {
	var r struct {
		Key string `json:"key"`
	}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	k, err := h.kvKey(r.Key)
	if err != nil {
		return nil, err
	}
	if err := h.s.kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, kvError(err)
	}
	return json.RawMessage(`{}`), nil
}

func (h *host) configOp(_ context.Context, req []byte) (any, error) {
	var r struct{}
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	return json.RawMessage(h.config), nil
}
