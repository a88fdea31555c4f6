package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// noisyCores is how much CPU other processes may take during a measured run
// before the figures are flagged as noisy.
const noisyCores = 0.25

// benchHealth loads GET /health of `gnome serve` and GET / of the bare Fiber
// server the same way, alternating bare, gnome, bare, gnome… Each run gets a
// freshly started server, so only one server is alive while it is measured.
func benchHealth(ctx context.Context, e *env) (*outcome, error) {
	dataDir := filepath.Join(e.tmp, "health-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	var bare, gnome []loadResult
	out := &outcome{}
	for round := 1; round <= e.rounds; round++ {
		r, err := e.loadBare(ctx, round)
		if err != nil {
			return nil, err
		}
		bare = append(bare, r)
		e.logf("round %d bare  fiber  GET /       %s", round, r)

		g, err := e.loadGnome(ctx, dataDir, round)
		if err != nil {
			return nil, err
		}
		gnome = append(gnome, g)
		e.logf("round %d gnome serve  GET /health %s", round, g)
	}
	for i := range bare {
		out.raw = append(out.raw,
			fmt.Sprintf("round %d, bare Fiber GET /: %s", i+1, bare[i]),
			fmt.Sprintf("round %d, gnome serve GET /health: %s", i+1, gnome[i]))
	}
	var ratios []string
	busiest := 0.0
	for i := range bare {
		ratios = append(ratios, fmtRatio(gnome[i].rps/bare[i].rps))
		busiest = max(busiest, bare[i].cpu.other, gnome[i].cpu.other)
	}
	out.raw = append(out.raw, "req/s ratio gnome/bare by round: "+strings.Join(ratios, ", "))
	if busiest > noisyCores {
		out.raw = append(out.raw, fmt.Sprintf("NOISY: other processes used up to %.2f cores during measured runs; "+
			"rerun on a quieter machine or with more -rounds before reading much into these ratios", busiest))
	}
	b, g := best(bare), best(gnome)
	how := fmt.Sprintf("best of %d", e.rounds)
	ref := "bare Fiber GET /"
	out.rows = []row{
		{metric: fmt.Sprintf("req/s @%d conns (%s)", e.conns, how), unit: unitRate, got: g.rps, ref: b.rps, refName: ref, target: atLeastRatio(0.50)},
		{metric: "p50 latency (" + how + ")", unit: unitDur, got: float64(g.p50), ref: float64(b.p50), refName: ref, target: noTarget()},
		{metric: "p99 latency (" + how + ")", unit: unitDur, got: float64(g.p99), ref: float64(b.p99), refName: ref, target: atMostRatio(2.0)},
		{metric: "server CPU per request (best of " + fmt.Sprint(e.rounds) + ")", unit: unitDur, got: cpuPerReq(gnome), ref: cpuPerReq(bare), refName: ref, target: noTarget()},
		{metric: "success (worst run)", unit: unitPct, got: g.success, ref: b.success, refName: ref, target: bothFull()},
	}
	return out, nil
}

func (e *env) loadBare(ctx context.Context, round int) (loadResult, error) {
	p, addr, err := e.startBare(fmt.Sprintf("bare-%d.log", round))
	if err != nil {
		return loadResult{}, err
	}
	defer p.stop(10 * time.Second)
	url := "http://" + addr + "/"
	if _, err := p.waitReady(ctx, url, 5*time.Millisecond, 30*time.Second); err != nil {
		return loadResult{}, err
	}
	r, err := e.measureServer(ctx, url, p.cmd.Process.Pid)
	if err != nil {
		return loadResult{}, fmt.Errorf("bare-fiber: %w", err)
	}
	return r, nil
}

func (e *env) loadGnome(ctx context.Context, dataDir string, round int) (loadResult, error) {
	g, err := e.startGnome(dataDir, fmt.Sprintf("gnome-health-%d.log", round))
	if err != nil {
		return loadResult{}, err
	}
	defer g.stop(30 * time.Second)
	url := "http://" + g.httpAddr + "/health"
	if _, err := g.waitReady(ctx, url, 5*time.Millisecond, 60*time.Second); err != nil {
		return loadResult{}, err
	}
	r, err := e.measureServer(ctx, url, g.cmd.Process.Pid)
	if err != nil {
		return loadResult{}, fmt.Errorf("gnome serve: %w", err)
	}
	return r, nil
}

// cpuPerReq is the least server CPU time per successful request over the
// runs (0 when /proc could not tell): unlike throughput, it does not depend
// on how much CPU the load generator and other processes took.
func cpuPerReq(runs []loadResult) float64 {
	best := 0.0
	for _, r := range runs {
		if !r.cpu.ok || r.rps <= 0 {
			continue
		}
		if v := r.cpu.server / r.rps * 1e9; best == 0 || v < best {
			best = v
		}
	}
	return best
}
