package svc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Observer serves a service binary's /metrics and /health on METRICS_ADDR,
// a listener of its own: every separately deployed service can be scraped
// and health-checked, not only the edge. /health is 503 until the services
// have started (provisioning may still be retrying), while NATS or the
// database does not answer, and once the process is stopping.
type Observer struct {
	app   *fiber.App
	ln    net.Listener
	check atomic.Pointer[func(context.Context) error]
	done  chan struct{}
}

// errStarting is /health's reason before Ready.
var errStarting = errors.New("starting")

// Observe listens on addr and serves tel's registry at /metrics, to the
// clients the settings allow as the edge's /metrics does (loopback,
// METRICS_ALLOWED_CIDRS, METRICS_TOKEN), and /health, not ready until
// Ready is called.
func Observe(addr string, cfg *config.Config, tel *telemetry.Telemetry) (*Observer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
	}
	o := &Observer{ln: ln, done: make(chan struct{})}
	o.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          httpx.ErrorHandler(nil),
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
	})
	o.app.Get("/metrics", httpx.MetricsHandler(tel.Registry, cfg.MetricsAllowed, httpx.WithMetricsToken(cfg.MetricsToken)))
	o.app.Get("/health", o.health)
	go func() {
		defer close(o.done)
		if err := o.app.Listener(ln); err != nil {
			tel.Logger.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	return o, nil
}

// Addr is where the observer listens (METRICS_ADDR with its port chosen
// when it was 0).
func (o *Observer) Addr() string { return o.ln.Addr().String() }

// Ready makes /health answer 200 while check (Deps.Check) passes.
func (o *Observer) Ready(check func(context.Context) error) { o.check.Store(&check) }

// NotReady makes /health answer 503 again: the process is stopping, and
// load balancers should send it nothing new.
func (o *Observer) NotReady() { o.check.Store(nil) }

func (o *Observer) health(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	err := errStarting
	if f := o.check.Load(); f != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		err = (*f)(ctx)
	}
	if err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "reason": err.Error()})
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

// Close stops the listener within ctx.
func (o *Observer) Close(ctx context.Context) error {
	err := o.app.ShutdownWithContext(ctx)
	<-o.done
	return err
}

// Check reports whether the process's dependencies answer: NATS
// connected, the database pinged.
func (d *Deps) Check(ctx context.Context) error {
	if st := d.NC.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats is %s", st)
	}
	if err := d.Store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// probe asks the /health of the instance running beside it, at
// METRICS_ADDR (a wildcard host is asked on loopback): 0 when it answers
// 200, 1 otherwise. It is a container's health check that needs no shell.
func probe(cfg *config.Config, out io.Writer) int {
	if cfg.MetricsAddr == "" {
		fmt.Fprintln(out, "probe: METRICS_ADDR is not set: the probe asks the /health served there")
		return 1
	}
	host, port, err := net.SplitHostPort(cfg.MetricsAddr)
	if err != nil {
		fmt.Fprintf(out, "probe: METRICS_ADDR %q: %v\n", cfg.MetricsAddr, err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/health")
	if err != nil {
		fmt.Fprintf(out, "probe: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "probe: /health answered %d %s\n", resp.StatusCode, body)
		return 1
	}
	return 0
}
