package embedded_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/embedded"
)

func TestNonLoopbackAddressesAreRefused(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.0.0.1:4222", "[::]:0", "192.168.1.10:0", ":4222", "example.com:4222", "nohost", "127.0.0.1:port", "127.0.0.1:70000"} {
		t.Run(addr, func(t *testing.T) {
			dir := t.TempDir()
			if n, err := embedded.StartNATS(dir, addr); err == nil {
				n.Shutdown()
				t.Errorf("StartNATS(%q) started", addr)
			} else if !strings.Contains(err.Error(), "EMBEDDED_NATS_ADDR") {
				t.Errorf("StartNATS(%q): %v does not name EMBEDDED_NATS_ADDR", addr, err)
			}
			if s, err := embedded.StartStore(dir, addr, nil); err == nil {
				s.Shutdown()
				t.Errorf("StartStore(%q) started", addr)
			} else if !strings.Contains(err.Error(), "EMBEDDED_STORE_ADDR") {
				t.Errorf("StartStore(%q): %v does not name EMBEDDED_STORE_ADDR", addr, err)
			}
		})
	}
}

func TestTakenPortIsReportedClearly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	_, err = embedded.StartNATS(t.TempDir(), addr)
	if err == nil {
		t.Fatal("StartNATS started on a taken port")
	}
	for _, want := range []string{"EMBEDDED_NATS_ADDR", addr, "NATS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	_, err = embedded.StartStore(t.TempDir(), addr, nil)
	if err == nil {
		t.Fatal("StartStore started on a taken port")
	}
	for _, want := range []string{"EMBEDDED_STORE_ADDR", addr, "MONGO_URI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestNATSListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		n, err := embedded.StartNATS(t.TempDir(), addr)
		if err != nil {
			t.Fatalf("StartNATS(%q): %v", addr, err)
		}
		url := n.URL()
		n.Shutdown()
		if !strings.HasPrefix(url, "nats://127.0.0.1:") {
			t.Errorf("StartNATS(%q) URL %q is not loopback", addr, url)
		}
	}
}

func TestNATSDataSurvivesARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n, err := embedded.StartNATS(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.AdminURL())
	if err != nil {
		n.Shutdown()
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keep.one", []byte("survivor")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	n.Shutdown()

	n2, err := embedded.StartNATS(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n2.Shutdown()
	nc2, err := nats.Connect(n2.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	s, err := js2.Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream gone after restart: %v", err)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message gone after restart: %v", err)
	}
	if string(msg.Data) != "survivor" || msg.Subject != "keep.one" {
		t.Errorf("after restart: %s %q", msg.Subject, msg.Data)
	}
}

func TestStoreDataSurvivesARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	write := func(uri string) {
		c, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Disconnect(ctx) }()
		if _, err := c.Database("keep").Collection("things").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: 42}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	read := func(uri string) int32 {
		c, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Disconnect(ctx) }()
		var doc struct {
			V int32 `bson:"v"`
		}
		if err := c.Database("keep").Collection("things").FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&doc); err != nil {
			t.Fatalf("document gone after restart: %v", err)
		}
		return doc.V
	}

	s, err := embedded.StartStore(dir, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") {
		t.Errorf("store URI %q is not loopback", s.URI())
	}
	write(s.URI())
	s.Shutdown()

	s2, err := embedded.StartStore(dir, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s2.Shutdown()
	if v := read(s2.URI()); v != 42 {
		t.Errorf("after restart v = %d, want 42", v)
	}
}

// The credentials are generated once, kept where only their owner reads
// them, and reused by the next start: separately started services keep
// working across a restart of the infrastructure.
func TestCredentialsAreGeneratedOnceAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	n, err := embedded.StartNATS(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	creds := n.Credentials()
	first := map[string]string{}
	for _, user := range bus.Users {
		a := creds.Auth(user)
		if a.User != user || len(a.Password) < 24 {
			t.Errorf("%s: credentials %q/%d characters", user, a.User, len(a.Password))
		}
		first[user] = a.Password
		fi, err := os.Stat(creds.File(user))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: file mode %v, want 0600", creds.File(user), fi.Mode().Perm())
		}
		read, ok, err := bus.ReadCredentials(filepath.Dir(dir), user)
		if err != nil || !ok || read != a {
			t.Errorf("%s: a binary with this DATA_DIR reads %+v, %v, %v", user, read, ok, err)
		}
	}
	if fi, err := os.Stat(creds.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("credentials dir: %v %v, want 0700", fi.Mode().Perm(), err)
	}
	if first["edge"] == first["auth"] {
		t.Error("two users share a password")
	}
	n.Shutdown()

	// Loosened by hand: the next start tightens the file again.
	if err := os.Chmod(creds.File("edge"), 0o644); err != nil {
		t.Fatal(err)
	}
	n2, err := embedded.StartNATS(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n2.Shutdown()
	for _, user := range bus.Users {
		if got := n2.Credentials().Auth(user).Password; got != first[user] {
			t.Errorf("%s: the password changed across a restart", user)
		}
	}
	if fi, _ := os.Stat(creds.File("edge")); fi.Mode().Perm() != 0o600 {
		t.Errorf("a loosened credentials file stays %v", fi.Mode().Perm())
	}
	nc, err := nats.Connect(n2.URL(), nats.UserInfo("edge", first["edge"]))
	if err != nil {
		t.Fatalf("the edge's kept password is refused after a restart: %v", err)
	}
	nc.Close()
}

// A damaged credentials file stops the start with a message naming it,
// instead of a server nobody can reach.
func TestDamagedCredentialsAreRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	cdir := filepath.Join(dir, embedded.CredentialsDir)
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, "auth.env"), []byte("NATS_USER=edge\nNATS_PASSWORD=short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := embedded.StartNATS(dir, "127.0.0.1:0"); err == nil {
		n.Shutdown()
		t.Fatal("started with a credentials file naming another user")
	} else if !strings.Contains(err.Error(), "auth.env") {
		t.Errorf("error does not name the file: %v", err)
	}
}
