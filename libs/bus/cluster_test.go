package bus_test

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
)

// startCluster starts three clustered JetStream servers on loopback, all
// at once, and returns their client URLs without waiting for the cluster
// to elect its leaders: what a fresh deployment's services meet.
func startCluster(t *testing.T) []string {
	t.Helper()
	routes := make([]*url.URL, 3)
	ports := make([]string, 3)
	for i := range routes {
		addr := freeLoopbackAddr(t)
		routes[i] = &url.URL{Scheme: "nats-route", Host: addr}
		ports[i] = addr[strings.LastIndex(addr, ":")+1:]
	}
	srvs := make([]*server.Server, 3)
	var wg sync.WaitGroup
	for i := range srvs {
		var port int
		fmt.Sscan(ports[i], &port)
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"), JetStreamMaxMemory: 64 << 20,
			Cluster: server.ClusterOpts{Name: "gnome-test", Host: "127.0.0.1", Port: port},
			Routes:  routes, NoSigs: true, NoLog: true,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srvs[i] = s
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		wg.Add(1)
		go func() { defer wg.Done(); s.Start() }()
	}
	wg.Wait()
	urls := make([]string, 3)
	for i, s := range srvs {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d did not accept connections", i+1)
		}
		urls[i] = s.ClientURL()
	}
	return urls
}

// Ten instances provisioning the whole topology with three replicas at the
// moment a three-node cluster starts: JetStream has no leader yet and
// creating one replicated resource from several clients at once may time
// out; every instance must get there within its bound.
func TestProvisionOnAFreshClusterFromManyInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	urls := startCluster(t)
	ncs := make([]*nats.Conn, 10)
	for i := range ncs {
		nc, err := bus.Connect(urls[i%3], fmt.Sprintf("instance-%d", i), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		ncs[i] = nc
	}
	errs := make([]error, len(ncs))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, nc := range ncs {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		top := bus.Topology{JS: js, Replicas: 3, Bound: 2 * time.Minute, Retrying: func(kind, name string, n int, err error) { t.Logf("%d: %s %s attempt %d: %v", i, kind, name, n, err) }}
		if i%2 == 1 {
			top.Service = "edge"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = provisionAll(timeout(t, 3*time.Minute), top)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	checkTopology(t, ncs[0])
	js, _ := jetstream.New(ncs[0])
	s, err := js.Stream(timeout(t, 10*time.Second), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("stream %s has %d replicas, want 3", bus.StreamEvents, r)
	}
}
