package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/actorworker"
	"github.com/gnome-platform/gnome/services/edge"
	"github.com/gnome-platform/gnome/services/export"
	"github.com/gnome-platform/gnome/services/gnome/platform"
)

// internalPrefixes are NATS' own subjects: the JetStream API, acks,
// advisories and flow control. Replies to requests on them are NATS' too.
var internalPrefixes = []string{"$JS.API.", "$JS.ACK.", "$JS.EVENT.", "$JS.FC."}

func isInternal(subject string) bool {
	for _, p := range internalPrefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

// TestBusMessagesMatchAsyncAPI runs every service in-process, records every
// message on the bus while exercising it, and checks each against
// schemas/asyncapi.yaml: its subject must be documented and its headers and
// body must match the schemas the document gives for it. The exercise calls
// every documented endpoint of every service (the auth service's accounts
// and the upload service's experiments with the events they publish
// included), provokes some error replies, and checks that the endpoints the
// services report to $SRV.INFO are exactly the documented ones.
func TestBusMessagesMatchAsyncAPI(t *testing.T) {
	doc := loadAsyncAPI(t)
	env := testenv.Start(t)

	// The recorder connects before any service so it sees provisioning and
	// registration too.
	rec, err := nats.Connect(env.NATSURL, nats.Name("gnome-test-recorder"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	var (
		mu       sync.Mutex
		captured []*nats.Msg
	)
	sub, err := rec.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		captured = append(captured, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}

	cfg := env.Config(t, busTestConfig)
	d := env.Deps(t, cfg)
	services := platform.Services(d)
	testenv.Run(t, d, services...)
	edgeAddr := services[len(services)-1].(*edge.Service).Addr

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Every service answers its status endpoint.
	for _, name := range edge.Services {
		rctx := telemetry.WithRequestID(ctx, "status-"+name)
		st, err := contract.StatusEndpoint(name).Call(rctx, bus.Client{NC: d.NC}, contract.Empty{})
		if err != nil {
			t.Fatalf("%s status: %v", name, err)
		}
		if st.Service != name || st.Instance != d.InstanceID || st.ID == "" {
			t.Errorf("%s status: %+v", name, st)
		}
	}

	// A body that is not JSON is refused with invalid_json.
	const badRequestID = "probe-invalid-json"
	_, err = bus.CallRaw(telemetry.WithRequestID(ctx, badRequestID), d.NC, bus.Subject("auth", "status"), []byte("{"))
	if ae := apierr.From(err); err == nil || ae.Code != apierr.CodeInvalidJson {
		t.Fatalf("status with a body that is not JSON: got %v, want invalid_json", err)
	}

	// Discovery: every service answers PING, INFO and STATS.
	found, err := bus.Discover(ctx, d.NC, 150*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	for _, name := range edge.Services {
		if len(found[name]) != 1 {
			t.Fatalf("discover: %s has %d instances, want 1", name, len(found[name]))
		}
	}
	for _, verb := range []string{"INFO", "STATS"} {
		if _, err := d.NC.RequestWithContext(ctx, "$SRV."+verb+".export", nil); err != nil {
			t.Fatalf("$SRV.%s.export: %v", verb, err)
		}
		id := found["auth"][0].ID
		if _, err := d.NC.RequestWithContext(ctx, "$SRV."+verb+".auth."+id, nil); err != nil {
			t.Fatalf("$SRV.%s.auth.%s: %v", verb, id, err)
		}
	}

	// A job on JOBS_EXPORT, which the export worker takes and settles (with
	// no export of that ID recorded, it fails it permanently).
	exportID := exportapi.NewID()
	q := jobs.NewQueue(d.JS, bus.StreamExportJobs, exportapi.JobPrefix)
	job := exportapi.BuildJob{
		ID: exportID, Slug: "field-notes", Type: exportapi.Standalone, Version: 1,
		Checksum:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		RequestedBy: "reader@example.com", RequestedAt: time.Now().UTC(),
	}
	if dup, err := q.Enqueue(telemetry.WithRequestID(ctx, "enqueue-export"), exportapi.JobBuild, exportID, job); err != nil || dup {
		t.Fatalf("enqueue: duplicate=%v err=%v", dup, err)
	}
	waitFor(t, 10*time.Second, "the export worker to settle the job", func() bool {
		c, err := d.JS.Consumer(ctx, bus.StreamExportJobs, export.Durable)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.Delivered.Consumer >= 1 && ci.NumAckPending == 0 && ci.NumPending == 0
	})

	// The endpoints the services serve are the documented ones.
	checkServedEndpoints(ctx, t, doc, d.NC)

	// Accounts: every auth endpoint, as the edge calls it.
	exerciseAuth(ctx, t, d.NC)
	exerciseExpAccounts(ctx, t, d)
	exerciseLinks(ctx, t, d)
	exercisePermissions(ctx, t, d)
	exerciseTokens(ctx, t, d.NC)
	exerciseAudit(ctx, t, d.NC)

	// Experiments: upload, change and delete, which publish events.
	exerciseUpload(ctx, t, d)
	exerciseGrants(ctx, t, d)
	exerciseSecrets(ctx, t, d)
	exerciseVersions(ctx, t, d)

	// Actors: an experiment with an actor, called through the edge.
	exerciseActor(ctx, t, d, edgeAddr)
	// Live channels: a WebSocket and an event stream through the edge.
	exerciseLive(ctx, t, d, edgeAddr)

	// Exports: every endpoint of the export service, a build job with its
	// progress, and the invalidation of an export by its experiment's
	// deletion.
	exerciseExports(t, d)
	// Last: it ends the admin's sessions.
	exercisePassword(ctx, t, d.NC)

	// The running resources match the document.
	checkLiveTopology(ctx, t, doc, d.JS)

	// Let the recorder catch up, then stop it: first until the edge's
	// catalog consumer has been handed the last event (a delivery carries
	// JetStream's ack subject as its reply), then until nothing more comes.
	if err := d.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the edge to be handed the experiment's deletion", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(captured, func(m *nats.Msg) bool {
			return m.Subject == events.ExperimentDeleted && strings.HasPrefix(m.Reply, "$JS.ACK.")
		})
	})
	last := -1
	waitFor(t, 5*time.Second, "the recorder to go quiet", func() bool {
		if err := rec.Flush(); err != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		n := len(captured)
		mu.Unlock()
		quiet := n == last
		last = n
		return quiet
	})
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	msgs := slices.Clone(captured)
	mu.Unlock()

	// Check every message, correlating replies with their requests.
	var (
		expect      = map[string][]*docMessage{} // reply subject -> replies the request allows
		internal    = map[string]bool{}          // reply subjects of NATS' own requests
		seen        = map[string]int{}           // message name -> count
		requests    = map[string]int{}           // channel -> requests with a reply subject
		nInternal   int
		nStoreBytes int
		badBody     []*nats.Msg
		badReplies  []*nats.Msg
	)
	for _, m := range msgs {
		headers := doc.headersValue(m.Header)
		switch ch := doc.match(m.Subject); {
		case isInternal(m.Subject) || m.Header.Get("Status") != "":
			// NATS' own subjects, and its status messages (heartbeats,
			// flow control, no responders) to a subscriber's inbox.
			nInternal++
			if m.Reply != "" {
				internal[m.Reply] = true
			}
		case ch != nil:
			if m.Reply != "" {
				if ch.stream != "" {
					internal[m.Reply] = true // JetStream's publish ack
				} else {
					expect[m.Reply] = ch.replies
					requests[ch.key]++
				}
			}
			if m.Header.Get(bus.HeaderRequestID) == badRequestID {
				badBody = append(badBody, m)
				expect[m.Reply] = ch.replies
				if _, err := validate(ch.messages, headers, m.Data); err == nil {
					t.Errorf("%s: the body %q validates, but the service refused it", m.Subject, m.Data)
				}
				continue
			}
			dm, err := validate(ch.messages, headers, m.Data)
			if err != nil {
				t.Errorf("%s (channel %s) does not match the document:\n%v", m.Subject, ch.key, err)
				continue
			}
			seen[dm.name]++
		case expect[m.Subject] != nil:
			dm, err := validate(expect[m.Subject], headers, m.Data)
			if err != nil {
				t.Errorf("reply on %s does not match the document:\n%v", m.Subject, err)
				continue
			}
			seen[dm.name]++
			if dm.name == "ErrorReply" {
				badReplies = append(badReplies, m)
				if code := apierr.Code(m.Header.Get(bus.HeaderErrorCode)); !code.Known() {
					t.Errorf("reply on %s: error code %q is not in schemas/errors.json", m.Subject, code)
				}
			}
		case internal[m.Subject]:
			nInternal++
		case storeSubject(doc, m.Subject):
			nStoreBytes++
			if m.Reply != "" {
				internal[m.Reply] = true // JetStream's publish ack
			}
		default:
			t.Errorf("message on %s (reply %q, headers %v, body %q) is on no subject schemas/asyncapi.yaml documents",
				m.Subject, m.Reply, m.Header, truncate(m.Data))
		}
	}
	t.Logf("recorded %d messages: %d of NATS itself, %d bucket/object values, documented: %v", len(msgs), nInternal, nStoreBytes, seen)

	// The exercise produced what it meant to, so none of the above passed
	// for lack of messages.
	want := map[string]int{
		"StatusRequest": len(edge.Services), "StatusReply": len(edge.Services), "ErrorReply": 1 + len(wantErrors),
		"DiscoveryRequest": 6, "PingReply": len(edge.Services), "InfoReply": 2 + len(edge.Services), "StatsReply": 2,
		"ExportBuildJob": 4, // the probe's and the exercise's, each published, then delivered to the worker
		"ExportRequest":  3, "ExportRequested": 2, "ExportGet": 3, "ExportLog": 2, "ExportList": 1, "ExportListed": 1,
		"ExportInvalidate": 1, "ExportDownload": 1, "ExportProgress": 3,
		"Credentials": 3, "Session": 2, "Logout": 1, "EmptyReply": 1, "ListUsers": 1, "Users": 1,
		"CreateUser": 2, "UpdateUser": 1, "RoleChange": 2, "User": 4,
		"ProcessUpload": 1, "UpdateExperiment": 1, "DeleteExperiment": 2, "UploadResult": 3,
		// Each event is published, then handed to the edge's catalog.
		"ExperimentUpdated": 4, "ExperimentDeleted": 2,
		"ActorLogLine": 1,
	}
	for name, n := range want {
		if seen[name] < n {
			t.Errorf("recorded %d %s messages, want at least %d", seen[name], name, n)
		}
	}
	// Every documented endpoint of a bus service was called.
	for _, ch := range doc.channels {
		if len(ch.replies) > 0 && ch.tokens[0] == "gnome" && requests[ch.key] == 0 {
			t.Errorf("no request on %s was recorded: the exercise leaves it untested", strings.Join(ch.tokens, "."))
		}
	}
	if len(badBody) != 1 {
		t.Fatalf("recorded %d requests with the invalid body, want 1", len(badBody))
	}

	// The error replies are the provoked ones, each with its code in both
	// headers and body and the request's ID.
	wantCodes := maps.Clone(wantErrors)
	wantCodes[badRequestID] = apierr.CodeInvalidJson
	got := map[string]bool{}
	for _, r := range badReplies {
		var be apierr.BodyError
		if err := json.Unmarshal(r.Data, &be); err != nil {
			t.Fatal(err)
		}
		code, ok := wantCodes[be.RequestID]
		switch {
		case !ok:
			t.Errorf("unexpected error reply: headers %v body %+v", r.Header, be)
		case be.Code != code || r.Header.Get(bus.HeaderErrorCode) != string(be.Code) || r.Header.Get(bus.HeaderError) != be.Message:
			t.Errorf("error reply to %s: headers %v body %+v, want code %s in both", be.RequestID, r.Header, be, code)
		}
		got[be.RequestID] = true
	}
	for rid := range wantCodes {
		if !got[rid] {
			t.Errorf("no error reply to request %s was recorded", rid)
		}
	}
}

// storeSubject reports whether subject carries a value of a documented
// key-value bucket or object store.
func storeSubject(doc *asyncAPI, subject string) bool {
	for prefix, section := range map[string]string{"$KV.": "x-nats-kv-buckets", "$O.": "x-nats-object-stores"} {
		if rest, ok := strings.CutPrefix(subject, prefix); ok {
			bucket, _, _ := strings.Cut(rest, ".")
			_, documented := mapAt(doc.root, section)[bucket]
			return documented
		}
	}
	return false
}

// checkLiveTopology compares the streams, consumers, buckets and object
// stores the running services provisioned with the document.
func checkLiveTopology(ctx context.Context, t *testing.T, doc *asyncAPI, js jetstream.JetStream) {
	t.Helper()
	used := usedResources(t)
	unused := func(section, name string) bool {
		if used[section+"/"+name] {
			return false
		}
		t.Logf("%s %s: no service provisions it yet", section, name)
		return true
	}
	for name, v := range mapAt(doc.root, "x-nats-streams") {
		want := v.(map[string]any)
		if unused("x-nats-streams", name) {
			continue
		}
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Errorf("stream %s: %v", name, err)
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Errorf("stream %s: %v", name, err)
			continue
		}
		checkStream(t, "live stream "+name, want, info.Config, 1)
	}
	for name, v := range mapAt(doc.root, "x-nats-consumers") {
		want := v.(map[string]any)
		c, err := js.Consumer(ctx, str(want["stream"]), name)
		if err != nil {
			t.Errorf("consumer %s on %s: %v", name, want["stream"], err)
			continue
		}
		ci, err := c.Info(ctx)
		if err != nil {
			t.Errorf("consumer %s: %v", name, err)
			continue
		}
		cfg := ci.Config
		if cfg.Durable != name && want["durable"] == true {
			t.Errorf("consumer %s: durable name %q", name, cfg.Durable)
		}
		eq(t, "consumer "+name+" ack_policy", str(want["ack_policy"]), strings.TrimPrefix(strings.ToLower(cfg.AckPolicy.String()), "ack"))
		eq(t, "consumer "+name+" deliver_policy", str(want["deliver_policy"]), strings.TrimPrefix(strings.ToLower(cfg.DeliverPolicy.String()), "deliver"))
		eq(t, "consumer "+name+" ack_wait", dur(t, want["ack_wait"]), cfg.AckWait)
		eq(t, "consumer "+name+" max_deliver", num(t, want["max_deliver"]), int64(cfg.MaxDeliver))
		eq(t, "consumer "+name+" max_ack_pending", num(t, want["max_ack_pending"]), int64(cfg.MaxAckPending))
		eq(t, "consumer "+name+" filter_subjects", strs(want["filter_subjects"]), append(strs(nil), cfg.FilterSubjects...))
	}
	for name, v := range mapAt(doc.root, "x-nats-kv-buckets") {
		want := v.(map[string]any)
		if unused("x-nats-kv-buckets", name) {
			continue
		}
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			t.Errorf("bucket %s: %v", name, err)
			continue
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Errorf("bucket %s: %v", name, err)
			continue
		}
		eq(t, "live bucket "+name+" ttl", optDur(t, want["ttl"]), st.TTL())
		eq(t, "live bucket "+name+" history", num(t, want["history"]), st.History())
	}
	for name, v := range mapAt(doc.root, "x-nats-object-stores") {
		want := v.(map[string]any)
		if unused("x-nats-object-stores", name) {
			continue
		}
		obs, err := js.ObjectStore(ctx, name)
		if err != nil {
			t.Errorf("object store %s: %v", name, err)
			continue
		}
		st, err := obs.Status(ctx)
		if err != nil {
			t.Errorf("object store %s: %v", name, err)
			continue
		}
		eq(t, "live object store "+name+" ttl", optDur(t, want["ttl"]), st.TTL())
		eq(t, "live object store "+name+" compression", want["compression"] == true, st.IsCompressed())
	}
}

// usedResources lists, as "<section>/<name>", the resources of
// libs/bus/topology.go that some service's code refers to, and so provisions.
func usedResources(t *testing.T) map[string]bool {
	t.Helper()
	root := repoRoot(t)
	var src strings.Builder
	err := filepath.WalkDir(filepath.Join(root, "services"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		src.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{"Stream": "x-nats-streams", "Bucket": "x-nats-kv-buckets", "Object": "x-nats-object-stores"}
	used := map[string]bool{}
	for _, c := range topologyConstants(t) {
		if sections[c.kind] != "" && regexp.MustCompile(`\bbus\.`+c.name+`\b`).MatchString(src.String()) {
			used[sections[c.kind]+"/"+c.value] = true
		}
	}
	return used
}

// checkStream compares a stream's configuration with its entry in the document.
func checkStream(t *testing.T, what string, want map[string]any, cfg jetstream.StreamConfig, replicas int) {
	t.Helper()
	eq(t, what+" subjects", strs(want["subjects"]), cfg.Subjects)
	eq(t, what+" retention", str(want["retention"]), strings.ToLower(strings.TrimSuffix(cfg.Retention.String(), "Policy")))
	eq(t, what+" storage", str(want["storage"]), strings.ToLower(cfg.Storage.String()))
	eq(t, what+" discard", str(want["discard"]), strings.ToLower(strings.TrimPrefix(cfg.Discard.String(), "Discard")))
	eq(t, what+" duplicate_window", dur(t, want["duplicate_window"]), cfg.Duplicates)
	eq(t, what+" max_age", dur(t, want["max_age"]), cfg.MaxAge)
	eq(t, what+" max_msgs", num(t, want["max_msgs"]), unlimited(cfg.MaxMsgs))
	eq(t, what+" replicas", "NATS_REPLICAS", str(want["replicas"]))
	eq(t, what+" replicas", replicas, cfg.Replicas)
	eq(t, what+" description", str(want["description"]), cfg.Description)
}

// TestAsyncAPIMatchesTopology checks schemas/asyncapi.yaml against
// libs/bus/topology.go: every resource constant is documented in the right
// section with the owner its comment names, nothing documented is missing
// from the code, and the settings the code provisions are the documented ones.
func TestAsyncAPIMatchesTopology(t *testing.T) {
	doc := loadAsyncAPI(t)
	consts := topologyConstants(t)
	if len(consts) == 0 {
		t.Fatal("found no constants in libs/bus/topology.go")
	}
	sections := map[string]string{"Stream": "x-nats-streams", "Bucket": "x-nats-kv-buckets", "Object": "x-nats-object-stores"}
	var streamSubjects []string
	for _, v := range mapAt(doc.root, "x-nats-streams") {
		streamSubjects = append(streamSubjects, strs(v.(map[string]any)["subjects"])...)
	}
	inCode := map[string]map[string]bool{}
	for _, c := range consts {
		if c.kind == "Subject" {
			if !slices.Contains(streamSubjects, c.value) {
				t.Errorf("%s = %q is no stream's subject in asyncapi.yaml", c.name, c.value)
			}
			continue
		}
		section, ok := sections[c.kind]
		if !ok {
			t.Errorf("%s = %q: topology.go has a kind of resource asyncapi.yaml has no section for", c.name, c.value)
			continue
		}
		if inCode[section] == nil {
			inCode[section] = map[string]bool{}
		}
		inCode[section][c.value] = true
		entry, ok := mapAt(doc.root, section)[c.value].(map[string]any)
		if !ok {
			t.Errorf("%s = %q is not documented under %s", c.name, c.value, section)
			continue
		}
		if c.owner == "" {
			t.Errorf("%s: its comment in topology.go names no owner", c.name)
		}
		eq(t, c.value+" owner", c.owner, str(entry["owner"]))
	}
	for _, section := range sections {
		for name := range mapAt(doc.root, section) {
			if !inCode[section][name] {
				t.Errorf("%s.%s is documented but libs/bus/topology.go has no such resource", section, name)
			}
		}
	}

	// Settings: the document states what Topology provisions, on one server
	// and on a cluster.
	for _, replicas := range []int{1, 3} {
		topo := bus.Topology{Replicas: replicas}
		for name, v := range mapAt(doc.root, "x-nats-streams") {
			cfg, err := topo.Stream(name)
			if err != nil {
				t.Errorf("stream %s: %v", name, err)
				continue
			}
			checkStream(t, "stream "+name, v.(map[string]any), cfg, replicas)
		}
		for name, v := range mapAt(doc.root, "x-nats-kv-buckets") {
			want := v.(map[string]any)
			cfg, err := topo.KeyValue(name)
			if err != nil {
				t.Errorf("bucket %s: %v", name, err)
				continue
			}
			what := "bucket " + name
			eq(t, what+" description", str(want["description"]), cfg.Description)
			eq(t, what+" storage", str(want["storage"]), strings.ToLower(cfg.Storage.String()))
			eq(t, what+" replicas", replicas, cfg.Replicas)
			eq(t, what+" history", num(t, want["history"]), int64(cfg.History))
			eq(t, what+" ttl", optDur(t, want["ttl"]), cfg.TTL)
			eq(t, what+" limit_marker_ttl", optDur(t, want["limit_marker_ttl"]), cfg.LimitMarkerTTL)
			eq(t, what+" max_value_size", optNum(t, want["max_value_size"]), unlimited(int64(cfg.MaxValueSize)))
		}
		for name, v := range mapAt(doc.root, "x-nats-object-stores") {
			want := v.(map[string]any)
			cfg, err := topo.ObjectStore(name)
			if err != nil {
				t.Errorf("object store %s: %v", name, err)
				continue
			}
			what := "object store " + name
			eq(t, what+" description", str(want["description"]), cfg.Description)
			eq(t, what+" storage", str(want["storage"]), strings.ToLower(cfg.Storage.String()))
			eq(t, what+" replicas", replicas, cfg.Replicas)
			eq(t, what+" ttl", optDur(t, want["ttl"]), cfg.TTL)
			eq(t, what+" compression", want["compression"] == true, cfg.Compression)
		}
	}

	// Consumers belong to documented streams; channels name documented
	// streams whose subjects cover them.
	streams := mapAt(doc.root, "x-nats-streams")
	for name, v := range mapAt(doc.root, "x-nats-consumers") {
		if _, ok := streams[str(v.(map[string]any)["stream"])]; !ok {
			t.Errorf("consumer %s: stream %v is not documented", name, v.(map[string]any)["stream"])
		}
	}
	eq(t, "export worker durable", export.Durable, durableOf(doc, "runExportBuild"))
	eq(t, "actor start durable", actorworker.Durable, durableOf(doc, "runActorStart"))
	for _, ch := range doc.channels {
		if ch.stream == "" {
			if strings.HasPrefix(strings.Join(ch.tokens, "."), "events.") || strings.HasPrefix(strings.Join(ch.tokens, "."), "jobs.") {
				t.Errorf("channel %s names no x-nats-stream", ch.key)
			}
			continue
		}
		s, ok := streams[ch.stream].(map[string]any)
		if !ok {
			t.Errorf("channel %s: stream %s is not documented", ch.key, ch.stream)
			continue
		}
		covered := false
		for _, f := range strs(s["subjects"]) {
			covered = covered || subjectMatches(f, ch.tokens)
		}
		if !covered {
			t.Errorf("channel %s (%s) is outside stream %s's subjects %v", ch.key, strings.Join(ch.tokens, "."), ch.stream, s["subjects"])
		}
	}
	// Every bus service's status endpoint is documented.
	if ch := doc.match("gnome.edge.status"); ch == nil || len(ch.params["service"]) != len(edge.Services) {
		t.Errorf("gnome.{service}.status must list the services %v", edge.Services)
	}
	for _, name := range edge.Services {
		if doc.match(bus.Subject(name, "status")) == nil {
			t.Errorf("%s is not documented", bus.Subject(name, "status"))
		}
	}
}

func durableOf(doc *asyncAPI, operation string) string {
	return str(mapAt(mapAt(doc.root, "operations"), operation)["x-nats-consumer"])
}

// subjectMatches reports whether the NATS filter covers the subject tokens.
func subjectMatches(filter string, subject []string) bool {
	f := strings.Split(filter, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(subject) > i
		}
		if i >= len(subject) || (tok != "*" && tok != subject[i]) {
			return false
		}
	}
	return len(f) == len(subject)
}

type topologyConst struct{ name, kind, value, owner string }

var ownerRE = regexp.MustCompile(`(?i)\bowner:\s*([a-z]+)`)

// topologyConstants reads the string constants of libs/bus/topology.go with
// the owner their comments name, so that a resource added there must be
// documented before this test passes.
func topologyConstants(t *testing.T) []topologyConst {
	t.Helper()
	path := filepath.Join(repoRoot(t), "libs", "bus", "topology.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var out []topologyConst
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			comment := vs.Doc.Text() + " " + vs.Comment.Text()
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				c := topologyConst{name: n.Name, value: v}
				for _, k := range []string{"Stream", "Subject", "Bucket", "Object"} {
					if strings.HasPrefix(n.Name, k) {
						c.kind = k
					}
				}
				if m := ownerRE.FindStringSubmatch(comment); m != nil {
					c.owner = strings.ToLower(m[1])
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// TestAsyncAPIDocument checks the document on its own: references resolve,
// operations reply with messages of their reply channel, and every message
// has examples that match its schemas.
func TestAsyncAPIDocument(t *testing.T) {
	doc := loadAsyncAPI(t)
	schemasDir := filepath.Dir(doc.path)

	// Every reference resolves: local ones to a node, file ones to a file.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch n := v.(type) {
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok {
				file, frag, _ := strings.Cut(ref, "#")
				if file == "" {
					if _, err := lookup(doc.root, ref); err != nil {
						t.Errorf("%s: %v", at, err)
					}
				} else {
					target, err := os.ReadFile(filepath.Join(schemasDir, filepath.FromSlash(file)))
					if err != nil {
						t.Errorf("%s: %v", at, err)
					} else if frag != "" {
						var tv any
						if err := json.Unmarshal(target, &tv); err != nil {
							t.Errorf("%s: %v", at, err)
						} else if _, err := lookup(tv, "#"+frag); err != nil {
							t.Errorf("%s: %s: %v", at, file, err)
						}
					}
				}
			}
			for _, k := range sortedKeys(n) {
				walk(n[k], at+"/"+escape(k))
			}
		case []any:
			for i, c := range n {
				walk(c, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(doc.root, "#")

	// Operations: the messages they name belong to their channels.
	for key, v := range mapAt(doc.root, "operations") {
		op := v.(map[string]any)
		if a := str(op["action"]); a != "send" && a != "receive" {
			t.Errorf("operation %s: action %q", key, a)
		}
		check := func(chRef any, msgs []any, what string) {
			_, chPtr, err := doc.resolve(chRef, "")
			if err != nil {
				t.Errorf("operation %s %s: %v", key, what, err)
				return
			}
			for _, m := range msgs {
				ref := str(m.(map[string]any)["$ref"])
				if !strings.HasPrefix(ref, chPtr+"/messages/") {
					t.Errorf("operation %s %s: message %s is not one of channel %s", key, what, ref, chPtr)
				}
			}
		}
		check(op["channel"], sliceOf(op["messages"]), "")
		if r, ok := op["reply"].(map[string]any); ok {
			check(r["channel"], sliceOf(r["messages"]), "reply")
		}
	}

	// Examples: every message has some, and they validate.
	msgs := mapAt(mapAt(doc.root, "components"), "messages")
	if len(msgs) == 0 {
		t.Fatal("no messages in components")
	}
	for _, name := range sortedKeys(msgs) {
		m, err := doc.message(map[string]any{"$ref": "#/components/messages/" + name}, "")
		if err != nil {
			t.Errorf("message %s: %v", name, err)
			continue
		}
		examples := sliceOf(m.node["examples"])
		if len(examples) == 0 {
			t.Errorf("message %s has no examples", name)
		}
		for i, e := range examples {
			ex := e.(map[string]any)
			h, _ := ex["headers"].(map[string]any)
			if h == nil {
				h = map[string]any{}
			}
			if err := m.headers.Validate(h); err != nil {
				t.Errorf("message %s example %d (%v) headers: %v", name, i, ex["name"], err)
			}
			if err := m.payload.Validate(ex["payload"]); err != nil {
				t.Errorf("message %s example %d (%v) payload: %v", name, i, ex["name"], err)
			}
			if code, ok := h["Nats-Service-Error-Code"]; ok && !apierr.Code(str(code)).Known() {
				t.Errorf("message %s example %d (%v): error code %v is not in schemas/errors.json", name, i, ex["name"], code)
			}
		}
	}

	// Every message schema file is used by some message.
	used := map[string]bool{}
	for _, m := range doc.messages {
		used[str(mapAt(mapAt(m.node, "payload"), "schema")["$ref"])] = true
	}
	files, _ := filepath.Glob(filepath.Join(schemasDir, "messages", "*.json"))
	for _, f := range files {
		rel := "./messages/" + filepath.Base(f)
		if !used[rel] && filepath.Base(f) != "defs.json" {
			t.Errorf("%s is the payload of no message in asyncapi.yaml", rel)
		}
	}
}

// TestSchemasCompile compiles every JSON Schema under schemas/ (draft
// 2020-12) and checks the error catalogue against its schema, against
// libs/apierr, and against the codes an error reply may carry.
func TestSchemasCompile(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "schemas")
	c := newCompiler()
	n := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && path == filepath.Join(dir, "examples") {
			return fs.SkipDir // instances, not schemas
		}
		if e.IsDir() || filepath.Ext(path) != ".json" || path == filepath.Join(dir, "errors.json") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var head struct {
			Schema string `json:"$schema"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if head.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q, want draft 2020-12", path, head.Schema)
		}
		if _, err := c.Compile(fileURL(path)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 12 {
		t.Errorf("compiled %d schemas, want at least 12", n)
	}

	// errors.json follows errors.schema.json; its codes are unique, known to
	// libs/apierr with the same status, and an error reply can carry each.
	cat := compileFile(t, c, filepath.Join(dir, "errors.schema.json"))
	raw, err := os.ReadFile(filepath.Join(dir, "errors.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Validate(v); err != nil {
		t.Errorf("errors.json: %v", err)
	}
	var catalogue struct {
		Errors []struct {
			Code   string `json:"code"`
			Status int    `json:"status"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &catalogue); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, e := range catalogue.Errors {
		if slices.Contains(codes, e.Code) {
			t.Errorf("errors.json: code %s twice", e.Code)
		}
		codes = append(codes, e.Code)
		if c := apierr.Code(e.Code); !c.Known() || c.Status() != e.Status {
			t.Errorf("errors.json: %s (%d) is not in libs/apierr with that status; run go generate ./libs/apierr", e.Code, e.Status)
		}
	}
	replyCode, err := c.Compile(fileURL(filepath.Join(dir, "messages", "error-reply.json")) + "#/properties/code")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range codes {
		if err := replyCode.Validate(code); err != nil {
			t.Errorf("error-reply.json cannot carry the catalogue's code %s: %v", code, err)
		}
	}

	// A catalogue entry with a status outside 4xx/5xx, or a code in
	// another case, is refused.
	for _, bad := range []string{
		`{"errors":[{"code":"ok","status":200,"description":"Fine."}]}`,
		`{"errors":[{"code":"NotFound","status":404,"description":"Missing."}]}`,
		`{"errors":[{"code":"gone","status":410}]}`,
	} {
		v, _ := decodeJSON([]byte(bad))
		if cat.Validate(v) == nil {
			t.Errorf("errors.schema.json accepts %s", bad)
		}
	}
}

// TestManifestSchema checks schemas/manifest.schema.json against the full
// example manifest and against manifests each broken in one place.
func TestManifestSchema(t *testing.T) {
	root := repoRoot(t)
	sch := compileFile(t, newCompiler(), filepath.Join(root, "schemas", "manifest.schema.json"))

	// The contract's example manifest, which uses every field, is kept in
	// schemas/examples; where the contract's own copy is at hand, the two
	// must agree.
	examplePath := filepath.Join(root, "schemas", "examples", "manifest-v2-full.json")
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	example, err := decodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if shared, err := os.ReadFile(filepath.Join(root, "..", "shared", "examples", "manifest-v2-full.json")); err == nil {
		v, err := decodeJSON(shared)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "schemas/examples/manifest-v2-full.json (the contract's copy)", v, example)
	}
	if err := sch.Validate(example); err != nil {
		t.Fatalf("%s does not validate: %v", examplePath, err)
	}

	minimal := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"slug": "notes", "name": "Notes"}
		if edit != nil {
			edit(m)
		}
		return m
	}
	full := func(edit func(m map[string]any)) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		return m
	}
	for _, tc := range []struct {
		name     string
		manifest map[string]any
	}{
		{"minimal", minimal(nil)},
		{"python-only fields", minimal(func(m map[string]any) {
			m["runtime_s3_uri"] = "s3://bucket/runtime.zip"
			m["runtime_pip_deps"] = []any{"numpy"}
			m["sub_auth"] = map[string]any{"enabled": true}
		})},
		{"actor with a module in a folder", minimal(func(m map[string]any) {
			m["actor"] = map[string]any{"module": "backend/actor.wasm", "memory_mb": 512, "timeout_ms": 60000}
		})},
		{"every status", minimal(func(m map[string]any) { m["status"] = "inactive" })},
		{"search index with a definition only", minimal(func(m map[string]any) {
			m["managed_indexes"] = map[string]any{"docs": []any{map[string]any{"name": "s", "type": "search", "definition": map[string]any{}}}}
		})},
	} {
		if err := sch.Validate(roundTrip(t, tc.manifest)); err != nil {
			t.Errorf("%s: a valid manifest is refused: %v", tc.name, err)
		}
	}

	for _, tc := range []struct {
		name     string
		manifest map[string]any
		pointer  string
	}{
		{"slug with capitals", full(func(m map[string]any) { m["slug"] = "Field-Notes" }), "/slug"},
		{"slug too long", minimal(func(m map[string]any) { m["slug"] = strings.Repeat("a", 65) }), "/slug"},
		{"empty slug", minimal(func(m map[string]any) { m["slug"] = "" }), "/slug"},
		{"missing slug", minimal(func(m map[string]any) { delete(m, "slug") }), "/slug"},
		{"unknown status", full(func(m map[string]any) { m["status"] = "published" }), "/status"},
		{"actor module not wasm", full(func(m map[string]any) { m["actor"].(map[string]any)["module"] = "actor.js" }), "/actor/module"},
		{"actor module outside the bundle", minimal(func(m map[string]any) { m["actor"] = map[string]any{"module": "lib/../../actor.wasm"} }), "/actor/module"},
		{"actor module absolute", minimal(func(m map[string]any) { m["actor"] = map[string]any{"module": "/actor.wasm"} }), "/actor/module"},
		{"actor memory too large", full(func(m map[string]any) { m["actor"].(map[string]any)["memory_mb"] = 1024 }), "/actor/memory_mb"},
		{"actor unknown field", full(func(m map[string]any) { m["actor"].(map[string]any)["memory"] = 32 }), "/actor/memory"},
		{"unknown top-level field", full(func(m map[string]any) { m["sulg"] = "field-notes" }), "/sulg"},
		{"permission without action", full(func(m map[string]any) {
			m["auth_policy"].(map[string]any)["required_permissions"] = []any{"experiments:view", "experiments"}
		}), "/auth_policy/required_permissions/1"},
		{"data scope entry not a slug", full(func(m map[string]any) { m["data_scope"] = []any{"self", "Other Experiment"} }), "/data_scope/1"},
		{"developer_id not an email", full(func(m map[string]any) { m["developer_id"] = "dev" }), "/developer_id"},
		{"ttl index without expiry", minimal(func(m map[string]any) {
			m["managed_indexes"] = map[string]any{"notes": []any{map[string]any{"name": "t", "type": "ttl", "keys": map[string]any{"at": 1}, "options": map[string]any{}}}}
		}), "/managed_indexes/notes/0/options/expireAfterSeconds"},
		{"vector index without definition", minimal(func(m map[string]any) {
			m["managed_indexes"] = map[string]any{"notes": []any{map[string]any{"name": "v", "type": "vectorSearch"}}}
		}), "/managed_indexes/notes/0/definition"},
		{"unknown index type", minimal(func(m map[string]any) {
			m["managed_indexes"] = map[string]any{"notes": []any{map[string]any{"name": "x", "type": "btree", "keys": map[string]any{"a": 1}}}}
		}), "/managed_indexes/notes/0/type"},
	} {
		err := sch.Validate(roundTrip(t, tc.manifest))
		if err == nil {
			t.Errorf("%s: the manifest is accepted", tc.name)
			continue
		}
		if got := leafPointers(err); len(got) == 0 || slices.ContainsFunc(got, func(p string) bool { return p != tc.pointer }) {
			t.Errorf("%s: fails at %v, want only %s\n%v", tc.name, got, tc.pointer, err)
		}
	}
}

func compileFile(t *testing.T, c *jsonschema.Compiler, path string) *jsonschema.Schema {
	t.Helper()
	s, err := c.Compile(fileURL(path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// roundTrip turns a Go value into what the validator reads from JSON.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eq reports want (what is documented) and got (what the code or the
// server has) when they differ.
func eq[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if string(w) != string(g) {
		t.Errorf("%s: documented %v, actual %v", what, want, got)
	}
}

func dur(t *testing.T, v any) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(str(v))
	if err != nil {
		t.Errorf("duration %v: %v", v, err)
	}
	return d
}

func optDur(t *testing.T, v any) time.Duration {
	if v == nil {
		return 0
	}
	return dur(t, v)
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, err := strconv.ParseInt(str(v), 10, 64)
	if err != nil {
		t.Errorf("number %v: %v", v, err)
	}
	return n
}

func optNum(t *testing.T, v any) int64 {
	if v == nil {
		return -1
	}
	return num(t, v)
}

// unlimited reads JetStream's "no limit" (0 in a config, -1 from a server) as -1.
func unlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func strs(v any) []string {
	out := []string{}
	for _, s := range sliceOf(v) {
		out = append(out, str(s))
	}
	return out
}
