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
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

var statuses = []string{experiments.StatusActive, experiments.StatusDraft, experiments.StatusArchived, experiments.StatusInactive}

// update makes a kept version current, or changes the status or manifest
// fields. Only the owner and admins may.
func (s *Service) update(ctx context.Context, req uploadapi.Update) (uploadapi.Result, error) {
	if req.Version == nil && req.Status == nil && len(req.Fields) == 0 {
		return uploadapi.Result{}, apierr.New(apierr.CodeValidationFailed, "nothing to change: give version, status or manifest")
	}
	if req.Status != nil && !slices.Contains(statuses, *req.Status) {
		return uploadapi.Result{}, apierr.New(apierr.CodeValidationFailed, "status must be one of %s", strings.Join(statuses, ", ")).OnField("/status")
	}
	if req.Version != nil {
		// As a rollback does (versions.go): a version whose bundle is gone
		// would be served by no edge and loaded by no worker.
		if cur, err := s.configs.Get(ctx, req.Slug); err == nil && cur != nil && mayManage(cur, req.Caller) {
			if i := slices.IndexFunc(cur.Versions, func(v experiments.Version) bool { return v.Version == *req.Version }); i >= 0 && cur.Version != *req.Version {
				if ok, err := s.bundleStored(ctx, cur.Slug, cur.Versions[i].Checksum); err != nil {
					return uploadapi.Result{}, err
				} else if !ok {
					return uploadapi.Result{}, apierr.New(apierr.CodeGone, "the bundle of version %d of %q is no longer stored; upload that version again", *req.Version, cur.Slug).OnField("/version")
				}
			}
		}
	}
	var warnings []uploadapi.Warning
	var manifest *bundle.Manifest
	next, _, err := s.configs.Change(ctx, req.Slug, func(cur *experiments.Config) (*experiments.Config, error) {
		if cur == nil {
			return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
		}
		if !mayManage(cur, req.Caller) {
			return nil, apierr.New(apierr.CodeForbidden, "only the owner and admins change experiment %q", req.Slug)
		}
		n := *cur
		n.Versions = slices.Clone(cur.Versions)
		if req.Version != nil {
			i := slices.IndexFunc(n.Versions, func(v experiments.Version) bool { return v.Version == *req.Version })
			if i < 0 {
				kept := []string{}
				for _, v := range n.Versions {
					kept = append(kept, fmt.Sprint(v.Version))
				}
				return nil, apierr.New(apierr.CodeValidationFailed, "version %d is not kept (kept: %s)", *req.Version, strings.Join(kept, ", ")).OnField("/version")
			}
			n.Version, n.Checksum, n.Manifest = n.Versions[i].Version, n.Versions[i].Checksum, n.Versions[i].Manifest
		}
		raw := []byte(n.Manifest)
		if len(req.Fields) > 0 {
			merged, err := mergeManifest(raw, req.Fields)
			if err != nil {
				return nil, err
			}
			raw = merged
		}
		m, w, err := bundle.ParseManifest(raw)
		if err != nil {
			return nil, err
		}
		if m.Slug != n.Slug {
			return nil, apierr.New(apierr.CodeValidationFailed, "the slug of an experiment cannot change").OnField("/manifest/slug")
		}
		manifest, warnings = m, toWarnings(w)
		n.Manifest, n.Name, n.Description = string(raw), m.Name, m.Description
		if len(req.Fields) > 0 && patchSets(req.Fields, "status") {
			n.Status = m.Status
		}
		if req.Status != nil {
			n.Status = *req.Status
		}
		for i := range n.Versions {
			if n.Versions[i].Version == n.Version {
				n.Versions[i].Manifest = n.Manifest
			}
		}
		n.Indexes = plannedIndexes(m, s.embedded)
		return &n, nil
	})
	if err != nil {
		return uploadapi.Result{}, err
	}
	next.Indexes = s.applyIndexes(ctx, next.Slug, manifest, next.Indexes)
	if final, err := s.configs.SetIndexes(ctx, next.Slug, next.Seq, next.Indexes); err == nil && final != nil {
		next = final
	}
	warnings = append(warnings, s.afterChange(ctx, next, manifest, false)...)
	reason := "update"
	if req.Version != nil {
		reason = "rollback"
	}
	if err := s.announce(ctx, next, events.ExperimentUpdated, reason, manifest.Actor != nil); err != nil {
		return uploadapi.Result{}, err
	}
	if err := s.audit(ctx, req.Caller, "experiment."+reason, next.Slug, map[string]any{"version": next.Version, "status": next.Status}); err != nil {
		return uploadapi.Result{}, err
	}
	if warnings == nil {
		warnings = []uploadapi.Warning{}
	}
	return uploadapi.Result{Experiment: *next, Warnings: warnings}, nil
}

// patchSets reports whether a manifest patch names field.
func patchSets(fields json.RawMessage, field string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(fields, &m) != nil {
		return false
	}
	_, ok := m[field]
	return ok
}

// mergeManifest sets the given top-level fields of a manifest.
func mergeManifest(raw []byte, fields json.RawMessage) ([]byte, error) {
	var base, patch map[string]json.RawMessage
	if err := json.Unmarshal(raw, &base); err != nil {
		return nil, fmt.Errorf("read stored manifest: %w", err)
	}
	if err := json.Unmarshal(fields, &patch); err != nil {
		return nil, apierr.Wrap(apierr.CodeInvalidJson, err, "manifest must be a JSON object of fields to change").OnField("/manifest")
	}
	for k, v := range patch {
		if string(v) == "null" {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	return json.Marshal(base)
}

// delete removes the experiment: its configuration, every kept bundle, and
// its documents in every collection named for it; an announcement lets the
// other services drop its actor and exports.
func (s *Service) delete(ctx context.Context, req uploadapi.Delete) (uploadapi.Result, error) {
	if req.Confirm != req.Slug {
		return uploadapi.Result{}, apierr.New(apierr.CodeValidationFailed, "to delete, confirm with the experiment's slug").OnField("/confirm")
	}
	cur, err := s.configs.Get(ctx, req.Slug)
	if err != nil {
		return uploadapi.Result{}, err
	}
	if cur == nil {
		return uploadapi.Result{}, apierr.New(apierr.CodeNotFound, "no experiment %q", req.Slug)
	}
	if !mayManage(cur, req.Caller) {
		return uploadapi.Result{}, apierr.New(apierr.CodeForbidden, "only the owner and admins delete experiment %q", req.Slug)
	}
	if err := s.configs.Remove(ctx, req.Slug); err != nil {
		return uploadapi.Result{}, err
	}
	for _, v := range cur.Versions {
		if err := s.bundles.Delete(ctx, experiments.BundleObject(req.Slug, v.Checksum)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.d.Log.WarnContext(ctx, "delete bundle failed", "slug", req.Slug, "version", v.Version, "err", err)
		}
	}
	// Access ends before the data goes, and a new experiment of the slug
	// starts with no grants.
	if err := s.dropAccessOf(ctx, req.Slug); err != nil {
		return uploadapi.Result{}, err
	}
	if err := s.dropSecretsOf(ctx, req.Slug); err != nil {
		return uploadapi.Result{}, err
	}
	if err := scoped.DeleteAll(ctx, s.d.Store.DB, req.Slug); err != nil {
		return uploadapi.Result{}, err
	}
	// Exports of the dropped data are no longer current.
	if err := scoped.BumpDataSeq(ctx, s.d.Store.DB, req.Slug); err != nil {
		return uploadapi.Result{}, err
	}
	cur.Seq++
	m, _, _ := bundle.ParseManifest([]byte(cur.Manifest))
	if err := s.announce(ctx, cur, events.ExperimentDeleted, "delete", m != nil && m.Actor != nil); err != nil {
		return uploadapi.Result{}, err
	}
	if err := s.audit(ctx, req.Caller, "experiment.delete", req.Slug, map[string]any{"versions": len(cur.Versions)}); err != nil {
		return uploadapi.Result{}, err
	}
	return uploadapi.Result{Experiment: *cur, Warnings: []uploadapi.Warning{}}, nil
}

func (s *Service) audit(ctx context.Context, c uploadapi.Caller, what, target string, details map[string]any) error {
	return s.d.Store.Audit(ctx, store.AuditEntry{Who: c.Email, What: what, Target: target, RequestID: c.RequestID, Details: details})
}
