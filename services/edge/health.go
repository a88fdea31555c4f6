package edge

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Services are the services a complete platform runs.
var Services = []string{"edge", "auth", "upload", "export", "actorworker"}

// probeEvery is how often the edge checks NATS and the database for /health.
// /health answers from the last probe, so a load balancer's probes and a
// benchmark's load cost the database nothing.
const probeEvery = 500 * time.Millisecond

// healthAPI is the platform's health, for load balancers and people, and
// its metrics, for Prometheus.
type healthAPI struct {
	probe *prober
}

func (h *healthAPI) routes(app *fiber.App) {
	app.Get("/health", h.probe.handleHealth)
	app.Get("/health/detailed", h.probe.handleDetailed)
	app.Get("/metrics", metricsRoute(h.probe.d))
}

// metricsRoute serves the process's metrics to the clients the settings
// allow (loopback and METRICS_ALLOWED_CIDRS, judged by the client address
// behind TRUSTED_PROXIES) and to scrapers with METRICS_TOKEN.
func metricsRoute(d *svc.Deps) fiber.Handler {
	return httpx.MetricsHandler(d.Telemetry.Registry, d.Config.MetricsAllowed, httpx.WithMetricsToken(d.Config.MetricsToken))
}

type prober struct {
	d *svc.Deps
	// isAdmin decides who sees the details of /health/detailed.
	isAdmin func(c *fiber.Ctx) bool
	ok      atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newProber(d *svc.Deps) *prober { return &prober{d: d, done: make(chan struct{})} }

func (p *prober) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.ok.Store(p.probe(ctx))
	go func() {
		defer close(p.done)
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.ok.Store(p.probe(ctx))
			}
		}
	}()
}

func (p *prober) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

func (p *prober) probe(ctx context.Context) bool {
	if p.d.NC.Status() != nats.CONNECTED {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return p.d.Store.Ping(ctx) == nil
}

var (
	healthOK   = []byte(`{"status":"ok"}`)
	healthDown = []byte(`{"status":"unavailable"}`)
)

func (p *prober) handleHealth(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	if p.ok.Load() {
		return c.Send(healthOK)
	}
	return c.Status(fiber.StatusServiceUnavailable).Send(healthDown)
}

// Component is one checked part of the platform in /health/detailed.
type Component struct {
	Status    string         `json:"status"` // ok, degraded, down
	LatencyMS float64        `json:"latency_ms,omitempty"`
	Error     string         `json:"error,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// ServiceHealth lists a service's live instances, and whether a request
// through its queue group is answered.
type ServiceHealth struct {
	Status    string         `json:"status"` // ok when a request through the queue group is answered
	Instances []bus.Instance `json:"instances"`
	LatencyMS float64        `json:"latency_ms,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// Detailed is the body of /health/detailed.
type Detailed struct {
	Status     string                   `json:"status"`
	Version    string                   `json:"version,omitempty"`
	Components map[string]Component     `json:"components"`
	Services   map[string]ServiceHealth `json:"services"`
	CheckedAt  time.Time                `json:"checked_at"`
}

func (p *prober) handleDetailed(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	det := p.detailed(ctx)
	if p.isAdmin == nil || !p.isAdmin(c) {
		det.redact()
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	status := fiber.StatusOK
	if det.Components["database"].Status == "down" || det.Components["nats"].Status == "down" {
		status = fiber.StatusServiceUnavailable
	}
	return c.Status(status).JSON(det)
}

func (p *prober) detailed(ctx context.Context) Detailed {
	d := p.d
	det := Detailed{Status: "ok", Version: d.Version, Components: map[string]Component{}, Services: map[string]ServiceHealth{}, CheckedAt: time.Now().UTC()}
	var mu sync.Mutex
	set := func(name string, c Component) { mu.Lock(); det.Components[name] = c; mu.Unlock() }
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	run(func() {
		t := time.Now()
		err := d.Store.Ping(ctx)
		det := map[string]any{"name": d.Config.MongoDB, "embedded": d.Config.EmbeddedStore()}
		if d.Config.EmbeddedStore() {
			// The engine `gnome serve` chose (EMBEDDED_STORE=auto is
			// resolved at start): what decides which queries stay fast.
			det["engine"] = d.Config.EmbeddedEngine
		}
		set("database", check(err, time.Since(t), det))
	})
	run(func() {
		rtt, err := d.NC.RTT()
		set("nats", check(err, rtt, map[string]any{"embedded": d.Config.EmbeddedNATS(), "servers": len(d.NC.Servers())}))
	})
	run(func() {
		t := time.Now()
		info, err := d.JS.AccountInfo(ctx)
		var det map[string]any
		if err == nil {
			det = map[string]any{"streams": info.Streams, "consumers": info.Consumers, "storage_bytes": info.Store, "memory_bytes": info.Memory}
		}
		set("jetstream", check(err, time.Since(t), det))
	})
	run(func() {
		t := time.Now()
		var det map[string]any
		obs, err := d.JS.ObjectStore(ctx, bus.ObjectBundles)
		if err == nil {
			var st jetstream.ObjectStoreStatus
			if st, err = obs.Status(ctx); err == nil {
				det = map[string]any{"bucket": st.Bucket(), "size_bytes": st.Size(), "replicas": st.Replicas()}
			}
		}
		set("object_store", check(err, time.Since(t), det))
	})
	run(func() {
		var fs syscall.Statfs_t
		err := syscall.Statfs(d.Config.DataDir, &fs)
		c := check(err, 0, nil)
		if err == nil {
			free := fs.Bavail * uint64(fs.Bsize)
			total := fs.Blocks * uint64(fs.Bsize)
			c.Details = map[string]any{"path": d.Config.DataDir, "free_bytes": free, "total_bytes": total}
			if free < 1<<30 {
				c.Status = "degraded"
				c.Error = "less than 1 GiB free"
			}
		}
		set("disk", c)
	})
	run(func() {
		// A failed discovery finds no instances.
		found, _ := bus.Discover(ctx, d.NC, 75*time.Millisecond, time.Second)
		mu.Lock()
		defer mu.Unlock()
		for _, name := range Services {
			sh := det.Services[name]
			sh.Instances = found[name]
			if sh.Instances == nil {
				sh.Instances = []bus.Instance{}
			}
			det.Services[name] = sh
		}
	})
	for _, name := range Services {
		run(func() {
			// The request carries this request's trace, so the answering
			// instance's span joins it.
			t := time.Now()
			_, err := contract.StatusEndpoint(name).Call(ctx, bus.Client{NC: d.NC}, contract.Empty{})
			sh := ServiceHealth{Status: "ok", LatencyMS: float64(time.Since(t).Microseconds()) / 1000}
			if err != nil {
				sh = ServiceHealth{Status: "down", Error: err.Error()}
			}
			mu.Lock()
			defer mu.Unlock()
			cur := det.Services[name]
			sh.Instances = cur.Instances
			det.Services[name] = sh
		})
	}
	wg.Wait()
	for _, c := range det.Components {
		if c.Status != "ok" {
			det.Status = "degraded"
		}
	}
	for _, s := range det.Services {
		if s.Status != "ok" {
			det.Status = "degraded"
		}
	}
	return det
}

// redact keeps what anyone may know: each part's status and each service's
// live instances by their random IDs. Admins also see versions, host names,
// sizes, latencies and error texts.
func (det *Detailed) redact() {
	det.Version = ""
	for name, c := range det.Components {
		det.Components[name] = Component{Status: c.Status}
	}
	for name, sh := range det.Services {
		inst := make([]bus.Instance, len(sh.Instances))
		for i, in := range sh.Instances {
			inst[i] = bus.Instance{Service: in.Service, ID: in.ID}
		}
		det.Services[name] = ServiceHealth{Status: sh.Status, Instances: inst}
	}
}

func check(err error, took time.Duration, details map[string]any) Component {
	c := Component{Status: "ok", LatencyMS: float64(took.Microseconds()) / 1000, Details: details}
	if err != nil {
		c.Status = "down"
		c.Error = err.Error()
	}
	return c
}

// jetStreamCollector exports each platform consumer's pending and
// redelivered counts at scrape time.
type jetStreamCollector struct {
	js          jetstream.JetStream
	pending     *prometheus.Desc
	ackPending  *prometheus.Desc
	redelivered *prometheus.Desc
}

func registerJetStreamCollector(d *svc.Deps) {
	c := &jetStreamCollector{
		js:          d.JS,
		pending:     prometheus.NewDesc("gnome_jetstream_consumer_pending", "Messages not yet delivered to the consumer.", []string{"stream", "consumer"}, nil),
		ackPending:  prometheus.NewDesc("gnome_jetstream_consumer_ack_pending", "Messages delivered and not yet acknowledged.", []string{"stream", "consumer"}, nil),
		redelivered: prometheus.NewDesc("gnome_jetstream_consumer_redelivered", "Messages delivered more than once and not yet acknowledged.", []string{"stream", "consumer"}, nil),
	}
	// A second edge in the same process (tests) finds it registered already.
	_ = d.Telemetry.Registry.Register(c)
}

func (c *jetStreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
}

func (c *jetStreamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{bus.StreamEvents, bus.StreamExportJobs, bus.StreamActorJobs} {
		st, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		infos := st.ListConsumers(ctx)
		for ci := range infos.Info() {
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(ci.NumPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(ci.NumAckPending), name, ci.Name)
			ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), name, ci.Name)
		}
	}
}
