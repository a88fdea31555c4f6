package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"golang.org/x/sync/errgroup"
)

// Live channels (docs/actors.md, section 8): a room's message from one
// browser to many, and the edge's memory per idle connection, with the
// bench/actors/room actor on the platform as separate processes.

const (
	liveSlug = "bench-live"
	// broadcastMembers are the room's members, half on each of two edges.
	broadcastMembers = 1000
	// broadcastRounds are the messages sent to them, one after another.
	broadcastRounds = 40
	// idleConns are the idle WebSockets one edge holds.
	idleConns = 10000
)

var actorBuilds struct {
	sync.Mutex
	wasm map[string][]byte
}

// benchActorWasm is bench/actors/<name> built for the sandbox, once per run,
// as `make examples` builds actors.
func (e *env) benchActorWasm(name string) ([]byte, error) {
	actorBuilds.Lock()
	defer actorBuilds.Unlock()
	if w, ok := actorBuilds.wasm[name]; ok {
		return w, nil
	}
	out := filepath.Join(e.tmp, name+".wasm")
	e.logf("building bench/actors/%s for wasip1", name)
	cmd := exec.Command(e.goCmd, "build", "-buildmode=c-shared", "-trimpath", "-o", out, "github.com/gnome-platform/gnome/bench/actors/"+name)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build bench/actors/%s: %v\n%s", name, err, buf.String())
	}
	w, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if actorBuilds.wasm == nil {
		actorBuilds.wasm = map[string][]byte{}
	}
	actorBuilds.wasm[name] = w
	return w, nil
}

// liveCluster is the platform as processes with one actor-worker, the room
// actor deployed, and as many edges as asked.
type liveCluster struct {
	*procCluster
	edges []string // base URLs; the procCluster's first
}

// liveEnv are the bounds a benchmark of thousands of connections from one
// machine needs: every connection comes from an address of its own, but
// the experiment has more than the default 10,000.
var liveEnv = []string{"LIVE_MAX_CONNECTIONS=50000", "LIVE_MAX_CONNECTIONS_PER_CLIENT=50000"}

func (e *env) startLiveCluster(ctx context.Context, name string, edges int) (c *liveCluster, err error) {
	pc, err := e.startProcCluster(ctx, name)
	if err != nil {
		return nil, err
	}
	c = &liveCluster{procCluster: pc, edges: []string{pc.base}}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	for len(c.edges) < edges {
		addr, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		p, err := startProc("edge", filepath.Join(filepath.Dir(e.gnomeBin), "edge"), nil, append(slices.Clone(pc.svcEnv), append(liveEnv, "HTTP_ADDR="+addr[0])...),
			filepath.Join(e.tmp, fmt.Sprintf("%s-edge-%d.log", name, len(c.edges)+1)))
		if err != nil {
			return nil, err
		}
		pc.stopping = append(pc.stopping, p)
		base := "http://" + addr[0]
		if _, err := p.waitReady(ctx, base+"/health", 10*time.Millisecond, 60*time.Second); err != nil {
			return nil, err
		}
		c.edges = append(c.edges, base)
	}
	if _, err := pc.startWorker(ctx, liveEnv...); err != nil {
		return nil, err
	}
	wasm, err := e.benchActorWasm("room")
	if err != nil {
		return nil, err
	}
	token, _, err := login(ctx, pc.base, "198.18.0.1")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.tmp, name+".zip")
	if err := liveZip(path, wasm); err != nil {
		return nil, err
	}
	code, body, err := postZip(ctx, pc.base, token, path)
	if err != nil || code != http.StatusCreated {
		return nil, fmt.Errorf("upload %s: %d %v %s", liveSlug, code, err, body)
	}
	// Running once a connection is taken.
	for end := time.Now().Add(time.Minute); ; {
		ws, err := dialLive(ctx, c.edges[0], "/idle", 0)
		if err == nil {
			_ = ws.Close()
			return c, nil
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("the room actor never took a connection: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func liveZip(path string, wasm []byte) error {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	m, _ := json.Marshal(map[string]any{"schema_version": "2.0", "slug": liveSlug, "name": "Bench live", "status": "active",
		"actor": map[string]any{"module": "actor.wasm"}})
	for name, body := range map[string][]byte{"manifest.json": m, "index.html": []byte("<!doctype html><h1>bench live</h1>"), "actor.wasm": wasm} {
		w, err := zw.Create(name)
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

var liveDialer = &websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: dialLocal, ReadBufferSize: 1024, WriteBufferSize: 1024}

// dialLive opens a WebSocket to the room actor's path through the edge at
// base, from the n-th client address.
func dialLive(ctx context.Context, base, path string, n int) (*websocket.Conn, error) {
	u := strings.Replace(expURL(base, liveSlug, "/experiments/"+liveSlug+"/ws"+path), "http:", "ws:", 1)
	h := http.Header{"X-Forwarded-For": {fmt.Sprintf("10.%d.%d.%d", 1+n/65536, n/256%256, n%256)}}
	ws, resp, err := liveDialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (%s)", err, resp.Status)
		}
		return nil, err
	}
	return ws, nil
}

// openMany opens n WebSockets to path, spread over the edges, 32 at a time.
func openMany(ctx context.Context, edges []string, path string, n int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			ws, err := dialLive(gctx, edges[i%len(edges)], path, i+1)
			conns[i] = ws
			return err
		})
	}
	err := g.Wait()
	if err != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	return conns, err
}

// broadcast sends rounds messages through sender to a room of members and
// is every member's delivery time of every message, from the send.
func broadcast(ctx context.Context, sender *websocket.Conn, members []*websocket.Conn, rounds int) ([]time.Duration, error) {
	type receipt struct {
		round int
		at    time.Time
	}
	got := make(chan receipt, len(members)*4)
	var failed atomic.Value
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := m.ReadMessage()
				if err != nil {
					if ctx.Err() == nil {
						failed.Store(err)
					}
					return
				}
				at := time.Now()
				round, _ := strconv.Atoi(string(data))
				select {
				case got <- receipt{round, at}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer func() {
		for _, m := range members {
			_ = m.SetReadDeadline(time.Now())
		}
		wg.Wait()
	}()
	var lat []time.Duration
	for r := range rounds {
		sent := time.Now()
		if err := sender.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(r))); err != nil {
			return nil, err
		}
		limit := time.NewTimer(30 * time.Second)
		for n := 0; n < len(members); {
			select {
			case rc := <-got:
				if rc.round != r {
					limit.Stop()
					return nil, fmt.Errorf("round %d: a member got round %d", r, rc.round)
				}
				lat = append(lat, rc.at.Sub(sent))
				n++
			case <-limit.C:
				return nil, fmt.Errorf("round %d: %d of %d members got the message in 30 s (%v)", r, n, len(members), failed.Load())
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		limit.Stop()
	}
	slices.Sort(lat)
	return lat, nil
}

func benchLiveBroadcast(ctx context.Context, e *env) (*outcome, error) {
	c, err := e.startLiveCluster(ctx, "livebroadcast", 2)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	out := &outcome{}

	// The reference: the same path to a room of one, on the same edge.
	one, err := openMany(ctx, c.edges[:1], "/room", 2)
	if err != nil {
		return nil, err
	}
	ref, err := broadcast(ctx, one[0], one[1:], broadcastRounds)
	for _, ws := range one {
		_ = ws.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("a room of one: %w", err)
	}

	t := time.Now()
	members, err := openMany(ctx, c.edges, "/room", broadcastMembers)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, ws := range members {
			_ = ws.Close()
		}
	}()
	e.logf("%d members joined over %d edges in %s", broadcastMembers, len(c.edges), fmtDur(time.Since(t)))
	// The sender is a member too, on the first edge: it hears its own
	// message like everyone else.
	lat, err := broadcast(ctx, members[0], members, broadcastRounds)
	if err != nil {
		return nil, err
	}
	p50, p99, maxd := quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1]
	rp99 := quantile(ref, 0.99)
	out.rows = append(out.rows,
		row{metric: fmt.Sprintf("room of %d on 2 edges, p99 delivery", broadcastMembers), unit: unitDur, got: float64(p99), ref: float64(rp99), refName: "room of 1, p99", target: atMostDur(100 * time.Millisecond)},
	)
	out.raw = append(out.raw, fmt.Sprintf("%d messages to a room of %d members (half on each of 2 edges), sent by a member through the actor: delivery p50 %s, p99 %s, max %s; to a room of 1: p50 %s, p99 %s",
		broadcastRounds, broadcastMembers, fmtDur(p50), fmtDur(p99), fmtDur(maxd), fmtDur(quantile(ref, 0.5)), fmtDur(rp99)))
	return out, nil
}

func benchLiveIdle(ctx context.Context, e *env) (*outcome, error) {
	c, err := e.startLiveCluster(ctx, "liveidle", 1)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	out := &outcome{}
	edgePid := c.stopping[len(c.stopping)-1].cmd.Process.Pid
	before := settledRSS(edgePid)
	t := time.Now()
	conns, err := openMany(ctx, c.edges, "/idle", idleConns)
	if err != nil {
		return nil, err
	}
	opened := time.Since(t)
	defer func() {
		for _, ws := range conns {
			_ = ws.Close()
		}
	}()
	// Clients answer the edge's pings, as browsers do, while they wait.
	for _, ws := range conns {
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	after := settledRSS(edgePid)
	growth := after - before
	// Every connection is still there: the actor's count says so by
	// refusing nothing, and one more opens and is taken.
	extra, err := dialLive(ctx, c.edges[0], "/idle", idleConns+1)
	if err != nil {
		return nil, fmt.Errorf("a connection beside %d idle ones: %w", idleConns, err)
	}
	_ = extra.Close()
	out.rows = append(out.rows,
		row{metric: fmt.Sprintf("edge memory growth, %d idle WebSockets", idleConns), unit: unitBytes, got: float64(growth), ref: float64(before), refName: "edge RSS before", target: atMostAbs(300 << 20)},
	)
	out.raw = append(out.raw, fmt.Sprintf("edge RSS %s before, %s with %d idle WebSockets (opened in %s, %.0f/s): %s more, %.1f KiB per connection",
		fmtBytes(before), fmtBytes(after), idleConns, fmtDur(opened), float64(idleConns)/opened.Seconds(), fmtBytes(growth), float64(growth)/idleConns/1024))
	return out, nil
}
