package bus_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// Ten instances provisioning the whole topology with three replicas at the
// moment a three-node cluster starts: JetStream has no leader yet and
// creating one replicated resource from several clients at once may time
// out; every instance must get there within its bound.
func TestProvisionOnAFreshClusterFromManyInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	urls := testenv.StartCluster(t)
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
