package svc_test

import (
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBaseLifeCycle(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	handled := make(chan string, 1)
	var provisioned int
	b := &svc.Base{
		Deps: d, ServiceName: "probe", Description: "test service",
		Provision: func(ctx context.Context) error {
			provisioned++
			return d.Topology.EnsureStreams(ctx, bus.StreamExportJobs)
		},
		Endpoints: func(srv *bus.Server) error {
			return srv.Handle("echo", bus.JSON(func(_ context.Context, s string) (string, error) { return "echo " + s, nil }))
		},
		Workers: func(ctx context.Context) ([]*jobs.Worker, error) {
			q := jobs.NewQueue(d.JS, bus.StreamExportJobs, "jobs.export")
			w, err := q.NewWorker(ctx, jobs.WorkerOptions{Durable: "probe", Log: d.Log}, func(_ context.Context, j *jobs.Job) error {
				handled <- j.ID
				return nil
			})
			if err != nil {
				return nil, err
			}
			return []*jobs.Worker{w}, nil
		},
	}
	g := &svc.Group{Log: d.Log, Services: []svc.Service{b}}
	if err := g.Start(timeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = g.Stop(context.Background())
		}
	})
	if provisioned != 1 || b.Name() != "probe" {
		t.Errorf("provisioned %d times, name %q", provisioned, b.Name())
	}

	st, err := bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject("probe", "status"), struct{}{})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Service != "probe" || st.Instance != d.InstanceID || st.ID != b.Server.ID() || st.Version != buildinfo.Version || st.StartedAt.IsZero() {
		t.Errorf("status %+v", st)
	}
	if got, err := bus.Call[string](timeout(t, 5*time.Second), d.NC, bus.Subject("probe", "echo"), "hi"); err != nil || got != "echo hi" {
		t.Errorf("echo: %q, %v", got, err)
	}
	q := jobs.NewQueue(d.JS, bus.StreamExportJobs, "jobs.export")
	if _, err := q.Enqueue(timeout(t, 5*time.Second), "standalone", "job-1", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-handled:
		if id != "job-1" {
			t.Errorf("worker handled %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service's worker did not run the job")
	}

	if err := g.Stop(timeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	_, err = bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject("probe", "status"), struct{}{})
	if !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("status after Stop: %v, want no responders", err)
	}
}

func TestBaseStartFailures(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		b    *svc.Base
	}{
		{"provision", &svc.Base{Deps: d, ServiceName: "failp", Provision: func(context.Context) error { return boom }}},
		{"endpoints", &svc.Base{Deps: d, ServiceName: "faile", Endpoints: func(*bus.Server) error { return boom }}},
		{"workers", &svc.Base{Deps: d, ServiceName: "failw", Workers: func(context.Context) ([]*jobs.Worker, error) { return nil, boom }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.Start(timeout(t, 10*time.Second)); !errors.Is(err, boom) {
				t.Fatalf("Start = %v, want the %s error", err, tc.name)
			}
			_, err := bus.Call[contract.Status](timeout(t, 5*time.Second), d.NC, bus.Subject(tc.b.ServiceName, "status"), struct{}{})
			if ae := apierr.From(err); ae.Code != apierr.CodeUnavailable {
				t.Errorf("a service that failed to start still answers: %v", err)
			}
		})
	}
}

// recording is a service that notes its life cycle in a shared journal.
type recording struct {
	name    string
	failOn  string
	journal *[]string
	mu      *sync.Mutex
}

func (r recording) Name() string { return r.name }

func (r recording) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.journal = append(*r.journal, s)
}

func (r recording) Start(context.Context) error {
	if r.failOn == "start" {
		return errors.New("cannot start")
	}
	r.note("start " + r.name)
	return nil
}

func (r recording) Stop(context.Context) error {
	r.note("stop " + r.name)
	if r.failOn == "stop" {
		return errors.New("cannot stop")
	}
	return nil
}

func TestGroupOrder(t *testing.T) {
	log := telemetry.NewLogger(io.Discard, "ERROR", "text")
	var journal []string
	var mu sync.Mutex
	svcs := func(failing, failOn string) []svc.Service {
		var out []svc.Service
		for _, n := range []string{"a", "b", "c"} {
			r := recording{name: n, journal: &journal, mu: &mu}
			if n == failing {
				r.failOn = failOn
			}
			out = append(out, r)
		}
		return out
	}

	g := &svc.Group{Log: log, Services: svcs("", "")}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}; !slices.Equal(journal, want) {
		t.Errorf("journal %v, want %v", journal, want)
	}
	if err := g.Stop(context.Background()); err != nil || len(journal) != 6 {
		t.Errorf("a second Stop stopped again: %v %v", err, journal)
	}

	journal = nil
	g = &svc.Group{Log: log, Services: svcs("c", "start")}
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start c") {
		t.Fatalf("Start = %v, want an error naming c", err)
	}
	if want := []string{"start a", "start b", "stop b", "stop a"}; !slices.Equal(journal, want) {
		t.Errorf("journal %v, want %v", journal, want)
	}

	journal = nil
	g = &svc.Group{Log: log, Services: svcs("b", "stop")}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = g.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stop b") {
		t.Errorf("Stop = %v, want an error naming b", err)
	}
	if want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}; !slices.Equal(journal, want) {
		t.Errorf("a failing Stop must not keep the others running: journal %v", journal)
	}
}

func TestNewInstanceID(t *testing.T) {
	host, _ := os.Hostname()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(host) + "-" + strconv.Itoa(os.Getpid()) + "-[0-9a-f]{6}$")
	a, b := svc.NewInstanceID(), svc.NewInstanceID()
	if !re.MatchString(a) {
		t.Errorf("instance ID %q is not host-pid-random", a)
	}
	if a == b {
		t.Error("two instance IDs are equal")
	}
}

func TestDepsCloseDisconnects(t *testing.T) {
	env := testenv.Start(t)
	d := env.Deps(t, env.Config(t, nil))
	if err := d.Store.Ping(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	d.Close(timeout(t, 10*time.Second))
	if !d.NC.IsClosed() {
		t.Error("NATS connection still open after Close")
	}
	if err := d.Store.Ping(timeout(t, 5*time.Second)); err == nil {
		t.Error("database still reachable after Close")
	}
}
