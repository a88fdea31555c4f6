package upload

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	sc, err := scoped.New(s.d.Store.DB, slug, nil)
	if err != nil {
		for i := range planned {
			planned[i].State = "failed: " + err.Error()
		}
		return planned
	}
	out := make([]experiments.IndexState, len(planned))
	copy(out, planned)
	for i, st := range out {
		if st.State != experiments.IndexBuilding {
			continue
		}
		spec := findSpec(m, st.Collection, st.Name)
		name, err := sc.CollectionName(scoped.Own(st.Collection))
		if err == nil {
			err = s.buildIndex(ctx, s.d.Store.DB.Collection(name), spec)
		}
		if err != nil {
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

func (s *Service) buildIndex(ctx context.Context, c *mongo.Collection, spec bundle.IndexSpec) error {
	if len(spec.Keys) == 0 {
		return fmt.Errorf("no keys")
	}
	keys := bson.D{}
	for _, k := range spec.Keys {
		keys = append(keys, bson.E{Key: k.Field, Value: k.Value()})
	}
	opts := options.Index().SetName(spec.Name)
	if v, ok := spec.Options["unique"].(bool); ok {
		opts.SetUnique(v)
	}
	if v, ok := spec.Options["sparse"].(bool); ok {
		opts.SetSparse(v)
	}
	if v, ok := spec.Options["expireAfterSeconds"].(float64); ok {
		opts.SetExpireAfterSeconds(int32(v))
	}
	if v, ok := spec.Options["partialFilterExpression"].(map[string]any); ok {
		opts.SetPartialFilterExpression(v)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: opts})
	return err
}
