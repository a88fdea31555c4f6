package apitest

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/scoped"
)

// Research data through the HTTP API, over two edges and the real export
// service: the collections listed with their documents, one asked for as
// CSV on one edge and followed and downloaded on the other, then as JSON
// Lines within a time range; another experiment's documents never appear,
// and only the owner and admins get any.
func TestResearchDataFlow(t *testing.T) {
	p := startPlatform(t, 2, nil)
	users := exportUsers(t, p)
	admin, dev, user := users["admin"], users["dev"], users["user"]
	if r := dev.upload(experimentZip(t, "study", "<h1>study</h1>", nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := admin.upload(experimentZip(t, "rival", "<h1>rival</h1>", nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	jan := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	feb := time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)
	idJan, idFeb := bson.NewObjectIDFromTimestamp(jan), bson.NewObjectIDFromTimestamp(feb)
	ctx := context.Background()
	db := p.deps.Store.DB
	if _, err := db.Collection(scoped.CollectionName("study", "answers")).InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: idJan}, {Key: "experiment_id", Value: "study"}, {Key: "who", Value: "Zoë 🚀"},
			{Key: "meta", Value: bson.D{{Key: "device", Value: bson.D{{Key: "w", Value: int32(390)}}}}},
			{Key: "choices", Value: bson.A{"left", "right"}}, {Key: "at", Value: bson.NewDateTimeFromTime(jan)}, {Key: "peer", Value: idFeb}},
		bson.D{{Key: "_id", Value: idFeb}, {Key: "experiment_id", Value: "study"}, {Key: "who", Value: `=cmd|' /C calc'!A0`}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(scoped.CollectionName("rival", "answers")).InsertOne(ctx,
		bson.D{{Key: "experiment_id", Value: "rival"}, {Key: "who", Value: "RIVAL"}}); err != nil {
		t.Fatal(err)
	}

	if r := dev.do("GET", "/api/experiments/study/data", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `{"name":"answers","documents":2}`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	for _, c := range []*client{user} {
		if r := c.do("GET", "/api/experiments/study/data", nil, nil); r.status != 403 || r.errorCode() != "forbidden" {
			t.Errorf("list by a user: %d %s", r.status, r.body)
		}
		if r := c.do("POST", "/api/experiments/study/data", map[string]string{"collection": "answers"}, nil); r.status != 403 || r.errorCode() != "forbidden" {
			t.Errorf("request by a user: %d %s", r.status, r.body)
		}
	}
	if r := dev.do("POST", "/api/experiments/study/data", map[string]string{"collection": "answers"}, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 403 || r.errorCode() != "csrf_rejected" {
		t.Errorf("cross-site request: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]string{
		{"collection": "answers.$x"},
		{"collection": strings.Repeat("x", 1000)},
		{"collection": "answers", "format": "parquet"},
		{"collection": "answers", "from": "2026-03-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
	} {
		if r := dev.do("POST", "/api/experiments/study/data", bad, nil); r.status != 422 || r.errorCode() != "validation_failed" {
			t.Errorf("%.60v: %d %s", bad, r.status, r.body)
		}
	}

	// CSV, asked on edge 0, followed and downloaded on edge 1.
	r := dev.do("POST", "/api/experiments/study/data", map[string]string{"collection": "answers", "format": "csv"}, nil)
	if r.status != 202 {
		t.Fatalf("csv request: %d %s", r.status, r.body)
	}
	e := dev.on(p, 1).ready(decodeExport(t, r))
	if e.Type != "research-data" || !strings.HasPrefix(e.FileName, "study-answers-") || !strings.HasSuffix(e.FileName, ".csv") {
		t.Fatalf("csv export: %+v", e)
	}
	dl := dev.on(p, 1).do("GET", "/api/exports/"+e.ID+"/download", nil, nil)
	if dl.status != 200 || dl.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		dl.header.Get("Content-Disposition") != `attachment; filename="`+e.FileName+`"` {
		t.Fatalf("csv download: %d %v", dl.status, dl.header)
	}
	body := string(dev.download(e))
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 || strings.Contains(body, "RIVAL") {
		t.Fatalf("csv %v:\n%s", err, body)
	}
	want := map[string]string{"_id": idJan.Hex(), "who": "Zoë 🚀", "meta.device.w": "390", "choices": `["left","right"]`,
		"at": "2026-01-10T12:00:00Z", "peer": idFeb.Hex()}
	for i, h := range rows[0] {
		if w, ok := want[h]; ok && rows[1][i] != w {
			t.Errorf("%s = %q, want %q", h, rows[1][i], w)
		}
		if h == "who" && rows[2][i] != `'=cmd|' /C calc'!A0` {
			t.Errorf("a formula is not defused: %q", rows[2][i])
		}
		delete(want, h)
	}
	if len(want) != 0 {
		t.Errorf("columns missing: %v in %v", want, rows[0])
	}
	// Admins get it too; the same request is the same file.
	if again := admin.do("POST", "/api/experiments/study/data", map[string]string{"collection": "answers", "format": "csv"}, nil); again.status != 200 ||
		decodeExport(t, again).Checksum != e.Checksum {
		t.Errorf("admin's request: %d %s", again.status, again.body)
	}

	// JSON Lines of February only.
	r = dev.do("POST", "/api/experiments/study/data", map[string]string{"collection": "answers", "format": "jsonl",
		"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, nil)
	if r.status != 202 {
		t.Fatalf("jsonl request: %d %s", r.status, r.body)
	}
	j := dev.ready(decodeExport(t, r))
	lines := strings.Split(strings.TrimSuffix(string(dev.download(j)), "\n"), "\n")
	var doc map[string]any
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &doc) != nil || doc["who"] != `=cmd|' /C calc'!A0` {
		t.Fatalf("jsonl of February: %q", lines)
	}
	if jd := dev.do("GET", "/api/exports/"+j.ID+"/download", nil, nil); jd.header.Get("Content-Type") != "application/jsonl; charset=utf-8" {
		t.Errorf("jsonl Content-Type %q", jd.header.Get("Content-Type"))
	}
	// Another user never sees the export.
	if r := user.do("GET", "/api/exports/"+j.ID+"/download", nil, nil); r.status != 404 {
		t.Errorf("another user's download: %d", r.status)
	}
}
