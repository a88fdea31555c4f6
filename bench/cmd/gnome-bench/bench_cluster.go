package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/bus"
)

// procCluster is the platform as separate processes: gnome serve
// --infra-only (NATS and the store), auth, upload and the edge, with a
// connection to NATS as the admin; actor-workers are started on demand.
// name names its data directory and log files.
type procCluster struct {
	e        *env
	name     string
	dir      string
	svcEnv   []string
	base     string
	nc       *nats.Conn
	workers  []*proc
	started  int // actor-worker processes started, for log names
	stopping []*proc
}

// startProcCluster starts gnome serve --infra-only, auth, upload and the
// edge, and connects to NATS.
func (e *env) startProcCluster(ctx context.Context, name string) (c *procCluster, err error) {
	dir := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addrs, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c = &procCluster{e: e, name: name, dir: dir}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	common := append(cleanEnv(os.Environ()), "DATA_DIR="+dir, "LOG_LEVEL=WARNING",
		"ADMIN_EMAIL="+benchAdmin, "ADMIN_PASSWORD="+benchPassword, "TRUSTED_PROXIES=127.0.0.1/32")
	infra, err := startProc("gnome infra", e.gnomeBin, []string{"serve", "--infra-only"},
		append(slices.Clone(common), "EMBEDDED_NATS_ADDR="+addrs[1], "EMBEDDED_STORE_ADDR="+addrs[2]), filepath.Join(e.tmp, name+"-infra.log"))
	if err != nil {
		return nil, err
	}
	c.stopping = append(c.stopping, infra)
	for _, a := range addrs[1:] {
		if err := waitListening(ctx, a, 60*time.Second); err != nil {
			return nil, fmt.Errorf("gnome serve --infra-only: %w\n%s", err, infra.tail())
		}
	}
	c.svcEnv = append(slices.Clone(common), "NATS_URL=nats://"+addrs[1], "MONGO_URI=mongodb://"+addrs[2]+"/", "SECRET_KEY=bench-secret-key-0123456789abcdef0123")
	binDir := filepath.Dir(e.gnomeBin)
	for _, s := range []string{"auth", "upload"} {
		p, err := startProc(s, filepath.Join(binDir, s), nil, c.svcEnv, filepath.Join(e.tmp, name+"-"+s+".log"))
		if err != nil {
			return nil, err
		}
		c.stopping = append(c.stopping, p)
	}
	edge, err := startProc("edge", filepath.Join(binDir, "edge"), nil, append(slices.Clone(c.svcEnv), "HTTP_ADDR="+addrs[0]), filepath.Join(e.tmp, name+"-edge.log"))
	if err != nil {
		return nil, err
	}
	c.stopping = append(c.stopping, edge)
	c.base = "http://" + addrs[0]
	if _, err := edge.waitReady(ctx, c.base+"/health", 10*time.Millisecond, 60*time.Second); err != nil {
		return nil, err
	}
	auth, err := adminAuth(dir)
	if err != nil {
		return nil, err
	}
	if c.nc, err = nats.Connect("nats://"+addrs[1], nats.Name("gnome-bench"), nats.Timeout(5*time.Second), auth); err != nil {
		return nil, err
	}
	return c, nil
}

// startWorker starts an actor-worker with extraEnv added to the services'
// environment and waits until it answers on the bus as a service, which it
// does just before it takes start jobs.
func (c *procCluster) startWorker(ctx context.Context, extraEnv ...string) (*proc, error) {
	c.started++
	p, err := startProc("actorworker", filepath.Join(filepath.Dir(c.e.gnomeBin), "actorworker"), nil, append(slices.Clone(c.svcEnv), extraEnv...),
		filepath.Join(c.e.tmp, fmt.Sprintf("%s-actorworker-%d.log", c.name, c.started)))
	if err != nil {
		return nil, err
	}
	c.workers = append(c.workers, p)
	mark := "-" + strconv.Itoa(p.cmd.Process.Pid) + "-"
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); {
		found, _ := bus.Discover(ctx, c.nc, 50*time.Millisecond, time.Second)
		for _, in := range found["actorworker"] {
			if strings.Contains(in.Instance, mark) {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.done:
			return nil, fmt.Errorf("actorworker exited: %v\n%s", p.err, p.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("actorworker pid %d never answered on the bus\n%s", p.cmd.Process.Pid, p.tail())
}

// stop stops the workers (at once), then the other processes in the
// reverse of their start.
func (c *procCluster) stop() {
	if c.nc != nil {
		c.nc.Close()
	}
	var wg sync.WaitGroup
	for _, p := range c.workers {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(30 * time.Second) }()
	}
	wg.Wait()
	for i := len(c.stopping) - 1; i >= 0; i-- {
		c.stopping[i].stop(30 * time.Second)
	}
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	for end := time.Now().Add(limit); time.Now().Before(end); {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not accept connections within %s", addr, limit)
}
