package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/config"
)

// A production environment a separately deployed binary starts with.
func prodServiceEnv() env {
	e := prodEnv()
	e["NATS_URL"] = "nats://nats-1:4222"
	e["MONGO_URI"] = "mongodb://mongo:27017/?replicaSet=rs0"
	e["NATS_USER"] = "edge"
	e["NATS_PASSWORD"] = "a-bus-password-0123456789"
	return e
}

// Each binary requires in production exactly what RequiredInProduction
// lists: without any one of them it refuses to start, naming it; with all
// of them it starts. The admin password is required by auth and the
// all-in-one server only.
func TestRequiredInProductionIsWhatIsEnforced(t *testing.T) {
	for _, b := range append(slices.Clone(config.Binaries), "gnome") {
		check := func(c *config.Config) error {
			if b == "gnome" {
				return c.RequireFor(b)
			}
			return c.RequireExternal(b)
		}
		full := prodServiceEnv()
		if err := check(mustLoad(t, full)); err != nil {
			t.Fatalf("%s refuses the full production environment: %v", b, err)
		}
		req := config.RequiredInProduction(b)
		if len(req) == 0 {
			t.Fatalf("%s requires nothing in production", b)
		}
		for _, name := range req {
			e := prodServiceEnv()
			delete(e, name)
			c, err := load(t, e)
			if err == nil {
				err = check(c)
			}
			if err == nil {
				t.Errorf("%s started in production without %s", b, name)
			} else if !slices.Contains(failedVars(err), name) && !strings.Contains(err.Error(), name) {
				t.Errorf("%s without %s: %v does not name it", b, name, err)
			}
		}
		// Not required elsewhere: a binary that does not use the admin
		// password starts without it.
		if !slices.Contains(req, "ADMIN_PASSWORD") {
			e := prodServiceEnv()
			delete(e, "ADMIN_PASSWORD")
			if err := check(mustLoad(t, e)); err != nil {
				t.Errorf("%s, which creates no admin, requires ADMIN_PASSWORD: %v", b, err)
			}
		}
	}
	if slices.Contains(config.RequiredInProduction("edge"), "ADMIN_PASSWORD") || !slices.Contains(config.RequiredInProduction("auth"), "ADMIN_PASSWORD") {
		t.Error("ADMIN_PASSWORD must be required by auth and not by the edge")
	}
}

// Outside production nothing more is required, and a weak admin password
// is refused wherever it is given, in production too.
func TestRequireForOnlyInProduction(t *testing.T) {
	if err := mustLoad(t, env{}).RequireFor("auth"); err != nil {
		t.Errorf("development requires %v", err)
	}
	e := prodServiceEnv()
	e["ADMIN_PASSWORD"] = "short"
	if _, err := load(t, e); err == nil || !slices.Contains(failedVars(err), "ADMIN_PASSWORD") {
		t.Errorf("a weak admin password in production: %v", err)
	}
}

// Every shared setting names at least two binaries, each a known one.
func TestSharedSettingsNameBinaries(t *testing.T) {
	for name, bins := range config.SharedSettings {
		if len(bins) < 2 {
			t.Errorf("%s is shared by %v: fewer than two", name, bins)
		}
		for _, b := range bins {
			if !slices.Contains(config.Binaries, b) {
				t.Errorf("%s names an unknown binary %q", name, b)
			}
		}
	}
}
