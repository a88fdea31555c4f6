package e2e

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// cluster is the platform with every service its own process, on the
// embedded NATS and store of `gnome serve --infra-only`.
type cluster struct {
	t       *testing.T
	dataDir string
	urls    map[string]string
	// common are the settings every service gets.
	common map[string]string
	// base is the edge's URL, once startEdge ran.
	base string
}

// startCluster starts the infrastructure and waits for its URLs; services
// are started one by one with start. set adds to every service's settings.
func startCluster(t *testing.T, adminEmail, adminPassword string, set map[string]string) *cluster {
	t.Helper()
	c := &cluster{t: t, dataDir: t.TempDir()}
	infra := start(t, "gnome", map[string]string{
		"DATA_DIR": c.dataDir, "EMBEDDED_NATS_ADDR": freeAddr(t), "EMBEDDED_STORE_ADDR": freeAddr(t),
	}, "serve", "--infra-only")
	waitFor(t, 30*time.Second, "infra-only to print its URLs", func() bool {
		c.urls = kv(infra.Output())
		return strings.HasPrefix(c.urls["NATS_URL"], "nats://127.0.0.1:") && strings.HasPrefix(c.urls["MONGO_URI"], "mongodb://127.0.0.1:")
	})
	c.common = map[string]string{
		"NATS_URL": c.urls["NATS_URL"], "MONGO_URI": c.urls["MONGO_URI"], "DATA_DIR": c.dataDir, "LOG_LEVEL": "INFO",
		"SECRET_KEY": "cluster-secret-0123456789abcdef0123456789", "ADMIN_EMAIL": adminEmail, "ADMIN_PASSWORD": adminPassword,
	}
	maps.Copy(c.common, set)
	return c
}

// start runs one service binary with the common settings and extra, and
// waits until it says it is ready: its endpoints answer from then on, so a
// test's first request does not land before the service joined the bus (a
// sign-in answered 503 still counts against the sign-in rate limit).
func (c *cluster) start(name string, extra map[string]string) *proc {
	c.t.Helper()
	env := maps.Clone(c.common)
	maps.Copy(env, extra)
	p := start(c.t, name, env)
	waitFor(c.t, 60*time.Second, name+" to be ready", func() bool {
		select {
		case <-p.done:
			c.t.Fatalf("%s exited before it was ready: %v\n%s", name, p.err, p.Output())
		default:
		}
		return strings.Contains(p.Output(), "msg=ready service="+name+" ")
	})
	return p
}

// startEdge runs an edge on a free port and waits until it is healthy.
func (c *cluster) startEdge() *proc {
	c.t.Helper()
	addr := freeAddr(c.t)
	edge := c.start("edge", map[string]string{"HTTP_ADDR": addr})
	c.base = "http://" + addr
	waitHealthy(c.t, c.base, edge)
	return edge
}

// admin signs in to the edge as the cluster's admin, waiting for the auth
// service to answer.
func (c *cluster) admin() *session {
	c.t.Helper()
	s := newSession(c.t, c.base)
	waitFor(c.t, 30*time.Second, "the admin to sign in", func() bool {
		return s.send("POST", "/auth/login", "application/json",
			fmt.Sprintf(`{"email":%q,"password":%q}`, c.common["ADMIN_EMAIL"], c.common["ADMIN_PASSWORD"])).status == 200
	})
	return s
}
