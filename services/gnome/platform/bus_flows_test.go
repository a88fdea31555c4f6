package platform_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
	"github.com/gnome-platform/gnome/services/edge"
)

// The bootstrap admin of the live-bus test.
const (
	busAdminEmail    = "root@example.com"
	busAdminPassword = "a-long-admin-passphrase"
)

// busTestConfig is what the live-bus test sets on top of testenv's config:
// a known admin, and registration on so that gnome.auth.register answers.
var busTestConfig = map[string]string{
	"ADMIN_EMAIL": busAdminEmail, "ADMIN_PASSWORD": busAdminPassword, "ENABLE_REGISTRATION": "true",
}

// Request IDs of the calls that must fail, with the code each must fail with.
const (
	ridBadLogin          = "probe-login-wrong-password"
	ridWeakCreate        = "probe-create-weak-password"
	ridDeleteUnconfirmed = "probe-delete-unconfirmed"
	ridExportBadType     = "probe-export-unknown-type"
	ridExportNotYours    = "probe-export-not-yours"
	ridExportGone        = "probe-export-download-invalidated"
)

// wantErrors are the error replies the exercise provokes, by request ID.
var wantErrors = map[string]apierr.Code{
	ridBadLogin:          apierr.CodeInvalidCredentials,
	ridWeakCreate:        apierr.CodeValidationFailed,
	ridDeleteUnconfirmed: apierr.CodeValidationFailed,
	ridExportBadType:     apierr.CodeValidationFailed,
	ridExportNotYours:    apierr.CodeNotFound,
	ridExportGone:        apierr.CodeGone,
}

// call calls an endpoint with a request ID, as the edge's clients do.
func call[Req, Rep any](ctx context.Context, nc *nats.Conn, requestID string, e contract.Endpoint[Req, Rep], req Req) (Rep, error) {
	for {
		rep, err := e.Call(telemetry.WithRequestID(ctx, requestID), bus.Client{NC: nc}, req)
		// An upload still being processed is asked for again, as
		// uploadapi.Client.Process does.
		if r, ok := any(rep).(uploadapi.Result); ok && err == nil && r.Pending {
			continue
		}
		return rep, err
	}
}

// wantCode fails the test unless err is an apierr with code.
func wantCode(t *testing.T, what string, err error, code apierr.Code) *apierr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %s", what, code)
	}
	ae := apierr.From(err)
	if ae.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
	return ae
}

// exerciseAuth calls every endpoint of the auth service the way the edge
// does: sign in (right and wrong password), sign up, create, list, grant,
// revoke, disable, and sign out.
func exerciseAuth(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	sess, err := call(ctx, nc, "auth-login", authapi.EndpointLogin,
		authapi.Credentials{Email: " Root@Example.com", Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if sess.Token == "" || sess.User.Email != busAdminEmail || !slices.Contains(sess.User.Roles, "admin") || !sess.ExpiresAt.After(time.Now()) {
		t.Fatalf("login: %+v", sess)
	}
	// Administrative requests carry the admin's token, as the edge sends it.
	actor := func(rid string) authapi.Actor {
		return authapi.Actor{Email: busAdminEmail, RequestID: rid, Token: sess.Token}
	}
	_, err = call(ctx, nc, ridBadLogin, authapi.EndpointLogin,
		authapi.Credentials{Email: busAdminEmail, Password: "not-the-admin-passphrase"})
	wantCode(t, "login with a wrong password", err, apierr.CodeInvalidCredentials)

	reg, err := call(ctx, nc, "auth-register", authapi.EndpointRegister,
		authapi.Credentials{Email: "reader@example.com", Password: "a long reader passphrase"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.User.Email != "reader@example.com" || !slices.Equal(reg.User.Roles, []string{"user"}) {
		t.Fatalf("register: %+v", reg.User)
	}

	dev, err := call(ctx, nc, "auth-users-create", authapi.EndpointUsersCreate,
		authapi.CreateUser{Actor: actor("auth-users-create"), Email: "dev@example.com", Password: "bus test developer passphrase", Roles: []string{"user", "developer"}})
	if err != nil {
		t.Fatalf("users.create: %v", err)
	}
	if dev.Email != "dev@example.com" || !slices.Equal(dev.Roles, []string{"developer", "user"}) || dev.Disabled {
		t.Fatalf("users.create: %+v", dev)
	}
	_, err = call(ctx, nc, ridWeakCreate, authapi.EndpointUsersCreate,
		authapi.CreateUser{Actor: actor(ridWeakCreate), Email: "weak@example.com", Password: "short"})
	if ae := wantCode(t, "users.create with a short password", err, apierr.CodeValidationFailed); ae.Field != "/password" {
		t.Errorf("users.create with a short password: field %q, want /password", ae.Field)
	}

	list, err := call(ctx, nc, "auth-users-list", authapi.EndpointUsersList, authapi.ListUsers{Actor: actor("auth-users-list")})
	if err != nil {
		t.Fatalf("users.list: %v", err)
	}
	var emails []string
	for _, u := range list.Users {
		emails = append(emails, u.Email)
	}
	if !slices.Equal(emails, []string{"dev@example.com", "reader@example.com", busAdminEmail}) {
		t.Fatalf("users.list: %v", emails)
	}

	u, err := call(ctx, nc, "auth-roles-grant", authapi.EndpointRoleGrant,
		authapi.RoleChange{Actor: actor("auth-roles-grant"), Email: "reader@example.com", Role: "developer"})
	if err != nil || !slices.Equal(u.Roles, []string{"developer", "user"}) {
		t.Fatalf("roles.grant: %+v %v", u, err)
	}
	u, err = call(ctx, nc, "auth-roles-revoke", authapi.EndpointRoleRevoke,
		authapi.RoleChange{Actor: actor("auth-roles-revoke"), Email: "reader@example.com", Role: "developer"})
	if err != nil || !slices.Equal(u.Roles, []string{"user"}) {
		t.Fatalf("roles.revoke: %+v %v", u, err)
	}
	disabled := true
	u, err = call(ctx, nc, "auth-users-update", authapi.EndpointUsersUpdate,
		authapi.UpdateUser{Actor: actor("auth-users-update"), Email: "reader@example.com", Disabled: &disabled})
	if err != nil || !u.Disabled {
		t.Fatalf("users.update: %+v %v", u, err)
	}

	// The hand-off to an experiment's origin: an experiment token for the
	// admin's session, then its end, which ends the session too.
	et, err := call(ctx, nc, "auth-experiment-token", authapi.EndpointExperimentToken,
		authapi.ExperimentTokenRequest{Token: sess.Token, Slug: "bus-handoff"})
	if err != nil || et.Token == "" || et.User.Email != busAdminEmail {
		t.Fatalf("experiment.token: %+v %v", et, err)
	}
	if _, err := call(ctx, nc, "auth-session-end", authapi.EndpointEndSession,
		authapi.EndSession{Token: et.Token, Slug: "bus-handoff"}); err != nil {
		t.Fatalf("session.end: %v", err)
	}

	// Sign out the admin's session, with the claims the edge would take
	// from the verified token.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(sess.Token, ".")[1])
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	var claims struct {
		ID      string `json:"jti"`
		Subject string `json:"sub"`
		Expires int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	if claims.Subject != sess.User.ID {
		t.Errorf("token subject %q, user ID %q", claims.Subject, sess.User.ID)
	}
	if _, err := call(ctx, nc, "auth-logout", authapi.EndpointLogout,
		authapi.Logout{TokenID: claims.ID, Until: time.Unix(claims.Expires, 0).UTC(), UserID: claims.Subject}); err != nil {
		t.Fatalf("logout: %v", err)
	}
}

// exerciseUpload stages a small experiment in the uploads object store as
// the edge does, has the upload service store it, sets it to draft and
// deletes it (after a refused, unconfirmed delete), so that both experiment
// events are published.
func exerciseUpload(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug, uploadID = "bus-test", "up-test1"
	archive := experimentZIP(t, map[string]any{"schema_version": "2.0", "slug": slug, "name": "x", "status": "active"})
	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatalf("uploads object store: %v", err)
	}
	if _, err := uploads.PutBytes(ctx, uploadID, archive); err != nil {
		t.Fatalf("stage upload: %v", err)
	}
	caller := func(rid string) uploadapi.Caller {
		c := testenv.Caller(busAdminEmail, "admin")
		c.RequestID = rid
		return c
	}

	res, err := call(ctx, d.NC, "upload-process", uploadapi.EndpointProcess,
		uploadapi.ProcessUpload{UploadID: uploadID, Size: int64(len(archive)), Caller: caller("upload-process")})
	if err != nil {
		t.Fatalf("upload.process: %v", err)
	}
	e := res.Experiment
	if !res.Created || e.Slug != slug || e.Version != 1 || e.Status != experiments.StatusActive || e.OwnerEmail != busAdminEmail || len(e.Versions) != 1 || e.Seq < 1 {
		t.Fatalf("upload.process: %+v", res)
	}

	draft := experiments.StatusDraft
	res, err = call(ctx, d.NC, "upload-update", uploadapi.EndpointUpdate,
		uploadapi.Update{Slug: slug, Status: &draft, Caller: caller("upload-update")})
	if err != nil {
		t.Fatalf("upload.update: %v", err)
	}
	if res.Created || res.Experiment.Status != draft || res.Experiment.Version != 1 || res.Experiment.Seq <= e.Seq {
		t.Fatalf("upload.update: %+v", res)
	}

	_, err = call(ctx, d.NC, ridDeleteUnconfirmed, uploadapi.EndpointDelete,
		uploadapi.Delete{Slug: slug, Caller: caller(ridDeleteUnconfirmed)})
	if ae := wantCode(t, "upload.delete without confirm", err, apierr.CodeValidationFailed); ae.Field != "/confirm" {
		t.Errorf("upload.delete without confirm: field %q, want /confirm", ae.Field)
	}
	res, err = call(ctx, d.NC, "upload-delete", uploadapi.EndpointDelete,
		uploadapi.Delete{Slug: slug, Confirm: slug, Caller: caller("upload-delete")})
	if err != nil {
		t.Fatalf("upload.delete: %v", err)
	}
	if res.Experiment.Slug != slug {
		t.Fatalf("upload.delete: %+v", res)
	}
}

// experimentZIP is a minimal valid experiment archive.
func experimentZIP(t *testing.T, manifest map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	m, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"manifest.json": m,
		"index.html":    []byte("<!doctype html><title>bus test</title><p>bus test</p>\n"),
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkServedEndpoints asks every running service for its endpoints
// ($SRV.INFO) and checks them against the document both ways: every
// endpoint subject a service serves is a documented request/reply channel
// with the micro endpoint name libs/bus derives from it, and every
// documented gnome.<service>.<endpoint> is served by that service.
func checkServedEndpoints(ctx context.Context, t *testing.T, doc *asyncAPI, nc *nats.Conn) {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	subject, err := micro.ControlSubject(micro.InfoVerb, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	instances := map[string]int{}
	served := map[string]string{} // subject -> service
	wait := 3 * time.Second
	for ctx.Err() == nil {
		m, err := sub.NextMsg(wait)
		if err != nil {
			break
		}
		wait = 300 * time.Millisecond
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Errorf("%s reply %q: %v", subject, truncate(m.Data), err)
			continue
		}
		instances[info.Name]++
		for _, ep := range info.Endpoints {
			served[ep.Subject] = info.Name
			prefix := bus.Subject(info.Name, "")
			endpoint, ok := strings.CutPrefix(ep.Subject, prefix)
			if !ok || endpoint == "" {
				t.Errorf("service %s serves %s, outside %s*", info.Name, ep.Subject, prefix)
			} else if want := strings.ReplaceAll(endpoint, ".", "_"); ep.Name != want {
				t.Errorf("service %s: endpoint %s is named %q, want %q", info.Name, ep.Subject, ep.Name, want)
			}
			if ep.QueueGroup != bus.QueueGroup {
				t.Errorf("service %s: endpoint %s in queue group %q, want %q", info.Name, ep.Subject, ep.QueueGroup, bus.QueueGroup)
			}
			ch := doc.match(ep.Subject)
			switch {
			case ch == nil:
				t.Errorf("service %s serves %s (endpoint %s), which schemas/asyncapi.yaml does not document", info.Name, ep.Subject, ep.Name)
			case len(ch.replies) == 0:
				t.Errorf("service %s serves %s, but channel %s has no operation that replies", info.Name, ep.Subject, ch.key)
			}
		}
	}
	for _, name := range edge.Services {
		if instances[name] != 1 {
			t.Errorf("%s: %d instances answered, want 1", subject, instances[name])
		}
	}
	if len(served) == 0 {
		t.Fatalf("%s: no endpoints reported", subject)
	}

	// The other way round: a documented endpoint nobody serves is stale.
	for _, ch := range doc.channels {
		if len(ch.replies) == 0 || ch.tokens[0] != "gnome" {
			continue
		}
		for _, s := range expand(ch) {
			switch owner, by := strings.Split(s, ".")[1], served[s]; {
			case by == "":
				t.Errorf("channel %s documents %s, which no running service serves", ch.key, s)
			case by != owner:
				t.Errorf("channel %s documents %s, which service %s serves, not %s", ch.key, s, by, owner)
			}
		}
	}
}

// expand lists the subjects a channel's address stands for, its
// parameters replaced by each of their allowed values.
func expand(ch *channel) []string {
	out := []string{""}
	for i, tok := range ch.tokens {
		vals := []string{tok}
		if isParam(tok) {
			vals = ch.params[tok[1:len(tok)-1]]
		}
		var next []string
		for _, prefix := range out {
			for _, v := range vals {
				if i > 0 {
					v = "." + v
				}
				next = append(next, prefix+v)
			}
		}
		out = next
	}
	return out
}

// exerciseActor uploads an experiment whose actor is the worker's raw-ABI
// probe, waits until its actor answers through the edge, and deletes it, so
// that actor calls and their replies cross the bus.
func exerciseActor(ctx context.Context, t *testing.T, d *svc.Deps, edgeAddr string) {
	t.Helper()
	const slug = "bus-actor"
	admin := uploadActorExperiment(ctx, t, d, slug, "up-test2", "probe")
	// On the experiment's own origin: the platform's redirects there.
	client := &http.Client{Timeout: 5 * time.Second, Transport: testenv.LocalhostTransport()}
	waitFor(t, 30*time.Second, "the actor to answer through the edge", func() bool {
		resp, err := client.Get(testenv.ExperimentURL(edgeAddr, slug, "/experiments/"+slug+"/api/echo"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// A line the actor logs is published into ACTOR_LOGS.
	resp, err := client.Get(testenv.ExperimentURL(edgeAddr, slug, "/experiments/"+slug+"/api/log"))
	if err != nil {
		t.Fatalf("the actor's log route: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the actor's log route: %d", resp.StatusCode)
	}
	admin.RequestID = "actor-delete"
	if _, err := call(ctx, d.NC, "actor-delete", uploadapi.EndpointDelete,
		uploadapi.Delete{Slug: slug, Confirm: slug, Caller: admin}); err != nil {
		t.Fatalf("delete the actor experiment: %v", err)
	}
}

// uploadActorExperiment uploads experiment slug, active, whose actor is
// the test guest services/actorworker/testdata/{guest}, as the edge does;
// it is the admin who uploaded it.
func uploadActorExperiment(ctx context.Context, t *testing.T, d *svc.Deps, slug, uploadID, guest string) contract.Caller {
	t.Helper()
	dir := t.TempDir()
	wasm := filepath.Join(dir, guest+".wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "../../actorworker/testdata/"+guest)
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the %s actor: %v\n%s", guest, err, out)
	}
	module, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(map[string]any{"schema_version": "2.0", "slug": slug, "name": "x", "status": "active", "actor": map[string]any{"module": "actor.wasm"}})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string][]byte{"manifest.json": m, "index.html": []byte("<p>actor</p>"), "actor.wasm": module} {
		w, _ := zw.Create(name)
		w.Write(body)
	}
	zw.Close()
	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uploads.PutBytes(ctx, uploadID, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	admin := testenv.Caller(busAdminEmail, "admin")
	admin.RequestID = slug + "-upload"
	if _, err := call(ctx, d.NC, admin.RequestID, uploadapi.EndpointProcess,
		uploadapi.ProcessUpload{UploadID: uploadID, Size: int64(buf.Len()), Caller: admin}); err != nil {
		t.Fatalf("upload the actor experiment %s: %v", slug, err)
	}
	return admin
}

// exerciseExports uploads an experiment and calls every endpoint of the
// export service as the edge does: a request that queues a build (whose
// job and progress cross the bus), one refused for its type, the export
// read while it is built, a second request that reuses it, the list, the
// download, a read by someone else, an invalidation with its files, and a
// download then refused as gone; the experiment's deletion comes last.
func exerciseExports(t *testing.T, d *svc.Deps) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const slug, uploadID = "bus-export", "up-test3"
	archive := experimentZIP(t, map[string]any{"schema_version": "2.0", "slug": slug, "name": "x", "status": "active"})
	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uploads.PutBytes(ctx, uploadID, archive); err != nil {
		t.Fatal(err)
	}
	caller := func(email string, isAdmin bool, rid string) uploadapi.Caller {
		roles := []string{"user"}
		if isAdmin {
			roles = []string{"admin"}
		}
		c := testenv.Caller(email, roles...)
		c.RequestID = rid
		return c
	}
	if _, err := call(ctx, d.NC, "export-upload", uploadapi.EndpointProcess,
		uploadapi.ProcessUpload{UploadID: uploadID, Size: int64(len(archive)), Caller: caller(busAdminEmail, true, "export-upload")}); err != nil {
		t.Fatalf("upload the export experiment: %v", err)
	}

	// A reader who does not own the experiment may export what holds no
	// participant data.
	const reader = "reader@example.com"
	req, err := call(ctx, d.NC, "export-request", exportapi.EndpointRequest,
		exportapi.Request{Slug: slug, Type: exportapi.UploadReady, Caller: caller(reader, false, "export-request")})
	if err != nil || req.Reused || req.Export.Status != exportapi.StatusQueued {
		t.Fatalf("export.request: %+v %v", req, err)
	}
	id := req.Export.ID
	_, err = call(ctx, d.NC, ridExportBadType, exportapi.EndpointRequest,
		exportapi.Request{Slug: slug, Type: "tarball", Caller: caller(reader, false, ridExportBadType)})
	if ae := wantCode(t, "export.request of an unknown type", err, apierr.CodeValidationFailed); ae.Field != "/type" {
		t.Errorf("export.request of an unknown type: field %q", ae.Field)
	}
	var l exportapi.Log
	waitFor(t, 30*time.Second, "the export to be built", func() bool {
		l, err = call(ctx, d.NC, "export-get", exportapi.EndpointGet, exportapi.Get{ID: id, Caller: caller(reader, false, "export-get")})
		if err != nil {
			t.Fatalf("export.get: %v", err)
		}
		if l.Status == exportapi.StatusFailed || l.Status == exportapi.StatusInvalidated {
			t.Fatalf("the export ended %s: %+v", l.Status, l)
		}
		return l.Status == exportapi.StatusReady
	})
	again, err := call(ctx, d.NC, "export-request-again", exportapi.EndpointRequest,
		exportapi.Request{Slug: slug, Type: exportapi.UploadReady, Caller: caller(reader, false, "export-request-again")})
	if err != nil || !again.Reused || again.Export.ID != id {
		t.Fatalf("export.request again: %+v %v", again, err)
	}
	listed, err := call(ctx, d.NC, "export-list", exportapi.EndpointList,
		exportapi.List{Slug: slug, Caller: caller(busAdminEmail, true, "export-list")})
	if err != nil || len(listed.Exports) != 1 || listed.Exports[0].ID != id {
		t.Fatalf("export.list: %+v %v", listed, err)
	}
	dl, err := call(ctx, d.NC, "export-download", exportapi.EndpointDownload,
		exportapi.Get{ID: id, Caller: caller(reader, false, "export-download")})
	if err != nil || dl.StorageKey != exportapi.StorageKey(id) || dl.Export.Checksum != l.Checksum {
		t.Fatalf("export.download: %+v %v", dl, err)
	}
	// Research data: the collections, and one of them as CSV, for the
	// admin (owners and admins only).
	dc, err := call(ctx, d.NC, "export-data", exportapi.EndpointData,
		exportapi.DataList{Slug: slug, Caller: caller(busAdminEmail, true, "export-data")})
	if err != nil || dc.Slug != slug {
		t.Fatalf("export.data: %+v %v", dc, err)
	}
	ds, err := call(ctx, d.NC, "export-data-stats", exportapi.EndpointDataStats,
		exportapi.DataStatsRequest{Slug: slug, Caller: caller(busAdminEmail, true, "export-data-stats")})
	if err != nil || ds.Slug != slug || ds.Store != exportapi.StoreEmbedded || ds.SlowDocuments <= 0 {
		t.Fatalf("export.data_stats: %+v %v", ds, err)
	}
	rd, err := call(ctx, d.NC, "export-research", exportapi.EndpointRequest, exportapi.Request{Slug: slug, Type: exportapi.ResearchData,
		Data: &exportapi.DataQuery{Collection: "notes", Format: exportapi.FormatCSV}, Caller: caller(busAdminEmail, true, "export-research")})
	if err != nil || rd.Export.Data == nil {
		t.Fatalf("export.request of research data: %+v %v", rd, err)
	}
	waitFor(t, 30*time.Second, "the research data to be built", func() bool {
		l, err := call(ctx, d.NC, "export-research-get", exportapi.EndpointGet, exportapi.Get{ID: rd.Export.ID, Caller: caller(busAdminEmail, true, "export-research-get")})
		if err != nil || l.Status == exportapi.StatusFailed {
			t.Fatalf("export.get of research data: %+v %v", l, err)
		}
		return l.Status == exportapi.StatusReady
	})
	if rdl, err := call(ctx, d.NC, "export-research-download", exportapi.EndpointDownload,
		exportapi.Get{ID: rd.Export.ID, Caller: caller(busAdminEmail, true, "export-research-download")}); err != nil || rdl.StorageKey != "exports/"+rd.Export.ID+".csv" {
		t.Fatalf("export.download of research data: %+v %v", rdl, err)
	}
	_, err = call(ctx, d.NC, ridExportNotYours, exportapi.EndpointGet,
		exportapi.Get{ID: id, Caller: caller("dev@example.com", false, ridExportNotYours)})
	wantCode(t, "export.get by another user", err, apierr.CodeNotFound)
	inv, err := call(ctx, d.NC, "export-invalidate", exportapi.EndpointInvalidate,
		exportapi.Invalidate{ID: id, DeleteFiles: true, Caller: caller(busAdminEmail, true, "export-invalidate")})
	if err != nil || !inv.Invalidated || inv.Status != exportapi.StatusInvalidated {
		t.Fatalf("export.invalidate: %+v %v", inv, err)
	}
	_, err = call(ctx, d.NC, ridExportGone, exportapi.EndpointDownload,
		exportapi.Get{ID: id, Caller: caller(reader, false, ridExportGone)})
	wantCode(t, "export.download of an invalidated export", err, apierr.CodeGone)

	if _, err := call(ctx, d.NC, "export-delete", uploadapi.EndpointDelete,
		uploadapi.Delete{Slug: slug, Confirm: slug, Caller: caller(busAdminEmail, true, "export-delete")}); err != nil {
		t.Fatalf("delete the export experiment: %v", err)
	}
}

// exerciseGrants has the admin grant the data of an experiment of theirs to
// a developer's, lists the grants and revokes the grant.
func exerciseGrants(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	admin := testenv.Caller(busAdminEmail, "admin")
	dev := testenv.Caller("dev@example.com", "developer")
	for _, e := range []struct {
		slug   string
		caller uploadapi.Caller
	}{{"bus-data", admin}, {"bus-reader", dev}} {
		archive := experimentZIP(t, map[string]any{"schema_version": "2.0", "slug": e.slug, "name": e.slug, "status": "active"})
		id := "up-" + e.slug
		if _, err := uploads.PutBytes(ctx, id, archive); err != nil {
			t.Fatal(err)
		}
		if _, err := call(ctx, d.NC, "grants-upload-"+e.slug, uploadapi.EndpointProcess,
			uploadapi.ProcessUpload{UploadID: id, Size: int64(len(archive)), Caller: e.caller}); err != nil {
			t.Fatalf("upload %s: %v", e.slug, err)
		}
	}
	if _, err := call(ctx, d.NC, "grants-grant", uploadapi.EndpointGrant,
		uploadapi.GrantRequest{Slug: "bus-data", To: "bus-reader", Caller: admin}); err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := call(ctx, d.NC, "grants-list", uploadapi.EndpointGrants,
		uploadapi.GrantsQuery{Slug: "bus-data", Caller: admin}); err != nil {
		t.Fatalf("grants: %v", err)
	}
	if _, err := call(ctx, d.NC, "grants-revoke", uploadapi.EndpointRevoke,
		uploadapi.RevokeRequest{Slug: "bus-data", Reader: "bus-reader", Caller: admin}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for _, slug := range []string{"bus-data", "bus-reader"} {
		if _, err := call(ctx, d.NC, "grants-delete-"+slug, uploadapi.EndpointDelete,
			uploadapi.Delete{Slug: slug, Confirm: slug, Caller: admin}); err != nil {
			t.Fatalf("delete %s: %v", slug, err)
		}
	}
}
