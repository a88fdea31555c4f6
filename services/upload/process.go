package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// processStaged checks a staged upload and stores it as the experiment's
// next version (runs.go calls it, under the upload's lease). On a refusal
// nothing is stored. When a version was made from this upload already (by
// a processing whose instance was lost), it is the answer, and no second
// version is made.
func (s *Service) processStaged(ctx context.Context, req uploadapi.ProcessUpload) (uploadapi.Result, error) {
	limit := s.d.Config.MaxUploadSizeMB << 20

	raw, err := s.stage(ctx, req.UploadID, limit)
	if err != nil {
		return uploadapi.Result{}, err
	}
	defer os.Remove(raw.Name())
	defer raw.Close()
	st, err := raw.Stat()
	if err != nil {
		return uploadapi.Result{}, fmt.Errorf("stat staged upload: %w", err)
	}
	b, err := bundle.Open(raw, st.Size(), bundle.DefaultLimits(limit))
	if err != nil {
		return uploadapi.Result{}, err
	}
	slug := b.Manifest.Slug

	// Refuse a slug owned by someone else before any work is stored.
	cur, err := s.configs.Get(ctx, slug)
	if err != nil {
		return uploadapi.Result{}, err
	} else if cur != nil && !mayManage(cur, req.Caller) {
		return uploadapi.Result{}, apierr.New(apierr.CodeForbidden, "experiment %q belongs to another developer", slug).OnField("/slug")
	}

	norm, err := os.CreateTemp(s.tmp, "bundle-*.zip")
	if err != nil {
		return uploadapi.Result{}, fmt.Errorf("create work file: %w", err)
	}
	defer os.Remove(norm.Name())
	defer norm.Close()
	sum, err := b.Normalise(norm)
	if err != nil {
		return uploadapi.Result{}, err
	}
	if made := madeFrom(cur, req.UploadID); made != nil {
		// A lost processing of this upload made its version: answer with
		// it, finishing what that one may not have (below).
		return s.finish(ctx, req, cur, made, b.Manifest, toWarnings(b.Warnings), sum.Checksum)
	}
	if unchanged(cur, sum.Checksum, b.RawManifest) {
		// A push from CI on every commit, or a second click, must not
		// fill the kept versions with copies and evict real ones, nor
		// restart the actor: nothing is stored, announced or audited.
		s.d.Log.InfoContext(ctx, "experiment upload unchanged", "slug", slug, "version", cur.Version, "checksum", sum.Checksum, "by", req.Caller.Email)
		warnings := toWarnings(b.Warnings)
		return uploadapi.Result{Experiment: *cur, Warnings: warnings, Unchanged: true,
			Message: fmt.Sprintf("unchanged: this bundle is version %d of %q already; no new version was made", cur.Version, slug)}, nil
	}
	if _, err := norm.Seek(0, io.SeekStart); err != nil {
		return uploadapi.Result{}, fmt.Errorf("rewind bundle: %w", err)
	}
	object := experiments.BundleObject(slug, sum.Checksum)
	// Through the leader: a replica's direct get could still show a bundle
	// an eviction just deleted, and the version would name a missing one.
	if _, err := (bus.Objects{JS: s.d.JS, Bucket: bus.ObjectBundles}).Info(ctx, object); errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := bus.PutObject(ctx, s.bundles, jetstream.ObjectMeta{Name: object, Description: "bundle of " + slug}, norm); err != nil {
			return uploadapi.Result{}, fmt.Errorf("store bundle: %w", err)
		}
	} else if err != nil {
		return uploadapi.Result{}, fmt.Errorf("look up bundle: %w", err)
	}

	warnings := toWarnings(b.Warnings)
	owner := req.Caller.Email
	if dev := strings.ToLower(strings.TrimSpace(b.Manifest.DeveloperID)); dev != "" && dev != owner {
		if req.Caller.IsAdmin {
			owner = dev
		} else {
			warnings = append(warnings, uploadapi.Warning{Field: "/developer_id", Message: "developer_id names someone else; the uploader owns the experiment"})
		}
	}
	if s.runs.beforeStore != nil {
		s.runs.beforeStore(req.UploadID)
	}
	created := false
	var made *experiments.Version
	next, prev, err := s.configs.Change(ctx, slug, func(cur *experiments.Config) (*experiments.Config, error) {
		if cur != nil && !mayManage(cur, req.Caller) {
			return nil, apierr.New(apierr.CodeForbidden, "experiment %q belongs to another developer", slug).OnField("/slug")
		}
		if made = madeFrom(cur, req.UploadID); made != nil {
			return nil, nil // made meanwhile by a lost processing of this upload
		}
		n := &experiments.Config{}
		if cur != nil {
			*n = *cur
			n.Versions = slices.Clone(cur.Versions)
		} else {
			n.OwnerEmail = owner
			created = true
		}
		last := 0
		for _, v := range n.Versions {
			last = max(last, v.Version)
		}
		n.Version = max(last, n.Version) + 1
		n.Checksum = sum.Checksum
		n.Name, n.Description, n.Status = b.Manifest.Name, b.Manifest.Description, b.Manifest.Status
		n.Manifest = string(b.RawManifest)
		n.Versions = append(n.Versions, experiments.Version{
			Version: n.Version, Checksum: sum.Checksum, Size: sum.Size, Files: len(sum.Files),
			Manifest: n.Manifest, UploadedBy: req.Caller.Email, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
			UploadID: req.UploadID,
		})
		if len(n.Versions) > experiments.KeepVersions {
			n.Versions = n.Versions[len(n.Versions)-experiments.KeepVersions:]
		}
		n.Indexes = plannedIndexes(b.Manifest, s.embedded)
		return n, nil
	})
	if err != nil {
		return uploadapi.Result{}, err
	}
	if made != nil {
		return s.finish(ctx, req, prev, made, b.Manifest, warnings, sum.Checksum)
	}
	if s.runs.afterStore != nil {
		s.runs.afterStore(req.UploadID)
	}
	s.dropEvicted(ctx, slug, prev, next)
	next.Indexes = s.applyIndexes(ctx, slug, b.Manifest, next.Indexes)
	if final, err := s.configs.SetIndexes(ctx, slug, next.Seq, next.Indexes); err == nil && final != nil {
		next = final
	}
	warnings = append(warnings, s.afterChange(ctx, next, b.Manifest, created)...)
	reason := "upload"
	if err := s.announce(ctx, next, events.ExperimentUpdated, reason, b.Manifest.Actor != nil); err != nil {
		return uploadapi.Result{}, err
	}
	if err := s.audit(ctx, req.Caller, "experiment.upload", slug, map[string]any{"version": next.Version, "checksum": sum.Checksum}); err != nil {
		return uploadapi.Result{}, err
	}
	s.d.Log.InfoContext(ctx, "experiment uploaded", "slug", slug, "version", next.Version, "checksum", sum.Checksum, "by", req.Caller.Email)
	if warnings == nil {
		warnings = []uploadapi.Warning{}
	}
	return uploadapi.Result{Experiment: *next, Warnings: warnings, Created: created}, nil
}

// madeFrom is the version of cur made from upload id, or nil.
func madeFrom(cur *experiments.Config, id string) *experiments.Version {
	if cur == nil {
		return nil
	}
	for i := range cur.Versions {
		if cur.Versions[i].UploadID == id {
			v := cur.Versions[i]
			return &v
		}
	}
	return nil
}

// finish answers an upload whose version a lost processing made. While
// that version is current, what the lost one may not have done after
// storing it is done again: each step is idempotent (indexes, accesses, and
// the announcement, which the events stream de-duplicates by sequence). The
// audit entry is not written twice.
func (s *Service) finish(ctx context.Context, req uploadapi.ProcessUpload, cur *experiments.Config, made *experiments.Version, m *bundle.Manifest, warnings []uploadapi.Warning, checksum string) (uploadapi.Result, error) {
	created := len(cur.Versions) > 0 && cur.Versions[0].UploadID == req.UploadID && cur.Versions[0].Version == 1
	if cur.Version == made.Version && cur.Checksum == checksum {
		cur.Indexes = s.applyIndexes(ctx, cur.Slug, m, plannedIndexes(m, s.embedded))
		if final, err := s.configs.SetIndexes(ctx, cur.Slug, cur.Seq, cur.Indexes); err == nil && final != nil {
			cur = final
		}
		warnings = append(warnings, s.afterChange(ctx, cur, m, created)...)
		if err := s.announce(ctx, cur, events.ExperimentUpdated, "upload", m.Actor != nil); err != nil {
			return uploadapi.Result{}, err
		}
	}
	s.d.Log.InfoContext(ctx, "experiment upload taken over", "slug", cur.Slug, "version", made.Version, "upload_id", req.UploadID, "by", req.Caller.Email)
	if warnings == nil {
		warnings = []uploadapi.Warning{}
	}
	return uploadapi.Result{Experiment: *cur, Warnings: warnings, Created: created}, nil
}

// unchanged reports whether a bundle of checksum with manifest raw is the
// experiment's current version as it stands. The manifest is compared too:
// after a change of manifest fields (PATCH) the same bundle restores the
// uploaded manifest, which is a change.
func unchanged(cur *experiments.Config, checksum string, raw []byte) bool {
	return cur != nil && cur.Checksum == checksum && cur.Manifest == string(raw)
}

// stage copies the staged upload to a work file: a ZIP is read from its
// central directory at the end, which needs random access. The edge wrote
// it an instant ago, maybe through another node of the cluster: it is read
// through the store's leader (bus.Objects), which a replica's direct get
// is not, so that the upload is found.
func (s *Service) stage(ctx context.Context, id string, limit int64) (*os.File, error) {
	f, err := os.CreateTemp(s.tmp, "upload-*.zip")
	if err != nil {
		return nil, fmt.Errorf("create work file: %w", err)
	}
	_, err = bus.Objects{JS: s.d.JS, Bucket: bus.ObjectUploads}.Read(ctx, id, f, limit)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, jetstream.ErrObjectNotFound):
		err = apierr.New(apierr.CodeNotFound, "no staged upload %q", id)
	case errors.Is(err, bus.ErrObjectTooLarge):
		err = apierr.New(apierr.CodeBundleTooLarge, "the upload is over %d MB", limit>>20)
	default:
		err = fmt.Errorf("read staged upload: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil, err
}

// dropEvicted deletes the bundles of versions no longer kept.
func (s *Service) dropEvicted(ctx context.Context, slug string, prev, next *experiments.Config) {
	if prev == nil {
		return
	}
	kept := map[string]bool{}
	for _, v := range next.Versions {
		kept[v.Checksum] = true
	}
	for _, v := range prev.Versions {
		if !kept[v.Checksum] {
			if err := s.bundles.Delete(ctx, experiments.BundleObject(slug, v.Checksum)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				s.d.Log.WarnContext(ctx, "drop old bundle failed", "slug", slug, "version", v.Version, "err", err)
			}
		}
	}
}

// announce publishes the experiment's event on the events stream,
// de-duplicated by slug and sequence.
func (s *Service) announce(ctx context.Context, c *experiments.Config, subject, reason string, hasActor bool) error {
	ev := events.Experiment{
		Slug: c.Slug, Version: c.Version, Checksum: c.Checksum, Status: c.Status, OwnerEmail: c.OwnerEmail,
		HasActor: hasActor, Seq: c.Seq, Reason: reason, At: time.Now().UTC(), RequestID: telemetry.RequestID(ctx),
	}
	if err := bus.Publish(ctx, s.d.JS, subject, events.ExperimentMsgID(subject, c.Slug, c.CreatedAt, c.Seq), ev); err != nil {
		return fmt.Errorf("announce %s of %s: %w", reason, c.Slug, err)
	}
	return nil
}

func canUpload(c uploadapi.Caller) bool {
	return c.IsAdmin || slices.Contains(c.Roles, "developer")
}

func mayManage(cfg *experiments.Config, c uploadapi.Caller) bool {
	return c.IsAdmin || (strings.EqualFold(cfg.OwnerEmail, c.Email) && c.ManagesOwn())
}

func toWarnings(in []bundle.Warning) []uploadapi.Warning {
	out := make([]uploadapi.Warning, 0, len(in))
	for _, w := range in {
		out = append(out, uploadapi.Warning{Field: w.Field, Message: w.Message})
	}
	return out
}
