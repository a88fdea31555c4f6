package upload_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// lastUpdate is the last events.experiment.updated on the stream.
func (w *world) lastUpdate() events.Experiment {
	w.t.Helper()
	st, err := w.d.JS.Stream(ctxT(w.t), bus.StreamEvents)
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctxT(w.t), events.ExperimentUpdated)
	if err != nil {
		w.t.Fatal(err)
	}
	var ev events.Experiment
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// Versions are listed newest first to the owner and admins; a rollback
// points the experiment at a kept version, announces it as an upload
// would and is audited; it never makes a new version, and the next upload
// gets the next number. Every refusal changes nothing.
func TestVersionsAndRollback(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)
	v1 := w.upload(ann, "alpha", map[string]any{"name": "Alpha one", "description": "first"})
	v2 := w.upload(ann, "alpha", map[string]any{"name": "Alpha two", "description": "second", "status": "draft"})
	for i := range 3 {
		w.upload(bob, "beta", map[string]any{"description": fmt.Sprint("beta ", i+1)})
	}

	list, err := w.client.Versions(ctx, uploadapi.VersionsQuery{Slug: "alpha", Caller: ann})
	if err != nil {
		t.Fatal(err)
	}
	if list.Current != 2 || list.Keep != experiments.KeepVersions || len(list.Versions) != 2 {
		t.Fatalf("versions: %+v", list)
	}
	top, old := list.Versions[0], list.Versions[1]
	if top.Version != 2 || !top.Current || !top.Available || top.Name != "Alpha two" || top.Description != "second" ||
		top.Checksum != v2.Experiment.Checksum || top.UploadedBy != ann.Email || top.Size <= 0 || top.Files != 2 || top.UploadedAt.IsZero() {
		t.Errorf("newest version: %+v", top)
	}
	if old.Version != 1 || old.Current || !old.Available || old.Name != "Alpha one" || old.Checksum != v1.Experiment.Checksum {
		t.Errorf("first version: %+v", old)
	}
	if _, err := w.client.Versions(ctx, uploadapi.VersionsQuery{Slug: "alpha", Caller: admin}); err != nil {
		t.Errorf("an admin lists: %v", err)
	}

	// Refusals: nothing changes, nothing is announced or audited.
	before := w.lastUpdate()
	for _, c := range []struct {
		name string
		req  uploadapi.Rollback
		code apierr.Code
	}{
		{"version 0", uploadapi.Rollback{Slug: "alpha", Version: 0, Caller: ann}, apierr.CodeValidationFailed},
		{"a negative version", uploadapi.Rollback{Slug: "alpha", Version: -1, Caller: ann}, apierr.CodeValidationFailed},
		{"the smallest int", uploadapi.Rollback{Slug: "alpha", Version: math.MinInt, Caller: ann}, apierr.CodeValidationFailed},
		{"a huge version", uploadapi.Rollback{Slug: "alpha", Version: math.MaxInt, Caller: ann}, apierr.CodeNotFound},
		{"a version only another experiment has", uploadapi.Rollback{Slug: "alpha", Version: 3, Caller: ann}, apierr.CodeNotFound},
		{"another developer", uploadapi.Rollback{Slug: "alpha", Version: 1, Caller: bob}, apierr.CodeForbidden},
		{"the owner of another experiment, naming its version", uploadapi.Rollback{Slug: "beta", Version: 1, Caller: ann}, apierr.CodeForbidden},
		{"no caller", uploadapi.Rollback{Slug: "alpha", Version: 1}, apierr.CodeUnauthenticated},
		{"a message naming the owner with another's token", uploadapi.Rollback{Slug: "alpha", Version: 1,
			Caller: uploadapi.Caller{Email: ann.Email, Roles: ann.Roles, Token: bob.Token}}, apierr.CodeForbidden},
		{"a message claiming admin, its token not", uploadapi.Rollback{Slug: "alpha", Version: 1,
			Caller: uploadapi.Caller{Email: bob.Email, Roles: []string{"admin"}, IsAdmin: true, Token: bob.Token}}, apierr.CodeForbidden},
		{"unknown experiment", uploadapi.Rollback{Slug: "nowhere", Version: 1, Caller: admin}, apierr.CodeNotFound},
		{"a slug that is no slug", uploadapi.Rollback{Slug: "../alpha", Version: 1, Caller: admin}, apierr.CodeNotFound},
	} {
		_, err := w.client.Rollback(ctx, c.req)
		wantCode(t, c.name, err, c.code)
	}
	for _, c := range []struct {
		name   string
		q      uploadapi.VersionsQuery
		code   apierr.Code
		caller uploadapi.Caller
	}{
		{"list, another developer", uploadapi.VersionsQuery{Slug: "alpha", Caller: bob}, apierr.CodeForbidden, bob},
		{"list, unknown", uploadapi.VersionsQuery{Slug: "nowhere", Caller: admin}, apierr.CodeNotFound, admin},
		{"list, no caller", uploadapi.VersionsQuery{Slug: "alpha"}, apierr.CodeUnauthenticated, uploadapi.Caller{}},
	} {
		_, err := w.client.Versions(ctx, c.q)
		wantCode(t, c.name, err, c.code)
	}
	if after := w.lastUpdate(); after.Seq != before.Seq || after.Slug != before.Slug || w.audits("experiment.rollback") != 0 {
		t.Fatalf("refusals announced %+v or audited", after)
	}

	// The rollback.
	res, err := w.client.Rollback(ctx, uploadapi.Rollback{Slug: "alpha", Version: 1, Caller: ann})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Experiment
	if !res.Changed || res.From != 2 || e.Version != 1 || e.Checksum != v1.Experiment.Checksum || e.Name != "Alpha one" ||
		len(e.Versions) != 2 || e.Status != experiments.StatusDraft {
		t.Fatalf("rollback: %+v", res)
	}
	ev := w.lastUpdate()
	if ev.Slug != "alpha" || ev.Reason != "rollback" || ev.Version != 1 || ev.Checksum != v1.Experiment.Checksum || ev.Seq != e.Seq {
		t.Fatalf("rollback's event: %+v", ev)
	}
	if n := w.audits("experiment.rollback"); n != 1 {
		t.Fatalf("%d rollback audit entries, want 1", n)
	}
	list, _ = w.client.Versions(ctx, uploadapi.VersionsQuery{Slug: "alpha", Caller: ann})
	if list.Current != 1 || len(list.Versions) != 2 || list.Versions[0].Current || !list.Versions[1].Current {
		t.Fatalf("versions after the rollback: %+v", list)
	}

	// Already current: a success that changes nothing.
	res, err = w.client.Rollback(ctx, uploadapi.Rollback{Slug: "alpha", Version: 1, Caller: admin})
	if err != nil || res.Changed || res.From != 1 || res.Experiment.Seq != e.Seq {
		t.Fatalf("rollback to the current version: %+v %v", res, err)
	}
	if w.lastUpdate().Seq != e.Seq || w.audits("experiment.rollback") != 1 {
		t.Fatal("a rollback to the current version was announced or audited")
	}

	// The next upload is version 3, not a second version 2.
	if r := w.upload(ann, "alpha", nil); r.Experiment.Version != 3 {
		t.Fatalf("upload after a rollback: version %d, want 3", r.Experiment.Version)
	}

	// A bundle that is gone: listed as unavailable, refused with 410, by
	// the rollback and by PATCH alike.
	bundles, err := w.d.JS.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundles.Delete(ctx, experiments.BundleObject("alpha", v2.Experiment.Checksum)); err != nil {
		t.Fatal(err)
	}
	list, _ = w.client.Versions(ctx, uploadapi.VersionsQuery{Slug: "alpha", Caller: ann})
	if len(list.Versions) != 3 || list.Versions[1].Version != 2 || list.Versions[1].Available || !list.Versions[0].Available || !list.Versions[2].Available {
		t.Fatalf("versions with a bundle gone: %+v", list)
	}
	_, err = w.client.Rollback(ctx, uploadapi.Rollback{Slug: "alpha", Version: 2, Caller: ann})
	wantCode(t, "rollback to a version whose bundle is gone", err, apierr.CodeGone)
	two := 2
	_, err = w.client.Update(ctx, uploadapi.Update{Slug: "alpha", Version: &two, Caller: ann})
	wantCode(t, "PATCH to a version whose bundle is gone", err, apierr.CodeGone)
	if cur, _ := w.d.Store.Experiments().Get(ctx, "alpha"); cur.Version != 3 {
		t.Fatalf("after refused rollbacks the current version is %d, want 3", cur.Version)
	}

	// Evicted versions are unknown.
	for i := range experiments.KeepVersions {
		w.upload(ann, "alpha", map[string]any{"description": fmt.Sprint("later ", i)})
	}
	_, err = w.client.Rollback(ctx, uploadapi.Rollback{Slug: "alpha", Version: 1, Caller: ann})
	wantCode(t, "rollback to an evicted version", err, apierr.CodeNotFound)
}
