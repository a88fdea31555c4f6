package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Study links let an experiment's owner recruit participants who have no
// account: a link opens a participant session on the experiment's origin
// and starts a run, which the experiment's actor marks finished. The auth
// service creates, lists, revokes and opens links; the actor worker marks
// runs started (at their first call) and finished (a host operation).
const (
	StudyLinksCollection = "study_links"
	StudyRunsCollection  = "study_runs"
	// StudyClaimsCollection holds the claim of each single-use or personal
	// link ({_id: link, run}): the first opening inserts it, and the _id's
	// uniqueness, which every store enforces even between concurrent
	// writers, makes that opening the only one.
	StudyClaimsCollection = "study_link_claims"
)

// Kinds of study links.
const (
	// LinkSingle admits one participant for one run: a second opening
	// from another browser is refused.
	LinkSingle = "single"
	// LinkMulti admits any number of participants, a run each.
	LinkMulti = "multi"
	// LinkPersonal is one named participant's (its label): opening it
	// again, from any browser, resumes their run until it is finished.
	LinkPersonal = "personal"
)

// StudyLink is a link as stored. Its _id is the unguessable token in its
// URL. Opened, Started and Finished count its runs in each state: List
// counts them from the runs (never stored counters, which concurrent
// updates on some stores lose).
type StudyLink struct {
	ID    string `bson:"_id"`
	Slug  string `bson:"slug"`
	Kind  string `bson:"kind"`
	Label string `bson:"label,omitempty"`
	// CompletionURL is the template of the address a finished run is sent
	// to (see CompletionURL); CompletionCode fills its {code}.
	CompletionURL  string `bson:"completion_url,omitempty"`
	CompletionCode string `bson:"completion_code,omitempty"`
	// Run is, for single-use and personal links, the run of their one
	// participant once it is opened ("" before): its claim's.
	Run       string     `bson:"-"`
	Revoked   bool       `bson:"revoked"`
	RevokedAt *time.Time `bson:"revoked_at,omitempty"`
	CreatedBy string     `bson:"created_by"`
	CreatedAt time.Time  `bson:"created_at"`
	Opened    int64      `bson:"-"`
	Started   int64      `bson:"-"`
	Finished  int64      `bson:"-"`
}

// StudyRun is one participant's run through a link. Participant is the
// stable ID the actor sees; Params the URL parameters recruiters added to
// the link (PROLIFIC_PID, workerId, ...).
type StudyRun struct {
	ID          string            `bson:"_id"`
	Slug        string            `bson:"slug"`
	Link        string            `bson:"link"`
	Participant string            `bson:"participant"`
	Params      map[string]string `bson:"params,omitempty"`
	OpenedAt    time.Time         `bson:"opened_at"`
	Started     bool              `bson:"started"`
	StartedAt   *time.Time        `bson:"started_at,omitempty"`
	Finished    bool              `bson:"finished"`
	FinishedAt  *time.Time        `bson:"finished_at,omitempty"`
}

// Why a link does not open.
var (
	ErrLinkNotFound = errors.New("no such study link")
	ErrLinkRevoked  = errors.New("the study link was revoked")
	ErrLinkUsed     = errors.New("the single-use study link was used already")
	// ErrRunFinished is a personal link whose participant finished.
	ErrRunFinished = errors.New("the run of this study link is finished")
)

// StudyLinks is the repository of study links and their runs.
type StudyLinks struct{ links, runs, claims *mongo.Collection }

// StudyLinks is the repository over this store.
func (s *Store) StudyLinks() StudyLinks {
	return StudyLinks{s.Collection(StudyLinksCollection), s.Collection(StudyRunsCollection), s.Collection(StudyClaimsCollection)}
}

type linkClaim struct {
	Link string `bson:"_id"`
	Run  string `bson:"run"`
}

// EnsureIndexes creates the indexes that list an experiment's links and
// runs.
func (r StudyLinks) EnsureIndexes(ctx context.Context) error {
	for _, c := range []*mongo.Collection{r.links, r.runs} {
		m := mongo.IndexModel{Keys: bson.D{{Key: "slug", Value: 1}, {Key: "created_at", Value: 1}},
			Options: options.Index().SetName("slug_created_at")}
		if c == r.runs {
			m = mongo.IndexModel{Keys: bson.D{{Key: "slug", Value: 1}, {Key: "link", Value: 1}, {Key: "opened_at", Value: 1}},
				Options: options.Index().SetName("slug_link_opened_at")}
		}
		if _, err := c.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create indexes on %s: %w", c.Name(), err)
		}
	}
	return nil
}

// Create stores new links.
func (r StudyLinks) Create(ctx context.Context, links []StudyLink) error {
	docs := make([]any, len(links))
	for i := range links {
		docs[i] = links[i]
	}
	if _, err := r.links.InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("create study links: %w", err)
	}
	return nil
}

// Get is slug's link id, or nil.
func (r StudyLinks) Get(ctx context.Context, slug, id string) (*StudyLink, error) {
	l, err := FindByID[StudyLink](ctx, r.links, id)
	if err != nil || l == nil || l.Slug != slug {
		return nil, err
	}
	return l, nil
}

// List are slug's links, oldest first (at most limit), with their counts.
func (r StudyLinks) List(ctx context.Context, slug string, limit int64) ([]StudyLink, error) {
	out, _, err := r.ListPage(ctx, slug, "", limit)
	return out, err
}

// ListPage is a page of slug's links, oldest first, after the cursor
// after ("" for the first page), at most limit, with their counts; next is
// the cursor of the next page, "" after the last.
func (r StudyLinks) ListPage(ctx context.Context, slug, after string, limit int64) (out []StudyLink, next string, err error) {
	filter, err := pageFilter(bson.D{{Key: "slug", Value: slug}}, "created_at", after)
	if err != nil {
		return nil, "", err
	}
	cur, err := r.links.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("list the study links of %s: %w", slug, err)
	}
	out = []StudyLink{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, "", fmt.Errorf("list the study links of %s: %w", slug, err)
	}
	if len(out) == 0 {
		return out, "", nil
	}
	if err := r.count(ctx, slug, out); err != nil {
		return nil, "", err
	}
	if int64(len(out)) == limit {
		last := out[len(out)-1]
		next = cursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

// count fills the counts of slug's links from their runs.
func (r StudyLinks) count(ctx context.Context, slug string, links []StudyLink) error {
	ids := make([]string, len(links))
	for i := range links {
		ids[i] = links[i].ID
	}
	for _, c := range []struct {
		field string
		set   func(*StudyLink, int64)
	}{
		{"", func(l *StudyLink, n int64) { l.Opened = n }},
		{"started", func(l *StudyLink, n int64) { l.Started = n }},
		{"finished", func(l *StudyLink, n int64) { l.Finished = n }},
	} {
		counts, err := r.countRuns(ctx, slug, ids, c.field)
		if err != nil {
			return err
		}
		for i := range links {
			c.set(&links[i], counts[links[i].ID])
		}
	}
	return nil
}

// Labels are the labels of slug's links ids that have one.
func (r StudyLinks) Labels(ctx context.Context, slug string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := r.links.Find(ctx, bson.D{{Key: "slug", Value: slug}, {Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "label", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read the labels of study links of %s: %w", slug, err)
	}
	var rows []struct {
		ID    string `bson:"_id"`
		Label string `bson:"label"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read the labels of study links of %s: %w", slug, err)
	}
	for _, row := range rows {
		if row.Label != "" {
			out[row.ID] = row.Label
		}
	}
	return out, nil
}

// ErrBadCursor is a page cursor this package did not make.
var ErrBadCursor = errors.New("the page cursor is not one this listing gave")

// cursor is the position after an item sorted by (at, id).
func cursor(at time.Time, id string) string {
	return strconv.FormatInt(at.UnixMilli(), 10) + "~" + id
}

// pageFilter narrows base to the items after the cursor after, sorted by
// (field, _id).
func pageFilter(base bson.D, field, after string) (bson.D, error) {
	if after == "" {
		return base, nil
	}
	ms, id, ok := strings.Cut(after, "~")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" || len(after) > 128 {
		return nil, ErrBadCursor
	}
	at := time.UnixMilli(n).UTC()
	return append(base, bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: field, Value: bson.D{{Key: "$gt", Value: at}}}},
		bson.D{{Key: field, Value: at}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}},
	}}), nil
}

// countRuns counts slug's runs per link of links: all of them, or those
// whose boolean field is true.
func (r StudyLinks) countRuns(ctx context.Context, slug string, links []string, field string) (map[string]int64, error) {
	match := bson.D{{Key: "slug", Value: slug}, {Key: "link", Value: bson.D{{Key: "$in", Value: links}}}}
	if field != "" {
		match = append(match, bson.E{Key: field, Value: true})
	}
	cur, err := r.runs.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$link"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("count the runs of %s: %w", slug, err)
	}
	var rows []struct {
		Link string `bson:"_id"`
		N    int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count the runs of %s: %w", slug, err)
	}
	out := make(map[string]int64, len(rows))
	for _, row := range rows {
		out[row.Link] = row.N
	}
	return out, nil
}

// Count is how many links slug has.
func (r StudyLinks) Count(ctx context.Context, slug string) (int64, error) {
	n, err := r.links.CountDocuments(ctx, bson.D{{Key: "slug", Value: slug}})
	if err != nil {
		return 0, fmt.Errorf("count the study links of %s: %w", slug, err)
	}
	return n, nil
}

// Revoke marks a link revoked (keeping the time of a first revocation)
// and returns it (nil when slug has no such link). Its runs keep going: a
// participant in the middle of one can finish.
func (r StudyLinks) Revoke(ctx context.Context, slug, id string) (*StudyLink, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := r.links.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "slug", Value: slug}, {Key: "revoked", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked", Value: true}, {Key: "revoked_at", Value: now}}}}); err != nil {
		return nil, fmt.Errorf("revoke a study link of %s: %w", slug, err)
	}
	l, err := r.Get(ctx, slug, id)
	if err != nil || l == nil {
		return nil, err
	}
	one := []StudyLink{*l}
	if err := r.count(ctx, slug, one); err != nil {
		return nil, err
	}
	return &one[0], nil
}

// Open begins a run through slug's link id for a new participant: newRun
// makes the run (its ID, participant and parameters); Open stores it. A
// single-use link opens once; a personal link's later openings return its
// existing run (resumed) until it is finished. The claim of a single-use
// or personal link is the insertion of one document keyed by the link, so
// two openings at once cannot both win.
func (r StudyLinks) Open(ctx context.Context, slug, id string, newRun func() StudyRun) (*StudyLink, *StudyRun, error) {
	l, err := r.Get(ctx, slug, id)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case l == nil:
		return nil, nil, ErrLinkNotFound
	case l.Revoked:
		return l, nil, ErrLinkRevoked
	}
	run := newRun()
	run.Slug, run.Link = slug, id
	if l.Kind != LinkMulti {
		if _, err := r.claims.InsertOne(ctx, linkClaim{Link: id, Run: run.ID}); err != nil {
			if !mongo.IsDuplicateKeyError(err) {
				return nil, nil, fmt.Errorf("open a study link of %s: %w", slug, err)
			}
			claim, err := FindByID[linkClaim](ctx, r.claims, id)
			if err != nil || claim == nil {
				return nil, nil, fmt.Errorf("read the claim of a study link of %s: %v", slug, err)
			}
			l.Run = claim.Run
			if l.Kind == LinkSingle {
				return l, nil, ErrLinkUsed
			}
			return r.resume(ctx, l, run)
		}
		l.Run = run.ID
	}
	if _, err := r.runs.InsertOne(ctx, run); err != nil {
		return nil, nil, fmt.Errorf("start a run of %s: %w", slug, err)
	}
	return l, &run, nil
}

// resume is the existing run of personal link l; fresh stands in for it
// when the claim was recorded but its run was not (a process that stopped
// between the two writes).
func (r StudyLinks) resume(ctx context.Context, l *StudyLink, fresh StudyRun) (*StudyLink, *StudyRun, error) {
	run, err := r.Run(ctx, l.Slug, l.Run)
	if err != nil {
		return nil, nil, err
	}
	if run == nil {
		fresh.ID = l.Run
		if _, err := r.runs.InsertOne(ctx, fresh); err != nil && !mongo.IsDuplicateKeyError(err) {
			return nil, nil, fmt.Errorf("start a run of %s: %w", l.Slug, err)
		}
		if run, err = r.Run(ctx, l.Slug, l.Run); err != nil || run == nil {
			return nil, nil, fmt.Errorf("read the run of a study link of %s: %v", l.Slug, err)
		}
	}
	if run.Finished {
		return l, run, ErrRunFinished
	}
	return l, run, nil
}

// Run is slug's run id, or nil.
func (r StudyLinks) Run(ctx context.Context, slug, id string) (*StudyRun, error) {
	run, err := FindByID[StudyRun](ctx, r.runs, id)
	if err != nil || run == nil || run.Slug != slug {
		return nil, err
	}
	return run, nil
}

// Runs are slug's runs (of one link when link is not ""), oldest first, at
// most limit.
func (r StudyLinks) Runs(ctx context.Context, slug, link string, limit int64) ([]StudyRun, error) {
	out, _, err := r.RunsPage(ctx, slug, link, "", limit)
	return out, err
}

// RunsPage is a page of slug's runs (of one link when link is not ""),
// oldest first, after the cursor after, at most limit; next is the cursor
// of the next page, "" after the last.
func (r StudyLinks) RunsPage(ctx context.Context, slug, link, after string, limit int64) (out []StudyRun, next string, err error) {
	filter := bson.D{{Key: "slug", Value: slug}}
	if link != "" {
		filter = append(filter, bson.E{Key: "link", Value: link})
	}
	if filter, err = pageFilter(filter, "opened_at", after); err != nil {
		return nil, "", err
	}
	cur, err := r.runs.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "opened_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("list the runs of %s: %w", slug, err)
	}
	out = []StudyRun{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, "", fmt.Errorf("list the runs of %s: %w", slug, err)
	}
	if int64(len(out)) == limit && limit > 0 {
		last := out[len(out)-1]
		next = cursor(last.OpenedAt, last.ID)
	}
	return out, next, nil
}

// MarkStarted records that slug's run id reached the experiment's actor;
// it reports whether the run was not marked before.
func (r StudyLinks) MarkStarted(ctx context.Context, slug, id string) (bool, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	res, err := r.runs.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "slug", Value: slug}, {Key: "started", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "started", Value: true}, {Key: "started_at", Value: now}}}})
	if err != nil {
		return false, fmt.Errorf("mark a run of %s started: %w", slug, err)
	}
	return res.ModifiedCount > 0, nil
}

// Finish marks slug's run id finished (and started, if its actor finished
// it without a call through the link's session), once; a run finished
// already is returned as it is, with done false. It returns the run and
// its link; nil when slug has no such run.
func (r StudyLinks) Finish(ctx context.Context, slug, id string) (run *StudyRun, link *StudyLink, done bool, err error) {
	if _, err := r.MarkStarted(ctx, slug, id); err != nil {
		return nil, nil, false, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var got StudyRun
	err = r.runs.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "slug", Value: slug}, {Key: "finished", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "finished", Value: true}, {Key: "finished_at", Value: now}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&got)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		if run, err = r.Run(ctx, slug, id); err != nil || run == nil {
			return nil, nil, false, err
		}
	case err != nil:
		return nil, nil, false, fmt.Errorf("finish a run of %s: %w", slug, err)
	default:
		run, done = &got, true
	}
	if link, err = r.Get(ctx, slug, run.Link); err != nil {
		return nil, nil, false, err
	}
	return run, link, done, nil
}

// Import stores links and runs of a package as they are, and the claim of
// each single-use or personal link whose Run is set (so that a used link
// stays used); those that exist already are kept (an import runs once,
// and a later change wins). It counts the links and runs that were new.
func (r StudyLinks) Import(ctx context.Context, links []StudyLink, runs []StudyRun) (newLinks, newRuns int, err error) {
	docs := make([]any, 0, len(links))
	var claims []any
	for i := range links {
		docs = append(docs, links[i])
		if links[i].Run != "" && links[i].Kind != LinkMulti {
			claims = append(claims, linkClaim{Link: links[i].ID, Run: links[i].Run})
		}
	}
	if newLinks, err = insertNew(ctx, r.links, docs); err != nil {
		return 0, 0, fmt.Errorf("import study links: %w", err)
	}
	// Claims before runs, as Open writes them.
	if _, err = insertNew(ctx, r.claims, claims); err != nil {
		return 0, 0, fmt.Errorf("import the claims of study links: %w", err)
	}
	docs = docs[:0]
	for i := range runs {
		docs = append(docs, runs[i])
	}
	if newRuns, err = insertNew(ctx, r.runs, docs); err != nil {
		return 0, 0, fmt.Errorf("import runs of study links: %w", err)
	}
	return newLinks, newRuns, nil
}

// insertNew inserts the documents whose _id is not in c, in one unordered
// write, and counts them; a duplicate _id is not an error.
func insertNew(ctx context.Context, c *mongo.Collection, docs []any) (int, error) {
	if len(docs) == 0 {
		return 0, nil
	}
	_, err := c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return len(docs), nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return 0, err
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return 0, err
		}
	}
	return len(docs) - len(bwe.WriteErrors), nil
}
