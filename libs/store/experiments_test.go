package store_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// experimentsRepo is the repository over a fresh store, with the core
// indexes of experiments_config in place as at a service's start.
func experimentsRepo(t *testing.T) store.Experiments {
	t.Helper()
	env := testenv.Start(t)
	s := open(t, env, prometheus.NewRegistry(), "gnome_test")
	if err := s.EnsureIndexes(ctx(t), store.ExperimentsConfig); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	return s.Experiments()
}

// create makes an experiment through Change and fails the test otherwise.
func create(t *testing.T, r store.Experiments, slug string, cfg experiments.Config) *experiments.Config {
	t.Helper()
	next, prev, err := r.Change(ctx(t), slug, func(cur *experiments.Config) (*experiments.Config, error) {
		if cur != nil {
			t.Errorf("creating %s: fn got an existing experiment %+v", slug, cur)
		}
		c := cfg
		return &c, nil
	})
	if err != nil || next == nil || prev != nil {
		t.Fatalf("create %s: next %v, prev %v, err %v", slug, next, prev, err)
	}
	return next
}

func get(t *testing.T, r store.Experiments, slug string) *experiments.Config {
	t.Helper()
	cfg, err := r.Get(ctx(t), slug)
	if err != nil {
		t.Fatalf("Get %s: %v", slug, err)
	}
	return cfg
}

func TestExperimentsGetOfAMissingSlugIsNil(t *testing.T) {
	r := experimentsRepo(t)
	cfg, err := r.Get(ctx(t), "nothing-here")
	if cfg != nil || err != nil {
		t.Errorf("Get of a missing slug = %+v, %v; want nil, nil", cfg, err)
	}
}

func TestExperimentsChangeCreatesThenChanges(t *testing.T) {
	r := experimentsRepo(t)
	before := time.Now().Add(-time.Second)
	v1 := experiments.Version{Version: 1, Checksum: "c1", Size: 10, Files: 2, UploadedBy: "a@example.org"}
	created := create(t, r, "demo", experiments.Config{
		Slug: "ignored", Name: "Demo", OwnerEmail: "a@example.org", Status: experiments.StatusDraft,
		Version: 1, Checksum: "c1", Versions: []experiments.Version{v1},
	})
	if created.Seq != 1 {
		t.Errorf("a new experiment has Seq %d, want 1", created.Seq)
	}
	if created.Slug != "demo" || created.SlugField != "demo" {
		t.Errorf("slug %q, slug field %q; want both demo whatever fn set", created.Slug, created.SlugField)
	}
	if created.CreatedAt.IsZero() || created.CreatedAt.Before(before) || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("created at %v, updated at %v; want both the creation time", created.CreatedAt, created.UpdatedAt)
	}
	stored := get(t, r, "demo")
	if stored == nil {
		t.Fatal("the created experiment is not stored")
	}
	if stored.Seq != 1 || stored.SlugField != "demo" || stored.Name != "Demo" || stored.Status != experiments.StatusDraft ||
		!stored.CreatedAt.Equal(created.CreatedAt) || len(stored.Versions) != 1 || stored.Versions[0].Checksum != "c1" {
		t.Errorf("stored %+v, want what Change returned %+v", stored, created)
	}

	next, prev, err := r.Change(ctx(t), "demo", func(cur *experiments.Config) (*experiments.Config, error) {
		if cur == nil || cur.Seq != 1 {
			t.Fatalf("fn got %+v, want the stored experiment", cur)
		}
		// Changing the current document in place, versions included, must
		// not change what Change reports as the previous one.
		cur.Name = "Demo 2"
		cur.Status = experiments.StatusActive
		cur.Versions[0].Checksum = "rewritten"
		cur.Versions = append(cur.Versions, experiments.Version{Version: 2, Checksum: "c2"})
		cur.Version, cur.Checksum = 2, "c2"
		return cur, nil
	})
	if err != nil {
		t.Fatalf("Change: %v", err)
	}
	if next.Seq != 2 || next.Name != "Demo 2" || next.Version != 2 {
		t.Errorf("next %+v, want Seq 2 with the change", next)
	}
	if next.UpdatedAt.Before(created.UpdatedAt) || !next.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("next created %v updated %v; want the creation time kept and a later update", next.CreatedAt, next.UpdatedAt)
	}
	if prev == nil || prev.Seq != 1 || prev.Name != "Demo" || prev.Status != experiments.StatusDraft {
		t.Fatalf("prev %+v, want the experiment as it was", prev)
	}
	if len(prev.Versions) != 1 || prev.Versions[0].Checksum != "c1" {
		t.Errorf("prev versions %+v, want the one version as it was", prev.Versions)
	}
	stored = get(t, r, "demo")
	if stored.Seq != 2 || stored.Name != "Demo 2" || len(stored.Versions) != 2 || stored.Versions[1].Checksum != "c2" {
		t.Errorf("stored %+v, want the changed experiment", stored)
	}
}

func TestExperimentsChangeThatDeclinesChangesNothing(t *testing.T) {
	r := experimentsRepo(t)
	created := create(t, r, "keep", experiments.Config{Name: "Keep", Status: experiments.StatusActive})

	next, prev, err := r.Change(ctx(t), "keep", func(cur *experiments.Config) (*experiments.Config, error) {
		cur.Name = "changed but not returned"
		return nil, nil
	})
	if err != nil || next != nil {
		t.Errorf("declined change: next %+v, err %v; want nil, nil", next, err)
	}
	if prev == nil || prev.Seq != 1 || prev.Name != "Keep" {
		t.Errorf("declined change: prev %+v, want the unchanged experiment", prev)
	}

	// A missing experiment that fn declines to create stays missing.
	next, prev, err = r.Change(ctx(t), "absent", func(cur *experiments.Config) (*experiments.Config, error) {
		if cur != nil {
			t.Errorf("fn got %+v for a missing slug", cur)
		}
		return nil, nil
	})
	if next != nil || prev != nil || err != nil {
		t.Errorf("declined creation: %+v, %+v, %v", next, prev, err)
	}
	if cfg := get(t, r, "absent"); cfg != nil {
		t.Errorf("a declined creation stored %+v", cfg)
	}

	boom := errors.New("boom")
	_, _, err = r.Change(ctx(t), "keep", func(cur *experiments.Config) (*experiments.Config, error) {
		cur.Name = "changed then failed"
		return cur, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Change = %v, want fn's error", err)
	}
	stored := get(t, r, "keep")
	if stored.Seq != 1 || stored.Name != "Keep" || !stored.UpdatedAt.Equal(created.UpdatedAt) {
		t.Errorf("stored %+v after a declined and a failed change, want it unchanged", stored)
	}
}

// concurrentIncrements runs n Changes at once, each adding one to Version
// (creating the experiment at Version 1 when it is missing), and returns
// how many succeeded; a failure must be a conflict.
func concurrentIncrements(t *testing.T, r store.Experiments, slug string, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	var seqs []int64
	c := ctx(t)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, prev, err := r.Change(c, slug, func(cur *experiments.Config) (*experiments.Config, error) {
				if cur == nil {
					return &experiments.Config{Name: "Counter", Status: experiments.StatusActive, Version: 1}, nil
				}
				cur.Version++
				return cur, nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ae := apierr.From(err); ae.Code != apierr.CodeConflict {
					t.Errorf("a concurrent Change failed with %v, want a conflict", err)
				}
				return
			}
			ok++
			seqs = append(seqs, next.Seq)
			// Each write replaced exactly the version it read.
			if prev != nil && prev.Seq != next.Seq-1 {
				t.Errorf("next Seq %d replaced Seq %d", next.Seq, prev.Seq)
			}
			if prev == nil && next.Seq != 1 {
				t.Errorf("a creation got Seq %d", next.Seq)
			}
			if prev != nil && next.Version != prev.Version+1 {
				t.Errorf("next Version %d after Version %d", next.Version, prev.Version)
			}
		}()
	}
	wg.Wait()
	slices.Sort(seqs)
	if len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Errorf("two successful Changes wrote the same Seq: %v", seqs)
	}
	return ok
}

// The embedded store applies a filtered replace as a read and a separate
// write, so concurrent replaces filtered on one seq can all match: this
// test fails there unless the repository serialises its writes of a
// document itself.
func TestExperimentsConcurrentChangesEachLandOnce(t *testing.T) {
	r := experimentsRepo(t)
	const n = 8

	t.Run("existing", func(t *testing.T) {
		create(t, r, "counter", experiments.Config{Name: "Counter", Status: experiments.StatusActive})
		ok := concurrentIncrements(t, r, "counter", n)
		if ok == 0 {
			t.Fatal("no concurrent Change succeeded")
		}
		stored := get(t, r, "counter")
		if stored.Version != ok || stored.Seq != int64(1+ok) {
			t.Errorf("Version %d, Seq %d after %d successful increments; want Version %d, Seq %d",
				stored.Version, stored.Seq, ok, ok, 1+ok)
		}
		t.Logf("%d of %d concurrent changes succeeded", ok, n)
	})

	t.Run("missing", func(t *testing.T) {
		// All race to create it: one creates, the others change what it
		// created (or give up with a conflict).
		ok := concurrentIncrements(t, r, "fresh", n)
		if ok == 0 {
			t.Fatal("no concurrent Change succeeded")
		}
		stored := get(t, r, "fresh")
		if stored.Version != ok || stored.Seq != int64(ok) {
			t.Errorf("Version %d, Seq %d after %d successful changes; want both %d", stored.Version, stored.Seq, ok, ok)
		}
		t.Logf("%d of %d concurrent changes succeeded", ok, n)
	})
}

// A change made between Change's read and its write (here by fn itself,
// so that the interleaving is certain) makes the write miss: Change
// decides again on the newer document.
func TestExperimentsChangeRetriesWhenChangedMeanwhile(t *testing.T) {
	r := experimentsRepo(t)
	create(t, r, "busy", experiments.Config{Name: "Busy", Status: experiments.StatusActive})
	var seenSeqs []int64
	next, prev, err := r.Change(ctx(t), "busy", func(cur *experiments.Config) (*experiments.Config, error) {
		seenSeqs = append(seenSeqs, cur.Seq)
		if len(seenSeqs) == 1 {
			if _, _, err := r.Change(ctx(t), "busy", func(c *experiments.Config) (*experiments.Config, error) {
				c.Name = "changed meanwhile"
				return c, nil
			}); err != nil {
				t.Fatalf("inner Change: %v", err)
			}
		}
		cur.Version++
		return cur, nil
	})
	if err != nil {
		t.Fatalf("Change: %v", err)
	}
	if !slices.Equal(seenSeqs, []int64{1, 2}) {
		t.Errorf("fn saw Seqs %v, want 1 then the newer 2", seenSeqs)
	}
	if next.Seq != 3 || next.Version != 1 || next.Name != "changed meanwhile" || prev == nil || prev.Seq != 2 {
		t.Errorf("next %+v, prev %+v; want Seq 3 over Seq 2, keeping the change made meanwhile", next, prev)
	}
	if stored := get(t, r, "busy"); stored.Seq != 3 || stored.Version != 1 || stored.Name != "changed meanwhile" {
		t.Errorf("stored %+v", stored)
	}
}

func TestExperimentsChangeGivesUpWithAConflict(t *testing.T) {
	r := experimentsRepo(t)
	create(t, r, "contested", experiments.Config{Name: "Contested", Status: experiments.StatusActive})
	calls := 0
	_, _, err := r.Change(ctx(t), "contested", func(cur *experiments.Config) (*experiments.Config, error) {
		calls++
		// Someone else always gets in first.
		if _, _, err := r.Change(ctx(t), "contested", func(c *experiments.Config) (*experiments.Config, error) {
			c.Version++
			return c, nil
		}); err != nil {
			t.Fatalf("inner Change: %v", err)
		}
		cur.Name = "never written"
		return cur, nil
	})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodeConflict {
		t.Fatalf("Change = %v, want an apierr conflict", err)
	}
	stored := get(t, r, "contested")
	if stored.Name != "Contested" || int64(stored.Version) != stored.Seq-1 || stored.Version != calls {
		t.Errorf("stored %+v after %d attempts; want only the %d competing changes", stored, calls, calls)
	}
	if calls < 2 {
		t.Errorf("fn called %d times, want retries", calls)
	}
}

func TestExperimentsChangeRetriesWhenCreatedMeanwhile(t *testing.T) {
	r := experimentsRepo(t)
	var seen []*experiments.Config
	next, prev, err := r.Change(ctx(t), "racy", func(cur *experiments.Config) (*experiments.Config, error) {
		seen = append(seen, cur)
		if cur == nil {
			create(t, r, "racy", experiments.Config{Name: "First", Status: experiments.StatusDraft, Version: 1})
			return &experiments.Config{Name: "Second", Status: experiments.StatusDraft, Version: 1}, nil
		}
		cur.Version++
		return cur, nil
	})
	if err != nil {
		t.Fatalf("Change: %v", err)
	}
	if len(seen) != 2 || seen[0] != nil || seen[1] == nil || seen[1].Name != "First" {
		t.Fatalf("fn saw %+v, want nothing, then the experiment created meanwhile", seen)
	}
	if next.Seq != 2 || next.Version != 2 || next.Name != "First" || prev == nil || prev.Seq != 1 {
		t.Errorf("next %+v, prev %+v; want a change of the experiment created meanwhile", next, prev)
	}
}

func TestExperimentsSetIndexesOnlyAtTheCurrentSeq(t *testing.T) {
	r := experimentsRepo(t)
	create(t, r, "ix", experiments.Config{Name: "Indexed", Status: experiments.StatusActive})
	states := []experiments.IndexState{
		{Collection: "trials", Name: "by_user", Type: "single", State: experiments.IndexReady},
		{Collection: "trials", Name: "geo", Type: "2dsphere", State: experiments.IndexUnsupported},
	}
	got, err := r.SetIndexes(ctx(t), "ix", 1, states)
	if err != nil || got == nil {
		t.Fatalf("SetIndexes at the current seq: %+v, %v", got, err)
	}
	if !slices.Equal(got.Indexes, states) || got.Seq != 1 {
		t.Errorf("returned indexes %+v Seq %d, want the states at Seq 1", got.Indexes, got.Seq)
	}
	if stored := get(t, r, "ix"); !slices.Equal(stored.Indexes, states) {
		t.Errorf("stored indexes %+v, want %+v", stored.Indexes, states)
	}

	// A newer change makes seq 1 stale: its states must not overwrite.
	if _, _, err := r.Change(ctx(t), "ix", func(cur *experiments.Config) (*experiments.Config, error) {
		cur.Name = "Indexed 2"
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	stale := []experiments.IndexState{{Collection: "trials", Name: "by_user", Type: "single", State: "failed: stale"}}
	got, err = r.SetIndexes(ctx(t), "ix", 1, stale)
	if got != nil || err != nil {
		t.Errorf("SetIndexes with a stale seq = %+v, %v; want nil, nil", got, err)
	}
	stored := get(t, r, "ix")
	if !slices.Equal(stored.Indexes, states) || stored.Seq != 2 || stored.Name != "Indexed 2" {
		t.Errorf("stored %+v after a stale SetIndexes, want Seq 2 with the first states", stored)
	}

	if got, err := r.SetIndexes(ctx(t), "nothing", 1, states); got != nil || err != nil {
		t.Errorf("SetIndexes of a missing slug = %+v, %v; want nil, nil", got, err)
	}
}

func TestExperimentsListByStatus(t *testing.T) {
	r := experimentsRepo(t)
	if all, err := r.List(ctx(t), ""); err != nil || len(all) != 0 {
		t.Errorf("List of an empty store = %+v, %v", all, err)
	}
	for slug, status := range map[string]string{
		"a-active": experiments.StatusActive, "b-draft": experiments.StatusDraft,
		"c-active": experiments.StatusActive, "d-archived": experiments.StatusArchived,
	} {
		create(t, r, slug, experiments.Config{Name: slug, Status: status})
	}
	slugs := func(status string) []string {
		t.Helper()
		list, err := r.List(ctx(t), status)
		if err != nil {
			t.Fatalf("List(%q): %v", status, err)
		}
		var out []string
		for _, c := range list {
			if status != "" && c.Status != status {
				t.Errorf("List(%q) returned %s of status %s", status, c.Slug, c.Status)
			}
			out = append(out, c.Slug)
		}
		slices.Sort(out)
		return out
	}
	if got := slugs(""); !slices.Equal(got, []string{"a-active", "b-draft", "c-active", "d-archived"}) {
		t.Errorf("List(\"\") = %v, want every experiment", got)
	}
	if got := slugs(experiments.StatusActive); !slices.Equal(got, []string{"a-active", "c-active"}) {
		t.Errorf("List(active) = %v", got)
	}
	if got := slugs(experiments.StatusDraft); !slices.Equal(got, []string{"b-draft"}) {
		t.Errorf("List(draft) = %v", got)
	}
	if got := slugs(experiments.StatusInactive); len(got) != 0 {
		t.Errorf("List(inactive) = %v, want none", got)
	}
}

func TestExperimentsRemove(t *testing.T) {
	r := experimentsRepo(t)
	create(t, r, "gone", experiments.Config{Name: "Gone", Status: experiments.StatusActive})
	create(t, r, "stays", experiments.Config{Name: "Stays", Status: experiments.StatusActive})
	if err := r.Remove(ctx(t), "gone"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if cfg := get(t, r, "gone"); cfg != nil {
		t.Errorf("Get after Remove = %+v, want nil", cfg)
	}
	if cfg := get(t, r, "stays"); cfg == nil {
		t.Error("Remove took another experiment too")
	}
	if err := r.Remove(ctx(t), "gone"); err != nil {
		t.Errorf("Remove of a missing experiment: %v", err)
	}
	// The slug can be created again, from Seq 1.
	if again := create(t, r, "gone", experiments.Config{Name: "Again", Status: experiments.StatusDraft}); again.Seq != 1 {
		t.Errorf("re-created experiment has Seq %d, want 1", again.Seq)
	}
}
