package exportpkg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/store"
)

// Entries of format 2: the experiment's study links (each with the claim
// of a single-use or personal link) and their runs.
const (
	LinksFile = bundle.PlatformDir + "/links.jsonl"
	RunsFile  = bundle.PlatformDir + "/runs.jsonl"
)

// Bounds of what one package carries: an experiment has at most
// MaxLinks links (as the auth service allows); runs have no bound of
// their own on the platform, and MaxRuns is far above any study's, so
// that a hostile export.json cannot make an import run without end or
// hold an unbounded set of IDs.
const (
	MaxLinks = authapi.MaxLinksPerExperiment
	MaxRuns  = 1_000_000
	// linkBatch is how many links or runs are read or written at a time.
	linkBatch = 500
)

var (
	// linkIDSyntax is a link's or run's ID: 16 random bytes in base64url,
	// the only shape the edge opens.
	linkIDSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	// participantSyntax is a participant's ID (the auth service makes 24
	// hex digits).
	participantSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
)

// maxEmail bounds created_by, a platform user's email.
const maxEmail = 320

// linkLine is one line of links.jsonl: a study link as stored, and Run,
// the run its claim names when a single-use or personal link was opened.
// The claim travels inside its link rather than in a file of its own, so
// that a package cannot hold a claim of a link it lacks, or two of one.
type linkLine struct {
	ID             string     `json:"id"`
	Slug           string     `json:"slug"`
	Kind           string     `json:"kind"`
	Label          string     `json:"label,omitempty"`
	CompletionURL  string     `json:"completion_url,omitempty"`
	CompletionCode string     `json:"completion_code,omitempty"`
	Run            string     `json:"run,omitempty"`
	Revoked        bool       `json:"revoked"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
}

// runLine is one line of runs.jsonl: a run as stored.
type runLine struct {
	ID          string            `json:"id"`
	Slug        string            `json:"slug"`
	Link        string            `json:"link"`
	Participant string            `json:"participant"`
	Params      map[string]string `json:"params,omitempty"`
	OpenedAt    time.Time         `json:"opened_at"`
	Started     bool              `json:"started"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	Finished    bool              `json:"finished"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
}

func toLinkLine(l store.StudyLink) linkLine {
	return linkLine{ID: l.ID, Slug: l.Slug, Kind: l.Kind, Label: l.Label, CompletionURL: l.CompletionURL,
		CompletionCode: l.CompletionCode, Run: l.Run, Revoked: l.Revoked, RevokedAt: l.RevokedAt,
		CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt}
}

func (l linkLine) link() store.StudyLink {
	return store.StudyLink{ID: l.ID, Slug: l.Slug, Kind: l.Kind, Label: l.Label, CompletionURL: l.CompletionURL,
		CompletionCode: l.CompletionCode, Run: l.Run, Revoked: l.Revoked, RevokedAt: l.RevokedAt,
		CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt}
}

func toRunLine(r store.StudyRun) runLine {
	return runLine{ID: r.ID, Slug: r.Slug, Link: r.Link, Participant: r.Participant, Params: r.Params,
		OpenedAt: r.OpenedAt, Started: r.Started, StartedAt: r.StartedAt, Finished: r.Finished, FinishedAt: r.FinishedAt}
}

func (r runLine) run() store.StudyRun {
	return store.StudyRun{ID: r.ID, Slug: r.Slug, Link: r.Link, Participant: r.Participant, Params: r.Params,
		OpenedAt: r.OpenedAt, Started: r.Started, StartedAt: r.StartedAt, Finished: r.Finished, FinishedAt: r.FinishedAt}
}

// writeRuns exports the experiment's runs, in the store's order. It runs
// before writeLinks: a link's claim is stored before its run, so a run
// read first always finds its claim among the links read after, however
// the two race with participants opening links.
func (x *writer) writeRuns() error {
	cur, err := x.src.DB.Collection(store.StudyRunsCollection).Find(x.ctx, bson.D{{Key: "slug", Value: x.slug}},
		options.Find().SetBatchSize(linkBatch))
	if err != nil {
		return fmt.Errorf("find runs: %w", err)
	}
	defer cur.Close(context.WithoutCancel(x.ctx))
	var e *hashingEntry
	for cur.Next(x.ctx) {
		var r store.StudyRun
		if err := cur.Decode(&r); err != nil {
			return fmt.Errorf("read a run: %w", err)
		}
		if e == nil {
			if e, err = x.entry(RunsFile); err != nil {
				return err
			}
		}
		if e.n == MaxRuns {
			return fmt.Errorf("the experiment has more than %d runs of study links, more than a package holds", MaxRuns)
		}
		if err := writeJSONLine(e, toRunLine(r)); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	if e != nil {
		x.meta.Runs = e.extra(RunsFile)
	}
	return nil
}

// writeLinks exports the experiment's study links, oldest first, each
// with its claim.
func (x *writer) writeLinks() error {
	cur, err := x.src.DB.Collection(store.StudyLinksCollection).Find(x.ctx, bson.D{{Key: "slug", Value: x.slug}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetBatchSize(linkBatch))
	if err != nil {
		return fmt.Errorf("find study links: %w", err)
	}
	defer cur.Close(context.WithoutCancel(x.ctx))
	var (
		e     *hashingEntry
		batch []store.StudyLink
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if e == nil {
			if e, err = x.entry(LinksFile); err != nil {
				return err
			}
		}
		claims, err := claimsOf(x.ctx, x.src.DB, batch)
		if err != nil {
			return err
		}
		for _, l := range batch {
			l.Run = claims[l.ID]
			if err := writeJSONLine(e, toLinkLine(l)); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	var n int64
	for cur.Next(x.ctx) {
		var l store.StudyLink
		if err := cur.Decode(&l); err != nil {
			return fmt.Errorf("read a study link: %w", err)
		}
		if n++; n > MaxLinks {
			return fmt.Errorf("the experiment has more than %d study links, more than a package holds", MaxLinks)
		}
		if batch = append(batch, l); len(batch) == linkBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read study links: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	if e != nil {
		x.meta.Links = e.extra(LinksFile)
	}
	return nil
}

// claimsOf are the runs that claimed the single-use and personal links
// of links, by link.
func claimsOf(ctx context.Context, db *mongo.Database, links []store.StudyLink) (map[string]string, error) {
	var ids []string
	for _, l := range links {
		if l.Kind != store.LinkMulti {
			ids = append(ids, l.ID)
		}
	}
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := db.Collection(store.StudyClaimsCollection).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("find the claims of study links: %w", err)
	}
	var claims []struct {
		Link string `bson:"_id"`
		Run  string `bson:"run"`
	}
	if err := cur.All(ctx, &claims); err != nil {
		return nil, fmt.Errorf("read the claims of study links: %w", err)
	}
	for _, c := range claims {
		out[c.Link] = c.Run
	}
	return out, nil
}

func writeJSONLine(e *hashingEntry, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := e.w.Write(append(line, '\n')); err != nil {
		return err
	}
	e.n++
	return nil
}

// decodeLine reads a line as exactly one JSON object of v's fields.
func decodeLine(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// ReadLinks calls onLink with each study link of the package (its Run is
// its claim's run, "" while unclaimed) and then onRun with each run (none
// for packages without). Whatever the platform could not have stored is
// refused: a record of another experiment, an ID twice or of a shape the
// edge never opens, an unknown kind or field, a completion URL that link
// creation refuses, a claim of a multi-use link, a run of a link not in
// the package or, for single-use and personal links, not the run of its
// claim, parameters a link's opening refuses, and times that do not match
// the run's state.
func (p *Package) ReadLinks(onLink func(store.StudyLink) error, onRun func(store.StudyRun) error) error {
	if p.Meta.Links == nil {
		return nil // and so no runs: Open refuses runs without links
	}
	var (
		kinds   = map[string]string{} // link -> its kind
		claims  = map[string]string{} // run -> the link it claimed
		claimOf = map[string]string{} // link -> the run that claimed it
	)
	err := p.readEach(p.Meta.Links, func(line []byte) error {
		var l linkLine
		if err := decodeLine(line, &l); err != nil {
			return fmt.Errorf("not a study link: %w", err)
		}
		if err := p.checkLink(&l, kinds); err != nil {
			return err
		}
		kinds[l.ID] = l.Kind
		if l.Run != "" {
			if other, ok := claims[l.Run]; ok {
				return fmt.Errorf("links %q and %q claim the same run %q", other, l.ID, l.Run)
			}
			claims[l.Run], claimOf[l.ID] = l.ID, l.Run
		}
		return called(onLink(l.link()))
	})
	if err != nil || p.Meta.Runs == nil {
		return err
	}
	runs := make(map[string]struct{}, min(p.Meta.Runs.Entries, linkBatch))
	return p.readEach(p.Meta.Runs, func(line []byte) error {
		var r runLine
		if err := decodeLine(line, &r); err != nil {
			return fmt.Errorf("not a run: %w", err)
		}
		if err := p.checkRun(&r); err != nil {
			return err
		}
		if _, dup := runs[r.ID]; dup {
			return fmt.Errorf("run %q is in the package twice", r.ID)
		}
		kind, ok := kinds[r.Link]
		switch {
		case !ok:
			return fmt.Errorf("run %q is of link %q, which is not in the package", r.ID, r.Link)
		case claims[r.ID] != "" && claims[r.ID] != r.Link:
			return fmt.Errorf("run %q is of link %q but claimed link %q", r.ID, r.Link, claims[r.ID])
		case kind != store.LinkMulti && claimOf[r.Link] != r.ID:
			return fmt.Errorf("run %q of %s link %q is not the run of its claim", r.ID, kind, r.Link)
		}
		runs[r.ID] = struct{}{}
		return called(onRun(r.run()))
	})
}

// readEach is readLines for ReadLinks: fn's checks refuse the package,
// naming the file and line, while an error of a caller's function
// (wrapped in callerError) is returned as it is.
func (p *Package) readEach(e *Extra, fn func(line []byte) error) error {
	var stop error
	err := p.readLines(e, func(line []byte) error {
		err := fn(line)
		var ce callerError
		if errors.As(err, &ce) {
			stop = ce.err
		}
		return err
	})
	if stop != nil {
		return stop
	}
	return err
}

type callerError struct{ err error }

func (c callerError) Error() string { return c.err.Error() }

func called(err error) error {
	if err != nil {
		return callerError{err}
	}
	return nil
}

func (p *Package) checkLink(l *linkLine, seen map[string]string) error {
	switch {
	case l.Slug != p.Meta.Slug:
		return fmt.Errorf("a study link of experiment %q, not %q", l.Slug, p.Meta.Slug)
	case !linkIDSyntax.MatchString(l.ID):
		return fmt.Errorf("a study link whose id %q is not 22 characters of A-Z a-z 0-9 _ -", clip(l.ID))
	case seen[l.ID] != "":
		return fmt.Errorf("study link %q is in the package twice", l.ID)
	case l.Kind != store.LinkSingle && l.Kind != store.LinkMulti && l.Kind != store.LinkPersonal:
		return fmt.Errorf("study link %q has kind %q, not single, multi or personal", l.ID, clip(l.Kind))
	case l.Kind == store.LinkPersonal && (strings.TrimSpace(l.Label) == "" || len(l.Label) > authapi.MaxLabelLen || !printable(l.Label)):
		return fmt.Errorf("personal link %q has no label of 1 to %d bytes of printable text", l.ID, authapi.MaxLabelLen)
	case l.Kind != store.LinkPersonal && l.Label != "":
		return fmt.Errorf("%s link %q has a label; only personal links have one", l.Kind, l.ID)
	case len(l.CompletionCode) > authapi.MaxCodeLen || !printable(l.CompletionCode):
		return fmt.Errorf("study link %q has a completion code that is not up to %d bytes of printable text", l.ID, authapi.MaxCodeLen)
	case l.CompletionCode != "" && !strings.Contains(l.CompletionURL, "{code}"):
		return fmt.Errorf("study link %q has a completion code but its completion URL has no {code}", l.ID)
	case l.Run != "" && l.Kind == store.LinkMulti:
		return fmt.Errorf("multi-use link %q has a claim; only single-use and personal links do", l.ID)
	case l.Run != "" && !linkIDSyntax.MatchString(l.Run):
		return fmt.Errorf("study link %q is claimed by run %q, which is not a run's ID", l.ID, clip(l.Run))
	case l.Revoked != (l.RevokedAt != nil):
		return fmt.Errorf("study link %q has revoked %t with revoked_at %v", l.ID, l.Revoked, l.RevokedAt)
	case len(l.CreatedBy) > maxEmail || !printable(l.CreatedBy):
		return fmt.Errorf("study link %q has a created_by that is not an email", l.ID)
	case l.CreatedAt.IsZero():
		return fmt.Errorf("study link %q has no created_at", l.ID)
	}
	if l.CompletionURL != "" {
		if err := authapi.CheckCompletionURL(l.CompletionURL); err != nil {
			return fmt.Errorf("study link %q: %w", l.ID, err)
		}
	}
	return nil
}

func (p *Package) checkRun(r *runLine) error {
	switch {
	case r.Slug != p.Meta.Slug:
		return fmt.Errorf("a run of experiment %q, not %q", r.Slug, p.Meta.Slug)
	case !linkIDSyntax.MatchString(r.ID):
		return fmt.Errorf("a run whose id %q is not 22 characters of A-Z a-z 0-9 _ -", clip(r.ID))
	case !participantSyntax.MatchString(r.Participant):
		return fmt.Errorf("run %q has participant %q, not 8 to 64 characters of A-Z a-z 0-9 _ -", r.ID, clip(r.Participant))
	case r.OpenedAt.IsZero():
		return fmt.Errorf("run %q has no opened_at", r.ID)
	case r.Started != (r.StartedAt != nil):
		return fmt.Errorf("run %q has started %t with started_at %v", r.ID, r.Started, r.StartedAt)
	case r.Finished != (r.FinishedAt != nil):
		return fmt.Errorf("run %q has finished %t with finished_at %v", r.ID, r.Finished, r.FinishedAt)
	case r.Finished && !r.Started:
		return fmt.Errorf("run %q is finished but not started", r.ID)
	}
	if len(r.Params) > 0 {
		q := url.Values{}
		for k, v := range r.Params {
			q.Set(k, v)
		}
		if _, err := authapi.CheckParams(q); err != nil {
			return fmt.Errorf("run %q: %w", r.ID, err)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// importLinks inserts the package's links, claims and runs that are not
// in db, in batches, whatever the mode: a link revoked or used since, or a
// run finished since, is the operator's, and a package must not undo it.
func importLinks(ctx context.Context, db *mongo.Database, p *Package) (links, linksExisting, runs, runsExisting int64, err error) {
	repo := (&store.Store{DB: db}).StudyLinks()
	var (
		lb []store.StudyLink
		rb []store.StudyRun
	)
	flush := func() error {
		if len(lb)+len(rb) == 0 {
			return nil
		}
		nl, nr, err := repo.Import(ctx, lb, rb)
		if err != nil {
			return err
		}
		links, linksExisting = links+int64(nl), linksExisting+int64(len(lb)-nl)
		runs, runsExisting = runs+int64(nr), runsExisting+int64(len(rb)-nr)
		lb, rb = lb[:0], rb[:0]
		return nil
	}
	err = p.ReadLinks(func(l store.StudyLink) error {
		if lb = append(lb, l); len(lb) == linkBatch {
			return flush()
		}
		return nil
	}, func(r store.StudyRun) error {
		// Every link, and so every claim, is in before the first run.
		if len(lb) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		if rb = append(rb, r); len(rb) == linkBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return links, linksExisting, runs, runsExisting, err
}

// LinksState names the state of slug's study links, their claims and
// runs in db, for the export service's source key: it changes with every
// change a package would carry. Links and claims are only ever added,
// and a run only goes from opened to started to finished, so counts name
// the state; link IDs and revocations are hashed in as well.
func LinksState(ctx context.Context, db *mongo.Database, slug string) (string, error) {
	h := sha256.New()
	cur, err := db.Collection(store.StudyLinksCollection).Find(ctx, bson.D{{Key: "slug", Value: slug}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "kind", Value: 1}, {Key: "revoked", Value: 1}}).
			SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(5000))
	if err != nil {
		return "", fmt.Errorf("list study links: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var claimable []string
	var claimed int64
	countClaims := func() error {
		if len(claimable) == 0 {
			return nil
		}
		n, err := db.Collection(store.StudyClaimsCollection).CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: claimable}}}})
		if err != nil {
			return fmt.Errorf("count the claims of study links: %w", err)
		}
		claimed += n
		claimable = claimable[:0]
		return nil
	}
	for cur.Next(ctx) {
		var l struct {
			ID      string `bson:"_id"`
			Kind    string `bson:"kind"`
			Revoked bool   `bson:"revoked"`
		}
		if err := cur.Decode(&l); err != nil {
			return "", fmt.Errorf("read a study link: %w", err)
		}
		fmt.Fprintf(h, "l|%s|%t\n", l.ID, l.Revoked)
		if l.Kind != store.LinkMulti {
			if claimable = append(claimable, l.ID); len(claimable) == 1000 {
				if err := countClaims(); err != nil {
					return "", err
				}
			}
		}
	}
	if err := cur.Err(); err != nil {
		return "", fmt.Errorf("list study links: %w", err)
	}
	if err := countClaims(); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "c|%d\n", claimed)
	runs := db.Collection(store.StudyRunsCollection)
	for _, field := range []string{"", "started", "finished"} {
		filter := bson.D{{Key: "slug", Value: slug}}
		if field != "" {
			filter = append(filter, bson.E{Key: field, Value: true})
		}
		n, err := runs.CountDocuments(ctx, filter)
		if err != nil {
			return "", fmt.Errorf("count runs: %w", err)
		}
		fmt.Fprintf(h, "r|%s|%d\n", field, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
