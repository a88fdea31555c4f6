package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/bus"
)

// connectAs connects to the NATS server of a gnome that runs with dataDir
// as bus user, with the credentials the embedded server generated there.
func connectAs(t *testing.T, url, dataDir, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	a, ok, err := bus.ReadCredentials(dataDir, user)
	if err != nil || !ok {
		t.Fatalf("credentials of %s under %s: %v (found: %v)", user, dataDir, err, ok)
	}
	auth, err := bus.AuthOptions(a, user)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(auth, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The bus of a running gnome serve takes no connection without credentials,
// keeps its credentials private, and holds the edge's user to the edge's
// subjects.
func TestServeBusAuthenticatesEveryConnection(t *testing.T) {
	dataDir := t.TempDir()
	httpAddr, natsAddr, storeAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := start(t, "gnome", serveEnv(dataDir, httpAddr, natsAddr, storeAddr), "serve")
	waitHealthy(t, "http://"+httpAddr, p)
	url := "nats://" + natsAddr

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("gnome serve's NATS accepted a connection without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("without credentials: %v, want an authorization violation", err)
	}
	for _, user := range bus.Users {
		fi, err := os.Stat(filepath.Join(dataDir, "nats", "credentials", user+".env"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("credentials of %s: %v %v, want a file of mode 0600", user, fi, err)
		}
	}

	errs := make(chan error, 16)
	edge := connectAs(t, url, dataDir, "edge", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	// What an edge may do: ask the auth service for its status.
	if _, err := edge.Request("gnome.auth.status", []byte(`{}`), 5*time.Second); err != nil {
		t.Errorf("the edge asks auth for its status: %v", err)
	}
	// What it may not: publish a domain event.
	if err := edge.Publish("events.experiment.deleted", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "events.experiment.deleted") {
			t.Errorf("the edge's event: %v, want a permission violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the edge published a domain event unrefused")
	}
}

// In production a service binary without bus credentials refuses to start,
// naming the variables to set, before it dials anything.
func TestProductionServiceRefusesToConnectWithoutCredentials(t *testing.T) {
	for _, s := range []string{"edge", "auth"} {
		p := start(t, s, map[string]string{
			"G_NOME_ENV": "production", "DATA_DIR": t.TempDir(),
			"NATS_URL": "nats://" + freeAddr(t), "MONGO_URI": "mongodb://" + freeAddr(t) + "/",
			"SECRET_KEY": strings.Repeat("k", 40), "ADMIN_PASSWORD": "a-long-admin-passphrase-42",
		})
		if code := p.wait(t, 20*time.Second); code == 0 {
			t.Fatalf("%s started in production without bus credentials", s)
		}
		if out := p.Output(); !strings.Contains(out, "NATS_USER") {
			t.Errorf("%s: refusal does not name NATS_USER: %s", s, out)
		}
	}
}
