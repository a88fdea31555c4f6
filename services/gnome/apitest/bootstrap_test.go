package apitest

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/edge"
)

// In development with no ADMIN_PASSWORD, the first start creates the admin
// with a random password shown once; later starts show nothing and keep it.
func TestAdminBootstrapShowsARandomPasswordOnce(t *testing.T) {
	env := testenv.Start(t)
	cfg := env.Config(t, map[string]string{"ADMIN_EMAIL": "First@Example.com", "TRUSTED_PROXIES": "127.0.0.1/32"})
	if cfg.AdminPassword != "" {
		t.Fatal("test config has an admin password")
	}
	var out bytes.Buffer
	d := env.Deps(t, cfg)
	a := auth.New(d)
	a.Out = &out
	e := edge.New(d)
	testenv.Run(t, d, a, e)
	m := regexp.MustCompile(`shown only this once: (\S+)`).FindStringSubmatch(out.String())
	if m == nil || len(m[1]) < 20 {
		t.Fatalf("no generated password announced: %q", out.String())
	}
	p := &platform{env: env, deps: d, edges: []*edge.Service{e}}
	c := p.client(t, 0)
	c.login("first@example.com", m[1])
	if r := c.do("GET", "/admin/api/users", nil, nil); r.status != 200 {
		t.Fatalf("bootstrapped admin is not admin: %d", r.status)
	}

	// A second auth instance (a restart, or another replica) finds the admin.
	var again bytes.Buffer
	d2 := env.Deps(t, cfg)
	a2 := auth.New(d2)
	a2.Out = &again
	testenv.Run(t, d2, a2)
	if again.Len() != 0 {
		t.Fatalf("second start announced again: %q", again.String())
	}
	c2 := p.client(t, 0)
	c2.login("first@example.com", m[1])
}
