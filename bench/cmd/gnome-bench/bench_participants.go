package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/services/auth/passwords"
)

// subAuthZip writes a one-page experiment whose manifest has subAuth (none
// when nil), with the same page as experimentZip's.
func subAuthZip(path, slug string, subAuth map[string]any) error {
	m := map[string]any{"schema_version": "2.0", "slug": slug, "name": "Bench " + slug, "status": "active",
		"auth_policy": map[string]any{"allow_anonymous": true}}
	if subAuth != nil {
		m["sub_auth"] = subAuth
	}
	mj, _ := json.Marshal(m)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	page := "<!doctype html><h1>bench</h1>" + strings.Repeat("<p>g.nome</p>", 100)
	for name, body := range map[string][]byte{"manifest.json": mj, "index.html": []byte(page)} {
		w, _ := zw.Create(name)
		w.Write(body)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// uploadSubAuth uploads a subAuthZip experiment and waits until its page
// is served.
func (e *env) uploadSubAuth(ctx context.Context, base, token, slug string, subAuth map[string]any) (string, error) {
	path := filepath.Join(e.tmp, slug+".zip")
	if err := subAuthZip(path, slug, subAuth); err != nil {
		return "", err
	}
	if status, body, err := postZip(ctx, base, token, path); err != nil || status != 201 {
		return "", fmt.Errorf("upload %s: %d %v %s", slug, status, err, body)
	}
	page := expURL(base, slug, "/experiments/"+slug+"/")
	return page, waitServed(ctx, page, "")
}

// expAuth posts the account's email and password to /_gnome/auth/{action}
// on slug's origin from client address ip; it returns the status and how
// long the request took.
func expAuth(ctx context.Context, base, slug, action, email, ip string) (int, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": benchPassword})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, expURL(base, slug, "/_gnome/auth/"+action), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, took, nil
}

// benchExpSignin times sign-ins of an experiment's account on its origin
// beside sign-ins of a platform user on the same server, alternating, each
// from its own address (both are limited per address), with the password
// hash check alone measured in this process: what is left apart from the
// hash is what each path adds.
func benchExpSignin(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "expsignin")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.7")
	if err != nil {
		return nil, err
	}
	const slug = "bench-accounts"
	if _, err := e.uploadSubAuth(ctx, base, token, slug, map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true}); err != nil {
		return nil, err
	}
	const account = "participant@example.com"
	if status, _, err := expAuth(ctx, base, slug, "register", account, "198.51.100.8"); err != nil || status != http.StatusCreated {
		return nil, fmt.Errorf("register an experiment account: %d %v", status, err)
	}
	hash, err := passwords.Hash(benchPassword)
	if err != nil {
		return nil, err
	}
	const n = 30
	var exp, platform, hashes []time.Duration
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ip := fmt.Sprintf("198.51.%d.%d", 110+i/250, i%250+1)
		status, took, err := expAuth(ctx, base, slug, "login", account, ip)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("experiment sign-in %d: %d %v", i, status, err)
		}
		exp = append(exp, took)
		_, took, err = login(ctx, base, ip)
		if err != nil {
			return nil, fmt.Errorf("platform sign-in %d: %w", i, err)
		}
		platform = append(platform, took)
		start := time.Now()
		if !passwords.Verify(hash, benchPassword) {
			return nil, fmt.Errorf("hash check failed")
		}
		hashes = append(hashes, time.Since(start))
	}
	for _, s := range [][]time.Duration{exp, platform, hashes} {
		slices.Sort(s)
	}
	ref := "platform sign-in (POST /auth/login), same server"
	ep50, pp50, hp50 := quantile(exp, 0.5), quantile(platform, 0.5), quantile(hashes, 0.5)
	out := &outcome{rows: []row{
		{metric: fmt.Sprintf("experiment sign-in p50 (%d sequential)", n), unit: unitDur, got: float64(ep50), ref: float64(pp50), refName: ref, target: noTarget()},
		{metric: fmt.Sprintf("experiment sign-in p99 (%d sequential)", n), unit: unitDur, got: float64(quantile(exp, 0.99)), ref: float64(quantile(platform, 0.99)), refName: ref, target: noTarget()},
		{metric: "experiment sign-in p50 without the hash check", unit: unitDur, got: float64(ep50 - hp50), ref: float64(pp50 - hp50), refName: "platform sign-in without it", target: noTarget()},
	}}
	out.raw = append(out.raw, fmt.Sprintf("experiment sign-in p50 %s, platform sign-in p50 %s; the password hash (bcrypt cost %d, in process) is %s of each; the rest is %s and %s",
		fmtDur(ep50), fmtDur(pp50), passwords.Cost, fmtDur(hp50), fmtDur(ep50-hp50), fmtDur(pp50-hp50)))
	return out, nil
}

// benchParticipant loads a participant's first request (no cookie: the edge
// makes a participant ID and signs and sets its cookie, every request) on
// an anonymous_session experiment's page beside the same page of an
// experiment without sub_auth, on the same server, alternating.
func benchParticipant(ctx context.Context, e *env) (*outcome, error) {
	g, err := e.startAccounts(ctx, "participant")
	if err != nil {
		return nil, err
	}
	defer g.stop(30 * time.Second)
	base := "http://" + g.httpAddr
	token, _, err := login(ctx, base, "198.51.100.9")
	if err != nil {
		return nil, err
	}
	plain, err := e.uploadSubAuth(ctx, base, token, "bench-plain", nil)
	if err != nil {
		return nil, err
	}
	anon, err := e.uploadSubAuth(ctx, base, token, "bench-participants", map[string]any{"enabled": true, "strategy": "anonymous_session"})
	if err != nil {
		return nil, err
	}
	// The load client keeps no cookies, so every request is a first one;
	// check that the edge does hand out the cookie.
	resp, err := http.Get(anon)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if !slices.ContainsFunc(resp.Cookies(), func(c *http.Cookie) bool { return strings.Contains(c.Name, "gnome_participant") }) {
		return nil, fmt.Errorf("the anonymous_session experiment set no participant cookie (%d)", resp.StatusCode)
	}
	pid := g.cmd.Process.Pid
	var plains, firsts []loadResult
	out := &outcome{}
	for round := 1; round <= e.rounds; round++ {
		p, err := e.measureServer(ctx, plain, pid)
		if err != nil {
			return nil, err
		}
		f, err := e.measureServer(ctx, anon, pid)
		if err != nil {
			return nil, err
		}
		plains, firsts = append(plains, p), append(firsts, f)
		e.logf("round %d GET plain page       %s", round, p)
		e.logf("round %d GET participant page %s", round, f)
		out.raw = append(out.raw, fmt.Sprintf("round %d, GET page without sub_auth: %s", round, p), fmt.Sprintf("round %d, GET page, participant's first request: %s", round, f))
	}
	p, f := best(plains), best(firsts)
	ref := "static page without sub_auth, same server"
	out.rows = []row{
		{metric: fmt.Sprintf("participant first request req/s @%d conns (best of %d)", e.conns, e.rounds), unit: unitRate, got: f.rps, ref: p.rps, refName: ref, target: noTarget()},
		{metric: "participant first request p99", unit: unitDur, got: float64(f.p99), ref: float64(p.p99), refName: ref, target: noTarget()},
		{metric: "participant first request server CPU per request", unit: unitDur, got: cpuPerReq(firsts), ref: cpuPerReq(plains), refName: ref, target: noTarget()},
		{metric: "participant first request success (worst run)", unit: unitPct, got: f.success, ref: p.success, refName: ref, target: bothFull()},
	}
	return out, nil
}
