package svc_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// gatedService is ready only once its gate opens: its instance is up but
// still provisioning meanwhile.
type gatedService struct {
	d    *svc.Deps
	gate chan struct{}
}

func (g *gatedService) Name() string { return "auth" }

func (g *gatedService) Start(ctx context.Context) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.d.Topology.EnsureBuckets(ctx, bus.BucketRevokedTokens)
}

func (g *gatedService) Stop(context.Context) error { return nil }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func fetch(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// A service binary (svc.Run, what svc.Main runs) serves /metrics and
// /health on METRICS_ADDR, not ready until its services have started, and
// its probe subcommand exits 0 only while that /health is 200.
func TestServiceBinaryIsObservable(t *testing.T) {
	env := testenv.Start(t)
	addr := freeAddr(t)
	cfg := env.Config(t, map[string]string{"METRICS_ADDR": addr, "NATS_URL": env.BusURL})
	load := func() (*config.Config, error) { c := *cfg; return &c, nil }
	probe := func() int { return svc.Run(context.Background(), "auth", []string{"probe"}, load, nil) }

	if code := probe(); code != 1 {
		t.Errorf("probe with nothing listening = %d, want 1", code)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	gate := make(chan struct{})
	exited := make(chan int, 1)
	go func() {
		exited <- svc.Run(ctx, "auth", nil, load, func(d *svc.Deps) []svc.Service {
			return []svc.Service{&gatedService{d: d, gate: gate}}
		})
	}()
	base := "http://" + addr
	var status int
	var body string
	eventually(t, "the metrics listener", func() bool {
		var err error
		status, body, err = fetch(t, base+"/health")
		return err == nil
	})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("/health while starting = %d %s, want 503 starting", status, body)
	}
	if code := probe(); code != 1 {
		t.Errorf("probe while starting = %d, want 1", code)
	}
	close(gate)
	eventually(t, "/health to be ready", func() bool {
		status, _, _ = fetch(t, base+"/health")
		return status == http.StatusOK
	})
	if code := probe(); code != 0 {
		t.Errorf("probe of a ready instance = %d, want 0", code)
	}
	status, body, err := fetch(t, base+"/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("/metrics = %d, %v", status, err)
	}
	for _, want := range []string{"go_goroutines", "gnome_db_pool_open"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// A scraper from elsewhere (forwarded through a proxy nobody vouched
	// for) needs the token, as on the edge.
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("/metrics for an unknown client: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("the service exited %d after a graceful stop", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop")
	}
	if code := probe(); code != 1 {
		t.Errorf("probe after the stop = %d, want 1", code)
	}
	if code := svc.Run(context.Background(), "auth", []string{"nonsense"}, load, nil); code != 2 {
		t.Errorf("an unknown argument exits %d, want 2", code)
	}
}

// eventually polls cond every 20 ms for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A service binary started before its NATS server waits for it, not ready
// meanwhile, rather than exiting; it becomes ready once the server is up.
func TestServiceBinaryWaitsForALateBus(t *testing.T) {
	env := testenv.Start(t)
	dataDir := t.TempDir()
	natsDir := filepath.Join(dataDir, "nats")
	// The credentials exist before the server, where a binary started
	// beside `gnome serve --infra-only` finds them.
	if _, err := embedded.LoadCredentials(filepath.Join(natsDir, embedded.CredentialsDir)); err != nil {
		t.Fatal(err)
	}
	natsAddr, metricsAddr := freeAddr(t), freeAddr(t)
	cfg := env.Config(t, map[string]string{"METRICS_ADDR": metricsAddr, "NATS_URL": "nats://" + natsAddr, "DATA_DIR": dataDir, "PROVISION_TIMEOUT_SECONDS": "120"})
	load := func() (*config.Config, error) { c := *cfg; return &c, nil }
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- svc.Run(ctx, "auth", nil, load, func(d *svc.Deps) []svc.Service {
			gate := make(chan struct{})
			close(gate)
			return []svc.Service{&gatedService{d: d, gate: gate}}
		})
	}()
	base := "http://" + metricsAddr
	var status int
	eventually(t, "the metrics listener", func() bool {
		var err error
		status, _, err = fetch(t, base+"/health")
		return err == nil
	})
	if status != http.StatusServiceUnavailable {
		t.Errorf("/health without a bus = %d, want 503", status)
	}
	select {
	case code := <-exited:
		t.Fatalf("the service exited (%d) while its bus was not up yet", code)
	default:
	}
	srv, err := embedded.StartNATS(natsDir, natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	eventually(t, "/health to be ready once the bus is up", func() bool {
		status, _, _ = fetch(t, base+"/health")
		return status == http.StatusOK
	})
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("the service exited %d after a graceful stop", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop")
	}
}

// A service binary started before its database waits for it too, not
// ready meanwhile.
func TestServiceBinaryWaitsForALateStore(t *testing.T) {
	env := testenv.Start(t)
	storeAddr, metricsAddr := freeAddr(t), freeAddr(t)
	cfg := env.Config(t, map[string]string{
		"METRICS_ADDR": metricsAddr, "NATS_URL": env.BusURL, "MONGO_URI": "mongodb://" + storeAddr + "/",
		"PROVISION_TIMEOUT_SECONDS": "120",
	})
	load := func() (*config.Config, error) { c := *cfg; return &c, nil }
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- svc.Run(ctx, "auth", nil, load, func(d *svc.Deps) []svc.Service {
			gate := make(chan struct{})
			close(gate)
			return []svc.Service{&gatedService{d: d, gate: gate}}
		})
	}()
	base := "http://" + metricsAddr
	var status int
	eventually(t, "the metrics listener", func() bool {
		var err error
		status, _, err = fetch(t, base+"/health")
		return err == nil
	})
	if status != http.StatusServiceUnavailable {
		t.Errorf("/health without a database = %d, want 503", status)
	}
	st, err := embedded.StartStore(filepath.Join(t.TempDir(), "db"), storeAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Shutdown)
	eventually(t, "/health to be ready once the database is up", func() bool {
		select {
		case code := <-exited:
			t.Fatalf("the service exited (%d) while waiting for its database", code)
		default:
		}
		status, _, _ = fetch(t, base+"/health")
		return status == http.StatusOK
	})
	stop()
	if code := <-exited; code != 0 {
		t.Errorf("the service exited %d after a graceful stop", code)
	}
}
