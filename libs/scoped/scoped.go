// Package scoped is an experiment's view of the platform database: the only
// way an actor's host functions reach data.
//
// An experiment names collections by base name (^[A-Za-z0-9_]{1,64}$); the
// library maps a base name to the collection CollectionName(slug, name),
// an injective mapping (see naming.go), and never takes a full collection
// name from the caller. Every stored document carries experiment_id, set by
// the library to the experiment's own slug.
//
// Reads may name the experiment's own slug or a slug in its data_scope; a
// data_scope slug of another experiment is read only while the read check
// (WithReadCheck) allows it: the platform allows it while that experiment's
// owner grants it, or when one owner has both. The library ANDs
// experiment_id = that slug to every filter and prepends a $match on it to
// every pipeline, so a read sees only that experiment's documents even in a
// collection that holds others (data from before the injective naming).
// Writes (inserts, updates, replacements, deletes) go only to the
// experiment's own slug: a data_scope slug is read-only.
//
// "shared" in data_scope gives read access to the platform's shared_{name}
// collections. These hold platform data, not one experiment's, so reads there
// are not filtered by experiment_id (as in the original platform). That is
// safe only because no experiment can write into them: an experiment's
// collections are all x.{slug}.{name}, never shared_{...}; the slug "shared"
// and slugs beginning with "shared_" stay reserved (New refuses them), as
// under the old naming, where such a slug's collections were shared_{...}.
//
// Filters, updates, projections, sorts and pipelines are checked as the BSON
// that is sent to the store, at every depth: the operators $where, $function
// and $accumulator and the stages $lookup, $graphLookup, $unionWith, $out and
// $merge are refused wherever they appear (inside $and, $or, $expr,
// $elemMatch, ...), as are BSON JavaScript values; pipelines may use only the
// stages $match, $project, $group, $sort, $limit, $skip, $unwind, $count, $set
// and $addFields. Updates may not touch experiment_id.
//
// On the embedded store (FerretDB 1.x), which computes some aggregations
// wrongly without an error, those are refused with store_unsupported instead;
// see StoreKind.
//
// Every write that changes the experiment's data increases its data version
// (DataSeq) afterwards, so that exports can tell a package of the data that
// is still current from a stale one.
//
// A Scope is immutable and safe for concurrent use.
package scoped

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Field is the field every document carries: the slug of the experiment that
// wrote it.
const Field = "experiment_id"

// Data scope entries with a meaning of their own.
const (
	Self   = "self"
	Shared = "shared"
)

var (
	slugSyntax = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	baseSyntax = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

// Limits bound what one operation may send and receive.
type Limits struct {
	// MaxDocs is the most documents a read returns or InsertMany takes.
	MaxDocs int
	// MaxResultBytes is the most BSON bytes a read returns in all.
	MaxResultBytes int
	// MaxDocumentBytes is the largest filter, update, pipeline, projection,
	// sort or stored document, in BSON bytes.
	MaxDocumentBytes int
	// MaxDepth is the deepest nesting of documents and arrays.
	MaxDepth int
	// MaxStages is the most stages a pipeline may have.
	MaxStages int
}

// DefaultLimits apply where a Limits field is zero.
var DefaultLimits = Limits{
	MaxDocs:          1000,
	MaxResultBytes:   8 << 20,
	MaxDocumentBytes: 1 << 20,
	MaxDepth:         64,
	MaxStages:        32,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxDocs > 0 {
		d.MaxDocs = l.MaxDocs
	}
	if l.MaxResultBytes > 0 {
		d.MaxResultBytes = l.MaxResultBytes
	}
	if l.MaxDocumentBytes > 0 {
		d.MaxDocumentBytes = l.MaxDocumentBytes
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxStages > 0 {
		d.MaxStages = l.MaxStages
	}
	return d
}

// Option configures New.
type Option func(*Scope)

// WithStore tells the Scope which store it runs on, instead of asking the
// store on first use (DetectStore).
func WithStore(k StoreKind) Option { return func(s *Scope) { s.store = k } }

// WithLimits replaces DefaultLimits; zero fields keep their default.
func WithLimits(l Limits) Option { return func(s *Scope) { s.limits = l.withDefaults() } }

// WithReadCheck has every read of another experiment's slug (one in the
// data scope, not the own one, not "shared") asked of check first: a
// non-nil error refuses the read and is returned as it is. A Scope without
// a read check refuses every read of another experiment. The platform
// checks the grants there, on each read, so that a revoked grant ends reads
// of a scope made before the revocation.
func WithReadCheck(check func(ctx context.Context, slug string) error) Option {
	return func(s *Scope) { s.readCheck = check }
}

// Scope is one experiment's access to the database.
type Scope struct {
	db     *mongo.Database
	slug   string
	reads  map[string]bool // slugs readable besides the own one
	shared bool
	store  StoreKind
	limits Limits
	// readCheck, when set, is asked before every read of another
	// experiment's slug.
	readCheck func(ctx context.Context, slug string) error
	// observe, when set, is told of every operation (WithObserver).
	observe func(ctx context.Context, op Op)
}

// New makes the scope of the experiment slug, which may also read the
// experiments and the shared collections listed in dataScope ("self" is the
// experiment itself, "shared" the platform's shared_* collections, anything
// else a slug).
func New(db *mongo.Database, slug string, dataScope []string, opts ...Option) (*Scope, error) {
	if db == nil {
		return nil, apierr.New(apierr.CodeInternal, "no database for the data scope")
	}
	if err := checkSlug(slug); err != nil {
		return nil, apierr.New(apierr.CodeValidationFailed, "slug %q %s", slug, err).OnField("/slug")
	}
	s := &Scope{db: db, slug: slug, reads: map[string]bool{}, limits: DefaultLimits}
	for i, e := range dataScope {
		switch e {
		case Self, slug:
		case Shared:
			s.shared = true
		default:
			if err := checkSlug(e); err != nil {
				return nil, apierr.New(apierr.CodeValidationFailed, "data_scope entry %q %s", e, err).OnField(fmt.Sprintf("/data_scope/%d", i))
			}
			s.reads[e] = true
		}
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// platformPrefixes are the parts before the first '_' of the platform's own
// collections (experiments_config, export_logs, audit_log, casbin_rules,
// data_versions, data_grants, data_migrations, standalone_imports). Under
// the old naming {slug}_{name}, an experiment with such a slug could have
// named one of them; the injective naming cannot, but the slugs stay
// refused (the manifest schema refuses them too), so that MigrateNames can
// rely on no old experiment collection ever having had such a name.
var platformPrefixes = []string{"experiments", "export", "audit", "casbin", "data", "standalone"}

func checkSlug(slug string) error {
	switch {
	case !slugSyntax.MatchString(slug):
		return fmt.Errorf("is not 1 to 64 lowercase letters, digits, '_' or '-'")
	case slug == Self || slug == Shared || strings.HasPrefix(slug, Shared+"_"):
		return fmt.Errorf("is reserved: its collections would be the platform's shared ones")
	case slices.Contains(platformPrefixes, slug):
		return fmt.Errorf("is reserved: its collections could be the platform's own")
	}
	return nil
}

// Slug is the experiment's own slug.
func (s *Scope) Slug() string { return s.slug }

// ReadScope lists what the scope may read: its own slug first, then the other
// slugs sorted, then "shared" when allowed.
func (s *Scope) ReadScope() []string {
	out := []string{s.slug}
	others := make([]string, 0, len(s.reads))
	for k := range s.reads {
		others = append(others, k)
	}
	slices.Sort(others)
	out = append(out, others...)
	if s.shared {
		out = append(out, Shared)
	}
	return out
}

// Ref names a collection: a base name and whose it is. Slug "" or "self" is
// the experiment's own; "shared" the platform's shared collections; any
// other slug must be in the data scope, and is read-only.
type Ref struct {
	Slug string
	Name string
}

// Own is the experiment's own collection name.
func Own(name string) Ref { return Ref{Name: name} }

// From is the collection name of the experiment or "shared" in slug.
func From(slug, name string) Ref { return Ref{Slug: slug, Name: name} }

// target is a resolved Ref: the full collection name and the experiment_id
// every read and write there is bound to ("" for the shared collections).
type target struct {
	coll string
	slug string
}

func (s *Scope) resolve(ctx context.Context, ref Ref, write bool) (target, error) {
	if !baseSyntax.MatchString(ref.Name) {
		return target{}, apierr.New(apierr.CodeScopeInvalidCollection,
			"collection %q is not a base name of 1 to 64 ASCII letters, digits or underscores", ref.Name).OnField("/collection")
	}
	slug := ref.Slug
	if slug == "" || slug == Self {
		slug = s.slug
	}
	if slug == s.slug {
		return target{coll: CollectionName(s.slug, ref.Name), slug: s.slug}, nil
	}
	readable := s.reads[slug] || (slug == Shared && s.shared)
	switch {
	case readable && write:
		return target{}, apierr.New(apierr.CodeScopeForbidden, "%q is read-only here: writes go only to the experiment's own collections", slug)
	case !readable:
		return target{}, apierr.New(apierr.CodeScopeForbidden, "%q is not in the data scope of %q", slug, s.slug)
	case slug == Shared:
		return target{coll: Shared + "_" + ref.Name}, nil
	}
	// Without a read check nothing says the other experiment's owner
	// agreed: refused, so that a scope made without one never reads more.
	if s.readCheck == nil {
		return target{}, apierr.New(apierr.CodeScopeForbidden, "reads of %q need its owner's grant, which is not known here", slug)
	}
	if err := s.readCheck(ctx, slug); err != nil {
		return target{}, err
	}
	return target{coll: CollectionName(slug, ref.Name), slug: slug}, nil
}

// CollectionName is the full collection name ref maps to, as reads see it
// (the read check is asked, as for a read).
func (s *Scope) CollectionName(ref Ref) (string, error) {
	t, err := s.resolve(context.Background(), ref, false)
	return t.coll, err
}

// FindOptions shape a Find.
type FindOptions struct {
	// Sort is a document such as bson.D{{Key: "t", Value: -1}}.
	Sort any
	// Projection is a document of fields to include or exclude.
	Projection any
	Skip       int64
	// Limit 0 means every matching document, which is refused when there are
	// more than Limits.MaxDocs; a larger Limit is refused before the query.
	Limit int64
}

// Find returns the documents of ref that match filter (nil matches all).
func (s *Scope) Find(ctx context.Context, ref Ref, filter any, o FindOptions) (out []bson.Raw, err error) {
	done := s.begin(ctx, OpFind, ref)
	defer func() { done(int64(len(out)), err) }()
	t, err := s.resolve(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	f, err := s.filter("filter", filter)
	if err != nil {
		return nil, err
	}
	if o.Skip < 0 || o.Limit < 0 {
		return nil, apierr.New(apierr.CodeBadRequest, "skip and limit may not be negative")
	}
	maxDocs := int64(s.limits.MaxDocs)
	if o.Limit > maxDocs {
		return nil, apierr.New(apierr.CodeScopeLimit, "limit %d is over the most documents a read returns (%d)", o.Limit, maxDocs).OnField("/limit")
	}
	fo := options.Find().SetSkip(o.Skip)
	if o.Limit > 0 {
		fo.SetLimit(o.Limit)
	} else {
		// One more than allowed tells an over-long result from a full one.
		fo.SetLimit(maxDocs + 1)
	}
	if o.Sort != nil {
		sort, err := s.document("sort", o.Sort, false)
		if err != nil {
			return nil, err
		}
		fo.SetSort(sort)
	}
	if o.Projection != nil {
		proj, err := s.document("projection", o.Projection, false)
		if err != nil {
			return nil, err
		}
		kind, err := s.storeKind(ctx)
		if err != nil {
			return nil, err
		}
		if kind == StoreFerretDB {
			if err := checkEmbeddedProjection(proj, "projection"); err != nil {
				return nil, err
			}
		}
		fo.SetProjection(proj)
	}
	if id, ok := idOnly(f); ok && t.slug != "" && o.Skip == 0 && o.Projection == nil {
		return s.findByID(ctx, t, id, fo)
	}
	cur, err := s.db.Collection(t.coll).Find(ctx, t.bind(f), fo)
	if err != nil {
		return nil, s.storeError("the find", err)
	}
	return s.drain(ctx, cur)
}

// FindOne returns the first document of ref that matches filter, or nil
// when none does. Limit is ignored.
func (s *Scope) FindOne(ctx context.Context, ref Ref, filter any, o FindOptions) (bson.Raw, error) {
	o.Limit = 1
	docs, err := s.Find(ctx, ref, filter, o)
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return docs[0], nil
}

// Count is the number of documents of ref that match filter.
func (s *Scope) Count(ctx context.Context, ref Ref, filter any) (n int64, err error) {
	done := s.begin(ctx, OpCount, ref)
	defer func() { done(n, err) }()
	t, err := s.resolve(ctx, ref, false)
	if err != nil {
		return 0, err
	}
	f, err := s.filter("filter", filter)
	if err != nil {
		return 0, err
	}
	n, err = s.db.Collection(t.coll).CountDocuments(ctx, t.bind(f))
	if err != nil {
		return 0, s.storeError("the count", err)
	}
	return n, nil
}

// Aggregate runs pipeline (a slice of stage documents) on the documents of
// ref: the library puts a $match on experiment_id first, so the caller's
// stages never see another experiment's documents.
func (s *Scope) Aggregate(ctx context.Context, ref Ref, pipeline any) (out []bson.Raw, err error) {
	done := s.begin(ctx, OpAggregate, ref)
	defer func() { done(int64(len(out)), err) }()
	t, err := s.resolve(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	stages, err := s.pipeline(pipeline)
	if err != nil {
		return nil, err
	}
	kind, err := s.storeKind(ctx)
	if err != nil {
		return nil, err
	}
	if kind == StoreFerretDB {
		if err := checkEmbeddedPipeline(stages); err != nil {
			return nil, err
		}
	}
	p := make(bson.A, 0, len(stages)+1)
	if t.slug != "" {
		p = append(p, bson.D{{Key: "$match", Value: bson.D{{Key: Field, Value: t.slug}}}})
	}
	for _, st := range stages {
		p = append(p, st)
	}
	cur, err := s.db.Collection(t.coll).Aggregate(ctx, p)
	if err != nil {
		return nil, s.storeError("the aggregation", err)
	}
	return s.drain(ctx, cur)
}

// drain reads a cursor within the result limits and closes it.
func (s *Scope) drain(ctx context.Context, cur *mongo.Cursor) ([]bson.Raw, error) {
	defer func() {
		// Close even when ctx is done, so that the server frees the cursor.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = cur.Close(cctx)
	}()
	var out []bson.Raw
	size := 0
	for cur.Next(ctx) {
		if len(out) == s.limits.MaxDocs {
			return nil, apierr.New(apierr.CodeScopeLimit, "the result has more than %d documents: give a limit, or page with skip", s.limits.MaxDocs)
		}
		size += len(cur.Current)
		if size > s.limits.MaxResultBytes {
			return nil, apierr.New(apierr.CodeScopeLimit, "the result is over %d bytes: give a smaller limit or a projection", s.limits.MaxResultBytes)
		}
		out = append(out, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return nil, s.storeError("reading the results", err)
	}
	return out, nil
}

// InsertOne stores doc in the experiment's own collection ref, with
// experiment_id set to the own slug, and returns its _id.
func (s *Scope) InsertOne(ctx context.Context, ref Ref, doc any) (id any, err error) {
	done := s.begin(ctx, OpInsert, ref)
	defer func() {
		var n int64
		if err == nil {
			n = 1
		}
		done(n, err)
	}()
	t, err := s.resolve(ctx, ref, true)
	if err != nil {
		return nil, err
	}
	d, err := s.stored("document", doc)
	if err != nil {
		return nil, err
	}
	res, err := s.db.Collection(t.coll).InsertOne(ctx, d)
	if err != nil {
		return nil, s.noteWrite(ctx, false, s.storeError("the insert", err))
	}
	if err := s.noteWrite(ctx, true, nil); err != nil {
		return nil, err
	}
	return res.InsertedID, nil
}

// InsertMany stores docs (a slice of documents) like InsertOne, in order,
// and returns their _ids. Every document is checked before any is sent; the
// store stops at the first it refuses (a duplicate _id), keeping those
// before it.
func (s *Scope) InsertMany(ctx context.Context, ref Ref, docs any) (ids []any, err error) {
	done := s.begin(ctx, OpInsert, ref)
	defer func() { done(int64(len(ids)), err) }()
	t, err := s.resolve(ctx, ref, true)
	if err != nil {
		return nil, err
	}
	vals, err := s.array("documents", docs)
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, apierr.New(apierr.CodeBadRequest, "no documents to insert").OnField("/documents")
	}
	if len(vals) > s.limits.MaxDocs {
		return nil, apierr.New(apierr.CodeScopeLimit, "%d documents are more than one insert takes (%d)", len(vals), s.limits.MaxDocs).OnField("/documents")
	}
	ds := make([]bson.D, len(vals))
	for i, v := range vals {
		raw, ok := v.DocumentOK()
		if !ok {
			return nil, apierr.New(apierr.CodeBadRequest, "documents[%d] is not a document", i).OnField(fmt.Sprintf("/documents/%d", i))
		}
		if ds[i], err = s.stored(fmt.Sprintf("documents[%d]", i), raw); err != nil {
			return nil, err
		}
	}
	res, err := s.db.Collection(t.coll).InsertMany(ctx, ds)
	if err != nil {
		return nil, s.noteWrite(ctx, false, s.storeError("the insert", err))
	}
	if err := s.noteWrite(ctx, true, nil); err != nil {
		return nil, err
	}
	return res.InsertedIDs, nil
}

// UpdateOptions shape an update or replacement.
type UpdateOptions struct {
	// Upsert inserts a document when none matches, with experiment_id set to
	// the own slug. Its filter may not name experiment_id.
	Upsert bool
}

// UpdateResult is what an update or replacement did.
type UpdateResult struct {
	Matched    int64
	Modified   int64
	UpsertedID any
}

// UpdateOne applies update (a document of update operators such as $set) to
// the first of the experiment's own documents of ref matching filter.
func (s *Scope) UpdateOne(ctx context.Context, ref Ref, filter, update any, o UpdateOptions) (UpdateResult, error) {
	return s.update(ctx, ref, filter, update, o, false)
}

// UpdateMany is UpdateOne for every matching document.
func (s *Scope) UpdateMany(ctx context.Context, ref Ref, filter, update any, o UpdateOptions) (UpdateResult, error) {
	return s.update(ctx, ref, filter, update, o, true)
}

func (s *Scope) update(ctx context.Context, ref Ref, filter, update any, o UpdateOptions, many bool) (r UpdateResult, err error) {
	done := s.begin(ctx, OpUpdate, ref)
	defer func() { done(r.Matched, err) }()
	t, cf, err := s.writeFilter(ctx, ref, filter, o.Upsert)
	if err != nil {
		return UpdateResult{}, err
	}
	u, err := s.updateDoc(update, o.Upsert)
	if err != nil {
		return UpdateResult{}, err
	}
	f, none, err := s.sendFilter(ctx, t, cf, o.Upsert)
	if err != nil || none {
		return UpdateResult{}, err
	}
	coll := s.db.Collection(t.coll)
	var res *mongo.UpdateResult
	if many {
		res, err = coll.UpdateMany(ctx, f, u, options.UpdateMany().SetUpsert(o.Upsert))
	} else {
		res, err = coll.UpdateOne(ctx, f, u, options.UpdateOne().SetUpsert(o.Upsert))
	}
	if err != nil {
		return UpdateResult{}, s.noteWrite(ctx, false, s.storeError("the update", err))
	}
	if err := s.noteWrite(ctx, res.ModifiedCount > 0 || res.UpsertedCount > 0 || res.UpsertedID != nil, nil); err != nil {
		return UpdateResult{}, err
	}
	return UpdateResult{Matched: res.MatchedCount, Modified: res.ModifiedCount, UpsertedID: res.UpsertedID}, nil
}

// ReplaceOne replaces the first of the experiment's own documents of ref
// matching filter by replacement, which gets experiment_id like an insert.
func (s *Scope) ReplaceOne(ctx context.Context, ref Ref, filter, replacement any, o UpdateOptions) (r UpdateResult, err error) {
	done := s.begin(ctx, OpReplace, ref)
	defer func() { done(r.Matched, err) }()
	t, cf, err := s.writeFilter(ctx, ref, filter, o.Upsert)
	if err != nil {
		return UpdateResult{}, err
	}
	d, err := s.stored("replacement", replacement)
	if err != nil {
		return UpdateResult{}, err
	}
	f, none, err := s.sendFilter(ctx, t, cf, o.Upsert)
	if err != nil || none {
		return UpdateResult{}, err
	}
	res, err := s.db.Collection(t.coll).ReplaceOne(ctx, f, d, options.Replace().SetUpsert(o.Upsert))
	if err != nil {
		return UpdateResult{}, s.noteWrite(ctx, false, s.storeError("the replacement", err))
	}
	if err := s.noteWrite(ctx, res.ModifiedCount > 0 || res.UpsertedCount > 0 || res.UpsertedID != nil, nil); err != nil {
		return UpdateResult{}, err
	}
	return UpdateResult{Matched: res.MatchedCount, Modified: res.ModifiedCount, UpsertedID: res.UpsertedID}, nil
}

// DeleteOne deletes the first of the experiment's own documents of ref
// matching filter and returns how many it deleted.
func (s *Scope) DeleteOne(ctx context.Context, ref Ref, filter any) (int64, error) {
	return s.delete(ctx, ref, filter, false)
}

// DeleteMany deletes every one of the experiment's own documents of ref
// matching filter (nil or an empty filter: all of them).
func (s *Scope) DeleteMany(ctx context.Context, ref Ref, filter any) (int64, error) {
	return s.delete(ctx, ref, filter, true)
}

func (s *Scope) delete(ctx context.Context, ref Ref, filter any, many bool) (n int64, err error) {
	done := s.begin(ctx, OpDelete, ref)
	defer func() { done(n, err) }()
	t, cf, err := s.writeFilter(ctx, ref, filter, false)
	if err != nil {
		return 0, err
	}
	f, none, err := s.sendFilter(ctx, t, cf, false)
	if err != nil || none {
		return 0, err
	}
	coll := s.db.Collection(t.coll)
	var res *mongo.DeleteResult
	if many {
		res, err = coll.DeleteMany(ctx, f)
	} else {
		res, err = coll.DeleteOne(ctx, f)
	}
	if err != nil {
		return 0, s.noteWrite(ctx, false, s.storeError("the delete", err))
	}
	if err := s.noteWrite(ctx, res.DeletedCount > 0, nil); err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}

// writeFilter resolves a write's target and checks its filter. An
// upsert's filter may not name experiment_id, so that the inserted
// document's experiment_id comes only from the library.
func (s *Scope) writeFilter(ctx context.Context, ref Ref, filter any, upsert bool) (target, bson.Raw, error) {
	t, err := s.resolve(ctx, ref, true)
	if err != nil {
		return target{}, nil, err
	}
	f, err := s.filter("filter", filter)
	if err != nil {
		return target{}, nil, err
	}
	if upsert {
		if p := namesField(f, []string{"filter"}); p != nil {
			return target{}, nil, apierr.New(apierr.CodeScopeForbidden, "an upsert's filter may not name %s (at %s): the platform sets it", Field, render(p)).OnField(pointer(p))
		}
		kind, err := s.storeKind(ctx)
		if err != nil {
			return target{}, nil, err
		}
		if kind == StoreFerretDB {
			if err := checkEmbeddedUpsertFilter(f); err != nil {
				return target{}, nil, err
			}
		}
	}
	return t, f, nil
}

// sendFilter is the filter a write with the checked filter f sends to t:
// f bound to the own slug, or, for a filter of _id alone, the bare one or
// none at all when nothing of the experiment's can match (byid.go, "Writes
// by _id alone"); the caller then writes nothing. It is asked last, once
// the whole write is checked, so that a bad write is refused whatever is
// stored.
func (s *Scope) sendFilter(ctx context.Context, t target, f bson.Raw, upsert bool) (bson.D, bool, error) {
	if id, ok := idWriteOnly(f); ok {
		bare, none, err := s.writeByID(ctx, t, id, upsert)
		if err != nil || none {
			return nil, none, err
		}
		if bare {
			return bson.D{{Key: "_id", Value: id}}, false, nil
		}
	}
	return t.bind(f), false, nil
}

// bind ANDs experiment_id = t.slug to the caller's filter f. The caller's
// conditions stay top-level (so that an upsert copies its equality
// conditions into the new document on every store) unless f names
// experiment_id at its top level: then f goes whole under $and, where it can
// only narrow what experiment_id = t.slug matches.
func (t target) bind(f bson.Raw) bson.D {
	if t.slug == "" {
		return rawD(f)
	}
	out := bson.D{{Key: Field, Value: t.slug}}
	if len(f) == 0 || isEmpty(f) {
		return out
	}
	if _, err := f.LookupErr(Field); err != nil {
		return append(out, rawD(f)...)
	}
	return append(out, bson.E{Key: "$and", Value: bson.A{f}})
}

func isEmpty(d bson.Raw) bool {
	elems, err := d.Elements()
	return err == nil && len(elems) == 0
}

// rawD is d's elements as a bson.D of raw values, sent as they were checked.
func rawD(d bson.Raw) bson.D {
	elems, _ := d.Elements()
	out := make(bson.D, 0, len(elems))
	for _, e := range elems {
		out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return out
}
