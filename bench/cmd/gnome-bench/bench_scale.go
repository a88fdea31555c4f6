package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/gnome-platform/gnome/libs/bus"
)

// natsCluster is three nats-server processes clustered on loopback with
// JetStream, every bus user of libs/bus/access.go configured as
// deploy/compose/nats.conf does (and fsync on every write, as there), and
// the store of `gnome serve --infra-only` beside them: what the services
// of a production deployment meet, on one machine.
type natsCluster struct {
	e        *env
	name     string
	dir      string
	urls     []string // client URLs of the three nodes
	password map[string]string
	mongoURI string
	nc       *nats.Conn // the admin's connection
	nodes    []*proc
	store    *proc
	services []*proc // in start order
	edges    []string
	started  map[string]int
}

var natsServerOnce struct {
	sync.Once
	path string
	err  error
}

// natsServerBinary builds nats-server from the module the platform embeds
// (the same version), once per run, into the scratch directory.
func (e *env) natsServerBinary() (string, error) {
	natsServerOnce.Do(func() {
		out := filepath.Join(e.tmp, "nats-server")
		e.logf("building nats-server")
		cmd := exec.Command(e.goCmd, "build", "-o", out, "github.com/nats-io/nats-server/v2")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			natsServerOnce.err = fmt.Errorf("build nats-server: %v\n%s", err, buf.String())
			return
		}
		natsServerOnce.path = out
	})
	return natsServerOnce.path, natsServerOnce.err
}

// startNATSCluster starts the three nodes and the store, and waits until
// JetStream answers (a meta leader is elected).
func (e *env) startNATSCluster(ctx context.Context, name string) (c *natsCluster, err error) {
	bin, err := e.natsServerBinary()
	if err != nil {
		return nil, err
	}
	c = &natsCluster{e: e, name: name, dir: filepath.Join(e.tmp, name), password: map[string]string{}, started: map[string]int{}}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, err
	}
	for _, u := range bus.Users {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		c.password[u] = hex.EncodeToString(b)
	}
	auth := bus.ServerConfig(func(u string) string { return strconv.Quote(c.password[u]) })
	addrs, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats-route://"+addrs[3+i])
	}
	for i := range 3 {
		conf := fmt.Sprintf(`server_name: n%d
listen: %q
max_payload: 8MB
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 4GB
  sync_interval: always
}
cluster {
  name: gnome-bench
  listen: %q
  routes: [%s]
}
%s`, i+1, addrs[i], filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), addrs[3+i], strings.Join(routes, ", "), auth)
		path := filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		p, err := startProc(fmt.Sprintf("nats-server n%d", i+1), bin, []string{"-c", path}, cleanEnv(os.Environ()),
			filepath.Join(e.tmp, fmt.Sprintf("%s-nats-%d.log", name, i+1)))
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, p)
		c.urls = append(c.urls, "nats://"+addrs[i])
	}
	for i, p := range c.nodes {
		if err := waitListening(ctx, addrs[i], 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", p.name, err, p.tail())
		}
	}
	// The store only: with NATS_URL set, --infra-only embeds no NATS.
	c.mongoURI = "mongodb://" + addrs[6] + "/"
	c.store, err = startProc("gnome infra (store)", e.gnomeBin, []string{"serve", "--infra-only"},
		append(cleanEnv(os.Environ()), "DATA_DIR="+filepath.Join(c.dir, "store"), "LOG_LEVEL=WARNING",
			"NATS_URL="+strings.Join(c.urls, ","), "EMBEDDED_STORE_ADDR="+addrs[6]),
		filepath.Join(e.tmp, name+"-store.log"))
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, addrs[6], 60*time.Second); err != nil {
		return nil, fmt.Errorf("store: %w\n%s", err, c.store.tail())
	}
	c.nc, err = nats.Connect(strings.Join(c.urls, ","), nats.Name("gnome-bench"), nats.Timeout(5*time.Second),
		nats.UserInfo(bus.Admin, c.password[bus.Admin]))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	for end := time.Now().Add(60 * time.Second); ; {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || time.Now().After(end) {
			return nil, fmt.Errorf("JetStream of the three-node cluster not ready in 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startService starts one more instance of binary svc on the cluster, as
// its own bus user, with three replicas for everything it provisions. An
// edge gets a fresh HTTP address and is waited for.
func (c *natsCluster) startService(ctx context.Context, svc string) error {
	c.started[svc]++
	n := c.started[svc]
	env := append(cleanEnv(os.Environ()),
		"DATA_DIR="+filepath.Join(c.dir, fmt.Sprintf("%s-%d", svc, n)), "LOG_LEVEL=WARNING", "MAX_UPLOAD_SIZE_MB=128",
		"ADMIN_EMAIL="+benchAdmin, "ADMIN_PASSWORD="+benchPassword, "TRUSTED_PROXIES=127.0.0.1/32",
		"NATS_URL="+strings.Join(c.urls, ","), "NATS_USER="+svc, "NATS_PASSWORD="+c.password[svc], "NATS_REPLICAS=3",
		"MONGO_URI="+c.mongoURI, "SECRET_KEY=bench-secret-key-0123456789abcdef0123")
	base := ""
	if svc == "edge" {
		a, err := freePorts(1)
		if err != nil {
			return err
		}
		env, base = append(env, "HTTP_ADDR="+a[0]), "http://"+a[0]
	}
	p, err := startProc(fmt.Sprintf("%s %d", svc, n), filepath.Join(filepath.Dir(c.e.gnomeBin), svc), nil, env,
		filepath.Join(c.e.tmp, fmt.Sprintf("%s-%s-%d.log", c.name, svc, n)))
	if err != nil {
		return err
	}
	c.services = append(c.services, p)
	if base != "" {
		if _, err := p.waitReady(ctx, base+"/health", 10*time.Millisecond, 90*time.Second); err != nil {
			return err
		}
		c.edges = append(c.edges, base)
	}
	return nil
}

// waitInstances waits until n instances of each of services answer on the
// bus, so that a measurement does not start while one is still starting.
func (c *natsCluster) waitInstances(ctx context.Context, n int, services ...string) error {
	var last map[string]int
	for end := time.Now().Add(90 * time.Second); time.Now().Before(end); {
		found, _ := bus.Discover(ctx, c.nc, 100*time.Millisecond, time.Second)
		last = map[string]int{}
		ok := true
		for _, s := range services {
			last[s] = len(found[s])
			ok = ok && len(found[s]) >= n
		}
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("want %d instance(s) of %v on the bus within 90 s, have %v", n, services, last)
}

// stop stops the services (the last started first), the store, then the
// nodes.
func (c *natsCluster) stop() {
	if c.nc != nil {
		c.nc.Close()
	}
	for i := len(c.services) - 1; i >= 0; i-- {
		c.services[i].stop(30 * time.Second)
	}
	if c.store != nil {
		c.store.stop(30 * time.Second)
	}
	for _, p := range c.nodes {
		p.stop(30 * time.Second)
	}
}

// scaleServices are the binaries the scaling benchmark runs one, then two,
// instances of; the edge comes last, when the others can answer it.
var scaleServices = []string{"auth", "upload", "export", "actorworker", "edge"}

// benchScale loads GET /api/me and the echo actor's route on the
// three-node cluster with one instance of each service, then with two (the
// second edge shares the load: the generator's requests alternate between
// the edges over the same number of connections), and reports the second
// against the first: the scaling ratio. The actor runs one instance, then
// (experiment benchSlug2) two, one on each worker.
func benchScale(ctx context.Context, e *env) (*outcome, error) {
	c, err := e.startNATSCluster(ctx, "scale")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	for _, s := range scaleServices {
		if err := c.startService(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := c.waitInstances(ctx, 1, "auth", "upload", "export", "actorworker"); err != nil {
		return nil, err
	}
	token, err := loginRetry(ctx, c.edges[0], "198.51.100.40")
	if err != nil {
		return nil, err
	}
	if err := e.uploadActorAs(ctx, c.edges[0], token, benchSlug, "active", 1); err != nil {
		return nil, err
	}
	if _, _, err := pollOK(ctx, pingURL(c.edges[0]), 20*time.Millisecond, 60*time.Second); err != nil {
		return nil, err
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	out := &outcome{}
	measure := func(label string, urls []string, header http.Header) (loadResult, error) {
		var runs []loadResult
		for round := 1; round <= e.rounds; round++ {
			r, err := e.measureTargets(ctx, urls, header)
			if err != nil {
				return loadResult{}, fmt.Errorf("%s: %w", label, err)
			}
			e.logf("round %d %s: %s", round, label, r)
			out.raw = append(out.raw, fmt.Sprintf("round %d, %s: %s", round, label, r))
			runs = append(runs, r)
		}
		return best(runs), nil
	}
	me1, err := measure("GET /api/me, one of each", []string{c.edges[0] + "/api/me"}, auth)
	if err != nil {
		return nil, err
	}
	actor1, err := measure("echo actor route, one of each", []string{pingURL(c.edges[0])}, nil)
	if err != nil {
		return nil, err
	}

	for _, s := range scaleServices {
		if err := c.startService(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := c.waitInstances(ctx, 2, "auth", "upload", "export", "actorworker"); err != nil {
		return nil, err
	}
	if err := e.uploadActorAs(ctx, c.edges[0], token, benchSlug2, "active", 2); err != nil {
		return nil, err
	}
	if err := e.bothInstancesServe(ctx, c.edges[0]); err != nil {
		return nil, err
	}
	// Edge 2 accepts the session token (it verifies it on its own).
	if _, _, err := pollOKHeader(ctx, c.edges[1]+"/api/me", auth, 30*time.Second); err != nil {
		return nil, err
	}
	me2, err := measure("GET /api/me, two of each", []string{c.edges[0] + "/api/me", c.edges[1] + "/api/me"}, auth)
	if err != nil {
		return nil, err
	}
	actor2, err := measure("echo actor route, two of each", []string{pingURLOf(c.edges[0], benchSlug2), pingURLOf(c.edges[1], benchSlug2)}, nil)
	if err != nil {
		return nil, err
	}

	// The same load on one edge alone, the other instances idle beside it:
	// how much of the difference is splitting the load over two edges
	// rather than the extra processes being there (and whether edge 2 is
	// as fast as edge 1 on its own).
	for _, x := range []struct{ label, url string }{
		{"GET /api/me, two of each, edge 1 only", c.edges[0] + "/api/me"},
		{"echo actor route, two of each, edge 1 only", pingURLOf(c.edges[0], benchSlug2)},
		{"GET /api/me, two of each, edge 2 only", c.edges[1] + "/api/me"},
	} {
		r, err := e.measureTargets(ctx, []string{x.url}, auth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", x.label, err)
		}
		e.logf("%s: %s", x.label, r)
		out.raw = append(out.raw, fmt.Sprintf("%s (one run): %s", x.label, r))
	}

	how := fmt.Sprintf("best of %d, %d conns", e.rounds, e.conns)
	ref := "one instance of each service"
	for _, x := range []struct {
		name     string
		one, two loadResult
	}{{"GET /api/me", me1, me2}, {"echo actor route", actor1, actor2}} {
		out.rows = append(out.rows,
			row{metric: fmt.Sprintf("%s req/s, two of each (%s)", x.name, how), unit: unitRate, got: x.two.rps, ref: x.one.rps, refName: ref, target: noTarget()},
			row{metric: x.name + " p50, two of each", unit: unitDur, got: float64(x.two.p50), ref: float64(x.one.p50), refName: ref, target: noTarget()},
			row{metric: x.name + " p99, two of each", unit: unitDur, got: float64(x.two.p99), ref: float64(x.one.p99), refName: ref, target: noTarget()},
			row{metric: x.name + " success, two of each (worst run)", unit: unitPct, got: x.two.success, ref: x.one.success, refName: ref, target: bothFull()},
		)
	}
	out.raw = append(out.raw, fmt.Sprintf("cluster: three nats-server nodes (JetStream, NATS_REPLICAS=3, sync_interval always) and the store of gnome serve --infra-only; "+
		"services %v as separate processes; the load generator, every process and the three nodes share this machine's %d CPUs", scaleServices, runtime.NumCPU()))
	return out, nil
}

// pollOKHeader polls GET url with header until it answers 200.
func pollOKHeader(ctx context.Context, url string, header http.Header, limit time.Duration) (int, time.Duration, error) {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	start := time.Now()
	for i := 1; time.Since(start) < limit; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header = header.Clone()
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return i, time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return i, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, 0, fmt.Errorf("%s did not answer 200 within %s", url, limit)
}

// loginRetry signs in as the bench admin, retrying while the auth service
// (and its seeding of the admin) may still be starting.
func loginRetry(ctx context.Context, base, ip string) (string, error) {
	var err error
	for range 300 {
		var token string
		if token, _, err = login(ctx, base, ip); err == nil {
			return token, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("sign in: %w", err)
}

// measureTargets is measureServer over several URLs (one per edge): the
// workers take them in turn, over -conns connections in all, and the
// latencies of every edge go into one distribution.
func (e *env) measureTargets(ctx context.Context, urls []string, header http.Header) (loadResult, error) {
	targets := make([]vegeta.Target, len(urls))
	for i, u := range urls {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: u, Header: header}
	}
	// Each host gets its share of the connections, and no more.
	client := loadClient((e.conns + len(urls) - 1) / len(urls))
	defer client.CloseIdleConnections()
	if e.warmup > 0 {
		if _, err := hammerTargets(ctx, client, targets, e.conns, e.warmup); err != nil {
			return loadResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	return hammerTargets(ctx, client, targets, e.conns, e.duration)
}

// hammerTargets is hammer with the targets taken in turn.
func hammerTargets(ctx context.Context, client *http.Client, targets []vegeta.Target, conns int, du time.Duration) (loadResult, error) {
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(conns)),
		vegeta.MaxWorkers(uint64(conns)),
		vegeta.Connections(conns),
		vegeta.MaxConnections(conns),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
	)
	pacer := boundedPacer{max: uint64(du.Seconds()*maxRequestsPerSecond) + 1}
	watchdog := time.AfterFunc(du+30*time.Second, func() { atk.Stop() })
	defer watchdog.Stop()
	stopOnCancel := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stopOnCancel()

	var m vegeta.Metrics
	lat := make([]time.Duration, 0, 1<<16)
	for res := range atk.Attack(vegeta.NewStaticTargeter(targets...), pacer, du, "") {
		m.Add(res)
		lat = append(lat, res.Latency)
	}
	m.Close()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	if m.Requests == 0 {
		return loadResult{}, fmt.Errorf("no request completed against %s", targets[0].URL)
	}
	slices.Sort(lat)
	return loadResult{
		requests: m.Requests, success: m.Success, rps: m.Throughput,
		p50: quantile(lat, 0.50), p99: quantile(lat, 0.99),
		codes: m.StatusCodes, errors: m.Errors,
	}, nil
}

// Small exports: smallExports experiments of about 256 KB (one page and
// one incompressible file), each exported once as upload-ready,
// exportConcurrency at a time, all within exportLimit.
const (
	smallExports      = 48
	exportConcurrency = 4
	exportLimit       = 60 * time.Second
)

// benchClusterExport measures small upload-ready exports per second, from
// the first POST to the last one ready, on the three-node cluster (one
// instance of each service) against gnome serve with its embedded NATS
// and store. The two run one after the other, never at once.
func benchClusterExport(ctx context.Context, e *env) (*outcome, error) {
	out := &outcome{}
	g, err := e.startAccounts(ctx, "cxembedded")
	if err != nil {
		return nil, err
	}
	emb, err := e.smallExportRun(ctx, "http://"+g.httpAddr)
	g.stop(30 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("gnome serve: %w", err)
	}
	e.logf("gnome serve: %s", emb)

	c, err := e.startNATSCluster(ctx, "cxcluster")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	for _, s := range []string{"auth", "upload", "export", "edge"} {
		if err := c.startService(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := c.waitInstances(ctx, 1, "auth", "upload", "export"); err != nil {
		return nil, err
	}
	clu, err := e.smallExportRun(ctx, c.edges[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	e.logf("cluster: %s", clu)

	ref := "gnome serve (embedded NATS and store)"
	what := fmt.Sprintf("%d small upload-ready exports, %d at a time", smallExports, exportConcurrency)
	out.rows = []row{
		{metric: what + ", exports/s on the three-node cluster", unit: unitRate, got: clu.rate(), ref: emb.rate(), refName: ref, target: noTarget()},
		{metric: "small export POST → ready p50, cluster", unit: unitDur, got: float64(clu.p50()), ref: float64(emb.p50()), refName: ref, target: noTarget()},
		{metric: "small export POST → ready p99, cluster", unit: unitDur, got: float64(clu.p99()), ref: float64(emb.p99()), refName: ref, target: noTarget()},
	}
	out.raw = []string{"gnome serve: " + emb.String(), "three-node cluster (NATS_REPLICAS=3, one of each service): " + clu.String(),
		"each export is polled every 20 ms (GET /api/exports/{id}), so a single POST → ready is known to within that"}
	return out, nil
}

// exportRun is one side of the small export benchmark.
type exportRun struct {
	wall  time.Duration
	times []time.Duration // sorted
}

func (r exportRun) rate() float64      { return float64(len(r.times)) / r.wall.Seconds() }
func (r exportRun) p50() time.Duration { return quantile(r.times, 0.5) }
func (r exportRun) p99() time.Duration { return quantile(r.times, 0.99) }
func (r exportRun) String() string {
	return fmt.Sprintf("%d exports in %s (%.1f/s), POST → ready p50 %s p99 %s", len(r.times), fmtDur(r.wall), r.rate(), fmtDur(r.p50()), fmtDur(r.p99()))
}

// smallExportRun signs in at base, uploads the small experiments, exports
// one first (discarded: the first export pays for connections and
// provisioning), then the rest exportConcurrency at a time.
func (e *env) smallExportRun(ctx context.Context, base string) (exportRun, error) {
	ctx, cancel := context.WithTimeout(ctx, exportLimit+60*time.Second)
	defer cancel()
	token, err := loginRetry(ctx, base, "198.51.100.41")
	if err != nil {
		return exportRun{}, err
	}
	slugs := make([]string, smallExports+1)
	for i := range slugs {
		slugs[i] = fmt.Sprintf("bench-small-export-%02d", i)
		path := filepath.Join(e.tmp, slugs[i]+".zip")
		if err := experimentZip(path, slugs[i], 64<<10, uint64(100+i)); err != nil {
			return exportRun{}, err
		}
		status, body, err := postZip(ctx, base, token, path)
		os.Remove(path)
		if err != nil || status != http.StatusCreated {
			return exportRun{}, fmt.Errorf("upload %s: %d %v %s", slugs[i], status, err, body)
		}
	}
	if _, err := exportTyped(ctx, base, token, slugs[0], "upload-ready"); err != nil {
		return exportRun{}, fmt.Errorf("warm-up export: %w", err)
	}
	ectx, ecancel := context.WithTimeout(ctx, exportLimit)
	defer ecancel()
	var (
		mu    sync.Mutex
		run   exportRun
		first error
		wg    sync.WaitGroup
	)
	next := make(chan string)
	start := time.Now()
	for range exportConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slug := range next {
				d, err := exportTyped(ectx, base, token, slug, "upload-ready")
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				run.times = append(run.times, d)
				mu.Unlock()
			}
		}()
	}
	for _, s := range slugs[1:] {
		next <- s
	}
	close(next)
	wg.Wait()
	run.wall = time.Since(start)
	if first != nil {
		return exportRun{}, first
	}
	slices.Sort(run.times)
	return run, nil
}

// exportTyped asks for an export of type typ of slug and polls it every
// 20 ms until it is ready, timing POST to ready; ctx bounds it.
func exportTyped(ctx context.Context, base, token, slug, typ string) (time.Duration, error) {
	start := time.Now()
	status, body, err := apiCall(ctx, http.MethodPost, base+"/api/experiments/"+slug+"/exports", token, `{"type":"`+typ+`"}`)
	if err != nil || (status != http.StatusAccepted && status != http.StatusOK) {
		return 0, fmt.Errorf("POST %s export of %s: %d %v %s", typ, slug, status, err, body)
	}
	var v exportView
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		var wrapped struct{ Export exportView }
		if json.Unmarshal(body, &wrapped) != nil || wrapped.Export.ID == "" {
			return 0, fmt.Errorf("POST export of %s: no id in %s", slug, body)
		}
		v = wrapped.Export
	}
	for v.Status != "ready" {
		if v.Status == "failed" || v.Status == "invalidated" {
			return 0, fmt.Errorf("export %s of %s ended %s: %s", v.ID, slug, v.Status, v.Error)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("export %s of %s not ready (%s): %w", v.ID, slug, v.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		status, body, err := apiCall(ctx, http.MethodGet, base+"/api/exports/"+v.ID, token, "")
		if err != nil || status != http.StatusOK {
			return 0, fmt.Errorf("GET export %s: %d %v %s", v.ID, status, err, body)
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return 0, fmt.Errorf("GET export %s: %w", v.ID, err)
		}
	}
	return time.Since(start), nil
}
