package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The console benchmark: the pages people open most, server-rendered by the
// edge, beside GET /health of the same server in the same run. The home
// page signed out and signed in, and the admin experiments list, with
// consoleExperiments experiments on the platform.

const (
	consoleExperiments = 200
	// consoleSamples is how many sequential requests each page gets per
	// round; the rounds alternate the pages so that load drifts hit all.
	consoleSamples = 200
	// consoleLoads is how many times Chromium loads each page.
	consoleLoads = 15
)

// consolePage is one page measured, and how to ask for it.
type consolePage struct {
	name   string
	path   string
	signed bool
}

var consolePages = []consolePage{
	{"/health", "/health", false},
	{"home, signed out", "/", false},
	{"home, signed in", "/", true},
	{"admin experiments", "/admin", true},
}

// pageTimes are a page's first-byte and whole-body times, and its size.
type pageTimes struct {
	first, full []time.Duration
	bytes       int
}

func benchConsole(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "console")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.7")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := seedConsole(ctx, base, token); err != nil {
		return nil, err
	}
	e.logf("%d experiments uploaded in %s", consoleExperiments, time.Since(t0).Round(time.Millisecond))

	client := &http.Client{Timeout: 30 * time.Second}
	times := map[string]*pageTimes{}
	for _, p := range consolePages {
		times[p.name] = &pageTimes{}
	}
	for round := 0; round < e.rounds; round++ {
		for _, p := range consolePages {
			pt := times[p.name]
			for i := 0; i < consoleSamples; i++ {
				first, full, n, err := timePage(ctx, client, base+p.path, tokenIf(p.signed, token))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.name, err)
				}
				pt.first, pt.full, pt.bytes = append(pt.first, first), append(pt.full, full), n
			}
			e.logf("round %d %s: first byte median %s, full median %s, %d bytes", round+1, p.name, fmtDur(median(pt.first)), fmtDur(median(pt.full)), pt.bytes)
		}
	}

	out := &outcome{}
	ref := times["/health"]
	refName := "GET /health, same server"
	for _, p := range consolePages[1:] {
		pt := times[p.name]
		target := noTarget()
		if p.path == "/admin" {
			// A list of 200 rows, rendered on a shared machine, is read at
			// once; over a quarter second it would not be.
			target = below(250 * time.Millisecond)
		}
		out.rows = append(out.rows,
			row{metric: p.name + ": first byte, median", unit: unitDur, got: float64(median(pt.first)), ref: float64(median(ref.first)), refName: refName, target: noTarget()},
			row{metric: p.name + ": full body, median", unit: unitDur, got: float64(median(pt.full)), ref: float64(median(ref.full)), refName: refName, target: target},
			row{metric: p.name + ": full body, p90", unit: unitDur, got: float64(quantile(sorted(pt.full), 0.9)), ref: float64(quantile(sorted(ref.full), 0.9)), refName: refName, target: noTarget()},
		)
		out.raw = append(out.raw, fmt.Sprintf("%s (GET %s): %d bytes, %d requests; first byte median %s, full median %s",
			p.name, p.path, pt.bytes, len(pt.full), fmtDur(median(pt.first)), fmtDur(median(pt.full))))
	}
	out.raw = append(out.raw, fmt.Sprintf("/health: first byte median %s, full median %s", fmtDur(median(ref.first)), fmtDur(median(ref.full))))

	rows, raw, err := browserConsole(ctx, e, base, token)
	if err != nil {
		return nil, err
	}
	out.rows = append(out.rows, rows...)
	out.raw = append(out.raw, raw...)
	return out, nil
}

func tokenIf(signed bool, token string) string {
	if signed {
		return token
	}
	return ""
}

// timePage GETs url as a browser would (Accept: text/html, the session
// cookie when token is set) and times the first byte and the whole body.
func timePage(ctx context.Context, client *http.Client, url, token string) (first, full time.Duration, n int, err error) {
	var firstAt time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { firstAt = time.Now() }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if token != "" {
		req.AddCookie(&http.Cookie{Name: "token", Value: token})
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	end := time.Now()
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("GET %s answered %d", url, resp.StatusCode)
	}
	return firstAt.Sub(start), end.Sub(start), len(body), nil
}

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// seedConsole uploads consoleExperiments small experiments, a quarter in
// each status, four at a time, and waits until the admin list shows them.
func seedConsole(ctx context.Context, base, token string) error {
	statuses := []string{"active", "draft", "inactive", "archived"}
	jobs := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: time.Minute}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				slug := fmt.Sprintf("console-%03d", i)
				z, err := consoleZip(slug, statuses[i%len(statuses)], i)
				if err != nil {
					errs <- err
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/experiments", bytes.NewReader(z))
				req.Header.Set("Content-Type", "application/zip")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("upload %s: %w", slug, err)
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("upload %s: %d %s", slug, resp.StatusCode, msg)
					return
				}
			}
		}()
	}
feed:
	for i := 0; i < consoleExperiments; i++ {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return err
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	// The edge learns of experiments from the bus: wait until its list has
	// them all.
	want := fmt.Sprintf("%d of %d experiments", consoleExperiments, consoleExperiments)
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin", nil)
		req.AddCookie(&http.Cookie{Name: "token", Value: token})
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the admin list never showed %q", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleZip is a small experiment with a name and a description to search.
func consoleZip(slug, status string, i int) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	m, _ := json.Marshal(map[string]any{"schema_version": "2.0", "slug": slug, "status": status,
		"name": fmt.Sprintf("Console study %d", i), "description": fmt.Sprintf("Study number %d of the console benchmark, with a description of usual length.", i)})
	for name, body := range map[string]string{"manifest.json": string(m), "index.html": "<!doctype html><h1>" + slug + "</h1>"} {
		w, err := zw.Create(name)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return nil, err
		}
	}
	err := zw.Close()
	return buf.Bytes(), err
}

// browserConsole loads each page in headless Chromium and reads
// DOMContentLoaded from the Navigation Timing entry; without Chromium it
// says so and measures nothing.
func browserConsole(ctx context.Context, e *env, base, token string) ([]row, []string, error) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		msg := "Chromium: skipped, no chromium on PATH (DOMContentLoaded not measured)"
		e.logf("%s", msg)
		return nil, []string{msg}, nil
	}
	life, stop := context.WithTimeout(ctx, 5*time.Minute)
	defer stop()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		msg := fmt.Sprintf("Chromium: skipped, %s did not start: %v", bin, err)
		e.logf("%s", msg)
		return nil, []string{msg}, nil
	}
	dcl := map[string][]time.Duration{}
	for _, signed := range []bool{false, true} {
		tctx, closeTab := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
		if signed {
			if _, err := chromedp.Call(tctx, network.SetCookie, network.SetCookieParams{Name: "token", Value: token, URL: base + "/"}); err != nil {
				closeTab()
				return nil, nil, fmt.Errorf("chromium: set the session cookie: %w", err)
			}
		}
		for _, p := range consolePages {
			if p.signed != signed && p.path != "/health" {
				continue
			}
			name := p.name
			if p.path == "/health" {
				name = fmt.Sprintf("/health (%s)", map[bool]string{false: "signed out", true: "signed in"}[signed])
			}
			for i := 0; i < consoleLoads; i++ {
				if _, err := chromedp.Run(tctx, chromedp.Navigate(base+p.path)); err != nil {
					closeTab()
					return nil, nil, fmt.Errorf("chromium: load %s: %w", p.path, err)
				}
				ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`(() => { const n = performance.getEntriesByType("navigation")[0]; return n.domContentLoadedEventEnd - n.startTime; })()`))
				if err != nil {
					closeTab()
					return nil, nil, fmt.Errorf("chromium: timing of %s: %w", p.path, err)
				}
				dcl[name] = append(dcl[name], time.Duration(ms*float64(time.Millisecond)))
			}
		}
		closeTab()
	}
	var rows []row
	var raw []string
	ref := "/health in Chromium, same session"
	for _, p := range consolePages[1:] {
		refKey := "/health (signed out)"
		if p.signed {
			refKey = "/health (signed in)"
		}
		got, refd := median(dcl[p.name]), median(dcl[refKey])
		rows = append(rows, row{metric: p.name + ": Chromium DOMContentLoaded, median", unit: unitDur, got: float64(got), ref: float64(refd), refName: ref, target: noTarget()})
		raw = append(raw, fmt.Sprintf("Chromium %s: DOMContentLoaded median %s of %d loads (%s: %s)", p.name, fmtDur(got), len(dcl[p.name]), refKey, fmtDur(refd)))
	}
	return rows, raw, nil
}
