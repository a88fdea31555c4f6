package testenv

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartCluster starts three clustered JetStream servers on loopback (no
// credentials), all at once, and returns their client URLs without
// waiting for the cluster to elect its leaders: what a fresh deployment's
// services meet. They stop when the test ends.
func StartCluster(t testing.TB) []string {
	t.Helper()
	srvs := StartClusterServers(t)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	return urls
}

// StartClusterServers is StartCluster with the servers themselves (named
// n1, n2, n3), for tests that stop one.
func StartClusterServers(t testing.TB) []*server.Server {
	t.Helper()
	routes := make([]*url.URL, 3)
	ports := make([]int, 3)
	for i := range routes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes[i] = &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(ports[i])}
	}
	srvs := make([]*server.Server, 3)
	var wg sync.WaitGroup
	for i := range srvs {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"), JetStreamMaxMemory: 64 << 20,
			Cluster: server.ClusterOpts{Name: "gnome-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes, NoSigs: true, NoLog: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		srvs[i] = s
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		wg.Add(1)
		go func() { defer wg.Done(); s.Start() }()
	}
	wg.Wait()
	for i, s := range srvs {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d did not accept connections", i+1)
		}
	}
	return srvs
}
