package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gnome-platform/gnome/services/auth/passwords"
)

const (
	benchAdmin    = "bench-admin@example.com"
	benchPassword = "bench-admin-passphrase-0001"
)

// startAccounts starts gnome serve with a known admin, and X-Forwarded-For
// believed from loopback so that the login benchmark can speak for many
// clients without meeting the per-address limit.
func (e *env) startAccounts(ctx context.Context, name string) (*gnomeServer, error) {
	dataDir := filepath.Join(e.tmp, name+"-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	g, err := e.startGnome(dataDir, name+".log", "ADMIN_EMAIL="+benchAdmin, "ADMIN_PASSWORD="+benchPassword, "TRUSTED_PROXIES=127.0.0.1/32")
	if err != nil {
		return nil, err
	}
	if _, err := g.waitReady(ctx, "http://"+g.httpAddr+"/health", 5*time.Millisecond, 60*time.Second); err != nil {
		g.stop(30 * time.Second)
		return nil, err
	}
	return g, nil
}

// login signs in as the bench admin from client address ip and returns the
// token and how long the request took.
func login(ctx context.Context, base, ip string) (string, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"email": benchAdmin, "password": benchPassword})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("login answered %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "token" {
			return c.Value, took, nil
		}
	}
	return "", 0, fmt.Errorf("login set no token cookie")
}

// benchMe loads GET /api/me with a signed-in token beside GET /health of the
// same server, alternating, so the figure is what verifying a session and
// answering costs over the cheapest route.
func benchMe(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "me")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.1")
	if err != nil {
		return nil, err
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	var health, me []loadResult
	out := &outcome{}
	pid := g.cmd.Process.Pid
	for round := 1; round <= e.rounds; round++ {
		h, err := e.measureServer(ctx, base+"/health", pid)
		if err != nil {
			return nil, err
		}
		health = append(health, h)
		e.logf("round %d GET /health %s", round, h)
		m, err := e.measureServer(ctx, base+"/api/me", pid, auth)
		if err != nil {
			return nil, err
		}
		me = append(me, m)
		e.logf("round %d GET /api/me %s", round, m)
		out.raw = append(out.raw, fmt.Sprintf("round %d, GET /health: %s", round, h), fmt.Sprintf("round %d, GET /api/me: %s", round, m))
	}
	h, m := best(health), best(me)
	how := fmt.Sprintf("best of %d", e.rounds)
	ref := "GET /health, same server"
	out.rows = []row{
		{metric: fmt.Sprintf("/api/me req/s @%d conns (%s)", e.conns, how), unit: unitRate, got: m.rps, ref: h.rps, refName: ref, target: atLeastRatio(0.70)},
		{metric: "/api/me p99 (" + how + ")", unit: unitDur, got: float64(m.p99), ref: float64(h.p99), refName: ref, target: noTarget()},
		{metric: "/api/me server CPU per request", unit: unitDur, got: cpuPerReq(me), ref: cpuPerReq(health), refName: ref, target: noTarget()},
		{metric: "/api/me success (worst run)", unit: unitPct, got: m.success, ref: h.success, refName: ref, target: bothFull()},
	}
	return out, nil
}

// benchLogin times sign-ins one after another (each from its own address,
// under the per-address limit) beside the password hash check alone, at the
// same cost, in this process: the difference is what the platform adds.
func benchLogin(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "login")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	const n = 30
	hash, err := passwords.Hash(benchPassword)
	if err != nil {
		return nil, err
	}
	var logins, hashes []time.Duration
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, took, err := login(ctx, base, fmt.Sprintf("198.51.%d.%d", 101+i/250, i%250+1))
		if err != nil {
			return nil, err
		}
		logins = append(logins, took)
		start := time.Now()
		if !passwords.Verify(hash, benchPassword) {
			return nil, fmt.Errorf("hash check failed")
		}
		hashes = append(hashes, time.Since(start))
	}
	slices.Sort(logins)
	slices.Sort(hashes)
	ref := fmt.Sprintf("bcrypt check alone (cost %d)", passwords.Cost)
	lp50, hp50 := quantile(logins, 0.5), quantile(hashes, 0.5)
	out := &outcome{rows: []row{
		{metric: fmt.Sprintf("login p50 (%d sequential)", n), unit: unitDur, got: float64(lp50), ref: float64(hp50), refName: ref, target: noTarget()},
		{metric: fmt.Sprintf("login p99 (%d sequential)", n), unit: unitDur, got: float64(quantile(logins, 0.99)), ref: float64(quantile(hashes, 0.99)), refName: ref, target: noTarget()},
	}}
	out.raw = append(out.raw, fmt.Sprintf("login p50 %s of which the password hash is %s; the rest (HTTP, limiter, bus, store, token) is %s",
		fmtDur(lp50), fmtDur(hp50), fmtDur(lp50-hp50)))
	return out, nil
}
