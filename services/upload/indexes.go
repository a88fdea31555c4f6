package upload

import (
	"context"
	"sort"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// unsupportedOnEmbedded are the index types the embedded store (FerretDB
// 1.24 on SQLite) cannot build; search types need MongoDB Atlas Search,
// which no store here has.
var (
	unsupportedOnEmbedded = map[string]bool{"ttl": true, "partial": true, "text": true, "geospatial": true}
	searchTypes           = map[string]bool{"vectorSearch": true, "search": true, "hybrid": true}
)

// plannedIndexes lists the manifest's indexes with the state they start in:
// building, or unsupported on this store.
func plannedIndexes(m *bundle.Manifest, embedded bool) []experiments.IndexState {
	colls := make([]string, 0, len(m.ManagedIndexes))
	for c := range m.ManagedIndexes {
		colls = append(colls, c)
	}
	sort.Strings(colls)
	out := []experiments.IndexState{}
	for _, c := range colls {
		for _, spec := range m.ManagedIndexes[c] {
			typ := spec.Type
			if typ == "" {
				typ = "regular"
			}
			st := experiments.IndexState{Collection: c, Name: spec.Name, Type: typ, State: experiments.IndexBuilding}
			if searchTypes[typ] || embedded && unsupportedOnEmbedded[typ] {
				st.State = experiments.IndexUnsupported
			}
			out = append(out, st)
		}
	}
	return out
}

// applyIndexes builds the planned indexes on the experiment's collections
// and returns their states. A failure marks its index failed; it never
// fails the upload.
func (s *Service) applyIndexes(ctx context.Context, slug string, m *bundle.Manifest, planned []experiments.IndexState) []experiments.IndexState {
	out := make([]experiments.IndexState, len(planned))
	copy(out, planned)
	for i, st := range out {
		if st.State != experiments.IndexBuilding {
			continue
		}
		// The collection is always one of the experiment's own: a manifest
		// names base names, which scoped maps under its slug alone.
		if err := scoped.CreateIndex(ctx, s.d.Store.DB, slug, st.Collection, findSpec(m, st.Collection, st.Name)); err != nil {
			out[i].State = "failed: " + err.Error()
			continue
		}
		out[i].State = experiments.IndexReady
	}
	return out
}

func findSpec(m *bundle.Manifest, coll, name string) bundle.IndexSpec {
	for _, sp := range m.ManagedIndexes[coll] {
		if sp.Name == name {
			return sp
		}
	}
	return bundle.IndexSpec{}
}
