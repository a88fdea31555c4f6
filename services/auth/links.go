package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
)

// Study links (docs/experiments.md, "Study links"). The owner's endpoints
// check, as every owner's endpoint, the caller's token; links.open has no
// caller: the link's token, unguessable, is the credential. A link's
// participant gets a session of kind participant on the experiment's
// origin that carries their run, so the actor sees it without a read.

// newLinkID is a link's or a run's ID: 128 random bits, URL-safe.
func newLinkID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func linkPublic(l *store.StudyLink) authapi.Link {
	return authapi.Link{ID: l.ID, Slug: l.Slug, Kind: l.Kind, Label: l.Label, CompletionURL: l.CompletionURL,
		CompletionCode: l.CompletionCode, Revoked: l.Revoked, RevokedAt: l.RevokedAt, CreatedBy: l.CreatedBy,
		CreatedAt: l.CreatedAt, Opened: l.Opened, Started: l.Started, Finished: l.Finished}
}

func runPublic(r *store.StudyRun, label string) authapi.Run {
	return authapi.Run{ID: r.ID, Link: r.Link, Label: label, Participant: r.Participant, Params: r.Params,
		OpenedAt: r.OpenedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
}

// printable reports whether s is UTF-8 text without control characters.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// checkLinksCreate checks a creation and returns the labels of the links
// to make ("" each for unlabelled kinds).
func checkLinksCreate(req authapi.LinksCreate) ([]string, error) {
	switch req.Kind {
	case authapi.LinkSingle, authapi.LinkMulti:
		if len(req.Labels) > 0 {
			return nil, apierr.New(apierr.CodeValidationFailed, "labels name the participants of personal links; %s links take count", req.Kind).OnField("/labels")
		}
		n := req.Count
		if n == 0 {
			n = 1
		}
		if n < 1 || n > authapi.MaxLinksPerRequest {
			return nil, apierr.New(apierr.CodeValidationFailed, "count must be 1 to %d", authapi.MaxLinksPerRequest).OnField("/count")
		}
		return make([]string, n), nil
	case authapi.LinkPersonal:
		if len(req.Labels) == 0 || len(req.Labels) > authapi.MaxLinksPerRequest {
			return nil, apierr.New(apierr.CodeValidationFailed, "personal links take 1 to %d labels, one per participant", authapi.MaxLinksPerRequest).OnField("/labels")
		}
		if req.Count != 0 && req.Count != len(req.Labels) {
			return nil, apierr.New(apierr.CodeValidationFailed, "personal links are one per label; leave count out").OnField("/count")
		}
		for i, l := range req.Labels {
			if l = strings.TrimSpace(l); l == "" || len(l) > authapi.MaxLabelLen || !printable(l) {
				return nil, apierr.New(apierr.CodeValidationFailed, "a label is 1 to %d bytes of printable text", authapi.MaxLabelLen).OnField(fmt.Sprintf("/labels/%d", i))
			}
		}
		return req.Labels, nil
	case "":
		return nil, apierr.New(apierr.CodeValidationFailed, "kind is required: single, multi or personal").OnField("/kind")
	}
	return nil, apierr.New(apierr.CodeValidationFailed, "kind %q is not single, multi or personal", req.Kind).OnField("/kind")
}

func (s *Service) linksCreate(ctx context.Context, req authapi.LinksCreate) (authapi.Links, error) {
	actor, err := s.ownerOf(ctx, req.Actor, req.Slug, "its study links")
	if err != nil {
		return authapi.Links{}, err
	}
	labels, err := checkLinksCreate(req)
	if err != nil {
		return authapi.Links{}, err
	}
	if req.CompletionURL != "" {
		if err := authapi.CheckCompletionURL(req.CompletionURL); err != nil {
			return authapi.Links{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/completion_url")
		}
	}
	if len(req.CompletionCode) > authapi.MaxCodeLen || !printable(req.CompletionCode) {
		return authapi.Links{}, apierr.New(apierr.CodeValidationFailed, "completion_code is up to %d bytes of printable text", authapi.MaxCodeLen).OnField("/completion_code")
	}
	if req.CompletionCode != "" && !strings.Contains(req.CompletionURL, "{code}") {
		return authapi.Links{}, apierr.New(apierr.CodeValidationFailed, "completion_code fills {code} of completion_url, which has none").OnField("/completion_code")
	}
	repo := s.d.Store.StudyLinks()
	have, err := repo.Count(ctx, req.Slug)
	if err != nil {
		return authapi.Links{}, err
	}
	if have+int64(len(labels)) > authapi.MaxLinksPerExperiment {
		return authapi.Links{}, apierr.New(apierr.CodeConflict, "an experiment has at most %d study links; it has %d", authapi.MaxLinksPerExperiment, have)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	links := make([]store.StudyLink, len(labels))
	for i, label := range labels {
		links[i] = store.StudyLink{ID: newLinkID(), Slug: req.Slug, Kind: req.Kind, Label: strings.TrimSpace(label),
			CompletionURL: req.CompletionURL, CompletionCode: req.CompletionCode, CreatedBy: actor.Email, CreatedAt: now}
	}
	if err := repo.Create(ctx, links); err != nil {
		return authapi.Links{}, err
	}
	if err := audit(ctx, s.d.Store, actor, "study_links.create", req.Slug, map[string]any{"kind": req.Kind, "count": len(links)}); err != nil {
		return authapi.Links{}, err
	}
	out := authapi.Links{Links: make([]authapi.Link, len(links))}
	for i := range links {
		out.Links[i] = linkPublic(&links[i])
	}
	return out, nil
}

func (s *Service) linksList(ctx context.Context, req authapi.LinksList) (authapi.Links, error) {
	if _, err := s.ownerOf(ctx, req.Actor, req.Slug, "its study links"); err != nil {
		return authapi.Links{}, err
	}
	list, next, err := s.d.Store.StudyLinks().ListPage(ctx, req.Slug, req.After, authapi.PageSize)
	if errors.Is(err, store.ErrBadCursor) {
		return authapi.Links{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/after")
	}
	if err != nil {
		return authapi.Links{}, err
	}
	out := authapi.Links{Links: make([]authapi.Link, len(list)), Next: next}
	for i := range list {
		out.Links[i] = linkPublic(&list[i])
	}
	return out, nil
}

func (s *Service) linkRevoke(ctx context.Context, req authapi.LinkRevoke) (authapi.Link, error) {
	actor, err := s.ownerOf(ctx, req.Actor, req.Slug, "its study links")
	if err != nil {
		return authapi.Link{}, err
	}
	l, err := s.d.Store.StudyLinks().Revoke(ctx, req.Slug, req.ID)
	if err != nil {
		return authapi.Link{}, err
	}
	if l == nil {
		return authapi.Link{}, apierr.New(apierr.CodeNotFound, "experiment %s has no study link %q", req.Slug, req.ID)
	}
	if err := audit(ctx, s.d.Store, actor, "study_links.revoke", req.Slug+"/"+l.ID, nil); err != nil {
		return authapi.Link{}, err
	}
	return linkPublic(l), nil
}

func (s *Service) linksRuns(ctx context.Context, req authapi.RunsList) (authapi.Runs, error) {
	if _, err := s.ownerOf(ctx, req.Actor, req.Slug, "its study links"); err != nil {
		return authapi.Runs{}, err
	}
	repo := s.d.Store.StudyLinks()
	if req.Link != "" {
		l, err := repo.Get(ctx, req.Slug, req.Link)
		if err != nil {
			return authapi.Runs{}, err
		}
		if l == nil {
			return authapi.Runs{}, apierr.New(apierr.CodeNotFound, "experiment %s has no study link %q", req.Slug, req.Link)
		}
	}
	runs, next, err := repo.RunsPage(ctx, req.Slug, req.Link, req.After, authapi.PageSize)
	if errors.Is(err, store.ErrBadCursor) {
		return authapi.Runs{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/after")
	}
	if err != nil {
		return authapi.Runs{}, err
	}
	ids := []string{}
	for _, r := range runs {
		ids = append(ids, r.Link)
	}
	labels, err := repo.Labels(ctx, req.Slug, ids)
	if err != nil {
		return authapi.Runs{}, err
	}
	out := authapi.Runs{Runs: make([]authapi.Run, len(runs)), Next: next}
	for i := range runs {
		out.Runs[i] = runPublic(&runs[i], labels[runs[i].Link])
	}
	return out, nil
}

// linkOpen begins (or, for a personal link, resumes) a participant's run
// and mints their session. The experiment must be served (active): a
// link of a draft or archived experiment opens nothing, and a single-use
// link is not spent on it.
func (s *Service) linkOpen(ctx context.Context, req authapi.LinkOpen) (authapi.LinkSession, error) {
	if !slugSyntax.MatchString(req.Slug) {
		return authapi.LinkSession{}, apierr.New(apierr.CodeValidationFailed, "slug %q is not a slug", req.Slug).OnField("/slug")
	}
	// The edge checked them; checked again here, since they go into a
	// token and a cookie whose size they bound.
	q := url.Values{}
	for k, v := range req.Params {
		q.Set(k, v)
	}
	if _, err := authapi.CheckParams(q); err != nil {
		return authapi.LinkSession{}, apierr.New(apierr.CodeValidationFailed, "%s", err.Error()).OnField("/params")
	}
	cfg, err := s.d.Store.Experiments().Get(ctx, req.Slug)
	if err != nil {
		return authapi.LinkSession{}, fmt.Errorf("read experiment %s: %w", req.Slug, err)
	}
	if cfg == nil || cfg.Status != experiments.StatusActive {
		return authapi.LinkSession{}, apierr.New(apierr.CodeNotFound, "this study is not open")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	l, run, err := s.d.Store.StudyLinks().Open(ctx, req.Slug, req.ID, func() store.StudyRun {
		return store.StudyRun{ID: newLinkID(), Participant: newUID(), Params: req.Params, OpenedAt: now}
	})
	switch {
	case errors.Is(err, store.ErrLinkNotFound):
		return authapi.LinkSession{}, apierr.New(apierr.CodeNotFound, "this study link does not exist")
	case errors.Is(err, store.ErrLinkRevoked):
		return authapi.LinkSession{}, apierr.New(apierr.CodeGone, "this study link was withdrawn by the researcher")
	case errors.Is(err, store.ErrLinkUsed):
		return authapi.LinkSession{}, apierr.New(apierr.CodeGone, "this study link was used already: each of its kind admits one participant")
	case errors.Is(err, store.ErrRunFinished):
		return authapi.LinkSession{}, apierr.New(apierr.CodeGone, "you have completed this study already")
	case err != nil:
		return authapi.LinkSession{}, err
	}
	resumed := run.OpenedAt.Before(now)
	ttl := bundle.SubAuthOf([]byte(cfg.Manifest)).TTL()
	token, c, err := s.signer.MintParticipant(authn.Subject{ID: run.Participant, Roles: []string{},
		Run: &authn.Run{ID: run.ID, Link: l.ID, Kind: l.Kind, Label: l.Label, Params: run.Params}}, req.Slug, ttl, time.Now())
	if err != nil {
		return authapi.LinkSession{}, err
	}
	return authapi.LinkSession{Token: token, ExpiresAt: c.ExpiresAt.Time, Run: runPublic(run, l.Label), Resumed: resumed}, nil
}
