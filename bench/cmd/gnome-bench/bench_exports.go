package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/scoped"
)

// exportSlug is the benchmark's experiment; its data is its collection
// "events" (scoped.CollectionName).
const exportSlug = "bench-export"

// benchExport exports a 100 MB experiment (50 MB of files, 50 MB of
// documents) as a standalone package, from POST to ready, with every service
// in its own process, and compares it with `zip -r` plus `sha256sum` over the
// package's own files, unpacked, in the same run. It watches the export
// service's resident memory throughout.
func benchExport(ctx context.Context, e *env) (*outcome, error) {
	sp, err := e.startSplit(ctx, "export", []string{"auth", "upload", "export", "edge"}, "198.51.100.5")
	if err != nil {
		return nil, err
	}
	defer sp.stop()
	base, token, mongoURI, procs := sp.base, sp.token, sp.mongoURI, sp.procs

	// A small experiment first, exported once, so that the export service's
	// idle memory includes the code paths of an export.
	small := filepath.Join(e.tmp, "export-small.zip")
	if err := experimentZip(small, exportSlug+"-warm", 1<<20, 5); err != nil {
		return nil, err
	}
	if status, body, err := postZip(ctx, base, token, small); err != nil || status != 201 {
		return nil, fmt.Errorf("warm-up upload: %d %v %s", status, err, body)
	}
	if _, _, err := exportOnce(ctx, base, token, exportSlug+"-warm"); err != nil {
		return nil, fmt.Errorf("warm-up export: %w", err)
	}

	// The measured experiment: 50 MB of files and 50 MB of documents.
	big := filepath.Join(e.tmp, "export-big.zip")
	if err := experimentZip(big, exportSlug, 50<<20, 6); err != nil {
		return nil, err
	}
	defer os.Remove(big)
	if status, body, err := postZip(ctx, base, token, big); err != nil || status != 201 {
		return nil, fmt.Errorf("upload: %d %v %s", status, err, body)
	}
	docs, dataBytes, err := seedDocuments(ctx, mongoURI, exportSlug, 50<<20)
	if err != nil {
		return nil, err
	}

	pid := procs["export"].cmd.Process.Pid
	time.Sleep(2 * time.Second) // let the warm-up's garbage be collected
	idle, err := rss(pid)
	if err != nil {
		return nil, err
	}
	const runs = 3
	var took, ref []time.Duration
	var peakGrowth int64
	var size int64
	out := &outcome{}
	for i := 0; i < runs; i++ {
		stopWatch := watchRSS(pid, idle)
		d, exp, err := exportOnce(ctx, base, token, exportSlug)
		peak := stopWatch()
		if err != nil {
			return nil, err
		}
		// A package without the seeded documents would measure half the
		// work (random bytes do not compress): refuse to report it.
		if exp.Size < 50<<20+dataBytes*9/10 {
			return nil, fmt.Errorf("the package is %s, less than its 50 MiB of files and %s of documents: the data was not exported",
				fmtBytes(exp.Size), fmtBytes(dataBytes))
		}
		took = append(took, d)
		peakGrowth = max(peakGrowth, peak-idle)
		size = exp.Size

		// The reference: the package's own files, unpacked, zipped again
		// by zip -r and hashed by sha256sum.
		pkg := filepath.Join(e.tmp, "export-download.zip")
		if err := download(ctx, base, token, exp.ID, pkg); err != nil {
			return nil, err
		}
		r, err := referenceZip(ctx, pkg, filepath.Join(e.tmp, "export-ref"))
		if err != nil {
			return nil, err
		}
		ref = append(ref, r)
		os.Remove(pkg)
		out.raw = append(out.raw, fmt.Sprintf("run %d: POST to ready %s for a %s package (reference %s); export service RSS peak %s above idle",
			i+1, fmtDur(d), fmtBytes(exp.Size), fmtDur(r), fmtBytes(peak-idle)))
		// Invalidate it, so that the next POST builds anew rather than
		// reusing this export.
		if err := invalidate(ctx, base, token, exp.ID); err != nil {
			return nil, err
		}
	}
	sorted, sortedRef := slices.Sorted(slices.Values(took)), slices.Sorted(slices.Values(ref))
	med, refMed := sorted[len(sorted)/2], sortedRef[len(sortedRef)/2]
	refName := "zip -r + sha256sum of the package's files"
	out.rows = []row{
		{metric: fmt.Sprintf("100 MB standalone export, POST to ready (median of %d)", runs), unit: unitDur, got: float64(med), ref: float64(refMed), refName: refName, target: below(5 * time.Second)},
		{metric: "100 MB standalone export vs zip -r + sha256sum (median)", unit: unitDur, got: float64(med), ref: float64(refMed), refName: refName, target: atMostRatio(1.5)},
		{metric: "export service RSS growth during the export (worst run)", unit: unitBytes, got: float64(peakGrowth), ref: float64(size), refName: "the package's size", target: atMostAbs(64 << 20)},
	}
	out.raw = append(out.raw, fmt.Sprintf("experiment: 50 MiB of files, %d documents (%s of BSON); export service idle RSS %s", docs, fmtBytes(dataBytes), fmtBytes(idle)))
	return out, nil
}

// seedDocuments writes about size bytes of documents of 4 KiB random
// payloads into the experiment's events collection, as its actor would have.
func seedDocuments(ctx context.Context, uri, slug string, size int) (int, int64, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return 0, 0, err
	}
	defer client.Disconnect(context.Background())
	coll := client.Database("gnome").Collection(scoped.CollectionName(slug, "events"))
	rng := rand.New(rand.NewPCG(11, 12))
	const payload = 4 << 10
	n := size / payload
	var total int64
	batch := make([]any, 0, 500)
	for i := range n {
		p := make([]byte, payload)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		doc := bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "experiment_id", Value: slug}, {Key: "i", Value: int32(i)},
			{Key: "at", Value: bson.DateTime(1_700_000_000_000 + int64(i))}, {Key: "payload", Value: bson.Binary{Data: p}}}
		raw, _ := bson.Marshal(doc)
		total += int64(len(raw))
		batch = append(batch, doc)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				return 0, 0, fmt.Errorf("seed documents: %w", err)
			}
			batch = batch[:0]
		}
	}
	return n, total, nil
}

type exportView struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Size     int64   `json:"size"`
	Checksum string  `json:"checksum"`
	Error    string  `json:"error"`
	Progress float64 `json:"progress"`
}

// exportOnce asks for a standalone export and polls it until it is ready,
// timing POST to ready.
func exportOnce(ctx context.Context, base, token, slug string) (time.Duration, exportView, error) {
	start := time.Now()
	status, body, err := apiCall(ctx, http.MethodPost, base+"/api/experiments/"+slug+"/exports", token, `{"type":"standalone"}`)
	if err != nil || (status != 202 && status != 200) {
		return 0, exportView{}, fmt.Errorf("POST export: %d %v %s", status, err, body)
	}
	var v exportView
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		var wrapped struct{ Export exportView }
		if json.Unmarshal(body, &wrapped) != nil || wrapped.Export.ID == "" {
			return 0, v, fmt.Errorf("POST export: no id in %s", body)
		}
		v = wrapped.Export
	}
	deadline := time.Now().Add(5 * time.Minute)
	for v.Status != "ready" {
		if v.Status == "failed" || v.Status == "invalidated" {
			return 0, v, fmt.Errorf("export %s ended %s: %s", v.ID, v.Status, v.Error)
		}
		if time.Now().After(deadline) {
			return 0, v, fmt.Errorf("export %s not ready after 5 minutes (%s, %.0f%%)", v.ID, v.Status, v.Progress*100)
		}
		time.Sleep(20 * time.Millisecond)
		status, body, err := apiCall(ctx, http.MethodGet, base+"/api/exports/"+v.ID, token, "")
		if err != nil || status != 200 {
			return 0, v, fmt.Errorf("GET export: %d %v %s", status, err, body)
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return 0, v, err
		}
	}
	return time.Since(start), v, nil
}

func apiCall(ctx context.Context, method, url, token, body string) (int, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func invalidate(ctx context.Context, base, token, id string) error {
	status, body, err := apiCall(ctx, http.MethodPost, base+"/admin/api/exports/"+id+"/invalidate", token, `{"delete_files":true}`)
	if err != nil || status != 200 {
		return fmt.Errorf("invalidate %s: %d %v %s", id, status, err, body)
	}
	return nil
}

func download(ctx context.Context, base, token, id, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/exports/"+id+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("download %s: %d %s", id, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// referenceZip unpacks pkg into dir and times `zip -r` of it followed by
// `sha256sum` of the result: what building the package by hand from its
// files costs.
func referenceZip(ctx context.Context, pkg, dir string) (time.Duration, error) {
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	zr, err := zip.OpenReader(pkg)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		p := filepath.Join(files, filepath.FromSlash(f.Name))
		if !strings.HasPrefix(p, files+string(filepath.Separator)) {
			return 0, fmt.Errorf("reference: entry %q leaves the directory", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return 0, err
		}
		rc, err := f.Open()
		if err != nil {
			return 0, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return 0, err
		}
	}
	out := filepath.Join(dir, "ref.zip")
	start := time.Now()
	zipCmd := exec.CommandContext(ctx, "zip", "-r", "-q", out, ".")
	zipCmd.Dir = files
	var stderr bytes.Buffer
	zipCmd.Stderr = &stderr
	if err := zipCmd.Run(); err != nil {
		return 0, fmt.Errorf("zip -r: %v %s", err, stderr.String())
	}
	if err := exec.CommandContext(ctx, "sha256sum", out).Run(); err != nil {
		return 0, fmt.Errorf("sha256sum: %w", err)
	}
	return time.Since(start), nil
}
