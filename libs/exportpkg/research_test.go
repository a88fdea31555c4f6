package exportpkg_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// oidAt is an ObjectId made at t.
func oidAt(t time.Time) bson.ObjectID { return bson.NewObjectIDFromTimestamp(t) }

var (
	day1 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	day2 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	day3 = time.Date(2026, 1, 3, 10, 0, 0, 0, time.UTC)
	id1  = oidAt(day1)
	ref  = oidAt(day1)
)

// researchDB holds the shop experiment's "answers": nested fields, arrays,
// dates, ObjectIds, unicode, a formula, a field only one document has, a
// document of another experiment in the same collection (which the scope
// never writes, but a store may hold), and another experiment's own
// collection of the same name.
func researchDB(t *testing.T) *mongo.Database {
	t.Helper()
	db := connect(t).Database("research_" + strings.ReplaceAll(t.Name(), "/", "_"))
	ctx := ctxT(t)
	docs := []any{
		bson.D{{Key: "_id", Value: id1}, {Key: "experiment_id", Value: slug}, {Key: "name", Value: "Zoë 🚀, \"quoted\"\nline"},
			{Key: "score", Value: int32(-5)}, {Key: "ratio", Value: 0.25},
			{Key: "meta", Value: bson.D{{Key: "browser", Value: "firefox"}, {Key: "screen", Value: bson.D{{Key: "w", Value: int32(1280)}}}}},
			{Key: "tags", Value: bson.A{"a", int32(2), bson.D{{Key: "k", Value: "v"}}}},
			{Key: "at", Value: bson.NewDateTimeFromTime(time.Date(2026, 1, 1, 10, 0, 0, 123e6, time.UTC))},
			{Key: "ref", Value: ref}},
		bson.D{{Key: "_id", Value: oidAt(day2)}, {Key: "experiment_id", Value: slug}, {Key: "name", Value: "=HYPERLINK(\"http://evil\")"},
			{Key: "meta", Value: bson.D{{Key: "browser", Value: "+chrome"}}}, {Key: "only_here", Value: true}, {Key: "empty", Value: bson.D{}},
			{Key: "nothing", Value: nil}},
		bson.D{{Key: "_id", Value: "custom-id"}, {Key: "experiment_id", Value: slug}, {Key: "name", Value: "@sum"},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(day3)}},
		bson.D{{Key: "_id", Value: oidAt(day2)}, {Key: "experiment_id", Value: "other"}, {Key: "name", Value: "SECRET of other"}},
	}
	// Two documents may not share an _id: the other experiment's has its own.
	docs[3].(bson.D)[0].Value = oidAt(day2.Add(time.Second))
	if _, err := db.Collection(scoped.CollectionName(slug, "answers")).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(scoped.CollectionName("other", "answers")).InsertOne(ctx,
		bson.D{{Key: "experiment_id", Value: "other"}, {Key: "name", Value: "SECRET of other"}}); err != nil {
		t.Fatal(err)
	}
	return db
}

func writeData(t *testing.T, db *mongo.Database, q exportapi.DataQuery) (string, exportpkg.DataSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := exportpkg.WriteData(ctxT(t), &buf, db, slug, q, exportpkg.DataOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatalf("write %+v: %v", q, err)
	}
	h := sha256.Sum256(buf.Bytes())
	if sum.Size != int64(buf.Len()) || sum.SHA256 != hex.EncodeToString(h[:]) {
		t.Errorf("summary %d bytes %s; written %d bytes", sum.Size, sum.SHA256, buf.Len())
	}
	return buf.String(), sum
}

func TestWriteDataCSV(t *testing.T) {
	db := researchDB(t)
	out, sum := writeData(t, db, exportapi.DataQuery{Collection: "answers", Format: exportapi.FormatCSV})
	if strings.Contains(out, "SECRET") {
		t.Fatalf("another experiment's document is in the file:\n%s", out)
	}
	if !strings.Contains(out, "\r\n") {
		t.Error("rows do not end in CRLF (RFC 4180)")
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, out)
	}
	if sum.Documents != 3 || len(rows) != 4 {
		t.Fatalf("%d documents, %d rows:\n%s", sum.Documents, len(rows), out)
	}
	wantHeader := []string{"_id", "experiment_id", "name", "score", "ratio", "meta.browser", "meta.screen.w", "tags", "at", "ref",
		"only_here", "empty", "nothing", "created_at"}
	if fmt.Sprint(rows[0]) != fmt.Sprint(wantHeader) || sum.Columns != len(wantHeader) {
		t.Fatalf("header %q, want %q", rows[0], wantHeader)
	}
	cell := func(row int, col string) string {
		for i, h := range rows[0] {
			if h == col {
				return rows[row][i]
			}
		}
		t.Fatalf("no column %s", col)
		return ""
	}
	for _, c := range []struct {
		row       int
		col, want string
	}{
		{1, "_id", id1.Hex()},
		{1, "name", "Zoë 🚀, \"quoted\"\nline"},
		{1, "score", "-5"}, // a number, not a formula: never prefixed
		{1, "ratio", "0.25"},
		{1, "meta.browser", "firefox"},
		{1, "meta.screen.w", "1280"},
		{1, "tags", `["a",2,{"k":"v"}]`},
		{1, "at", "2026-01-01T10:00:00.123Z"},
		{1, "ref", ref.Hex()},
		{1, "only_here", ""},
		{2, "name", `'=HYPERLINK("http://evil")`},
		{2, "meta.browser", "'+chrome"},
		{2, "meta.screen.w", ""},
		{2, "only_here", "true"},
		{2, "empty", "{}"},
		{2, "nothing", ""},
		{3, "_id", "custom-id"},
		{3, "name", "'@sum"},
		{3, "created_at", "2026-01-03T10:00:00Z"},
	} {
		if got := cell(c.row, c.col); got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}
}

func TestWriteDataJSONLAndTimes(t *testing.T) {
	db := researchDB(t)
	out, sum := writeData(t, db, exportapi.DataQuery{Collection: "answers", Format: exportapi.FormatJSONL})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if sum.Documents != 3 || len(lines) != 3 || strings.Contains(out, "SECRET") {
		t.Fatalf("%d documents:\n%s", sum.Documents, out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	// Relaxed Extended JSON: plain numbers, dates in ISO 8601.
	if first["score"] != float64(-5) || first["name"] != "Zoë 🚀, \"quoted\"\nline" ||
		fmt.Sprint(first["at"]) != "map[$date:2026-01-01T10:00:00.123Z]" {
		t.Errorf("first line %s", lines[0])
	}

	at := func(t time.Time) *time.Time { return &t }
	for _, tc := range []struct {
		name     string
		from, to *time.Time
		want     []string // names
	}{
		{"from day 2", at(day2), nil, []string{"=HYPERLINK", "@sum"}},
		{"before day 2", nil, at(day2), []string{"Zoë"}},
		{"day 2 alone", at(day2), at(day2.Add(time.Hour)), []string{"=HYPERLINK"}},
		// An ObjectId has whole seconds: one made at day2 is not at or after day2 + 1 ms.
		{"just after day 2", at(day2.Add(time.Millisecond)), at(day3), []string{}},
		{"created_at bound", at(day3), at(day3.Add(time.Millisecond)), []string{"@sum"}},
		// Bounds past what an ObjectId's seconds hold (1970 to 2106).
		{"from year 1", at(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)), at(day2), []string{"Zoë"}},
		{"to year 9999", at(day2), at(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), []string{"=HYPERLINK", "@sum"}},
		{"before 1970", nil, at(time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)), []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, sum := writeData(t, db, exportapi.DataQuery{Collection: "answers", Format: exportapi.FormatJSONL, From: tc.from, To: tc.to})
			if sum.Documents != int64(len(tc.want)) {
				t.Fatalf("%d documents, want %v:\n%s", sum.Documents, tc.want, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s missing:\n%s", w, out)
				}
			}
		})
	}

	// A collection that does not exist gives an empty file.
	if out, sum := writeData(t, db, exportapi.DataQuery{Collection: "nothing_here", Format: exportapi.FormatCSV}); out != "" || sum.Documents != 0 {
		t.Errorf("empty collection: %q", out)
	}
	// Hostile queries are refused before any read.
	for _, q := range []exportapi.DataQuery{
		{Collection: "answers.$where", Format: "csv"},
		{Collection: "$cmd", Format: "csv"},
		{Collection: strings.Repeat("a", 1000), Format: "csv"},
		{Collection: "answers", Format: "xlsx"},
		{Collection: "answers", Format: "csv", From: at(day3), To: at(day1)},
	} {
		_, err := exportpkg.WriteData(ctxT(t), &bytes.Buffer{}, db, slug, q, exportpkg.DataOptions{})
		if apierr.From(err).Code != apierr.CodeValidationFailed {
			t.Errorf("%.40v: %v, want validation_failed", q, err)
		}
	}

	// Documents with more distinct fields than a CSV takes are refused, and
	// the same documents go out as JSON Lines.
	wide := bson.D{{Key: "experiment_id", Value: slug}}
	for i := range exportpkg.MaxDataColumns {
		wide = append(wide, bson.E{Key: fmt.Sprintf("f%d", i), Value: int32(i)})
	}
	if _, err := db.Collection(scoped.CollectionName(slug, "wide")).InsertOne(ctxT(t), wide); err != nil {
		t.Fatal(err)
	}
	_, err := exportpkg.WriteData(ctxT(t), &bytes.Buffer{}, db, slug, exportapi.DataQuery{Collection: "wide", Format: exportapi.FormatCSV}, exportpkg.DataOptions{WorkDir: t.TempDir()})
	if ae := apierr.From(err); ae.Code != apierr.CodeScopeLimit || !strings.Contains(ae.Message, "jsonl") {
		t.Errorf("too wide for CSV: %v", err)
	}
	if _, sum := writeData(t, db, exportapi.DataQuery{Collection: "wide", Format: exportapi.FormatJSONL}); sum.Documents != 1 {
		t.Errorf("wide as jsonl: %d documents", sum.Documents)
	}

	list, err := exportpkg.ListData(ctxT(t), db, slug)
	if err != nil || fmt.Sprint(list) != "[{answers 3} {wide 1}]" {
		t.Errorf("list: %v %v", list, err)
	}
}

// TestWriteDataStreams writes 20,000 documents as CSV and as JSON Lines and
// holds the live heap to a few MiB: no pass keeps the collection. The
// work file of the CSV's first pass is gone afterwards.
func TestWriteDataStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 documents")
	}
	n := 20_000
	if raceEnabled {
		n = 5_000
	}
	db := connect(t).Database("research_streams")
	ctx := ctxT(t)
	batch := make([]any, 0, 5000)
	for i := range n {
		batch = append(batch, bson.D{{Key: "experiment_id", Value: slug}, {Key: "i", Value: int32(i)},
			{Key: "text", Value: strings.Repeat(fmt.Sprintf("%08x", i*7919), 64)},
			{Key: "nested", Value: bson.D{{Key: "n", Value: int64(i)}, {Key: "word", Value: fmt.Sprintf("w%d", i%97)}}}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.Collection(scoped.CollectionName(slug, "big")).InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	work := t.TempDir()
	for _, format := range []string{exportapi.FormatCSV, exportapi.FormatJSONL} {
		sink := newSampler()
		s, err := exportpkg.WriteData(ctx, sink, db, slug, exportapi.DataQuery{Collection: "big", Format: format}, exportpkg.DataOptions{WorkDir: work})
		if err != nil {
			t.Fatal(err)
		}
		heap, live := sink.growth()
		t.Logf("%s: %d documents, %.1f MiB; heap growth at most %.1f MiB, %.1f MiB live", format, s.Documents, mib(s.Size), mib(heap), mib(live))
		if s.Documents != int64(n) || s.Size != sink.n {
			t.Fatalf("%s: %d documents, %d bytes", format, s.Documents, s.Size)
		}
		// A fixed few MiB (a batch, the buffers) and nothing that grows
		// with the file: holding it whole would be over 10 MiB.
		if live > 4<<20+s.Size/8 {
			t.Errorf("%s: the live heap grew by %.1f MiB for a file of %.1f MiB", format, mib(live), mib(s.Size))
		}
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("work files left: %v", left)
	}
}
