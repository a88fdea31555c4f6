package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// as connects to env's server as bus user with its generated credentials;
// the server's refusals arrive on the returned channel.
func as(t *testing.T, env *testenv.Env, user string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 64)
	opts, err := bus.AuthOptions(env.Auth(user), user)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := bus.Connect(env.BusURL, "access-test-"+user, quiet, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused waits for the server's permission violation naming subject.
func refused(t *testing.T, errs <-chan error, what, subject string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
		case <-deadline:
			t.Errorf("%s: the server did not refuse %s", what, subject)
			return
		}
	}
}

func TestAConnectionWithoutCredentialsIsRefused(t *testing.T) {
	env := testenv.Start(t)
	if nc, err := nats.Connect(env.BusURL); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("no credentials: %v, want an authorization violation", err)
	}
	if nc, err := nats.Connect(env.BusURL, nats.UserInfo("edge", "not-the-password")); err == nil {
		nc.Close()
		t.Fatal("connected with a wrong password")
	}
	if nc, err := nats.Connect(env.BusURL, nats.UserInfo("nobody", env.Auth("edge").Password)); err == nil {
		nc.Close()
		t.Fatal("connected as an unknown user with another's password")
	}
}

// A service's user does only what the service does; the server refuses the
// rest.
func TestServiceUsersAreHeldToTheirPermissions(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The platform's resources exist, as the services provision them.
	admin := connect(t, env, "access-admin")
	ajs, _ := jetstream.New(admin)
	topo := bus.Topology{JS: ajs, Service: bus.Admin}
	if err := topo.EnsureStreams(ctx, bus.StreamEvents, bus.StreamActorJobs, bus.StreamExportJobs); err != nil {
		t.Fatal(err)
	}
	if err := topo.EnsureBuckets(ctx, bus.BucketAuthKeys, bus.BucketRevokedTokens, bus.BucketUserVersions); err != nil {
		t.Fatal(err)
	}

	edge, edgeErrs := as(t, env, "edge")
	// An edge serving the auth service's subjects (to answer sign-ins or
	// user administration itself).
	if _, err := edge.QueueSubscribe("gnome.auth.users.create", bus.QueueGroup, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	refused(t, edgeErrs, "edge serves gnome.auth.users.create", "gnome.auth.users.create")
	// ... publishing a domain event, reading another user's replies,
	// writing a token key (which would let it mint tokens), changing the
	// keys bucket's configuration, taking export jobs.
	_ = edge.Publish("events.experiment.deleted", []byte(`{}`))
	refused(t, edgeErrs, "edge publishes an event", "events.experiment.deleted")
	if _, err := edge.Subscribe("_INBOX.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	refused(t, edgeErrs, "edge reads the default inboxes", "_INBOX.>")
	if _, err := edge.Subscribe(bus.InboxPrefix("auth")+".>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	refused(t, edgeErrs, "edge reads the auth service's inbox", bus.InboxPrefix("auth"))
	_ = edge.Publish("$KV.auth_keys.forged", []byte("a key of the edge's own"))
	refused(t, edgeErrs, "edge writes a token key", "$KV.auth_keys.forged")
	_ = edge.Publish("$JS.API.STREAM.UPDATE.KV_auth_keys", []byte(`{}`))
	refused(t, edgeErrs, "edge reconfigures the keys bucket", "$JS.API.STREAM.UPDATE.KV_auth_keys")
	_ = edge.Publish("$JS.API.CONSUMER.MSG.NEXT.JOBS_EXPORT.export-worker", []byte(`{}`))
	refused(t, edgeErrs, "edge takes export jobs", "$JS.API.CONSUMER.MSG.NEXT.JOBS_EXPORT")
	_ = edge.Publish("$JS.API.STREAM.DELETE.EVENTS", nil)
	refused(t, edgeErrs, "edge deletes the events stream", "$JS.API.STREAM.DELETE.EVENTS")

	worker, workerErrs := as(t, env, "actorworker")
	if _, err := worker.QueueSubscribe("gnome.auth.>", bus.QueueGroup, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	refused(t, workerErrs, "actorworker serves gnome.auth.>", "gnome.auth.>")
	_ = worker.Publish("gnome.auth.users.create", []byte(`{}`))
	refused(t, workerErrs, "actorworker calls the auth service's administration", "gnome.auth.users.create")
	_ = worker.Publish("$KV.user_versions.u1", []byte("0"))
	refused(t, workerErrs, "actorworker resets a user's token version", "$KV.user_versions.u1")

	up, upErrs := as(t, env, "upload")
	if _, err := up.Subscribe("gnome.actor.*.call", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	refused(t, upErrs, "upload takes actor calls", "gnome.actor.*.call")

	// What a service does is allowed: the edge reads the token keys and
	// its own replies, provisions a bucket it uses, and writes its own.
	ejs, err := jetstream.New(edge)
	if err != nil {
		t.Fatal(err)
	}
	et := bus.Topology{JS: ejs, Service: "edge"}
	if err := et.EnsureBuckets(ctx, bus.BucketAuthKeys, bus.BucketRateLimit); err != nil {
		t.Fatalf("the edge provisions its buckets: %v", err)
	}
	keys, err := ejs.KeyValue(ctx, bus.BucketAuthKeys)
	if err != nil {
		t.Fatalf("the edge opens the keys bucket: %v", err)
	}
	if _, err := keys.Get(ctx, "absent"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the edge reads the keys bucket: %v", err)
	}
	rl, err := ejs.KeyValue(ctx, bus.BucketRateLimit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Put(ctx, "k", []byte("1")); err != nil {
		t.Errorf("the edge writes the rate-limit bucket: %v", err)
	}
	if _, err := ejs.Publish(ctx, "jobs.actor.start", []byte(`{}`)); err != nil {
		t.Errorf("the edge queues an actor start: %v", err)
	}
	select {
	case err := <-edgeErrs:
		if errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("an allowed step was refused: %v", err)
		}
	default:
	}
}

// servesOthers are the subjects outside its own that a service follows:
// actors' calls and live events on the worker, live channels' commands,
// rooms and censuses on the edge.
var servesOthers = map[string]bool{
	"actorworker gnome.actor.*.call": true, "actorworker gnome.actor.*.live": true,
	"edge gnome.live.*.edge.*": true, "edge gnome.live.*.room.*": true, "edge gnome.live.*.census": true,
}

// Every service user's permissions name only what exists in the table, and
// the admin alone has all.
func TestPermissionsTable(t *testing.T) {
	for _, user := range bus.Users {
		a, ok := bus.Permissions(user)
		if !ok {
			t.Fatalf("%s has no permissions", user)
		}
		if a.All != (user == bus.Admin) {
			t.Errorf("%s: all = %v", user, a.All)
		}
		if user == bus.Admin {
			continue
		}
		for _, p := range a.Subscribe {
			if strings.HasPrefix(p, "gnome.") && !strings.HasPrefix(p, "gnome."+user+".") &&
				p != "gnome.authz.changed" && !servesOthers[user+" "+p] {
				t.Errorf("%s may serve %s", user, p)
			}
			if p == ">" || p == "_INBOX.>" {
				t.Errorf("%s may subscribe to %s", user, p)
			}
		}
		for _, p := range a.Publish {
			if p == ">" || p == "$JS.API.>" || strings.HasPrefix(p, "$JS.API.STREAM.DELETE") {
				t.Errorf("%s may publish %s", user, p)
			}
			if strings.HasPrefix(p, "events.") && user != "upload" {
				t.Errorf("%s may publish events (%s)", user, p)
			}
			if strings.HasPrefix(p, "$KV.auth_keys") && user != "auth" {
				t.Errorf("%s may write token keys", user)
			}
		}
	}
	if _, ok := bus.Permissions("nobody"); ok {
		t.Error("an unknown user has permissions")
	}
	if bus.Owner("KV_auth_keys") != "auth" || bus.Owner(bus.StreamEvents) != "upload" || bus.Owner("OBJ_exports") != "export" {
		t.Error("owners")
	}
}

// The cluster configuration in deploy/ is the table's, and nats-server
// reads it as the same users with the same permissions.
func TestServerConfigMatchesTheTable(t *testing.T) {
	conf := bus.ServerConfig(func(user string) string { return "$" + bus.PasswordVariable(user) })
	committed, err := os.ReadFile(filepath.Join("..", "..", "deploy", "compose", "nats-users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != conf {
		t.Error("deploy/compose/nats-users.conf is out of date: run `go run ./services/gnome/cmd/gnome nats-config > deploy/compose/nats-users.conf`")
	}
	for _, user := range bus.Users {
		t.Setenv(bus.PasswordVariable(user), "password-of-"+user)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v", err)
	}
	if len(opts.Users) != len(bus.Users) {
		t.Fatalf("%d users, want %d", len(opts.Users), len(bus.Users))
	}
	// docker-compose.yml's server configuration includes it; each node
	// names itself from its container's environment.
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	compose, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatalf("nats-server refuses deploy/compose/nats.conf: %v", err)
	}
	if len(compose.Users) != len(bus.Users) {
		t.Errorf("deploy/compose/nats.conf has %d users, want %d", len(compose.Users), len(bus.Users))
	}
	for _, u := range opts.Users {
		want, _ := bus.Permissions(u.Username)
		if u.Password != "password-of-"+u.Username {
			t.Errorf("%s: password not taken from %s", u.Username, bus.PasswordVariable(u.Username))
		}
		if want.All {
			if u.Permissions != nil {
				t.Errorf("%s: restricted, want all", u.Username)
			}
			continue
		}
		p := u.Permissions
		if p == nil || !slices.Equal(p.Publish.Allow, want.Publish) || !slices.Equal(p.Subscribe.Allow, want.Subscribe) ||
			p.Response == nil || p.Response.MaxMsgs != 1 || p.Response.Expires != bus.ReplyWindow {
			t.Errorf("%s: permissions differ from the table: %+v", u.Username, p)
		}
	}
}

// A cluster's user may be an nkey: NATS_NKEY_SEED names the seed's file.
func TestAuthOptionsWithAnNKeySeed(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	file := filepath.Join(t.TempDir(), "edge.nk")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := bus.AuthOptions(config.NATSAuth{NKeySeedFile: file}, "edge")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(srv.ClientURL(), "nkey-test", quiet, opts...)
	if err != nil {
		t.Fatalf("connect with the nkey seed: %v", err)
	}
	nc.Close()
	if _, err := bus.AuthOptions(config.NATSAuth{NKeySeedFile: filepath.Join(t.TempDir(), "missing")}, "edge"); err == nil || !strings.Contains(err.Error(), "NATS_NKEY_SEED") {
		t.Errorf("a missing seed file: %v, want an error naming NATS_NKEY_SEED", err)
	}
	if _, err := bus.Connect(srv.ClientURL(), "nkey-test", quiet); err == nil {
		t.Error("connected without the nkey")
	}
}
