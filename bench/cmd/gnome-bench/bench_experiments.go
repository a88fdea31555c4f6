package main

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// experimentZip writes a ZIP of about size bytes: a page, and files of
// incompressible data (the worst case for every step).
func experimentZip(path, slug string, size int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	m, _ := json.Marshal(map[string]any{"schema_version": "2.0", "slug": slug, "name": "Bench " + slug, "status": "active"})
	page := fmt.Sprintf("<!doctype html><h1>bench %d</h1>", seed) + strings.Repeat("<p>g.nome</p>", 100)
	for name, body := range map[string][]byte{"manifest.json": m, "index.html": []byte(page)} {
		w, _ := zw.Create(name)
		w.Write(body)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	const chunk = 256 << 10
	buf := make([]byte, chunk)
	for i := 0; i*chunk < size; i++ {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("static/blob-%03d.bin", i), Method: zip.Store})
		if err != nil {
			return err
		}
		w.Write(buf)
	}
	return zw.Close()
}

// postZip uploads path as the raw body with a bearer token.
func postZip(ctx context.Context, base, token, path string) (int, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	st, _ := f.Stat()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/experiments", bufio.NewReaderSize(f, 1<<20))
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// waitServed polls the page until it shows version's bytes (by ETag change)
// and returns when it did.
func waitServed(ctx context.Context, url, notETag string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	last := ""
	for i := 0; i < 5000; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("ETag"))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && resp.Header.Get("ETag") != notETag {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s never served the new version (last: %s)", url, last)
}

// referenceUnpack is what any upload must at least do with a ZIP: read it
// whole, unpack every entry and hash it, here in this process.
func referenceUnpack(path string) (time.Duration, error) {
	t := time.Now()
	zr, err := zip.OpenReader(path)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	h := sha256.New()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return 0, err
		}
		io.Copy(h, rc)
		rc.Close()
	}
	return time.Since(t), nil
}

// benchUpload times a 10 MB experiment from the start of its POST to its
// page being served, beside unpacking and hashing the same ZIP in process.
func benchUpload(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "upload")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.2")
	if err != nil {
		return nil, err
	}
	const runs = 5
	var took, ref []time.Duration
	etag := ""
	for i := 0; i < runs; i++ {
		path := filepath.Join(e.tmp, fmt.Sprintf("upload-%d.zip", i))
		if err := experimentZip(path, "bench-upload", 10<<20, uint64(i)); err != nil {
			return nil, err
		}
		start := time.Now()
		status, body, err := postZip(ctx, base, token, path)
		if err != nil || status != http.StatusCreated {
			return nil, fmt.Errorf("upload: %d %v %s", status, err, body)
		}
		if err := waitServed(ctx, expURL(base, "bench-upload", "/experiments/bench-upload/"), etag); err != nil {
			return nil, err
		}
		took = append(took, time.Since(start))
		resp, err := http.Get(expURL(base, "bench-upload", "/experiments/bench-upload/"))
		if err == nil {
			etag = resp.Header.Get("ETag")
			resp.Body.Close()
		}
		r, err := referenceUnpack(path)
		if err != nil {
			return nil, err
		}
		ref = append(ref, r)
		os.Remove(path)
	}
	slices.Sort(took)
	slices.Sort(ref)
	med, refMed := took[len(took)/2], ref[len(ref)/2]
	out := &outcome{rows: []row{
		{metric: fmt.Sprintf("10 MB upload, POST to served (median of %d)", runs), unit: unitDur, got: float64(med), ref: float64(refMed), refName: "unzip + SHA-256 of the same ZIP in process", target: below(time.Second)},
		{metric: fmt.Sprintf("10 MB upload, POST to served (max of %d)", runs), unit: unitDur, got: float64(took[len(took)-1]), ref: float64(ref[len(ref)-1]), refName: "unzip + SHA-256 of the same ZIP in process", target: below(time.Second)},
	}}
	for i := range took {
		out.raw = append(out.raw, fmt.Sprintf("run %d: POST to served %s (reference %s)", i+1, fmtDur(took[i]), fmtDur(ref[i])))
	}
	return out, nil
}

// watchRSS samples pid's resident set size every 10 ms until the returned
// function is called, which returns the highest seen (at least from).
func watchRSS(pid int, from int64) (stop func() int64) {
	var peak atomic.Int64
	peak.Store(from)
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v, err := rss(pid); err == nil && v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() int64 { close(done); <-sampled; return peak.Load() }
}

// rss is a process's resident set size in bytes, from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// benchUploadMemory uploads 100 MB to an edge running as its own process
// (the services separately, on gnome serve --infra-only) and watches the
// edge's resident memory: the body must stream through, not sit in memory.
func benchUploadMemory(ctx context.Context, e *env) (*outcome, error) {
	sp, err := e.startSplit(ctx, "uploadmem", []string{"auth", "upload", "edge"}, "198.51.100.3")
	if err != nil {
		return nil, err
	}
	defer sp.stop()
	url, token, edge := sp.base, sp.token, sp.procs["edge"]
	path := filepath.Join(e.tmp, "upload-100mb.zip")
	if err := experimentZip(path, "bench-big", 100<<20, 42); err != nil {
		return nil, err
	}
	defer os.Remove(path)
	st, _ := os.Stat(path)
	// Warm the edge up with a small upload so that its baseline includes
	// the code paths of an upload.
	small := filepath.Join(e.tmp, "upload-small.zip")
	experimentZip(small, "bench-big", 1<<20, 1)
	if status, body, err := postZip(ctx, url, token, small); err != nil || status != 201 {
		return nil, fmt.Errorf("warm-up upload: %d %v %s", status, err, body)
	}
	pid := edge.cmd.Process.Pid
	baseline, err := rss(pid)
	if err != nil {
		return nil, err
	}
	stopWatch := watchRSS(pid, baseline)
	start := time.Now()
	status, body, err := postZip(ctx, url, token, path)
	took := time.Since(start)
	peak := stopWatch()
	if err != nil || status != 201 {
		return nil, fmt.Errorf("100 MB upload: %d %v %s", status, err, body)
	}
	growth := peak - baseline
	return &outcome{
		rows: []row{
			{metric: "edge RSS growth during a 100 MB upload", unit: unitBytes, got: float64(growth), ref: float64(st.Size()), refName: "the upload's size", target: atMostAbs(32 << 20)},
		},
		raw: []string{fmt.Sprintf("edge RSS %s before, %s at peak; the upload took %s (%s)", fmtBytes(baseline), fmtBytes(peak), fmtDur(took), fmtRate(float64(st.Size())/took.Seconds())+"B/s")},
	}, nil
}

// benchStatic loads a static file of an experiment beside /health on the
// same server.
func benchStatic(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "static")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.4")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.tmp, "static.zip")
	if err := experimentZip(path, "bench-static", 1, 3); err != nil {
		return nil, err
	}
	if status, body, err := postZip(ctx, base, token, path); err != nil || status != 201 {
		return nil, fmt.Errorf("upload: %d %v %s", status, err, body)
	}
	page := expURL(base, "bench-static", "/experiments/bench-static/")
	if err := waitServed(ctx, page, ""); err != nil {
		return nil, err
	}
	pid := g.cmd.Process.Pid
	var health, static []loadResult
	out := &outcome{}
	for round := 1; round <= e.rounds; round++ {
		h, err := e.measureServer(ctx, base+"/health", pid)
		if err != nil {
			return nil, err
		}
		s, err := e.measureServer(ctx, page, pid)
		if err != nil {
			return nil, err
		}
		health, static = append(health, h), append(static, s)
		e.logf("round %d GET /health %s", round, h)
		e.logf("round %d GET page   %s", round, s)
		out.raw = append(out.raw, fmt.Sprintf("round %d, GET /health: %s", round, h), fmt.Sprintf("round %d, GET /experiments/bench-static/ (1.4 KB page): %s", round, s))
	}
	h, s := best(health), best(static)
	ref := "GET /health, same server"
	out.rows = []row{
		{metric: fmt.Sprintf("static page req/s @%d conns (best of %d)", e.conns, e.rounds), unit: unitRate, got: s.rps, ref: h.rps, refName: ref, target: atLeastRatio(0.60)},
		{metric: "static page p99", unit: unitDur, got: float64(s.p99), ref: float64(h.p99), refName: ref, target: noTarget()},
		{metric: "static page success (worst run)", unit: unitPct, got: s.success, ref: h.success, refName: ref, target: bothFull()},
	}
	return out, nil
}

func fmtBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
