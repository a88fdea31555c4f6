package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// exportView is an export as GET /api/exports/{id} shows it.
type exportView struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Progress float64 `json:"progress"`
	Step     string  `json:"step"`
	Size     int64   `json:"size"`
	Checksum string  `json:"checksum"`
	Worker   string  `json:"worker"`
	Attempts int     `json:"attempts"`
	Error    string  `json:"error"`
}

func (s *session) export(id string) exportView {
	var v exportView
	_ = json.Unmarshal([]byte(s.send("GET", "/api/exports/"+id, "", "").body), &v)
	return v
}

// bigExperiment is an experiment ZIP of n MiB of incompressible files.
func bigExperiment(t *testing.T, slug string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("manifest.json")
	fmt.Fprintf(w, `{"schema_version":"2.0","slug":%q,"name":"Big","status":"active"}`, slug)
	w, _ = zw.Create("index.html")
	fmt.Fprint(w, "<!doctype html><h1>big</h1>")
	rng := rand.New(rand.NewPCG(3, 4))
	block := make([]byte, 1<<20)
	for i := range n {
		for j := range block {
			block[j] = byte(rng.Uint32())
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("static/blob-%03d.bin", i), Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(block)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// When the export worker building a package is killed with SIGKILL midway,
// the job goes to the other export worker once its ack deadline passes, and
// completes there: exactly one ready export, one stored file, whose bytes
// are the recorded checksum; nothing of the killed attempt is visible.
func TestExportSurvivesItsWorkerBeingKilled(t *testing.T) {
	// A silent worker is presumed dead after 5 s instead of 30 s.
	c := startCluster(t, "export-admin@example.com", "an-export-admin-passphrase", map[string]string{"EXPORT_JOB_ACK_WAIT_SECONDS": "5"})
	c.start("auth", nil)
	c.start("upload", nil)
	workers := []*proc{c.start("export", nil), c.start("export", nil)}
	c.startEdge()
	base := c.base
	admin := c.admin()
	admin.http.Timeout = 2 * time.Minute
	const slug = "big"
	if r := admin.send("POST", "/api/experiments", "application/zip", string(bigExperiment(t, slug, 40))); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	seed(t, c.urls["MONGO_URI"], slug, 30<<20)

	r := admin.send("POST", "/api/experiments/"+slug+"/exports", "application/json", `{"type":"standalone"}`)
	if r.status != 202 {
		t.Fatalf("POST export: %d %s", r.status, r.body)
	}
	var queued exportView
	if err := json.Unmarshal([]byte(r.body), &queued); err != nil || queued.ID == "" {
		t.Fatalf("POST export: no id in %s", r.body)
	}
	id := queued.ID

	// Kill the worker building it once the package is being written into
	// the store (progress above 0), as early as that can be seen, so that
	// the kill lands mid-write.
	var running exportView
	waitFor(t, 60*time.Second, "the export to be under way", func() bool {
		running = admin.export(id)
		if running.Status == "ready" || running.Status == "failed" {
			t.Fatalf("the export ended %s before it could be interrupted: %+v", running.Status, running)
		}
		return running.Status == "running" && running.Progress > 0 && running.Worker != ""
	})
	var victim, survivor *proc
	for i, w := range workers {
		if strings.Contains(running.Worker, "-"+strconv.Itoa(w.cmd.Process.Pid)+"-") {
			victim, survivor = w, workers[1-i]
		}
	}
	if victim == nil {
		t.Fatalf("the export runs on %q, none of the export processes", running.Worker)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed the export worker at %.0f%% (%s)", running.Progress*100, running.Step)

	var done exportView
	waitFor(t, 90*time.Second, "the export to complete on the other worker", func() bool {
		done = admin.export(id)
		if done.Status == "failed" || done.Status == "invalidated" {
			t.Fatalf("the export ended %s: %+v", done.Status, done)
		}
		return done.Status == "ready"
	})
	t.Logf("ready %v after the kill, attempt %d", time.Since(killed).Round(time.Millisecond), done.Attempts)
	if !strings.Contains(done.Worker, "-"+strconv.Itoa(survivor.cmd.Process.Pid)+"-") || done.Attempts < 2 {
		t.Errorf("the export finished on %q after %d attempts; want the surviving pid %d and a second attempt", done.Worker, done.Attempts, survivor.cmd.Process.Pid)
	}

	// Exactly one export of the experiment, ready.
	var list struct {
		Exports []exportView `json:"exports"`
	}
	if r := admin.send("GET", "/admin/api/exports?slug="+slug, "", ""); r.status != 200 || json.Unmarshal([]byte(r.body), &list) != nil {
		t.Fatalf("list exports: %d %s", r.status, r.body)
	}
	if len(list.Exports) != 1 || list.Exports[0].ID != id || list.Exports[0].Status != "ready" {
		t.Errorf("exports of %s: %+v; want only %s, ready", slug, list.Exports, id)
	}

	// One stored object, complete: nothing of the killed attempt is visible.
	nc := connectAs(t, c.urls["NATS_URL"], c.dataDir, bus.Admin)
	js, _ := jetstream.New(nc)
	ctx := ctxT(t)
	obs, err := js.ObjectStore(ctx, "exports")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, fmt.Sprintf("%s (%d bytes)", in.Name, in.Size))
	}
	if len(infos) != 1 || infos[0].Name != "exports/"+id+".zip" || int64(infos[0].Size) != done.Size {
		t.Errorf("stored export objects: %v; want exports/%s.zip of %d bytes only", names, id, done.Size)
	}

	// The download is the recorded checksum's bytes.
	req, _ := http.NewRequest("GET", base+"/api/exports/"+id+"/download", nil)
	for _, c := range admin.http.Jar.Cookies(req.URL) {
		if c.Name == "token" {
			req.Header.Set("Authorization", "Bearer "+c.Value)
		}
	}
	resp, err := admin.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if resp.StatusCode != 200 || err != nil || n != done.Size || hex.EncodeToString(h.Sum(nil)) != done.Checksum {
		t.Errorf("download: %d, %d bytes, sha256 %x, err %v; want 200, %d bytes, %s", resp.StatusCode, n, h.Sum(nil), err, done.Size, done.Checksum)
	}
}

// seed writes about size bytes of documents into the experiment's events
// collection, as its actor would have.
func seed(t *testing.T, uri, slug string, size int) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	coll := client.Database("gnome").Collection(scoped.CollectionName(slug, "events"))
	rng := rand.New(rand.NewPCG(5, 6))
	const payload = 4 << 10
	batch := make([]any, 0, 500)
	n := size / payload
	for i := range n {
		p := make([]byte, payload)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		batch = append(batch, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "experiment_id", Value: slug}, {Key: "i", Value: int32(i)}, {Key: "payload", Value: bson.Binary{Data: p}}})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := coll.InsertMany(ctxT(t), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}
