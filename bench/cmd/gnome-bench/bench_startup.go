package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// startupPoll is how often readiness is polled while timing a start.
const startupPoll = 5 * time.Millisecond

// benchStartup times `gnome serve` from exec to the first 200 of /health on a
// DATA_DIR initialised by an earlier start, beside `gnome --version` (the
// cost of starting the same binary at all). Starts and version runs
// alternate.
func benchStartup(ctx context.Context, e *env) (*outcome, error) {
	dataDir := filepath.Join(e.tmp, "startup-data")
	out := &outcome{}

	first, shut, err := e.timeGnomeStart(ctx, dataDir, "gnome-startup-init.log")
	if err != nil {
		return nil, fmt.Errorf("initialising start: %w", err)
	}
	e.logf("initialising start on an empty DATA_DIR: %s to /health 200, %s to exit on SIGTERM", fmtDur(first), fmtDur(shut))
	out.raw = append(out.raw, fmt.Sprintf("first start on an empty DATA_DIR (not counted): %s; exit after SIGTERM: %s", fmtDur(first), fmtDur(shut)))

	// One untimed run puts the binary in the page cache, as the
	// initialising start did for serve.
	if _, err := timeRun(ctx, e.gnomeBin, "--version"); err != nil {
		return nil, err
	}
	var starts, versions, shutdowns []time.Duration
	for i := 1; i <= e.starts; i++ {
		v, err := timeRun(ctx, e.gnomeBin, "--version")
		if err != nil {
			return nil, err
		}
		versions = append(versions, v)
		s, sd, err := e.timeGnomeStart(ctx, dataDir, fmt.Sprintf("gnome-startup-%d.log", i))
		if err != nil {
			return nil, fmt.Errorf("start %d: %w", i, err)
		}
		starts = append(starts, s)
		shutdowns = append(shutdowns, sd)
		e.logf("start %d: --version %s, serve exec→/health 200 %s, exit after SIGTERM %s", i, fmtDur(v), fmtDur(s), fmtDur(sd))
	}
	out.raw = append(out.raw,
		"gnome serve exec→first /health 200 (existing DATA_DIR, polled every "+fmtDur(startupPoll)+"): "+durList(starts),
		"gnome --version exec→exit: "+durList(versions),
		"gnome serve exit after SIGTERM: "+durList(shutdowns))

	const ref = "gnome --version"
	limit := below(2 * time.Second)
	n := fmt.Sprintf(" (%d starts)", e.starts)
	out.rows = []row{
		{metric: "exec→/health 200, median" + n, unit: unitDur, got: float64(median(starts)), ref: float64(median(versions)), refName: ref, target: limit},
		{metric: "exec→/health 200, max" + n, unit: unitDur, got: float64(slices.Max(starts)), ref: float64(slices.Max(versions)), refName: ref, target: limit},
	}
	return out, nil
}

// timeGnomeStart starts gnome serve on dataDir, times exec to the first
// /health 200, then stops it and times the exit.
func (e *env) timeGnomeStart(ctx context.Context, dataDir, logName string) (ready, exit time.Duration, err error) {
	g, err := e.startGnome(dataDir, logName)
	if err != nil {
		return 0, 0, err
	}
	ready, err = g.waitReady(ctx, "http://"+g.httpAddr+"/health", startupPoll, 60*time.Second)
	exit, serr := g.stop(30 * time.Second)
	if err != nil {
		return 0, 0, err
	}
	return ready, exit, serr
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func durList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDur(d)
	}
	return strings.Join(parts, ", ")
}
