package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

func newRun(i *int, mu *sync.Mutex) func() store.StudyRun {
	return func() store.StudyRun {
		mu.Lock()
		defer mu.Unlock()
		*i++
		return store.StudyRun{ID: fmt.Sprintf("run-%03d", *i), Participant: fmt.Sprintf("p-%03d", *i), OpenedAt: time.Now().UTC().Truncate(time.Millisecond)}
	}
}

// Openings of one link at once: a single-use link admits exactly one, a
// personal link gives every opening the same run, a multi-use link a run
// each; the counts come from the runs, whatever the store does with
// concurrent updates of one document.
func TestStudyLinksOpenConcurrently(t *testing.T) {
	s := open(t, testenv.Start(t), nil, "links_test")
	r := s.StudyLinks()
	if err := r.EnsureIndexes(ctx(t)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if err := r.Create(ctx(t), []store.StudyLink{
		{ID: "single", Slug: "s", Kind: store.LinkSingle, CreatedAt: at, CompletionURL: "https://example.com/?cc={code}", CompletionCode: "OK"},
		{ID: "personal", Slug: "s", Kind: store.LinkPersonal, Label: "P1", CreatedAt: at.Add(time.Second)},
		{ID: "multi", Slug: "s", Kind: store.LinkMulti, CreatedAt: at.Add(2 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	var mu sync.Mutex
	const openers = 8
	type result struct {
		run *store.StudyRun
		err error
	}
	openAll := func(id string) []result {
		out := make([]result, openers)
		var wg sync.WaitGroup
		for i := range openers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, run, err := r.Open(ctx(t), "s", id, newRun(&n, &mu))
				out[i] = result{run, err}
			}()
		}
		wg.Wait()
		return out
	}
	won := 0
	for _, res := range openAll("single") {
		switch {
		case res.err == nil:
			won++
		case !errors.Is(res.err, store.ErrLinkUsed):
			t.Fatalf("a single-use link's losing opening: %v", res.err)
		}
	}
	if won != 1 {
		t.Fatalf("%d openings of a single-use link won; want 1", won)
	}
	runs := map[string]bool{}
	for _, res := range openAll("personal") {
		if res.err != nil {
			t.Fatalf("a personal link's opening: %v", res.err)
		}
		runs[res.run.ID] = true
	}
	if len(runs) != 1 {
		t.Fatalf("a personal link opened at once gave %d runs; want 1", len(runs))
	}
	runs = map[string]bool{}
	for _, res := range openAll("multi") {
		if res.err != nil {
			t.Fatalf("a multi-use link's opening: %v", res.err)
		}
		runs[res.run.ID] = true
	}
	if len(runs) != openers {
		t.Fatalf("a multi-use link gave %d runs to %d openings", len(runs), openers)
	}

	// Started and finished, each idempotent; a finished personal run does
	// not open again.
	all, err := r.Runs(ctx(t), "s", "personal", 10)
	if err != nil || len(all) != 1 {
		t.Fatalf("Runs = %v, %v", all, err)
	}
	pr := all[0].ID
	if first, err := r.MarkStarted(ctx(t), "s", pr); err != nil || !first {
		t.Fatalf("MarkStarted = %v, %v", first, err)
	}
	if first, err := r.MarkStarted(ctx(t), "s", pr); err != nil || first {
		t.Fatalf("MarkStarted again = %v, %v", first, err)
	}
	if run, _, done, err := r.Finish(ctx(t), "s", pr); err != nil || !done || run.FinishedAt == nil {
		t.Fatalf("Finish = %+v, %v, %v", run, done, err)
	}
	if _, _, done, err := r.Finish(ctx(t), "s", pr); err != nil || done {
		t.Fatalf("Finish again = %v, %v", done, err)
	}
	if run, _, _, err := r.Finish(ctx(t), "other", pr); err != nil || run != nil {
		t.Fatalf("Finish through another experiment = %+v, %v", run, err)
	}
	if _, _, err := r.Open(ctx(t), "s", "personal", newRun(&n, &mu)); !errors.Is(err, store.ErrRunFinished) {
		t.Fatalf("a finished personal link opened: %v", err)
	}
	single, _ := r.Runs(ctx(t), "s", "single", 10)
	if _, link, _, err := r.Finish(ctx(t), "s", single[0].ID); err != nil || link.CompletionCode != "OK" {
		t.Fatalf("Finish the single run = %+v, %v", link, err)
	}

	list, err := r.List(ctx(t), "s", 10)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %v, %v", list, err)
	}
	want := map[string][3]int64{"single": {1, 1, 1}, "personal": {1, 1, 1}, "multi": {openers, 0, 0}}
	for _, l := range list {
		if got := [3]int64{l.Opened, l.Started, l.Finished}; got != want[l.ID] {
			t.Errorf("counts of %s = %v; want %v", l.ID, got, want[l.ID])
		}
	}

	// Revoked: no more openings, the first revocation's time kept.
	first, err := r.Revoke(ctx(t), "s", "multi")
	if err != nil || !first.Revoked || first.RevokedAt == nil {
		t.Fatalf("Revoke = %+v, %v", first, err)
	}
	again, err := r.Revoke(ctx(t), "s", "multi")
	if err != nil || !again.RevokedAt.Equal(*first.RevokedAt) {
		t.Fatalf("Revoke again = %+v, %v", again, err)
	}
	if _, _, err := r.Open(ctx(t), "s", "multi", newRun(&n, &mu)); !errors.Is(err, store.ErrLinkRevoked) {
		t.Fatalf("a revoked link opened: %v", err)
	}
	if _, _, err := r.Open(ctx(t), "other", "multi", newRun(&n, &mu)); !errors.Is(err, store.ErrLinkNotFound) {
		t.Fatalf("a link opened through another experiment: %v", err)
	}
	if l, err := r.Revoke(ctx(t), "other", "single"); err != nil || l != nil {
		t.Fatalf("revoked through another experiment: %+v, %v", l, err)
	}
}

// Pages of links and runs follow each other without gaps or repeats, also
// among items of the same millisecond; a cursor that is not one is refused.
func TestStudyLinksPages(t *testing.T) {
	s := open(t, testenv.Start(t), nil, "links_pages_test")
	r := s.StudyLinks()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var links []store.StudyLink
	for i := range 7 {
		// Three share a millisecond, as links made in one request do.
		links = append(links, store.StudyLink{ID: fmt.Sprintf("l%d", i), Slug: "s", Kind: store.LinkMulti, CreatedAt: at.Add(time.Duration(i/3) * time.Millisecond)})
	}
	if err := r.Create(ctx(t), append(links, store.StudyLink{ID: "elsewhere", Slug: "t", Kind: store.LinkMulti, CreatedAt: at})); err != nil {
		t.Fatal(err)
	}
	var n int
	var mu sync.Mutex
	for range 5 {
		if _, _, err := r.Open(ctx(t), "s", "l0", newRun(&n, &mu)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, next, err := r.ListPage(ctx(t), "s", after, 3)
		if err != nil || pages > 3 {
			t.Fatalf("ListPage(%q) = %v, %q, %v", after, page, next, err)
		}
		for _, l := range page {
			got = append(got, l.ID)
			if l.ID == "l0" && l.Opened != 5 {
				t.Errorf("l0 opened %d; want 5", l.Opened)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if fmt.Sprint(got) != "[l0 l1 l2 l3 l4 l5 l6]" {
		t.Fatalf("links by pages: %v", got)
	}
	var runs []string
	after = ""
	for {
		page, next, err := r.RunsPage(ctx(t), "s", "l0", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range page {
			runs = append(runs, run.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(runs) != 5 {
		t.Fatalf("runs by pages: %v", runs)
	}
	for _, bad := range []string{"x", "1~", "~l1", "abc~l1"} {
		if _, _, err := r.ListPage(ctx(t), "s", bad, 3); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}
