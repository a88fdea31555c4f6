package bus

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Who may do what on the bus. Every connection authenticates as one user:
// one per service (the service's name), and Admin for provisioning, tests
// and operators. Each service user may publish and subscribe only to what
// that service needs, so a compromised edge cannot serve gnome.auth.>,
// publish domain events or write the token keys. The embedded server
// (libs/embedded) applies this table; deploy/compose/nats.conf and the Nomad
// NATS job carry the same rules for clusters (`gnome nats-config` prints
// them).
//
// A service that starts using a new subject, stream, bucket or object store
// adds it here, or its requests are refused by the server.

// Admin is the user with every permission: `gnome serve` uses it only to
// install a standalone package, tests use it, and operators may.
const Admin = "admin"

// Users are the bus users of the platform, services first.
var Users = []string{"edge", "auth", "upload", "export", "actorworker", Admin}

// ReplyWindow is how long a service may take to answer a request it
// received: the server lets it publish one reply to the request's inbox
// within it. The longest request is an upload's processing (10 minutes).
const ReplyWindow = 15 * time.Minute

// InboxPrefix is where a user's replies arrive: each user gets its own
// prefix, so that no service can read the replies meant for another (a
// token minted by auth for the edge, say).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// Access is what one user may publish and subscribe to. Replies to the
// requests a user receives are always allowed (the server's response
// permission), so responders need no publish rights on inboxes.
type Access struct {
	Publish   []string
	Subscribe []string
	// All is the admin's unrestricted access.
	All bool
}

// resource is a JetStream stream (a stream, KV_<bucket> or OBJ_<store>) a
// service uses: read (consumers, direct gets), write (its subjects), own
// (update its configuration; only its owner does, see Topology).
type resource struct {
	stream        string
	subjects      []string // what writing publishes to
	read, write   bool
	own, workPull bool // workPull: takes and removes messages of a work queue
}

func kv(bucket string) resource {
	return resource{stream: "KV_" + bucket, subjects: []string{"$KV." + bucket + ".>"}}
}

func obj(store string) resource {
	return resource{stream: "OBJ_" + store, subjects: []string{"$O." + store + ".>"}}
}

func stream(name, subjects string) resource {
	return resource{stream: name, subjects: []string{subjects}}
}

func (r resource) reads() resource  { r.read = true; return r }
func (r resource) writes() resource { r.read, r.write = true, true; return r }
func (r resource) owns() resource   { r.read, r.write, r.own = true, true, true; return r }
func (r resource) takes() resource  { r.read, r.workPull = true, true; return r }

// uses is each service's JetStream resources. Every service creates what it
// uses when missing (start order never matters); only the owner changes an
// existing configuration.
var uses = map[string][]resource{
	"edge": {
		kv(BucketRateLimit).owns(), kv(BucketHandoffs).owns(), kv(BucketDataGrants).reads(),
		kv(BucketRevokedTokens).reads(), kv(BucketAuthKeys).reads(), kv(BucketUserVersions).reads(),
		kv(BucketActorState).reads(), kv(BucketActorLeases).reads(),
		stream(StreamEvents, SubjectEvents).reads(),
		stream(StreamActorJobs, SubjectActorJobs).writes(),
		stream(StreamActorLogs, SubjectActorLogs).reads(),
		obj(ObjectUploads).writes(), obj(ObjectBundles).reads(),
		// Downloads of exports kept in the object store are streamed by the edge.
		obj(ObjectExports).reads(),
	},
	"auth": {
		kv(BucketRevokedTokens).owns(), kv(BucketAuthKeys).owns(), kv(BucketUserVersions).owns(),
	},
	"upload": {
		kv(BucketRevokedTokens).reads(), kv(BucketAuthKeys).reads(), kv(BucketUserVersions).reads(),
		stream(StreamEvents, SubjectEvents).owns(), kv(BucketDataGrants).owns(), kv(BucketUploadRuns).owns(),
		obj(ObjectUploads).owns(), obj(ObjectBundles).owns(),
	},
	"export": {
		kv(BucketRevokedTokens).reads(), kv(BucketAuthKeys).reads(), kv(BucketUserVersions).reads(),
		stream(StreamExportJobs, SubjectExportJobs).owns().takes(),
		stream(StreamEvents, SubjectEvents).reads(), kv(BucketDataGrants).reads(),
		obj(ObjectExports).owns(), obj(ObjectBundles).reads(),
		// Standalone and docker packages carry the actors' keys.
		kv(BucketActorKV).reads(),
	},
	"actorworker": {
		kv(BucketActorLeases).owns(), kv(BucketActorState).owns(), kv(BucketActorKV).owns(), kv(BucketDataGrants).reads(),
		kv(BucketActorTimers).owns(),
		stream(StreamActorJobs, SubjectActorJobs).owns().takes(),
		stream(StreamEvents, SubjectEvents).reads(),
		stream(StreamActorLogs, SubjectActorLogs).owns(),
		obj(ObjectBundles).reads(),
	},
}

// core is each service's plain NATS subjects besides JetStream: what it
// requests or publishes, and what it serves or follows.
var core = map[string]Access{
	"edge": {
		Publish: []string{
			"gnome.auth.>", "gnome.upload.>", "gnome.export.>", "gnome.actorworker.status", "gnome.edge.status",
			"gnome.actor.*.call", "gnome.actor.*.live", "gnome.authz.changed", "$SRV.>",
		},
		// Live channels: commands about an edge's connections, rooms'
		// messages and censuses (actorapi.LiveEdgeSubject, ...).
		Subscribe: []string{"gnome.authz.changed", "exports.progress.*", "gnome.live.*.edge.*", "gnome.live.*.room.*", "gnome.live.*.census"},
	},
	"auth":   {Publish: []string{"gnome.authz.changed"}, Subscribe: []string{"gnome.authz.changed"}},
	"upload": {},
	"export": {
		Publish: []string{"exports.progress.*"},
		Subscribe: []string{
			"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamExportJobs + ".>",
		},
	},
	"actorworker": {
		Publish: []string{"gnome.actor.*.call", "gnome.live.>"},
		Subscribe: []string{
			"gnome.actor.*.call", "gnome.actor.*.live",
			"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamActorJobs + ".>",
		},
	},
}

// Permissions is the access of one bus user; ok is false for an unknown
// user.
func Permissions(user string) (a Access, ok bool) {
	if user == Admin {
		return Access{All: true}, true
	}
	c, known := core[user]
	if !known {
		return Access{}, false
	}
	pub := append([]string{
		// Account and stream information: health checks, metrics and
		// provisioning read them.
		"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
		"$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*",
	}, c.Publish...)
	sub := append([]string{
		InboxPrefix(user) + ".>",
		// A service serves its own endpoints and answers discovery.
		"gnome." + user + ".>", "$SRV.*", "$SRV.*." + user, "$SRV.*." + user + ".>",
	}, c.Subscribe...)
	for _, r := range uses[user] {
		s := r.stream
		pub = append(pub, "$JS.API.STREAM.CREATE."+s)
		if r.own {
			pub = append(pub, "$JS.API.STREAM.UPDATE."+s)
		}
		if r.read {
			pub = append(pub,
				"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
				"$JS.API.CONSUMER.DURABLE.CREATE."+s+".>", "$JS.API.CONSUMER.DELETE."+s+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+s+".>",
				"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>", "$JS.API.STREAM.MSG.GET."+s,
				"$JS.ACK."+s+".>", "$JS.FC."+s+".>",
			)
		}
		if r.write {
			pub = append(pub, r.subjects...)
		}
		// Removing messages: buckets and object stores remove old values
		// and chunks as they write; a work queue's own service removes an
		// abandoned job.
		if (r.write && !strings.HasPrefix(s, "JOBS_") && s != StreamEvents) || r.own || r.workPull {
			pub = append(pub, "$JS.API.STREAM.PURGE."+s, "$JS.API.STREAM.MSG.DELETE."+s)
		}
	}
	return Access{Publish: dedupe(pub), Subscribe: dedupe(sub)}, true
}

// Owner is the service that owns a stream, bucket or object store (by its
// JetStream stream name: EVENTS, KV_auth_keys, OBJ_bundles...), or "".
func Owner(streamName string) string {
	for _, user := range Users {
		for _, r := range uses[user] {
			if r.stream == streamName && r.own {
				return user
			}
		}
	}
	return ""
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ServerConfig is the authorization block of a nats-server configuration
// file granting every bus user its permissions, for clusters (the embedded
// server applies the same table itself). password is what the file says for
// a user's password: a literal, or an environment variable reference such
// as $GNOME_NATS_EDGE_PASSWORD that nats-server resolves at start.
func ServerConfig(password func(user string) string) string {
	var b strings.Builder
	b.WriteString("# The bus users of g.nome and their permissions, generated from\n")
	b.WriteString("# libs/bus/access.go by `gnome nats-config`; do not edit by hand.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, user := range Users {
		a, _ := Permissions(user)
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: %s\n", user, password(user))
		if !a.All {
			b.WriteString("      permissions: {\n")
			list := func(name string, subjects []string) {
				fmt.Fprintf(&b, "        %s: { allow: [\n", name)
				for _, s := range subjects {
					fmt.Fprintf(&b, "          %q\n", s)
				}
				b.WriteString("        ] }\n")
			}
			list("publish", a.Publish)
			list("subscribe", a.Subscribe)
			fmt.Fprintf(&b, "        allow_responses: { max: 1, expires: %q }\n", ReplyWindow.String())
			b.WriteString("      }\n")
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// PasswordVariable is the environment variable a generated server
// configuration reads user's password from.
func PasswordVariable(user string) string {
	return "GNOME_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}
