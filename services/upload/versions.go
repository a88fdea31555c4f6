package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// An experiment's versions (docs/experiments.md, "Versions and rollback").
// Each upload appends a version to the record (number, checksum, size,
// files, manifest, uploader, time) and stores its bundle once per checksum
// as {slug}/{checksum}.zip; the oldest beyond experiments.KeepVersions
// leave the record and their bundles are deleted (dropEvicted), and a
// deletion removes them all. A rollback moves the current pointer back to
// a kept version and announces it as an upload announces a new one; it
// never adds a version, so that a version number names one bundle for
// good, and the next upload still gets the next number.

// listVersions answers the kept versions, newest first, to the owner and
// admins, with whether each bundle is still stored.
func (s *Service) listVersions(ctx context.Context, req uploadapi.VersionsQuery) (uploadapi.Versions, error) {
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "see the versions of")
	if err != nil {
		return uploadapi.Versions{}, err
	}
	out := uploadapi.Versions{Slug: cfg.Slug, Current: cfg.Version, Keep: experiments.KeepVersions,
		Versions: make([]uploadapi.VersionInfo, 0, len(cfg.Versions))}
	stored := map[string]bool{}
	for _, v := range cfg.Versions {
		ok, seen := stored[v.Checksum]
		if !seen {
			if ok, err = s.bundleStored(ctx, cfg.Slug, v.Checksum); err != nil {
				return uploadapi.Versions{}, err
			}
			stored[v.Checksum] = ok
		}
		name, desc := manifestTitle(v.Manifest)
		out.Versions = append(out.Versions, uploadapi.VersionInfo{
			Version: v.Version, Checksum: v.Checksum, Size: v.Size, Files: v.Files, UploadedAt: v.CreatedAt,
			UploadedBy: v.UploadedBy, Current: v.Version == cfg.Version, Available: ok, Name: name, Description: desc,
		})
	}
	slices.SortFunc(out.Versions, func(a, b uploadapi.VersionInfo) int { return b.Version - a.Version })
	return out, nil
}

// rollback makes a kept version current again. Already current is a
// success that changes nothing (Changed false): a retried rollback, or a
// script that states the version it wants, gets what it asked for.
func (s *Service) rollback(ctx context.Context, req uploadapi.Rollback) (uploadapi.RollbackResult, error) {
	if req.Version < 1 {
		return uploadapi.RollbackResult{}, apierr.New(apierr.CodeValidationFailed, "version must be a whole number from 1 up").OnField("/version")
	}
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "roll back")
	if err != nil {
		return uploadapi.RollbackResult{}, err
	}
	i := slices.IndexFunc(cfg.Versions, func(v experiments.Version) bool { return v.Version == req.Version })
	if i < 0 {
		return uploadapi.RollbackResult{}, notKept(cfg, req.Version)
	}
	if cfg.Version == req.Version {
		return uploadapi.RollbackResult{Experiment: *cfg, From: cfg.Version, Warnings: []uploadapi.Warning{}}, nil
	}
	if ok, err := s.bundleStored(ctx, cfg.Slug, cfg.Versions[i].Checksum); err != nil {
		return uploadapi.RollbackResult{}, err
	} else if !ok {
		return uploadapi.RollbackResult{}, apierr.New(apierr.CodeGone,
			"the bundle of version %d of %q is no longer stored; upload that version again", req.Version, cfg.Slug).OnField("/version")
	}

	var (
		from     int
		manifest *bundle.Manifest
		warnings []uploadapi.Warning
	)
	next, _, err := s.configs.Change(ctx, req.Slug, func(cur *experiments.Config) (*experiments.Config, error) {
		if cur == nil {
			return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
		}
		if !mayManage(cur, req.Caller) {
			return nil, apierr.New(apierr.CodeForbidden, "only the owner of %q and admins roll it back", req.Slug)
		}
		// Decided again on the record as it is now: an upload meanwhile may
		// have evicted the version, or another rollback made it current.
		i := slices.IndexFunc(cur.Versions, func(v experiments.Version) bool { return v.Version == req.Version })
		if i < 0 {
			return nil, notKept(cur, req.Version)
		}
		from = cur.Version
		if cur.Version == req.Version {
			return nil, nil
		}
		m, w, err := bundle.ParseManifest([]byte(cur.Versions[i].Manifest))
		if err != nil {
			return nil, fmt.Errorf("read the manifest of version %d: %w", req.Version, err)
		}
		manifest, warnings = m, toWarnings(w)
		n := *cur
		n.Versions = slices.Clone(cur.Versions)
		// The status stays what its owner last set: it is the experiment's
		// switch, not part of a version (an upload's manifest sets it).
		n.Version, n.Checksum, n.Manifest = cur.Versions[i].Version, cur.Versions[i].Checksum, cur.Versions[i].Manifest
		n.Name, n.Description = m.Name, m.Description
		n.Indexes = plannedIndexes(m, s.embedded)
		return &n, nil
	})
	if err != nil {
		return uploadapi.RollbackResult{}, err
	}
	if next == nil {
		// Made current by another request meanwhile.
		cur, err := s.configs.Get(ctx, req.Slug)
		if err != nil {
			return uploadapi.RollbackResult{}, err
		}
		if cur == nil {
			return uploadapi.RollbackResult{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
		}
		return uploadapi.RollbackResult{Experiment: *cur, From: from, Warnings: []uploadapi.Warning{}}, nil
	}
	next.Indexes = s.applyIndexes(ctx, next.Slug, manifest, next.Indexes)
	if final, err := s.configs.SetIndexes(ctx, next.Slug, next.Seq, next.Indexes); err == nil && final != nil {
		next = final
	}
	warnings = append(warnings, s.afterChange(ctx, next, manifest, false)...)
	// The event an upload publishes: every edge switches the files it
	// serves, the actor workers reload the actor, the exports of the
	// version left behind are invalidated.
	if err := s.announce(ctx, next, events.ExperimentUpdated, "rollback", manifest.Actor != nil); err != nil {
		return uploadapi.RollbackResult{}, err
	}
	if err := s.audit(ctx, req.Caller, "experiment.rollback", next.Slug,
		map[string]any{"from_version": from, "version": next.Version, "checksum": next.Checksum}); err != nil {
		return uploadapi.RollbackResult{}, err
	}
	s.d.Log.InfoContext(ctx, "experiment rolled back", "slug", next.Slug, "from", from, "version", next.Version, "by", req.Caller.Email)
	if warnings == nil {
		warnings = []uploadapi.Warning{}
	}
	return uploadapi.RollbackResult{Experiment: *next, From: from, Changed: true, Warnings: warnings}, nil
}

// notKept is the refusal of a version the experiment does not keep.
func notKept(cfg *experiments.Config, version int) error {
	kept := make([]string, 0, len(cfg.Versions))
	for _, v := range cfg.Versions {
		kept = append(kept, fmt.Sprint(v.Version))
	}
	return apierr.New(apierr.CodeNotFound, "experiment %q keeps no version %d (kept: %s)", cfg.Slug, version, strings.Join(kept, ", ")).OnField("/version")
}

// bundleStored reports whether the bundle of checksum is in the bundles
// object store, as its leader has it (bus.Objects): a version rolled back
// to must not name a bundle just deleted.
func (s *Service) bundleStored(ctx context.Context, slug, checksum string) (bool, error) {
	_, err := bus.Objects{JS: s.d.JS, Bucket: bus.ObjectBundles}.Info(ctx, experiments.BundleObject(slug, checksum))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return false, nil
	}
	return false, apierr.Wrap(apierr.CodeUnavailable, fmt.Errorf("look up bundle: %w", err), "the bundles cannot be read right now")
}

// manifestTitle is the name and description of a stored manifest.
func manifestTitle(raw string) (name, description string) {
	var m struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal([]byte(raw), &m)
	return m.Name, m.Description
}
