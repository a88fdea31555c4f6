package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// failoverRuns is how many times each way of losing the worker is timed.
const failoverRuns = 3

// failoverPoll is how often the actor's route is polled after the worker
// is lost.
const failoverPoll = 10 * time.Millisecond

// failoverCluster is the platform as separate processes with two
// actor-workers.
type failoverCluster struct {
	*procCluster
}

// benchFailover times how long the echo actor takes to serve again from the
// other actor-worker when the process hosting it dies (SIGKILL: its lease is
// no longer renewed and must expire), beside when that process is stopped
// (SIGTERM: it hands the lease over), each time from the signal to the
// first 200 through the edge from another instance of the actor than the
// one before (its /instance route tells them apart).
func benchFailover(ctx context.Context, e *env) (*outcome, error) {
	c, err := e.startFailoverCluster(ctx)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	out := &outcome{}
	var kills, terms []time.Duration
	for i := 1; i <= failoverRuns; i++ {
		for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
			took, err := c.loseHolder(ctx, sig)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", sigName(sig), i, err)
			}
			e.logf("run %d: %s of the worker holding the actor → first 200 from the new instance after %s", i, sigName(sig), fmtDur(took))
			if sig == syscall.SIGKILL {
				kills = append(kills, took)
			} else {
				terms = append(terms, took)
			}
		}
	}
	out.raw = append(out.raw,
		"SIGKILL of the holding worker → first 200 from the new instance (polled every "+fmtDur(failoverPoll)+"): "+durList(kills),
		"SIGTERM of the holding worker → first 200 from the new instance: "+durList(terms),
		"the actor_leases TTL is 3 s, renewed every 1 s: after a SIGKILL the lease lives on for 2–3 s")
	const ref = "SIGTERM of the holder (lease handed over)"
	limit := below(5 * time.Second)
	n := fmt.Sprintf(" (%d runs)", failoverRuns)
	out.rows = []row{
		{metric: "SIGKILL of the holding worker → serving, median" + n, unit: unitDur, got: float64(median(kills)), ref: float64(median(terms)), refName: ref, target: limit},
		{metric: "SIGKILL of the holding worker → serving, max" + n, unit: unitDur, got: float64(slices.Max(kills)), ref: float64(slices.Max(terms)), refName: ref, target: limit},
	}
	return out, nil
}

func sigName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// startFailoverCluster starts the platform as processes with two
// actor-workers, and uploads the echo actor.
func (e *env) startFailoverCluster(ctx context.Context) (c *failoverCluster, err error) {
	pc, err := e.startProcCluster(ctx, "failover")
	if err != nil {
		return nil, err
	}
	c = &failoverCluster{procCluster: pc}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	for range 2 {
		if _, err := c.startWorker(ctx); err != nil {
			return nil, err
		}
	}
	var token string
	for i := 0; i < 100; i++ { // the auth service may still be starting
		if token, _, err = login(ctx, c.base, "198.51.100.40"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if err := e.uploadActor(ctx, c.base, token, experiments.StatusActive); err != nil {
		return nil, err
	}
	if _, _, err := pollOK(ctx, pingURL(c.base), 10*time.Millisecond, 60*time.Second); err != nil {
		return nil, fmt.Errorf("the actor never served: %w", err)
	}
	return c, nil
}

// startWorker starts an actor-worker and waits until it answers on the
// bus and has had a moment to follow jobs and leases.
func (c *failoverCluster) startWorker(ctx context.Context) (*proc, error) {
	p, err := c.procCluster.startWorker(ctx)
	if err == nil {
		time.Sleep(100 * time.Millisecond) // its job consumer and lease watcher follow
	}
	return p, err
}

// holder is the worker process the edge reports running the actor.
func (c *failoverCluster) holder(ctx context.Context) (*proc, error) {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	last := ""
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		var st actorapi.State
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, expURL(c.base, benchSlug, "/experiments/"+benchSlug+"/health"), nil)
		if resp, err := client.Do(req); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s %s", resp.StatusCode, st.State, st.Worker)
			if err == nil && st.State == actorapi.StateRunning && st.Worker != "" {
				// The instance ID is host-pid-random.
				for _, w := range c.workers {
					if strings.Contains(st.Worker, "-"+strconv.Itoa(w.cmd.Process.Pid)+"-") {
						return w, nil
					}
				}
				return nil, fmt.Errorf("the actor runs on %q, none of the worker processes", st.Worker)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("no worker reported running the actor within 30 s (last: %s)", last)
}

// loseHolder sends sig to the worker running the actor and times the signal
// to the first 200 of the actor's route; then it starts a new worker in its
// place, so that there are two again.
func (c *failoverCluster) loseHolder(ctx context.Context, sig syscall.Signal) (time.Duration, error) {
	victim, err := c.holder(ctx)
	if err != nil {
		return 0, err
	}
	url := expURL(c.base, benchSlug, "/experiments/"+benchSlug+"/api/instance")
	before, err := getBody(ctx, url)
	if err != nil {
		return 0, err
	}
	sent := time.Now()
	if err := victim.cmd.Process.Signal(sig); err != nil {
		return 0, err
	}
	at, err := pollOKConcurrent(ctx, url, failoverPoll, 20*time.Second, func(body []byte) bool { return !bytes.Equal(body, before) })
	if err != nil {
		return 0, fmt.Errorf("after %s: %w", sigName(sig), err)
	}
	took := at.Sub(sent)
	select {
	case <-victim.done:
	case <-time.After(30 * time.Second):
		victim.cmd.Process.Kill()
		<-victim.done
		return 0, fmt.Errorf("the worker did not exit within 30 s of %s", sigName(sig))
	}
	c.workers = slices.DeleteFunc(c.workers, func(p *proc) bool { return p == victim })
	now, err := c.holder(ctx)
	if err != nil {
		return 0, err
	}
	if now == victim {
		return 0, fmt.Errorf("the actor still runs on the lost worker")
	}
	if _, err := c.startWorker(ctx); err != nil {
		return 0, err
	}
	return took, nil
}

// getBody is the body of a 200 answer to GET url.
func getBody(ctx context.Context, url string) ([]byte, error) {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body, err
}

// pollOKConcurrent sends GET url every `every`, each request on its own (one
// that reached a dying process only times out), until one answers 200 with
// a body that accept takes, and returns when the first such answer arrived.
// It sends for at most limit.
func pollOKConcurrent(ctx context.Context, url string, every, limit time.Duration, accept func(body []byte) bool) (time.Time, error) {
	client := pollClient(5 * time.Second)
	defer client.CloseIdleConnections()
	var (
		mu      sync.Mutex
		firstOK time.Time
		wg      sync.WaitGroup
	)
	ok := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !firstOK.IsZero()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	end := time.After(limit)
poll:
	for n := 0; n <= int(limit/every) && !ok(); n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			at := time.Now()
			if err != nil || resp.StatusCode != http.StatusOK || !accept(body) {
				return
			}
			mu.Lock()
			if firstOK.IsZero() || at.Before(firstOK) {
				firstOK = at
			}
			mu.Unlock()
		}()
		select {
		case <-ctx.Done():
			break poll
		case <-end:
			break poll
		case <-tick.C:
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if !ok() {
		return time.Time{}, fmt.Errorf("%s did not answer 200 within %s", url, limit)
	}
	return firstOK, nil
}
