package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// maxRequestsPerSecond bounds the request count of every load run
// (duration × this), beyond any rate a loopback server reaches here.
const maxRequestsPerSecond = 1_000_000

// loadResult is one measured load run.
type loadResult struct {
	requests uint64
	success  float64 // fraction of 2xx/3xx answers
	rps      float64 // successful requests per second
	p50, p99 time.Duration
	codes    map[string]int
	errors   []string
	cpu      cpuShare
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%s req/s, p50 %s, p99 %s, success %s (%d requests)",
		fmtRate(r.rps), fmtDur(r.p50), fmtDur(r.p99), fmtPct(r.success), r.requests)
	if r.cpu.ok {
		s += "; " + r.cpu.String()
	}
	if len(r.errors) > 0 {
		s += fmt.Sprintf("; codes %v; errors %s", r.codes, strings.Join(first(r.errors, 3), " | "))
	}
	return s
}

// boundedPacer sends as fast as the workers allow and stops after max hits.
type boundedPacer struct{ max uint64 }

func (p boundedPacer) Pace(_ time.Duration, hits uint64) (time.Duration, bool) {
	return 0, hits >= p.max
}

func (p boundedPacer) Rate(time.Duration) float64 { return 0 }

// loadClient is the HTTP client of one server's runs: exactly conns
// keep-alive connections, no proxy, so that warm-up opens the connections
// the measured run then reuses.
func loadClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialLocal,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// hammer runs a closed-loop load: conns workers, each sending its next GET to
// url as soon as the previous one is answered, over at most conns
// connections, for du (and at most du × maxRequestsPerSecond requests).
func hammer(ctx context.Context, client *http.Client, target vegeta.Target, conns int, du time.Duration) (loadResult, error) {
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(conns)),
		vegeta.MaxWorkers(uint64(conns)),
		vegeta.Connections(conns),
		vegeta.MaxConnections(conns),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
	)
	tgt := vegeta.NewStaticTargeter(target)
	pacer := boundedPacer{max: uint64(du.Seconds()*maxRequestsPerSecond) + 1}

	// The attack ends by itself after du; requests time out after 10 s.
	// Stop it on interrupt, and as a last resort well past both.
	watchdog := time.AfterFunc(du+30*time.Second, func() { atk.Stop() })
	defer watchdog.Stop()
	stopOnCancel := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stopOnCancel()

	var m vegeta.Metrics
	lat := make([]time.Duration, 0, 1<<16)
	for res := range atk.Attack(tgt, pacer, du, "") {
		m.Add(res)
		lat = append(lat, res.Latency)
	}
	m.Close()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	if m.Requests == 0 {
		return loadResult{}, fmt.Errorf("no request completed against %s", target.URL)
	}
	slices.Sort(lat)
	return loadResult{
		requests: m.Requests,
		success:  m.Success,
		rps:      m.Throughput,
		p50:      quantile(lat, 0.50),
		p99:      quantile(lat, 0.99),
		codes:    m.StatusCodes,
		errors:   m.Errors,
	}, nil
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// measureServer warms url up for warmup, then measures it for du over the
// same connections, noting how the CPUs were shared meanwhile (pid is the
// server's). header, when given, goes on every request.
func (e *env) measureServer(ctx context.Context, url string, pid int, header ...http.Header) (loadResult, error) {
	return e.measureServerConns(ctx, url, pid, e.conns, header...)
}

// measureServerConns is measureServer over conns connections instead of
// -conns.
func (e *env) measureServerConns(ctx context.Context, url string, pid, conns int, header ...http.Header) (loadResult, error) {
	target := vegeta.Target{Method: http.MethodGet, URL: url}
	if len(header) > 0 {
		target.Header = header[0]
	}
	client := loadClient(conns)
	defer client.CloseIdleConnections()
	if e.warmup > 0 {
		if _, err := hammer(ctx, client, target, conns, e.warmup); err != nil {
			return loadResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	before := sampleCPU(pid)
	r, err := hammer(ctx, client, target, conns, e.duration)
	r.cpu = cpuBetween(before, sampleCPU(pid))
	return r, err
}

// best combines the runs of one server: the highest throughput, the lowest
// latencies, the lowest success ratio (errors in any run count).
func best(runs []loadResult) loadResult {
	b := runs[0]
	for _, r := range runs[1:] {
		b.rps = max(b.rps, r.rps)
		b.p50 = min(b.p50, r.p50)
		b.p99 = min(b.p99, r.p99)
		b.success = min(b.success, r.success)
	}
	return b
}

func first(s []string, n int) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s[:min(n, len(s))]
}
