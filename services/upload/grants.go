package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Data grants. A slug in an experiment's data_scope that belongs to another
// owner is read only once that owner (or an admin) grants it. The grants are
// records in data_grants (who granted which data to which experiment, and
// when); the data_grants bucket holds a key reader.data exactly while the
// reader may read the data: for each grant, and for each data_scope slug of
// the reader's own owner. Actorworkers watch the bucket and ask it on every
// read, so a change reaches running actors within a second.
//
// The records are the truth; the bucket follows them. A grant is recorded
// before its key is put, and a revocation deletes the key before the
// record, so that a failure half-way leaves less access, never more, and a
// retry of the same request finishes the work. At start the bucket is
// brought in line with the records and the manifests (syncAllAccess).

// grantRecords is what grants need of their records; store.Grants is the
// MongoDB one.
type grantRecords interface {
	Add(ctx context.Context, g uploadapi.Grant) (uploadapi.Grant, bool, error)
	Get(ctx context.Context, data, reader string) (*uploadapi.Grant, error)
	Remove(ctx context.Context, data, reader string) (bool, error)
	From(ctx context.Context, slug string) ([]uploadapi.Grant, error)
	To(ctx context.Context, slug string) ([]uploadapi.Grant, error)
	All(ctx context.Context) ([]uploadapi.Grant, error)
	RemoveOf(ctx context.Context, slug string) ([]uploadapi.Grant, error)
}

// experimentLister lists every experiment, for what no single record
// tells: which manifests name a slug.
type experimentLister interface {
	List(ctx context.Context, status string) ([]experiments.Config, error)
}

// otherSlugs are the slugs of other experiments that m's data_scope names,
// in order, each once.
func otherSlugs(m *bundle.Manifest) []string {
	var out []string
	for _, e := range m.DataScope {
		if e == scoped.Self || e == scoped.Shared || e == m.Slug || slices.Contains(out, e) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func manifestOf(cfg *experiments.Config) *bundle.Manifest {
	m, _, err := bundle.ParseManifest([]byte(cfg.Manifest))
	if err != nil {
		return nil
	}
	return m
}

func sameOwner(a, b *experiments.Config) bool {
	return a != nil && b != nil && a.OwnerEmail != "" && strings.EqualFold(a.OwnerEmail, b.OwnerEmail)
}

// scopeStates tells, for each other slug reader's data_scope names,
// whether its reads are granted.
func (s *Service) scopeStates(ctx context.Context, reader *experiments.Config, m *bundle.Manifest) ([]uploadapi.ScopeEntry, error) {
	out := []uploadapi.ScopeEntry{}
	for _, slug := range otherSlugs(m) {
		data, err := s.configs.Get(ctx, slug)
		if err != nil {
			return nil, err
		}
		state := uploadapi.ScopeMissing
		switch {
		case data == nil:
			state = uploadapi.ScopeUnknown
		case sameOwner(reader, data):
			state = uploadapi.ScopeOwner
		default:
			g, err := s.grants.Get(ctx, slug, reader.Slug)
			if err != nil {
				return nil, err
			}
			if g != nil {
				state = uploadapi.ScopeGranted
			}
		}
		out = append(out, uploadapi.ScopeEntry{Slug: slug, State: state})
	}
	return out, nil
}

// scopeWarnings name the data_scope slugs whose reads are refused until
// their owners grant them.
func scopeWarnings(m *bundle.Manifest, states []uploadapi.ScopeEntry) []uploadapi.Warning {
	var out []uploadapi.Warning
	for _, st := range states {
		i := slices.Index(m.DataScope, st.Slug)
		field := fmt.Sprintf("/data_scope/%d", i)
		switch st.State {
		case uploadapi.ScopeMissing:
			out = append(out, uploadapi.Warning{Field: field, Message: fmt.Sprintf(
				"missing grant: %q belongs to another owner, who has not granted its data to %q; reads of it are refused until they do (POST /api/experiments/%s/grants)", st.Slug, m.Slug, st.Slug)})
		case uploadapi.ScopeUnknown:
			out = append(out, uploadapi.Warning{Field: field, Message: fmt.Sprintf(
				"missing grant: there is no experiment %q; reads of it are refused until it exists and its owner grants them", st.Slug)})
		}
	}
	return out
}

// listGrants answers the grants around one experiment, to its owner and
// admins.
func (s *Service) listGrants(ctx context.Context, req uploadapi.GrantsQuery) (uploadapi.Grants, error) {
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "see the grants of")
	if err != nil {
		return uploadapi.Grants{}, err
	}
	out := uploadapi.Grants{Slug: cfg.Slug, Requested: []uploadapi.ScopeEntry{}, RequestedBy: []string{}}
	if out.Granted, err = s.grants.From(ctx, cfg.Slug); err != nil {
		return uploadapi.Grants{}, err
	}
	if out.Received, err = s.grants.To(ctx, cfg.Slug); err != nil {
		return uploadapi.Grants{}, err
	}
	if m := manifestOf(cfg); m != nil {
		if out.Requested, err = s.scopeStates(ctx, cfg, m); err != nil {
			return uploadapi.Grants{}, err
		}
	}
	all, err := s.lister.List(ctx, "")
	if err != nil {
		return uploadapi.Grants{}, err
	}
	for i := range all {
		other := &all[i]
		m := manifestOf(other)
		if other.Slug == cfg.Slug || m == nil || sameOwner(cfg, other) || !slices.Contains(otherSlugs(m), cfg.Slug) ||
			slices.ContainsFunc(out.Granted, func(g uploadapi.Grant) bool { return g.To == other.Slug }) {
			continue
		}
		out.RequestedBy = append(out.RequestedBy, other.Slug)
	}
	slices.Sort(out.RequestedBy)
	return out, nil
}

// grant lets experiment req.To read the data of req.Slug. Granting again
// what is granted changes nothing and answers the grant as it was.
func (s *Service) grant(ctx context.Context, req uploadapi.GrantRequest) (uploadapi.GrantResult, error) {
	if req.To == "" {
		return uploadapi.GrantResult{}, apierr.New(apierr.CodeValidationFailed, "to is required: the slug of the experiment that may read this one's data").OnField("/to")
	}
	if !slugSyntax(req.To) {
		return uploadapi.GrantResult{}, apierr.New(apierr.CodeValidationFailed, "to %q is not an experiment slug (1 to 64 of a-z, 0-9, '_', '-')", req.To).OnField("/to")
	}
	data, err := s.managed(ctx, req.Slug, req.Caller, "grant the data of")
	if err != nil {
		return uploadapi.GrantResult{}, err
	}
	if req.To == data.Slug {
		return uploadapi.GrantResult{}, apierr.New(apierr.CodeBadRequest, "an experiment reads its own data without a grant").OnField("/to")
	}
	reader, err := s.configs.Get(ctx, req.To)
	if err != nil {
		return uploadapi.GrantResult{}, err
	}
	if reader == nil {
		return uploadapi.GrantResult{}, apierr.New(apierr.CodeNotFound, "no experiment %q to grant to", req.To).OnField("/to")
	}
	if sameOwner(data, reader) {
		return uploadapi.GrantResult{}, apierr.New(apierr.CodeBadRequest, "%q and %q have one owner: the data is granted without a record", data.Slug, reader.Slug).OnField("/to")
	}
	g, created, err := s.grants.Add(ctx, uploadapi.Grant{
		From: data.Slug, To: reader.Slug, GrantedBy: req.Caller.Email, GrantedAt: time.Now().UTC().Truncate(time.Millisecond),
	})
	if err != nil {
		return uploadapi.GrantResult{}, err
	}
	if err := s.putAccess(ctx, uploadapi.Access{Reader: g.To, Data: g.From, Kind: uploadapi.ScopeGranted, GrantedBy: g.GrantedBy, GrantedAt: g.GrantedAt}); err != nil {
		return uploadapi.GrantResult{}, apierr.Wrap(apierr.CodeUnavailable, err, "the grant is recorded but not yet active; send it again")
	}
	if created {
		if err := s.audit(ctx, req.Caller, "experiment.grant", data.Slug, map[string]any{"to": reader.Slug}); err != nil {
			return uploadapi.GrantResult{}, err
		}
		s.d.Log.InfoContext(ctx, "data granted", "data", data.Slug, "reader", reader.Slug, "by", req.Caller.Email)
	}
	return uploadapi.GrantResult{Grant: g, Created: created}, nil
}

// revoke ends the grant of req.Slug's data to req.Reader.
func (s *Service) revoke(ctx context.Context, req uploadapi.RevokeRequest) (uploadapi.Grant, error) {
	data, err := s.managed(ctx, req.Slug, req.Caller, "revoke the grants of")
	if err != nil {
		return uploadapi.Grant{}, err
	}
	if !slugSyntax(req.Reader) {
		return uploadapi.Grant{}, apierr.New(apierr.CodeNotFound, "%q has no grant of its data to %q", data.Slug, req.Reader)
	}
	g, err := s.grants.Get(ctx, data.Slug, req.Reader)
	if err != nil {
		return uploadapi.Grant{}, err
	}
	if g == nil {
		return uploadapi.Grant{}, apierr.New(apierr.CodeNotFound, "%q has no grant of its data to %q", data.Slug, req.Reader)
	}
	// Whatever the key holds: the grant ends.
	if err := s.deleteAccess(ctx, req.Reader, data.Slug, 0); err != nil {
		return uploadapi.Grant{}, apierr.Wrap(apierr.CodeUnavailable, err, "the grant could not be ended; try again")
	}
	if _, err := s.grants.Remove(ctx, data.Slug, req.Reader); err != nil {
		return uploadapi.Grant{}, err
	}
	if err := s.audit(ctx, req.Caller, "experiment.revoke", data.Slug, map[string]any{"to": req.Reader}); err != nil {
		return uploadapi.Grant{}, err
	}
	s.d.Log.InfoContext(ctx, "data grant revoked", "data", data.Slug, "reader", req.Reader, "by", req.Caller.Email)
	return *g, nil
}

// managed is the experiment slug when the caller may manage it: 404 when
// there is none, 403 when the caller is neither its owner nor an admin.
func (s *Service) managed(ctx context.Context, slug string, c uploadapi.Caller, what string) (*experiments.Config, error) {
	if !slugSyntax(slug) {
		return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
	}
	cfg, err := s.configs.Get(ctx, slug)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
	}
	if !mayManage(cfg, c) {
		return nil, apierr.New(apierr.CodeForbidden, "only the owner of %q and admins %s it", slug, what)
	}
	return cfg, nil
}

func slugSyntax(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (s *Service) putAccess(ctx context.Context, a uploadapi.Access) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode access: %w", err)
	}
	if _, err := s.access.Put(ctx, uploadapi.AccessKey(a.Reader, a.Data), v); err != nil {
		return fmt.Errorf("activate access of %s to %s: %w", a.Reader, a.Data, err)
	}
	return nil
}

// deleteAccess ends an access as it was read, at revision rev (0: as it
// is): a key put since (a grant made meanwhile by another request or
// instance) is newer than what the caller decided on, and stays.
func (s *Service) deleteAccess(ctx context.Context, reader, data string, rev uint64) error {
	err := s.access.Delete(ctx, uploadapi.AccessKey(reader, data), jetstream.LastRevision(rev))
	switch {
	case err == nil, errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case isWrongRevision(err):
		s.d.Log.InfoContext(ctx, "access changed meanwhile; kept", "reader", reader, "data", data)
		return nil
	}
	return fmt.Errorf("end access of %s to %s: %w", reader, data, err)
}

// accessEntry is what a key of the bucket held when read, and its revision.
type accessEntry struct {
	uploadapi.Access
	rev uint64
}

// accessEntries are the keys of the bucket that match filters (subject
// wildcards: "beta.*" are beta's reads, "*.alpha" the reads of alpha; none
// is every key), what each holds and its revision, read through the
// bucket's leader.
func (s *Service) accessEntries(ctx context.Context, filters ...string) (map[string]accessEntry, error) {
	out := map[string]accessEntry{}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	lister, err := s.access.ListKeysFiltered(ctx, filters...)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list access: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		e, err := bus.KVGet(ctx, s.d.JS, s.access, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read access %s: %w", k, err)
		}
		var a uploadapi.Access
		if json.Unmarshal(e.Value(), &a) != nil {
			a = uploadapi.Access{}
		}
		out[k] = accessEntry{a, e.Revision()}
	}
	if s.afterAccessList != nil {
		s.afterAccessList()
	}
	return out, nil
}

// ownerAccess are the accesses reader has because its owner also owns the
// experiments its data_scope names.
func (s *Service) ownerAccess(ctx context.Context, reader *experiments.Config) ([]uploadapi.Access, error) {
	m := manifestOf(reader)
	if m == nil {
		return nil, nil
	}
	var out []uploadapi.Access
	for _, slug := range otherSlugs(m) {
		data, err := s.configs.Get(ctx, slug)
		if err != nil {
			return nil, err
		}
		if sameOwner(reader, data) {
			out = append(out, uploadapi.Access{Reader: reader.Slug, Data: slug, Kind: uploadapi.ScopeOwner})
		}
	}
	return out, nil
}

// syncReader brings the owner accesses of reader in line with its current
// manifest: after an upload or a change. Granted accesses are left alone:
// they follow the records.
func (s *Service) syncReader(ctx context.Context, reader *experiments.Config) error {
	want, err := s.ownerAccess(ctx, reader)
	if err != nil {
		return err
	}
	for _, a := range want {
		if err := s.putAccess(ctx, a); err != nil {
			return err
		}
	}
	have, err := s.accessEntries(ctx, reader.Slug+".*")
	if err != nil {
		return err
	}
	for k, a := range have {
		if a.Kind != uploadapi.ScopeOwner {
			continue
		}
		if !slices.ContainsFunc(want, func(w uploadapi.Access) bool { return uploadapi.AccessKey(w.Reader, w.Data) == k }) {
			if err := s.deleteAccess(ctx, reader.Slug, strings.TrimPrefix(k, reader.Slug+"."), a.rev); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncNewData gives the experiments of created's owner that already name
// it in their data_scope their owner access: a slug may be named before
// it exists.
func (s *Service) syncNewData(ctx context.Context, created *experiments.Config) error {
	all, err := s.lister.List(ctx, "")
	if err != nil {
		return err
	}
	for i := range all {
		r := &all[i]
		if r.Slug == created.Slug || !sameOwner(r, created) {
			continue
		}
		if m := manifestOf(r); m != nil && slices.Contains(otherSlugs(m), created.Slug) {
			if err := s.putAccess(ctx, uploadapi.Access{Reader: r.Slug, Data: created.Slug, Kind: uploadapi.ScopeOwner}); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropAccessOf ends every access from and to a deleted experiment, and
// its grant records: a new experiment of the slug starts with none.
func (s *Service) dropAccessOf(ctx context.Context, slug string) error {
	have, err := s.accessEntries(ctx, slug+".*", "*."+slug)
	if err != nil {
		return err
	}
	for k, a := range have {
		reader, data, _ := strings.Cut(k, ".")
		if reader == slug || data == slug {
			if err := s.deleteAccess(ctx, reader, data, a.rev); err != nil {
				return err
			}
		}
	}
	gone, err := s.grants.RemoveOf(ctx, slug)
	if err != nil {
		return err
	}
	if len(gone) > 0 {
		s.d.Log.InfoContext(ctx, "grants of a deleted experiment removed", "slug", slug, "grants", len(gone))
	}
	return nil
}

// syncAllAccess makes the bucket hold exactly the accesses the records and
// manifests give, at start: after an outage between a record and its key,
// or on a first start with grants. A key is deleted only when a second look
// at the records still finds no reason for it, so that a grant made by
// another instance meanwhile is not undone.
func (s *Service) syncAllAccess(ctx context.Context) error {
	want := map[string]uploadapi.Access{}
	grants, err := s.grants.All(ctx)
	if err != nil {
		return err
	}
	for _, g := range grants {
		want[uploadapi.AccessKey(g.To, g.From)] = uploadapi.Access{Reader: g.To, Data: g.From, Kind: uploadapi.ScopeGranted, GrantedBy: g.GrantedBy, GrantedAt: g.GrantedAt}
	}
	all, err := s.lister.List(ctx, "")
	if err != nil {
		return err
	}
	for i := range all {
		owned, err := s.ownerAccess(ctx, &all[i])
		if err != nil {
			return err
		}
		for _, a := range owned {
			want[uploadapi.AccessKey(a.Reader, a.Data)] = a
		}
	}
	have, err := s.accessEntries(ctx)
	if err != nil {
		return err
	}
	for k, a := range want {
		if cur, ok := have[k]; !ok || cur.Kind != a.Kind {
			if err := s.putAccess(ctx, a); err != nil {
				return err
			}
		}
	}
	for k, a := range have {
		if _, ok := want[k]; ok {
			continue
		}
		reader, data, _ := strings.Cut(k, ".")
		if still, err := s.stillGiven(ctx, reader, data); err != nil || still {
			continue
		}
		if err := s.deleteAccess(ctx, reader, data, a.rev); err != nil {
			return err
		}
		s.d.Log.InfoContext(ctx, "access without a grant ended", "reader", reader, "data", data)
	}
	return nil
}

// stillGiven looks again at whether reader may read data.
func (s *Service) stillGiven(ctx context.Context, reader, data string) (bool, error) {
	g, err := s.grants.Get(ctx, data, reader)
	if err != nil || g != nil {
		return true, err
	}
	r, err := s.configs.Get(ctx, reader)
	if err != nil || r == nil {
		return false, err
	}
	d, err := s.configs.Get(ctx, data)
	if err != nil || d == nil {
		return false, err
	}
	m := manifestOf(r)
	return m != nil && sameOwner(r, d) && slices.Contains(otherSlugs(m), data), nil
}

// provisionGrants opens the bucket, moves data of the old collection
// naming, and brings the bucket in line with the records.
func (s *Service) provisionGrants(ctx context.Context) error {
	if err := s.d.Topology.EnsureBuckets(ctx, bus.BucketDataGrants); err != nil {
		return err
	}
	var err error
	if s.access, err = s.d.Topology.Bucket(ctx, bus.BucketDataGrants); err != nil {
		return fmt.Errorf("open bucket %s: %w", bus.BucketDataGrants, err)
	}
	return s.syncAllAccess(ctx)
}

// afterChange brings the accesses in line with a stored version or change
// of cfg (created: its first version) and names the data_scope slugs whose
// reads wait for a grant. The change is stored whatever happens here, so a
// failure becomes a warning, not an error; the next start repairs it.
func (s *Service) afterChange(ctx context.Context, cfg *experiments.Config, m *bundle.Manifest, created bool) []uploadapi.Warning {
	if m == nil {
		return nil
	}
	err := s.syncReader(ctx, cfg)
	if err == nil && created {
		err = s.syncNewData(ctx, cfg)
	}
	var out []uploadapi.Warning
	if err != nil {
		s.d.Log.ErrorContext(ctx, "activating the data scope failed", "slug", cfg.Slug, "err", err)
		out = append(out, uploadapi.Warning{Field: "/data_scope", Message: "the data scope could not be activated right now; reads of other experiments may be refused until the platform restarts or the experiment is uploaded again"})
	}
	states, err := s.scopeStates(ctx, cfg, m)
	if err != nil {
		s.d.Log.ErrorContext(ctx, "reading the grants failed", "slug", cfg.Slug, "err", err)
		return append(out, uploadapi.Warning{Field: "/data_scope", Message: "the grants of the data scope could not be read; see GET /api/experiments/" + cfg.Slug + "/grants"})
	}
	return append(out, scopeWarnings(m, states)...)
}
