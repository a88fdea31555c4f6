package exportpkg_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
)

// id22 is a link's or run's ID (22 characters, as the auth service makes
// them) that reads as name.
func id22(name string) string { return (name + strings.Repeat("x", 22))[:22] }

// seedLinks gives shop a used single-use link (its run finished), an
// unused one, a revoked multi-use link with two runs (one started), a
// personal link whose participant finished, and another experiment a link
// of its own with a run; it returns shop's links as List gives them.
func seedLinks(t testing.TB, f *fixture) []store.StudyLink {
	t.Helper()
	ctx := ctxT(t)
	repo := (&store.Store{Client: f.client, DB: f.db}).StudyLinks()
	at := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	links := []store.StudyLink{
		{ID: id22("single-used"), Slug: slug, Kind: store.LinkSingle, CompletionURL: "https://app.prolific.com/submissions/complete?cc={code}", CompletionCode: "C0DE", CreatedBy: "dev@example.com", CreatedAt: at},
		{ID: id22("single-new"), Slug: slug, Kind: store.LinkSingle, CreatedBy: "dev@example.com", CreatedAt: at.Add(time.Second)},
		{ID: id22("multi"), Slug: slug, Kind: store.LinkMulti, CreatedBy: "dev@example.com", CreatedAt: at.Add(2 * time.Second)},
		{ID: id22("personal"), Slug: slug, Kind: store.LinkPersonal, Label: "P-017", CreatedBy: "dev@example.com", CreatedAt: at.Add(3 * time.Second)},
		{ID: id22("other-exp"), Slug: "shop_x", Kind: store.LinkSingle, CreatedBy: "eve@example.com", CreatedAt: at},
	}
	if err := repo.Create(ctx, links); err != nil {
		t.Fatal(err)
	}
	n := 0
	open := func(s, link string, params map[string]string) *store.StudyRun {
		t.Helper()
		n++
		_, run, err := repo.Open(ctx, s, link, func() store.StudyRun {
			return store.StudyRun{ID: id22(fmt.Sprintf("run-%d", n)), Participant: fmt.Sprintf("p%023d", n), Params: params, OpenedAt: at.Add(time.Duration(n) * time.Minute)}
		})
		if err != nil {
			t.Fatalf("open %s: %v", link, err)
		}
		return run
	}
	finish := func(s string, run *store.StudyRun) {
		t.Helper()
		if _, _, done, err := repo.Finish(ctx, s, run.ID); err != nil || !done {
			t.Fatalf("finish %s: %v %v", run.ID, done, err)
		}
	}
	finish(slug, open(slug, id22("single-used"), map[string]string{"PROLIFIC_PID": "pp-1", "STUDY_ID": "st"}))
	open(slug, id22("multi"), nil)
	started := open(slug, id22("multi"), map[string]string{"workerId": "w1"})
	if _, err := repo.MarkStarted(ctx, slug, started.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Revoke(ctx, slug, id22("multi")); err != nil {
		t.Fatal(err)
	}
	finish(slug, open(slug, id22("personal"), nil))
	finish("shop_x", open("shop_x", id22("other-exp"), nil))
	got, err := repo.List(ctx, slug, 100)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// linksView is repo's view of slug in db: its links (with counts and
// claims) and runs, as JSON for comparing.
func linksView(t *testing.T, repo store.StudyLinks) string {
	t.Helper()
	links, err := repo.List(ctxT(t), slug, 1000)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := repo.Runs(ctxT(t), slug, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(map[string]any{"links": links, "runs": runs}, "", " ")
	return string(b)
}

// Study links travel with their counts, claims and runs: a used
// single-use link stays used after an import, and a second import keeps
// what changed since.
func TestLinksRoundTrip(t *testing.T) {
	f := newFixture(t)
	seeded := seedLinks(t, f)
	ctx := ctxT(t)
	src := (&store.Store{Client: f.client, DB: f.db}).StudyLinks()
	want := linksView(t, src)

	up, _ := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	names, _ := entries(t, up)
	for _, n := range names {
		if n == exportpkg.LinksFile || n == exportpkg.RunsFile {
			t.Errorf("upload-ready package holds %s", n)
		}
	}

	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	if sum.Meta.Links == nil || sum.Meta.Links.Entries != 4 || sum.Meta.Runs == nil || sum.Meta.Runs.Entries != 4 {
		t.Fatalf("links %+v runs %+v, want 4 links and 4 runs", sum.Meta.Links, sum.Meta.Runs)
	}
	_, files := entries(t, pkg)
	for _, name := range []string{exportpkg.LinksFile, exportpkg.RunsFile} {
		if body := read(t, files[name]); strings.Contains(body, "other-exp") || strings.Contains(body, "shop_x") {
			t.Errorf("%s holds another experiment's records:\n%s", name, body)
		}
	}
	if readme := read(t, files[exportpkg.ReadmeFile]); !strings.Contains(readme, "| `.gnome/links.jsonl`, `.gnome/runs.jsonl` | its 4 study links (a used single-use link stays used) and their 4 runs |") {
		t.Errorf("the README does not list the links:\n%s", readme)
	}
	if body := read(t, files[exportpkg.LinksFile]); !strings.Contains(body, `"run":"`+id22("run-1")+`"`) {
		t.Errorf("the used single-use link's claim is not in links.jsonl:\n%s", body)
	}

	p := open(t, pkg)
	defer p.Close()
	var back []string
	if err := p.ReadLinks(func(l store.StudyLink) error { back = append(back, l.ID+"|"+l.Run); return nil },
		func(r store.StudyRun) error { back = append(back, r.ID+"@"+r.Link); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(back) != 8 || back[0] != seeded[0].ID+"|"+id22("run-1") {
		t.Errorf("read back %q", back)
	}

	fresh := f.client.Database("links_fresh")
	s, err := exportpkg.Import(ctx, fresh, p, exportpkg.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Links != 4 || s.Runs != 4 || s.LinksExisting+s.RunsExisting != 0 {
		t.Errorf("summary %+v", s)
	}
	dst := (&store.Store{Client: f.client, DB: fresh}).StudyLinks()
	if got := linksView(t, dst); got != want {
		t.Errorf("after the import:\n%s\nwant\n%s", got, want)
	}
	newRun := func() store.StudyRun {
		return store.StudyRun{ID: id22("run-after"), Participant: "p-after-import", OpenedAt: time.Now().UTC()}
	}
	if _, _, err := dst.Open(ctx, slug, id22("single-used"), newRun); !errors.Is(err, store.ErrLinkUsed) {
		t.Errorf("the used single-use link opens again after the import: %v", err)
	}
	if _, _, err := dst.Open(ctx, slug, id22("personal"), newRun); !errors.Is(err, store.ErrRunFinished) {
		t.Errorf("the finished personal link after the import: %v", err)
	}
	if _, _, err := dst.Open(ctx, slug, id22("multi"), newRun); !errors.Is(err, store.ErrLinkRevoked) {
		t.Errorf("the revoked link after the import: %v", err)
	}

	// A restart keeps what changed since: the unused link used, revoked.
	if _, _, err := dst.Open(ctx, slug, id22("single-new"), newRun); err != nil {
		t.Fatalf("the unused single-use link after the import: %v", err)
	}
	if _, err := dst.Revoke(ctx, slug, id22("single-new")); err != nil {
		t.Fatal(err)
	}
	changed := linksView(t, dst)
	s, err = exportpkg.Import(ctx, fresh, p, exportpkg.ImportOptions{})
	if err != nil || s.Links != 0 || s.LinksExisting != 4 || s.Runs != 0 || s.RunsExisting != 4 {
		t.Fatalf("second import %+v, %v", s, err)
	}
	if got := linksView(t, dst); got != changed {
		t.Errorf("a second import changed the links:\n%s\nwant\n%s", got, changed)
	}
}

// TestLinksRefused: hostile links and runs are refused with
// ErrInvalidPackage and a message naming the problem, and the hostile
// record is not imported.
func TestLinksRefused(t *testing.T) {
	f := newFixture(t)
	seedLinks(t, f)
	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	_, files := entries(t, pkg)
	linkLines := strings.SplitAfter(strings.TrimSuffix(read(t, files[exportpkg.LinksFile]), "\n"), "\n")
	runLines := strings.SplitAfter(strings.TrimSuffix(read(t, files[exportpkg.RunsFile]), "\n"), "\n")
	if len(linkLines) != 4 || len(runLines) != 4 {
		t.Fatalf("%d links, %d runs", len(linkLines), len(runLines))
	}
	// edit changes one JSON line.
	edit := func(line string, change func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, _ := json.Marshal(m)
		return string(b) + "\n"
	}
	lineOf := func(lines []string, id string) string {
		for _, l := range lines {
			if strings.Contains(l, `"id":"`+id+`"`) {
				return l
			}
		}
		t.Fatalf("no line of %s", id)
		return ""
	}
	usedLink, multiLink := lineOf(linkLines, id22("single-used")), lineOf(linkLines, id22("multi"))
	usedRun := lineOf(runLines, id22("run-1"))
	// with makes a package whose links and runs are the given lines, and
	// whose export.json matches them, as an attacker who builds a package
	// would.
	with := func(links, runs []string, meta func(m *exportpkg.Meta)) []byte {
		m := sum.Meta
		body := map[string]string{}
		set := func(x **exportpkg.Extra, name string, lines []string) {
			*x = nil
			if lines != nil {
				body[name] = strings.Join(lines, "")
				*x = &exportpkg.Extra{File: name, Entries: int64(len(lines)), SHA256: sha(body[name])}
			}
		}
		set(&m.Links, exportpkg.LinksFile, links)
		set(&m.Runs, exportpkg.RunsFile, runs)
		if meta != nil {
			meta(&m)
		}
		mj, _ := json.MarshalIndent(m, "", "  ")
		var extra []zfile
		for name, b := range body {
			extra = append(extra, zfile{name: name, body: b})
		}
		return rezip(t, pkg, func(n, b string) (string, bool) {
			switch n {
			case exportpkg.LinksFile, exportpkg.RunsFile:
				return "", false
			case exportpkg.MetaFile:
				return string(mj) + "\n", true
			}
			return b, true
		}, extra...)
	}
	linksOnly := func(lines ...string) []byte { return with(lines, nil, nil) }
	withRuns := func(runs ...string) []byte { return with(linkLines, runs, nil) }

	cases := map[string]struct {
		pkg  []byte
		want string
		// leaked finds the hostile record, which must not be imported.
		leaked bson.D
	}{
		"link of another experiment": {linksOnly(edit(usedLink, func(m map[string]any) { m["slug"] = "shop_x" })), `experiment "shop_x"`, bson.D{{Key: "slug", Value: "shop_x"}}},
		"unknown link field":         {linksOnly(edit(usedLink, func(m map[string]any) { m["owner"] = "mallory" })), `unknown field "owner"`, nil},
		"link twice":                 {linksOnly(usedLink, usedLink), "in the package twice", nil},
		"guessable link id":          {linksOnly(edit(usedLink, func(m map[string]any) { m["id"] = "a" })), "not 22 characters", bson.D{{Key: "_id", Value: "a"}}},
		"unknown kind":               {linksOnly(edit(usedLink, func(m map[string]any) { m["kind"] = "forever" })), `kind "forever"`, nil},
		"claim of a multi-use link":  {linksOnly(edit(multiLink, func(m map[string]any) { m["run"] = id22("run-9") })), "multi-use link", nil},
		"script completion URL": {linksOnly(edit(usedLink, func(m map[string]any) {
			m["completion_url"], m["completion_code"] = "javascript:alert(1)//{code}", ""
		})), "not an absolute http or https address", nil},
		"control characters in a label": {linksOnly(edit(lineOf(linkLines, id22("personal")), func(m map[string]any) { m["label"] = "P\x1b[2J" })), "no label", nil},
		"revoked without a time":        {linksOnly(edit(multiLink, func(m map[string]any) { delete(m, "revoked_at") })), "revoked true", nil},
		"two values on a line":          {linksOnly(strings.TrimSuffix(usedLink, "\n") + "{}\n"), "more than one JSON value", nil},
		"not JSON":                      {linksOnly("{\"id\":\n"), "not a study link", nil},
		"run of another experiment":     {withRuns(edit(usedRun, func(m map[string]any) { m["slug"] = "shop_x" })), `experiment "shop_x"`, nil},
		"unknown run field":             {withRuns(edit(usedRun, func(m map[string]any) { m["password"] = "x" })), `unknown field "password"`, nil},
		"run twice":                     {withRuns(usedRun, usedRun), "run \"" + id22("run-1") + "\" is in the package twice", nil},
		"run of a link not there": {withRuns(edit(usedRun, func(m map[string]any) { m["id"], m["link"] = id22("run-x"), id22("nowhere") })),
			"not in the package", bson.D{{Key: "_id", Value: id22("run-x")}}},
		"second run of a single-use link": {withRuns(usedRun, edit(usedRun, func(m map[string]any) { m["id"] = id22("run-again") })),
			"not the run of its claim", bson.D{{Key: "_id", Value: id22("run-again")}}},
		"claimed run on another link": {withRuns(edit(usedRun, func(m map[string]any) { m["link"] = id22("multi") })), "claimed link", nil},
		"hostile parameter":           {withRuns(edit(usedRun, func(m map[string]any) { m["params"] = map[string]string{"a b": "x"} })), "parameter named", nil},
		"parameter with a newline":    {withRuns(edit(usedRun, func(m map[string]any) { m["params"] = map[string]string{"PROLIFIC_PID": "x\n=cmd"} })), "printable text", nil},
		"finished, never started": {withRuns(edit(usedRun, func(m map[string]any) {
			m["started"] = false
			delete(m, "started_at")
		})), "finished but not started", nil},
		"participant of odd shape": {withRuns(edit(usedRun, func(m map[string]any) { m["participant"] = "../../admin" })), "has participant", nil},
		"line count":               {with(linkLines[:3], nil, func(m *exportpkg.Meta) { m.Links.Entries = 4 }), "holds 3 entries", nil},
		"checksum": {with(linkLines, runLines, func(m *exportpkg.Meta) { m.Runs.SHA256 = strings.Repeat("0", 64) }),
			"has SHA-256", nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := open(t, c.pkg)
			defer p.Close()
			db := f.client.Database("links_refused_" + strings.NewReplacer(" ", "_", ",", "", "-", "_").Replace(name))
			_, err := exportpkg.Import(ctxT(t), db, p, exportpkg.ImportOptions{})
			if !errors.Is(err, exportpkg.ErrInvalidPackage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("import: %v, want %q", err, c.want)
			}
			for _, coll := range []string{store.StudyLinksCollection, store.StudyRunsCollection} {
				if c.leaked == nil {
					break
				}
				if n, _ := db.Collection(coll).CountDocuments(ctxT(t), c.leaked); n != 0 {
					t.Errorf("the refused record %v is in %s", c.leaked, coll)
				}
			}
		})
	}

	// What export.json itself gets wrong is refused when the package opens.
	for name, c := range map[string]struct {
		pkg  []byte
		want string
	}{
		"runs without links": {with(nil, runLines, nil), "runs but no study links"},
		"too many links":     {with(linkLines, runLines, func(m *exportpkg.Meta) { m.Links.Entries = exportpkg.MaxLinks + 1 }), "links counts"},
		"too many runs":      {with(linkLines, runLines, func(m *exportpkg.Meta) { m.Runs.Entries = exportpkg.MaxRuns + 1 }), "runs counts"},
		"another file":       {with(linkLines, runLines, func(m *exportpkg.Meta) { m.Links.File = exportpkg.AccountsFile }), "links has file"},
		"format 1":           {with(linkLines, runLines, func(m *exportpkg.Meta) { m.Format = 1 }), "format 1 lists"},
		"a listed file missing": {rezip(t, pkg, func(n, b string) (string, bool) { return b, n != exportpkg.RunsFile }),
			"lists " + exportpkg.RunsFile + ", which is not in the package"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := exportpkg.Open(strings.NewReader(string(c.pkg)), int64(len(c.pkg)))
			if !errors.Is(err, exportpkg.ErrInvalidPackage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("open: %v, want %q", err, c.want)
			}
		})
	}
}

// An upload-ready package that lists links is refused.
func TestUploadReadyWithLinksRefused(t *testing.T) {
	f := newFixture(t)
	up, sum := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	body := `{"id":"` + id22("l") + `"}` + "\n"
	m := sum.Meta
	m.Links = &exportpkg.Extra{File: exportpkg.LinksFile, Entries: 1, SHA256: sha(body)}
	mj, _ := json.Marshal(m)
	bad := rezip(t, up, func(n, b string) (string, bool) {
		if n == exportpkg.MetaFile {
			return string(mj), true
		}
		return b, true
	}, zfile{name: exportpkg.LinksFile, body: body})
	_, err := exportpkg.Open(strings.NewReader(string(bad)), int64(len(bad)))
	if !errors.Is(err, exportpkg.ErrInvalidPackage) || !strings.Contains(err.Error(), "upload-ready package lists") {
		t.Fatalf("open: %v", err)
	}
}

// A caller's error stops ReadLinks and comes back as it is, not as a
// refusal of the package.
func TestReadLinksCallerError(t *testing.T) {
	f := newFixture(t)
	seedLinks(t, f)
	pkg, _ := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	p := open(t, pkg)
	defer p.Close()
	stop := errors.New("the store is gone")
	err := p.ReadLinks(func(store.StudyLink) error { return nil }, func(store.StudyRun) error { return stop })
	if !errors.Is(err, stop) || errors.Is(err, exportpkg.ErrInvalidPackage) {
		t.Fatalf("ReadLinks = %v, want the caller's error as it is", err)
	}
}

// The state named for the export service's source key changes with a new
// link, a claim, a run's start and finish and a revocation, and with
// nothing of another experiment.
func TestLinksState(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	repo := (&store.Store{Client: f.client, DB: f.db}).StudyLinks()
	states := map[string]string{}
	step := func(what string) {
		t.Helper()
		s, err := exportpkg.LinksState(ctx, f.db, slug)
		if err != nil {
			t.Fatal(err)
		}
		for before, st := range states {
			if st == s {
				t.Errorf("the state after %q is the state after %q", what, before)
			}
		}
		states[what] = s
	}
	same := func(what string) {
		t.Helper()
		s, err := exportpkg.LinksState(ctx, f.db, slug)
		if err != nil {
			t.Fatal(err)
		}
		if s != states["last"] {
			t.Errorf("the state changed with %s", what)
		}
	}
	step("nothing")
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := repo.Create(ctx, []store.StudyLink{{ID: id22("one"), Slug: slug, Kind: store.LinkSingle, CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	step("a link")
	// A claim alone (a process that stopped before it stored the run).
	if _, err := f.db.Collection(store.StudyClaimsCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: id22("one")}, {Key: "run", Value: id22("r1")}}); err != nil {
		t.Fatal(err)
	}
	step("a claim")
	if _, _, err := repo.Open(ctx, slug, id22("one"), func() store.StudyRun { return store.StudyRun{ID: id22("r2")} }); !errors.Is(err, store.ErrLinkUsed) {
		t.Fatalf("open a claimed link: %v", err)
	}
	if err := repo.Create(ctx, []store.StudyLink{{ID: id22("multi"), Slug: slug, Kind: store.LinkMulti, CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	step("a second link")
	_, run, err := repo.Open(ctx, slug, id22("multi"), func() store.StudyRun {
		return store.StudyRun{ID: id22("r3"), Participant: "p3xxxxxxxx", OpenedAt: at}
	})
	if err != nil {
		t.Fatal(err)
	}
	step("a run")
	if _, err := repo.MarkStarted(ctx, slug, run.ID); err != nil {
		t.Fatal(err)
	}
	step("a start")
	if _, _, _, err := repo.Finish(ctx, slug, run.ID); err != nil {
		t.Fatal(err)
	}
	step("a finish")
	if _, err := repo.Revoke(ctx, slug, id22("multi")); err != nil {
		t.Fatal(err)
	}
	step("a revocation")
	states["last"] = states["a revocation"]
	if err := repo.Create(ctx, []store.StudyLink{{ID: id22("theirs"), Slug: "shop_x", Kind: store.LinkMulti, CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := repo.Open(ctx, "shop_x", id22("theirs"), func() store.StudyRun { return store.StudyRun{ID: id22("r4"), OpenedAt: at} }); err != nil {
		t.Fatal(err)
	}
	same("another experiment's link and run")
}

// linkFields are the stored fields of T (bson tags, "-" left out).
func linkFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("bson"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// Every stored field of a link and a run travels: a field added to
// store.StudyLink or store.StudyRun must be added to the package's lines.
func TestLinkLinesCarryEveryField(t *testing.T) {
	f := newFixture(t)
	seedLinks(t, f)
	pkg, _ := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	_, files := entries(t, pkg)
	for name, typ := range map[string]reflect.Type{exportpkg.LinksFile: reflect.TypeFor[store.StudyLink](), exportpkg.RunsFile: reflect.TypeFor[store.StudyRun]()} {
		// Every field is set on some line of the seeded data.
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(read(t, files[name])), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			for k := range m {
				seen[k] = true
			}
		}
		for _, field := range linkFields(typ) {
			if field == "_id" {
				field = "id"
			}
			if !seen[field] {
				t.Errorf("%s carries no %q of %s", name, field, typ)
			}
		}
	}
}
