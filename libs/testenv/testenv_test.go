package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
)

func TestEnvGivesLoopbackInfrastructure(t *testing.T) {
	env := testenv.Start(t)
	if !strings.HasPrefix(env.NATSURL, "nats://127.0.0.1:") || !strings.HasPrefix(env.MongoURI, "mongodb://127.0.0.1:") {
		t.Errorf("URLs %s %s are not loopback", env.NATSURL, env.MongoURI)
	}
	cfg := env.Config(t, map[string]string{"LOG_LEVEL": "ERROR", "ENABLE_REGISTRATION": "true"})
	if cfg.NATSURL != env.NATSURL || cfg.MongoURI != env.MongoURI || cfg.DataDir != env.Dir || cfg.MongoDB != "gnome_test" {
		t.Errorf("config does not point at the env: %+v", cfg)
	}
	if cfg.LogLevel != "ERROR" || !cfg.EnableRegistration || cfg.HTTPAddr != "127.0.0.1:0" || cfg.SecretKey == "" {
		t.Errorf("overrides or defaults not applied: %+v", cfg)
	}
	if cfg.EmbeddedNATS() || cfg.EmbeddedStore() {
		t.Error("a test config asks for embedded infrastructure")
	}

	d := env.Deps(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Store.Ping(ctx); err != nil {
		t.Errorf("store: %v", err)
	}
	if _, err := d.JS.AccountInfo(ctx); err != nil {
		t.Errorf("jetstream: %v", err)
	}
	if d.InstanceID == "" || d.Log == nil || d.Telemetry == nil {
		t.Errorf("deps incomplete: %+v", d)
	}
}

func TestTwoEnvsAreIndependent(t *testing.T) {
	a, b := testenv.Start(t), testenv.Start(t)
	if a.NATSURL == b.NATSURL || a.MongoURI == b.MongoURI || a.Dir == b.Dir {
		t.Errorf("two envs share something: %+v %+v", a, b)
	}
}
