package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// split is the platform with each service its own process, on the
// infrastructure of `gnome serve --infra-only`, signed in as the bench
// admin: what benchmarks that watch one service's memory run against.
type split struct {
	procs    map[string]*proc
	infra    *proc
	base     string // the edge's URL
	mongoURI string
	token    string // the admin's bearer token
}

// startSplit starts the infrastructure, then the services (the edge last,
// which must be among them), each logging to <name>-<service>.log, and
// signs in from clientIP.
func (e *env) startSplit(ctx context.Context, name string, services []string, clientIP string) (_ *split, err error) {
	dir := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addrs, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	common := append(cleanEnv(os.Environ()), "DATA_DIR="+dir, "LOG_LEVEL=WARNING", "MAX_UPLOAD_SIZE_MB=128",
		"ADMIN_EMAIL="+benchAdmin, "ADMIN_PASSWORD="+benchPassword, "TRUSTED_PROXIES=127.0.0.1/32")
	s := &split{procs: map[string]*proc{}, base: "http://" + addrs[0], mongoURI: "mongodb://" + addrs[2] + "/"}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	s.infra, err = startProc("gnome infra", e.gnomeBin, []string{"serve", "--infra-only"},
		append(slices.Clone(common), "EMBEDDED_NATS_ADDR="+addrs[1], "EMBEDDED_STORE_ADDR="+addrs[2]), filepath.Join(e.tmp, name+"-infra.log"))
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, addrs[2], 60*time.Second); err != nil {
		return nil, err
	}
	svcEnv := append(slices.Clone(common), "NATS_URL=nats://"+addrs[1], "MONGO_URI="+s.mongoURI, "SECRET_KEY=bench-secret-key-0123456789abcdef0123")
	binDir := filepath.Dir(e.gnomeBin)
	for _, svc := range services {
		env := slices.Clone(svcEnv)
		if svc == "edge" {
			env = append(env, "HTTP_ADDR="+addrs[0])
		}
		p, err := startProc(svc, filepath.Join(binDir, svc), nil, env, filepath.Join(e.tmp, name+"-"+svc+".log"))
		if err != nil {
			return nil, err
		}
		s.procs[svc] = p
	}
	edge, ok := s.procs["edge"]
	if !ok {
		return nil, fmt.Errorf("%s: no edge among %v", name, services)
	}
	if _, err := edge.waitReady(ctx, s.base+"/health", 10*time.Millisecond, 60*time.Second); err != nil {
		return nil, err
	}
	for range 100 { // the auth service may still be starting
		if s.token, _, err = login(ctx, s.base, clientIP); err == nil {
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// stop stops the services, then the infrastructure.
func (s *split) stop() {
	for _, p := range s.procs {
		p.stop(30 * time.Second)
	}
	if s.infra != nil {
		s.infra.stop(30 * time.Second)
	}
}
