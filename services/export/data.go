package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/store"
)

// Research data: one collection as CSV or JSON Lines, an export like the
// packages (requested, reused, queued, built, invalidated and expired the
// same way) whose file is written by exportpkg.WriteData instead of Write.

// withData reports whether exports of type t hold the experiment's data:
// only its owner and admins have them, and they depend on its data
// version.
func withData(t exportapi.Type) bool { return t.HasData() || t == exportapi.ResearchData }

// requestedType reads the type of a request and, for research data, its
// query, checked whoever sent it.
func requestedType(req exportapi.Request) (exportapi.Type, *exportapi.DataQuery, error) {
	if req.Type == exportapi.ResearchData {
		if err := req.Data.Check(); err != nil {
			return "", nil, err
		}
		q := *req.Data
		// Bounds are kept as BSON keeps them, so that the log read back
		// names the same range and the source key stays the same.
		if q.From != nil {
			f := q.From.UTC().Truncate(time.Millisecond)
			q.From = &f
		}
		if q.To != nil {
			t := q.To.UTC().Truncate(time.Millisecond)
			q.To = &t
		}
		if err := q.Check(); err != nil {
			return "", nil, err
		}
		return exportapi.ResearchData, &q, nil
	}
	t, err := exportapi.ParseType(string(req.Type))
	if err != nil {
		return "", nil, err
	}
	if req.Data != nil {
		return "", nil, apierr.New(apierr.CodeValidationFailed, "only a research-data export takes data").OnField("/data")
	}
	return t, nil, nil
}

// data lists the experiment's collections with their documents, for its
// owner and admins.
func (s *Service) data(ctx context.Context, req exportapi.DataList) (exportapi.DataCollections, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if normEmail(req.Caller.Email) == "" {
		return exportapi.DataCollections{}, apierr.New(apierr.CodeUnauthenticated, "sign in to list an experiment's data")
	}
	cfg, err := s.configs.Get(ctx, req.Slug)
	if err != nil {
		return exportapi.DataCollections{}, err
	}
	if cfg == nil {
		return exportapi.DataCollections{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
	}
	if err := mayExport(cfg.OwnerEmail, exportapi.ResearchData, req.Caller); err != nil {
		return exportapi.DataCollections{}, err
	}
	colls, err := exportpkg.ListData(ctx, s.d.Store.DB, cfg.Slug)
	if err != nil {
		return exportapi.DataCollections{}, apierr.Wrap(apierr.CodeUnavailable, err, "the experiment's data cannot be listed right now")
	}
	return exportapi.DataCollections{Slug: cfg.Slug, Collections: colls}, nil
}

// buildData streams the research-data file into the store and marks the
// export ready; buildPackage has checked that the experiment and its
// version are still the export's.
func (s *Service) buildData(ctx context.Context, job *jobs.Job, l *exportapi.Log, cfg *experiments.Config) error {
	// The data version is read before any document is: the file holds at
	// least the data it names.
	dataSeq, err := s.dataSeq(ctx, l.Type, l.Slug)
	if err != nil {
		return err
	}
	key := sourceKey(l.Type, cfg.Checksum, cfg.Seq, dataSeq) + "|" + l.Data.Key()

	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr := &progress{s: s, ctx: context.WithoutCancel(ctx), job: job, id: l.ID, cancel: cancel, every: s.o.ProgressEvery}
	stopBeat := pr.heartbeat(bctx, s.o.HeartbeatEvery)
	sum, obj, err := pipeToStore(bctx, s, l.StorageKey, "research data",
		func(ctx context.Context, w io.Writer) (exportpkg.DataSummary, error) {
			return exportpkg.WriteData(ctx, w, s.d.Store.DB, l.Slug, *l.Data, exportpkg.DataOptions{WorkDir: s.tmp, Progress: pr.report})
		},
		func(sum exportpkg.DataSummary) (int64, int64) { return sum.Size, sum.Documents })
	stopBeat()
	if cause := context.Cause(bctx); errors.Is(cause, errInvalidated) {
		s.deleteFile(context.WithoutCancel(ctx), l.StorageKey)
		return nil
	}
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			// A collection too wide for CSV stays so: no retry.
			return jobs.Permanent(err)
		}
		return err
	}
	if obj.Size != sum.Size {
		return fmt.Errorf("the store kept %d bytes of a %d-byte file", obj.Size, sum.Size)
	}
	at := now()
	return s.markReady(ctx, l, store.Built{
		Size: sum.Size, Checksum: sum.SHA256, Documents: sum.Documents, Step: exportpkg.StepDone,
		FileName: l.FileName, StorageKey: l.StorageKey,
		Version: cfg.Version, ConfigSeq: cfg.Seq, DataSeq: dataSeq, SourceKey: key, At: at,
		ExpiresAt: at.Add(s.d.Config.ExportRetention),
	})
}
