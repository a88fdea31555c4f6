package export

import (
	"context"
	"errors"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// callTimeout bounds the work of one endpoint call.
const callTimeout = 15 * time.Second

// Limits of List.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// The step of a log before its build writes one of exportpkg's.
const (
	stepQueued   = "queued"
	stepStarting = "starting"
)

// requestLogs is what requesting, reading, listing and invalidating
// exports need of the export logs.
type requestLogs interface {
	Get(ctx context.Context, id string) (*exportapi.Log, error)
	Insert(ctx context.Context, l *exportapi.Log) error
	Reusable(ctx context.Context, sourceKey string, expiresAfter time.Time) ([]exportapi.Log, error)
	Building(ctx context.Context, sourceKey, email string) (*exportapi.Log, error)
	Spent(ctx context.Context, sourceKey, email string, expiresBy time.Time) (int64, error)
	List(ctx context.Context, slug string, limit int) ([]exportapi.Log, error)
	SharingFile(ctx context.Context, key string) ([]string, error)
	Invalidate(ctx context.Context, ids []string, by string, at time.Time) ([]string, error)
	Fail(ctx context.Context, id, reason string, at time.Time, s store.Stale) (*exportapi.Log, error)
}

// request reuses a ready export of the experiment's current source, joins
// one the same requester is waiting for, or queues a build.
func (s *Service) request(ctx context.Context, req exportapi.Request) (exportapi.Requested, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, q, err := requestedType(req)
	if err != nil {
		return exportapi.Requested{}, err
	}
	email := normEmail(req.Caller.Email)
	if email == "" {
		return exportapi.Requested{}, apierr.New(apierr.CodeUnauthenticated, "sign in to export an experiment")
	}
	cfg, err := s.configs.Get(ctx, req.Slug)
	if err != nil {
		return exportapi.Requested{}, err
	}
	if cfg == nil {
		return exportapi.Requested{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
	}
	if err := mayExport(cfg.OwnerEmail, t, req.Caller); err != nil {
		return exportapi.Requested{}, err
	}
	dataSeq, err := s.dataSeq(ctx, t, cfg.Slug)
	if err != nil {
		return exportapi.Requested{}, err
	}
	people, err := s.peopleKey(ctx, t, cfg.Slug)
	if err != nil {
		return exportapi.Requested{}, err
	}
	key := sourceKey(t, cfg.Checksum, cfg.Seq, dataSeq) + people
	if q != nil {
		key += "|" + q.Key()
	}
	at := now()

	// A ready package of the same source, with at least half its retention
	// left, is handed out again.
	ready, err := s.logs.Reusable(ctx, key, at.Add(s.d.Config.ExportRetention/2))
	if err != nil {
		return exportapi.Requested{}, err
	}
	if len(ready) > 0 {
		l, err := s.reuse(ctx, ready, email, at)
		if err != nil {
			return exportapi.Requested{}, err
		}
		if l != nil {
			return exportapi.Requested{Export: *l, Reused: true}, nil
		}
	}

	// The requester's own build of the same source, still under way.
	live, err := s.logs.Building(ctx, key, email)
	if err != nil {
		return exportapi.Requested{}, err
	}
	if live != nil {
		return exportapi.Requested{Export: *live}, nil
	}

	id, err := s.nextID(ctx, email, key, at)
	if err != nil {
		return exportapi.Requested{}, err
	}
	l := &exportapi.Log{
		ID: id, Slug: cfg.Slug, Type: t, UserEmail: email,
		FileName: exportpkg.FileName(cfg.Slug, cfg.Version, t), CreatedAt: at, UpdatedAt: at,
		Status: exportapi.StatusQueued, Step: stepQueued,
		Version: cfg.Version, VersionChecksum: cfg.Checksum, ConfigSeq: cfg.Seq, DataSeq: dataSeq, SourceKey: key,
		Data: q,
	}
	l.StorageKey = l.StorageKeyOf()
	if q != nil {
		l.FileName = exportapi.DataFileName(cfg.Slug, q, at)
	}
	if err := s.logs.Insert(ctx, l); err != nil {
		if !errors.Is(err, store.ErrDuplicate) {
			return exportapi.Requested{}, err
		}
		// The same request at the same moment (a double click, a retry)
		// made the same ID and won: join it.
		other, gerr := s.logs.Get(ctx, id)
		if gerr != nil || other == nil {
			return exportapi.Requested{}, err
		}
		return exportapi.Requested{Export: *other, Reused: other.Status == exportapi.StatusReady}, nil
	}
	s.publish(ctx, l)
	_, err = s.queue.Enqueue(ctx, exportapi.JobBuild, id, exportapi.BuildJob{
		ID: id, Slug: cfg.Slug, Type: t, Version: cfg.Version, Checksum: cfg.Checksum, RequestedBy: email, RequestedAt: at,
	})
	if err != nil {
		if failed, ferr := s.logs.Fail(context.WithoutCancel(ctx), id, "the build could not be queued", now(), store.Stale{}); ferr == nil && failed != nil {
			s.publish(ctx, failed)
		}
		return exportapi.Requested{}, apierr.Wrap(apierr.CodeUnavailable, err, "exports cannot be queued right now; try again shortly")
	}
	return exportapi.Requested{Export: *l}, nil
}

// nextID is the ID of the requester's next export of a source: derived
// from the requester, the source and how many of the requester's exports
// of it can no longer be handed out (failed, invalidated, expired, or with
// less than half their retention left), so that identical requests at the
// same moment make the same ID and all but one insert fail as duplicates
// and join it, instead of queueing more builds or records. Exports that
// may still be joined or reused are not counted: one may be recorded
// between a request's look for them and this count. Access to an export is
// checked on every read, so a derived ID gives nothing away.
func (s *Service) nextID(ctx context.Context, email, key string, at time.Time) (string, error) {
	n, err := s.logs.Spent(ctx, key, email, at.Add(s.d.Config.ExportRetention/2))
	if err != nil {
		return "", err
	}
	return exportapi.DerivedID(email, key, n), nil
}

// reuse hands out one of the ready exports of a source: the requester's
// own, or a new log of the requester sharing the newest one's file. It
// returns nil when that file went away meanwhile.
func (s *Service) reuse(ctx context.Context, ready []exportapi.Log, email string, at time.Time) (*exportapi.Log, error) {
	for i := range ready {
		if ready[i].UserEmail == email {
			return &ready[i], nil
		}
	}
	src := ready[0]
	id, err := s.nextID(ctx, email, src.SourceKey, at)
	if err != nil {
		return nil, err
	}
	n := src
	n.ID = id
	n.UserEmail, n.CreatedAt, n.UpdatedAt, n.FinishedAt = email, at, at, &at
	n.ReusedFrom = src.ID
	if src.ReusedFrom != "" {
		n.ReusedFrom = src.ReusedFrom
	}
	n.Attempts, n.Worker, n.StartedAt, n.HeartbeatAt, n.Error = 0, "", nil, nil, ""
	if err := s.logs.Insert(ctx, &n); err != nil {
		if !errors.Is(err, store.ErrDuplicate) {
			return nil, err
		}
		// A simultaneous request of the same requester recorded it.
		other, gerr := s.logs.Get(ctx, id)
		if gerr != nil || other == nil || !other.Downloadable(at) {
			return nil, err
		}
		return other, nil
	}
	// The source may have been invalidated (its file deleted) between the
	// read and the insert, by an event that the new log is too recent for.
	cur, err := s.logs.Get(ctx, src.ID)
	if err != nil {
		return nil, err
	}
	if cur == nil || !cur.Downloadable(at) {
		by := "its source export " + src.ID + " went away"
		if cur != nil && cur.InvalidatedBy != "" {
			by = cur.InvalidatedBy
		}
		if _, err := s.logs.Invalidate(ctx, []string{n.ID}, by, now()); err != nil {
			return nil, err
		}
		return nil, nil
	}
	s.publish(ctx, &n)
	return &n, nil
}

// get is one export's log, for its requester and admins.
func (s *Service) get(ctx context.Context, req exportapi.Get) (exportapi.Log, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	l, err := s.readable(ctx, req.ID, req.Caller)
	if err != nil {
		return exportapi.Log{}, err
	}
	return *l, nil
}

// readable reads the export id, which must exist and be c's to see.
func (s *Service) readable(ctx context.Context, id string, c uploadapi.Caller) (*exportapi.Log, error) {
	if !exportapi.ValidID(id) {
		return nil, apierr.New(apierr.CodeNotFound, "no export %q", id).OnField("/id")
	}
	l, err := s.logs.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if l == nil || !mayRead(l, c) {
		return nil, apierr.New(apierr.CodeNotFound, "no export %q", id)
	}
	return l, nil
}

// list is the admins' view of export logs, newest first.
func (s *Service) list(ctx context.Context, req exportapi.List) (exportapi.Listed, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if !req.Caller.IsAdmin {
		return exportapi.Listed{}, apierr.New(apierr.CodeForbidden, "only admins list exports")
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	out, err := s.logs.List(ctx, req.Slug, limit)
	if err != nil {
		return exportapi.Listed{}, err
	}
	return exportapi.Listed{Exports: out}, nil
}

// invalidate marks an export invalidated for an admin; with DeleteFiles its
// file goes too, and with it every export that shares the file.
func (s *Service) invalidate(ctx context.Context, req exportapi.Invalidate) (exportapi.Log, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if !req.Caller.IsAdmin {
		return exportapi.Log{}, apierr.New(apierr.CodeForbidden, "only admins invalidate exports")
	}
	l, err := s.readable(ctx, req.ID, req.Caller)
	if err != nil {
		return exportapi.Log{}, err
	}
	by := normEmail(req.Caller.Email)
	if by == "" {
		by = "an admin"
	}
	ids := []string{l.ID}
	if req.DeleteFiles && l.StorageKey != "" {
		sharing, err := s.logs.SharingFile(ctx, l.StorageKey)
		if err != nil {
			return exportapi.Log{}, err
		}
		ids = append(ids, sharing...)
	}
	if err := s.invalidateLogs(ctx, ids, by, req.DeleteFiles); err != nil {
		return exportapi.Log{}, err
	}
	cur, err := s.logs.Get(ctx, l.ID)
	if err != nil {
		return exportapi.Log{}, err
	}
	if cur == nil {
		return exportapi.Log{}, apierr.New(apierr.CodeNotFound, "no export %q", l.ID)
	}
	return *cur, nil
}

// download tells the edge where an export's file is, if it may be had.
func (s *Service) download(ctx context.Context, req exportapi.Get) (exportapi.Download, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	l, err := s.readable(ctx, req.ID, req.Caller)
	if err != nil {
		return exportapi.Download{}, err
	}
	at := time.Now()
	switch {
	case l.Invalidated || l.Status == exportapi.StatusInvalidated:
		msg := "export " + l.ID + " was invalidated"
		if l.InvalidatedBy != "" {
			msg += " (" + l.InvalidatedBy + ")"
		}
		return exportapi.Download{}, apierr.New(apierr.CodeGone, "%s", msg)
	case l.Status != exportapi.StatusReady:
		return exportapi.Download{}, apierr.New(apierr.CodeConflict, "export %s is %s, not ready", l.ID, l.Status)
	case !l.Downloadable(at):
		return exportapi.Download{}, apierr.New(apierr.CodeNotFound, "the export has expired")
	}
	d := exportapi.Download{Export: *l, StorageKey: l.StorageKey}
	// The link names the file as the edge's own download would: the
	// storage key is an ID, not what a person wants on their disk.
	link := exportstore.Link{TTL: s.d.Config.ExportLinkTTL, FileName: l.FileName, ContentType: l.ContentType()}
	url, ok, err := s.files.DownloadURL(ctx, l.StorageKey, link)
	if err != nil {
		return exportapi.Download{}, apierr.Wrap(apierr.CodeUnavailable, err, "export storage is unavailable right now")
	}
	if ok {
		until := at.Add(s.d.Config.ExportLinkTTL).UTC().Truncate(time.Second)
		if l.ExpiresAt != nil && l.ExpiresAt.Before(until) {
			// The file may be deleted at expiry, whatever the link says.
			until = *l.ExpiresAt
		}
		d.URL, d.URLExpires = url, &until
	}
	return d, nil
}

// mayExport decides who may have a package of the type: the packages with
// data (standalone, docker) hold every participant's data, so only the
// experiment's owner and admins get them; an upload-ready package holds
// only the bundle, and whoever the experiment's access rules let export it
// (the edge applies them) gets it. The export service decides this itself,
// whoever asks over the bus, and before anything is reused or queued.
func mayExport(owner string, t exportapi.Type, c uploadapi.Caller) error {
	if !withData(t) || c.IsAdmin || (owner != "" && normEmail(owner) == normEmail(c.Email) && c.ManagesOwn()) {
		return nil
	}
	if t == exportapi.ResearchData {
		return apierr.New(apierr.CodeForbidden, "only the experiment's owner and admins download its research data")
	}
	return apierr.New(apierr.CodeForbidden, "only the experiment's owner and admins export packages with its data (%s); an upload-ready package holds none", t)
}
