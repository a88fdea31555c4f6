package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
)

func serveEnv(dataDir, httpAddr, natsAddr, storeAddr string) map[string]string {
	return map[string]string{
		"DATA_DIR": dataDir, "HTTP_ADDR": httpAddr,
		"EMBEDDED_NATS_ADDR": natsAddr, "EMBEDDED_STORE_ADDR": storeAddr,
		"LOG_LEVEL": "INFO",
	}
}

// gnome serve starts, is healthy with all five services live, stops cleanly
// on SIGTERM, and finds its data again when started on the same DATA_DIR.
func TestServeStopsCleanlyAndKeepsItsData(t *testing.T) {
	dataDir := t.TempDir()
	httpAddr, natsAddr, storeAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := serveEnv(dataDir, httpAddr, natsAddr, storeAddr)
	base := "http://" + httpAddr

	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)
	// The announcement follows the last service's start, which can come a
	// moment after the edge first answers.
	waitFor(t, 10*time.Second, "serve to announce its address", func() bool {
		return strings.Contains(p.Output(), "g.nome is serving on "+base)
	})

	code, det := getDetailed(t, base)
	if code != http.StatusOK || det.Status != "ok" {
		t.Fatalf("/health/detailed = %d %q, want 200 ok: %+v", code, det.Status, det)
	}
	for _, c := range []string{"database", "nats", "jetstream", "object_store", "disk"} {
		if det.Components[c].Status != "ok" {
			t.Errorf("component %s = %q, want ok", c, det.Components[c].Status)
		}
	}
	for _, s := range allServices {
		if got := det.Services[s]; got.Status != "ok" || len(got.Instances) != 1 {
			t.Errorf("service %s = %q with %d instances, want ok with 1", s, got.Status, len(got.Instances))
		}
	}

	// Leave data in the store and in a stream, through the embedded servers'
	// fixed addresses as a separately started service would.
	ctx := ctxT(t)
	st, err := store.Open(ctx, store.Options{URI: "mongodb://" + storeAddr + "/", Database: "gnome", MaxPool: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Collection("e2e_probe").InsertOne(ctx, bson.M{"_id": "kept", "n": 42}); err != nil {
		t.Fatal(err)
	}
	_ = st.Close(ctx)
	nc := connectAs(t, "nats://"+natsAddr, dataDir, bus.Admin)
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(ctx, "events.e2e.probe", []byte(`{"kept":true}`)); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	key1, err := os.ReadFile(filepath.Join(dataDir, "secret_key"))
	if err != nil {
		t.Fatalf("development secret key was not kept in DATA_DIR: %v", err)
	}

	p.stop(t)
	if !strings.Contains(p.Output(), "msg=stopped") {
		t.Errorf("no clean stop logged; output:\n%s", p.Output())
	}
	// The port is free again: the process released everything.
	if code, _ := get(t, base+"/health"); code != 0 {
		t.Fatalf("edge still answers after exit: %d", code)
	}

	p2 := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p2)
	ctx = ctxT(t)
	st, err = store.Open(ctx, store.Options{URI: "mongodb://" + storeAddr + "/", Database: "gnome", MaxPool: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	var doc struct {
		N int `bson:"n"`
	}
	if err := st.Collection("e2e_probe").FindOne(ctx, bson.M{"_id": "kept"}).Decode(&doc); err != nil || doc.N != 42 {
		t.Fatalf("document lost across restart: %v %+v", err, doc)
	}
	// The core indexes survived and were not duplicated.
	cur, err := st.Collection(store.Users).Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var idx []bson.M
	if err := cur.All(ctx, &idx); err != nil {
		t.Fatal(err)
	}
	if !hasIndex(idx, "email_unique") {
		t.Errorf("users.email unique index missing after restart: %v", idx)
	}
	nc = connectAs(t, "nats://"+natsAddr, dataDir, bus.Admin)
	js, _ = jetstream.New(nc)
	stream, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "events.e2e.probe")
	if err != nil || string(msg.Data) != `{"kept":true}` {
		t.Fatalf("stream message lost across restart: %v", err)
	}
	key2, _ := os.ReadFile(filepath.Join(dataDir, "secret_key"))
	if string(key1) != string(key2) {
		t.Error("the development secret key changed across a restart")
	}
	p2.stop(t)
}

func hasIndex(idx []bson.M, name string) bool {
	for _, i := range idx {
		if i["name"] == name {
			return true
		}
	}
	return false
}

// Each service runs as its own process against one NATS and one store (from
// gnome serve --infra-only), and the edge sees all of them, two edges and
// two of every worker included.
func TestServicesAsSeparateProcesses(t *testing.T) {
	dataDir := t.TempDir()
	infra := start(t, "gnome", map[string]string{
		"DATA_DIR": dataDir, "EMBEDDED_NATS_ADDR": freeAddr(t), "EMBEDDED_STORE_ADDR": freeAddr(t),
	}, "serve", "--infra-only")
	var urls map[string]string
	waitFor(t, 30*time.Second, "infra-only to print its URLs", func() bool {
		urls = kv(infra.Output())
		return strings.HasPrefix(urls["NATS_URL"], "nats://127.0.0.1:") && strings.HasPrefix(urls["MONGO_URI"], "mongodb://127.0.0.1:")
	})
	common := map[string]string{
		"NATS_URL": urls["NATS_URL"], "MONGO_URI": urls["MONGO_URI"], "DATA_DIR": dataDir,
		"SECRET_KEY": "separate-processes-secret-0123456789abcdef",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, s := range []string{"auth", "upload", "export", "actorworker"} {
		start(t, s, with(nil))
		start(t, s, with(nil))
	}
	edge1, edge2 := freeAddr(t), freeAddr(t)
	e1 := start(t, "edge", with(map[string]string{"HTTP_ADDR": edge1}))
	e2 := start(t, "edge", with(map[string]string{"HTTP_ADDR": edge2}))
	waitHealthy(t, "http://"+edge1, e1)
	waitHealthy(t, "http://"+edge2, e2)

	var det detailed
	waitFor(t, 30*time.Second, "every service to show two live instances", func() bool {
		_, det = getDetailed(t, "http://"+edge2)
		for _, s := range allServices {
			if len(det.Services[s].Instances) != 2 {
				return false
			}
		}
		return true
	})
	if det.Status != "ok" {
		t.Errorf("detailed status = %q, want ok", det.Status)
	}

	// Stopping one auth instance leaves one; the platform notices.
	e2.stop(t)
	waitFor(t, 10*time.Second, "the stopped edge to leave discovery", func() bool {
		_, det = getDetailed(t, "http://"+edge1)
		return len(det.Services["edge"].Instances) == 1
	})
}

// A service binary embeds nothing: without NATS_URL and MONGO_URI it exits
// non-zero, naming what is missing.
func TestServiceBinaryRefusesToEmbed(t *testing.T) {
	for _, s := range []string{"edge", "auth", "upload", "export", "actorworker"} {
		p := start(t, s, map[string]string{"DATA_DIR": t.TempDir()})
		if code := p.wait(t, 20*time.Second); code == 0 {
			t.Errorf("%s exited 0 without NATS_URL", s)
		}
		out := p.Output()
		if !strings.Contains(out, "NATS_URL") || !strings.Contains(out, "MONGO_URI") {
			t.Errorf("%s: message does not name NATS_URL and MONGO_URI: %s", s, out)
		}
	}
}

// In production gnome serve refuses insecure defaults, naming the variable.
func TestProductionRefusesInsecureDefaults(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no secret key", map[string]string{"ADMIN_PASSWORD": "a-long-admin-passphrase-42"}, "SECRET_KEY"},
		{"short secret key", map[string]string{"SECRET_KEY": "short", "ADMIN_PASSWORD": "a-long-admin-passphrase-42"}, "SECRET_KEY"},
		{"no admin password", map[string]string{"SECRET_KEY": strings.Repeat("k", 40)}, "ADMIN_PASSWORD"},
		{"default admin password", map[string]string{"SECRET_KEY": strings.Repeat("k", 40), "ADMIN_PASSWORD": "password123"}, "ADMIN_PASSWORD"},
		{"old secret name, short", map[string]string{"FLASK_SECRET_KEY": "tiny", "ADMIN_PASSWORD": "a-long-admin-passphrase-42"}, "SECRET_KEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"G_NOME_ENV": "production", "DATA_DIR": t.TempDir(),
				"HTTP_ADDR": freeAddr(t), "EMBEDDED_NATS_ADDR": freeAddr(t), "EMBEDDED_STORE_ADDR": freeAddr(t)}
			for k, v := range c.env {
				env[k] = v
			}
			p := start(t, "gnome", env, "serve")
			if code := p.wait(t, 20*time.Second); code == 0 {
				t.Fatal("production serve started with an insecure setting")
			}
			if !strings.Contains(p.Output(), c.want) {
				t.Errorf("refusal does not name %s: %s", c.want, p.Output())
			}
		})
	}
}
