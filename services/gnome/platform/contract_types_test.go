package platform_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/events"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// TestContractTypesMatchSchemas marshals the Go types of the auth, upload
// and export contracts (libs/authapi, libs/experiments, libs/exports) and
// checks the JSON
// against the payload schemas of the messages that carry them: every value
// the code can produce validates, and a value with every field filled shows
// every property the schema documents, so a schema cannot describe a field
// the type does not have, nor miss one it has.
func TestContractTypesMatchSchemas(t *testing.T) {
	doc := loadAsyncAPI(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	ms := at.Truncate(time.Millisecond)
	one, draft, yes := 1, "draft", true
	const (
		uid      = "665f1c2a3b4d5e6f7a8b9c0d"
		checksum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	)
	user := authapi.User{ID: uid, Email: "dev@example.com", Roles: []string{"developer", "user"}, CreatedAt: ms}
	actor := authapi.Actor{Email: "root@example.com", RequestID: "req-1", Token: "aGVhZGVy.Y2xhaW1z.c2ln"}
	caller := uploadapi.Caller{Email: "dev@example.com", Roles: []string{"developer"}, RequestID: "req-1", Token: "aGVhZGVy.Y2xhaW1z.c2ln"}
	config := experiments.Config{
		Slug: "field-notes", SlugField: "field-notes", Name: "Field notes", Description: "Notes.", OwnerEmail: "dev@example.com",
		Status: "active", Version: 1, Checksum: checksum, Manifest: `{"slug":"field-notes"}`,
		Versions:  []experiments.Version{{Version: 1, Checksum: checksum, Size: 2048, Files: 2, Manifest: `{"slug":"field-notes"}`, UploadedBy: "dev@example.com", CreatedAt: ms}},
		Indexes:   []experiments.IndexState{{Collection: "notes", Name: "by_author", Type: "regular", State: experiments.IndexReady}},
		CreatedAt: ms, UpdatedAt: ms, Seq: 3,
	}
	event := events.Experiment{Slug: "field-notes", Version: 1, Checksum: checksum, Status: "active", OwnerEmail: "dev@example.com",
		HasActor: true, Seq: 3, Reason: "upload", At: at, RequestID: "req-1"}
	exportID, otherID := "ex-7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e", "ex-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	from, to := ms.Add(-time.Hour), ms
	researchLog := exportapi.Log{ID: exportID, Slug: "field-notes", Type: exportapi.ResearchData, UserEmail: "reader@example.com",
		FileSize: 5120, Checksum: checksum, StorageKey: exportapi.DataStorageKey(exportID, exportapi.FormatCSV),
		FileName: "field-notes-notes-20250601T120500Z.csv", CreatedAt: ms, Status: exportapi.StatusReady, Progress: 1, Step: "done",
		Version: 1, VersionChecksum: checksum, Documents: 40, Attempts: 1, ExpiresAt: &ms, UpdatedAt: ms,
		Data: &exportapi.DataQuery{Collection: "notes", Format: exportapi.FormatCSV, From: &from, To: &to}}
	// The fullest log has a research-data query too, so that every field
	// is written once.
	fullLog := exportapi.Log{
		ID: exportID, ExportID: exportID, Slug: "field-notes", Type: exportapi.Docker, UserEmail: "reader@example.com",
		FileSize: 48213, Checksum: checksum, StorageKey: exportapi.StorageKey(otherID), FileName: "field-notes-v1-docker.zip",
		Invalidated: true, CreatedAt: ms, Status: exportapi.StatusInvalidated, Progress: 1, Step: "done", Error: "earlier attempt failed",
		InvalidatedAt: &ms, InvalidatedBy: "new version 2", Version: 1, VersionChecksum: checksum, ConfigSeq: 3, DataSeq: 7,
		SourceKey: "docker|" + checksum + "|3|7", ReusedFrom: otherID, Documents: 1200, Attempts: 2, Worker: "gnome-1-4711-a1b2c3",
		StartedAt: &ms, HeartbeatAt: &ms, FinishedAt: &ms, ExpiresAt: &ms, Expired: true, UpdatedAt: ms, Data: researchLog.Data,
	}
	queuedLog := exportapi.Log{ID: exportID, Slug: "field-notes", Type: exportapi.Standalone, UserEmail: "reader@example.com",
		FileName: "field-notes-v1-standalone.zip", CreatedAt: ms, Status: exportapi.StatusQueued, Step: "queued",
		Version: 1, VersionChecksum: checksum, UpdatedAt: ms}
	exportCaller := uploadapi.Caller{Email: "reader@example.com", Roles: []string{"user"}, RequestID: "req-1", Token: "aGVhZGVy.Y2xhaW1z.c2ln"}

	// Per message: the fullest value first (every field set), then other
	// values the code sends.
	cases := []struct {
		message string
		values  []any
	}{
		{"Credentials", []any{authapi.Credentials{Email: "dev@example.com", Password: "correct horse battery staple"}, authapi.Credentials{}}},
		{"Session", []any{authapi.Session{Token: "aGVhZGVy.Y2xhaW1z.c2ln", ExpiresAt: at, User: user},
			authapi.Session{Token: "a.b.c", ExpiresAt: at, User: authapi.User{ID: uid, Email: "a@example.com", Roles: []string{}, CreatedAt: ms}}}},
		{"Logout", []any{authapi.Logout{TokenID: "9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d", Until: at.Truncate(time.Second), UserID: uid}}},
		{"EmptyReply", []any{authapi.Empty{}}},
		{"ListUsers", []any{authapi.ListUsers{Actor: actor}}},
		{"Users", []any{authapi.Users{Users: []authapi.User{user}}, authapi.Users{Users: []authapi.User{}}}},
		{"CreateUser", []any{
			authapi.CreateUser{Actor: actor, Email: "dev@example.com", Password: "correct horse battery staple", Roles: []string{"developer"}},
			authapi.CreateUser{Actor: authapi.Actor{Email: "root@example.com"}, Email: "dev@example.com", Password: "x"},
		}},
		{"UpdateUser", []any{authapi.UpdateUser{Actor: actor, Email: "dev@example.com", Disabled: &yes}, authapi.UpdateUser{Actor: actor, Email: "dev@example.com"}}},
		{"RoleChange", []any{authapi.RoleChange{Actor: actor, Email: "dev@example.com", Role: "developer"}}},
		{"User", []any{user}},
		{"TokenCreate", []any{authapi.TokenCreate{Actor: actor, Name: "ci", Roles: []string{"user"}, ExpiresInDays: &one}, authapi.TokenCreate{Actor: actor, Name: "laptop"}}},
		{"TokenCreated", []any{authapi.TokenCreated{Token: "gnome_pat_9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d_q2X7wZk1mQ0aBcDeFgAhIjKlMnOpQrStUvWxYz01234", ID: "9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d", Name: "ci", Roles: []string{"user"}, CreatedAt: ms, ExpiresAt: &ms},
			authapi.TokenCreated{Token: "gnome_pat_9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d_q2X7wZk1mQ0aBcDeFgAhIjKlMnOpQrStUvWxYz01234", ID: "9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d", Name: "ci", Roles: []string{}, CreatedAt: ms}}},
		{"TokensList", []any{authapi.TokensList{Actor: actor, Email: "dev@example.com"}, authapi.TokensList{Actor: actor}}},
		{"Tokens", []any{authapi.Tokens{Tokens: []authapi.Token{{ID: "9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d", Name: "ci", Roles: []string{"user"}, CreatedAt: ms, ExpiresAt: &ms, LastUsedAt: &ms}}}, authapi.Tokens{Tokens: []authapi.Token{}}}},
		{"TokenRevoke", []any{authapi.TokenRevoke{Actor: actor, ID: "9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d", Email: "dev@example.com"}}},
		{"TokenExchange", []any{authapi.TokenExchange{Token: "gnome_pat_9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d_q2X7wZk1mQ0aBcDeFgAhIjKlMnOpQrStUvWxYz01234"}}},
		{"TokenAccess", []any{authapi.TokenAccess{Token: "aGVhZGVy.Y2xhaW1z.c2ln", ExpiresAt: at}}},
		{"AuditList", []any{authapi.AuditList{Actor: actor, Who: "root@example.com", What: "role.", Target: "dev@example.com", Since: &ms, Until: &at, Limit: 50, Cursor: "MjAyNTA2MDE"}, authapi.AuditList{Actor: actor}}},
		{"AuditPage", []any{authapi.AuditPage{Entries: []authapi.AuditEntry{{ID: "665b1c2e9f1a2b3c4d5e6f70", When: ms, Who: "root@example.com", What: "role.grant", Target: "dev@example.com", RequestID: "req-1", Details: map[string]any{"roles": []string{"user"}}}}, Next: "MjAyNTA2MDE"}, authapi.AuditPage{Entries: []authapi.AuditEntry{}}}},
		{"ProcessUpload", []any{
			uploadapi.ProcessUpload{UploadID: "up-7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e", Size: 48213, Caller: caller},
			uploadapi.ProcessUpload{UploadID: "up-1", Caller: uploadapi.Caller{Email: "root@example.com", IsAdmin: true}},
		}},
		{"UpdateExperiment", []any{
			uploadapi.Update{Slug: "field-notes", Version: &one, Status: &draft, Fields: json.RawMessage(`{"name":"Notes","description":null}`), Caller: caller},
			uploadapi.Update{Slug: "field-notes", Status: &draft, Caller: caller},
		}},
		{"DeleteExperiment", []any{uploadapi.Delete{Slug: "field-notes", Confirm: "field-notes", Caller: caller}}},
		{"GrantsQuery", []any{uploadapi.GrantsQuery{Slug: "field-notes", Caller: caller}}},
		{"GrantRequest", []any{uploadapi.GrantRequest{Slug: "field-notes", To: "class-survey", Caller: caller}}},
		{"RevokeRequest", []any{uploadapi.RevokeRequest{Slug: "field-notes", Reader: "class-survey", Caller: caller}}},
		{"Grants", []any{
			uploadapi.Grants{Slug: "field-notes", Granted: []uploadapi.Grant{uploadapi.Grant{From: "field-notes", To: "class-survey", GrantedBy: "dev@example.com", GrantedAt: ms}}, Received: []uploadapi.Grant{uploadapi.Grant{From: "field-notes", To: "class-survey", GrantedBy: "dev@example.com", GrantedAt: ms}},
				Requested: []uploadapi.ScopeEntry{{Slug: "weather", State: uploadapi.ScopeMissing}}, RequestedBy: []string{"city-walks"}},
			uploadapi.Grants{Slug: "field-notes", Granted: []uploadapi.Grant{}, Received: []uploadapi.Grant{}, Requested: []uploadapi.ScopeEntry{}, RequestedBy: []string{}},
		}},
		{"GrantResult", []any{uploadapi.GrantResult{Grant: uploadapi.Grant{From: "field-notes", To: "class-survey", GrantedBy: "dev@example.com", GrantedAt: ms}, Created: true}}},
		{"Grant", []any{uploadapi.Grant{From: "field-notes", To: "class-survey", GrantedBy: "dev@example.com", GrantedAt: ms}}},
		{"UploadResult", []any{
			uploadapi.Result{Experiment: config, Warnings: []uploadapi.Warning{{Field: "/runtime_s3_uri", Message: "ignored"}}, Unchanged: true, Message: "unchanged: this bundle is version 3 of \"field-notes\" already"},
			uploadapi.Result{Experiment: config, Warnings: []uploadapi.Warning{{Field: "/runtime_s3_uri", Message: "ignored"}}, Created: true},
			uploadapi.Result{Experiment: func() experiments.Config { c := config; c.Indexes = []experiments.IndexState{}; return c }(), Warnings: []uploadapi.Warning{}},
			uploadapi.Result{Pending: true},
		}},
		{"ActorLogLine", []any{
			actorapi.LogLine{Time: ms, Level: "warn", Message: "slow response", Stream: actorapi.LogStreamLog, Instance: 1, Version: 3, RequestID: "req-1", Cut: true},
			actorapi.LogLine{Time: ms, Level: "info", Message: "", Stream: actorapi.LogStreamStdout, Version: 1},
		}},
		{"ExperimentUpdated", []any{event, func() events.Experiment { e := event; e.RequestID, e.Reason = "", "rollback"; return e }()}},
		{"ExperimentDeleted", []any{func() events.Experiment { e := event; e.Reason, e.Seq = "delete", 4; return e }()}},
		{"ExportRequest", []any{exportapi.Request{Slug: "field-notes", Type: exportapi.ResearchData, Data: researchLog.Data, Caller: exportCaller},
			exportapi.Request{Slug: "field-notes", Type: exportapi.UploadReady, Caller: exportCaller}, exportapi.Request{Caller: exportCaller}}},
		{"ExportRequested", []any{exportapi.Requested{Export: fullLog, Reused: true}, exportapi.Requested{Export: queuedLog}, exportapi.Requested{Export: researchLog}}},
		{"ExportGet", []any{exportapi.Get{ID: exportID, Caller: exportCaller}}},
		{"ExportDataList", []any{exportapi.DataList{Slug: "field-notes", Caller: exportCaller}}},
		{"ExportDataCollections", []any{exportapi.DataCollections{Slug: "field-notes", Collections: []exportapi.DataCollection{{Name: "notes", Documents: 40}}},
			exportapi.DataCollections{Slug: "field-notes", Collections: []exportapi.DataCollection{}}}},
		{"ExportDataStatsRequest", []any{exportapi.DataStatsRequest{Slug: "field-notes", Caller: exportCaller}}},
		{"ExportDataStats", []any{
			exportapi.DataStats{Slug: "field-notes", Store: exportapi.StoreEmbedded, SlowDocuments: 2000, SlowMS: 100, SizesAt: ms,
				Collections: []exportapi.DataStatsCollection{{Name: "clicks", Documents: 5400, Bytes: 712000, Slow: true}},
				SlowOps:     []exportapi.DataSlowOp{{Collection: "clicks", From: "weather", Op: "aggregate", DurationMS: 231, Documents: 8, Error: "timeout", At: ms}}},
			exportapi.DataStats{Slug: "field-notes", Store: exportapi.StoreMongoDB, SlowMS: 100, SizesAt: ms, Collections: []exportapi.DataStatsCollection{}, SlowOps: []exportapi.DataSlowOp{}},
		}},
		{"ExportLog", []any{fullLog, queuedLog, researchLog}},
		{"ExportProgress", []any{fullLog, queuedLog, researchLog}},
		{"ExportList", []any{exportapi.List{Slug: "field-notes", Limit: 10, Caller: caller}, exportapi.List{Caller: caller}}},
		{"ExportListed", []any{exportapi.Listed{Exports: []exportapi.Log{fullLog}}, exportapi.Listed{Exports: []exportapi.Log{researchLog}}, exportapi.Listed{Exports: []exportapi.Log{}}}},
		{"ExportInvalidate", []any{exportapi.Invalidate{ID: exportID, DeleteFiles: true, Caller: caller}}},
		{"ExportDownload", []any{
			exportapi.Download{Export: fullLog, StorageKey: exportapi.StorageKey(exportID), URL: "https://s3.example.com/exports/x.zip?X-Amz-Signature=1", URLExpires: &at},
			exportapi.Download{Export: queuedLog, StorageKey: exportapi.StorageKey(exportID)},
			exportapi.Download{Export: researchLog, StorageKey: researchLog.StorageKey},
		}},
		{"ExportBuildJob", []any{exportapi.BuildJob{ID: exportID, Slug: "field-notes", Type: exportapi.Standalone, Version: 1, Checksum: checksum,
			RequestedBy: "reader@example.com", RequestedAt: at}}},
	}
	raw := newRawSchemas(t, filepath.Dir(doc.path))
	for _, c := range cases {
		m, err := doc.message(map[string]any{"$ref": "#/components/messages/" + c.message}, "")
		if err != nil {
			t.Errorf("%s: %v", c.message, err)
			continue
		}
		// A documented field must be written by some value of the case (a
		// message may have shapes that exclude each other, such as a
		// pending answer beside a result).
		var unproduced map[string]bool
		var ref string
		for _, v := range c.values {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := decodeJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.payload.Validate(inst); err != nil {
				t.Errorf("%s: %T %s does not validate:\n%v", c.message, v, b, err)
			}
			ref = str(mapAt(mapAt(m.node, "payload"), "schema")["$ref"])
			missing := map[string]bool{}
			for _, path := range raw.unproduced(ref, inst) {
				missing[path] = unproduced == nil || unproduced[path]
			}
			unproduced = missing
		}
		for _, path := range slices.Sorted(maps.Keys(unproduced)) {
			if unproduced[path] {
				t.Errorf("%s: %s documents %s, which no value of %T writes", c.message, ref, path, c.values[0])
			}
		}
	}
}

// rawSchemas reads the schema files under schemas/ as plain JSON, to walk
// them alongside an instance.
type rawSchemas struct {
	t     *testing.T
	dir   string
	files map[string]any
}

func newRawSchemas(t *testing.T, dir string) *rawSchemas {
	return &rawSchemas{t: t, dir: dir, files: map[string]any{}}
}

func (r *rawSchemas) file(path string) any {
	if v, ok := r.files[path]; ok {
		return v
	}
	b, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		r.t.Fatalf("%s: %v", path, err)
	}
	r.files[path] = v
	return v
}

// unproduced lists the properties (as JSON pointers into the instance)
// that the schema ref (relative to schemas/) describes but inst lacks.
func (r *rawSchemas) unproduced(ref string, inst any) []string {
	var out []string
	r.walk(filepath.Join(r.dir, "x"), map[string]any{"$ref": ref}, inst, "", &out)
	return out
}

func (r *rawSchemas) walk(from string, node, inst any, at string, out *[]string) {
	n, ok := node.(map[string]any)
	if !ok {
		return
	}
	if ref, ok := n["$ref"].(string); ok {
		file, frag, _ := strings.Cut(ref, "#")
		path := from
		if file != "" {
			path = filepath.Join(filepath.Dir(from), filepath.FromSlash(file))
		}
		target := r.file(path)
		if frag != "" {
			var err error
			if target, err = lookup(target, "#"+frag); err != nil {
				r.t.Fatalf("%s: %v", path, err)
			}
		}
		r.walk(path, target, inst, at, out)
	}
	for _, s := range sliceOf(n["allOf"]) {
		r.walk(from, s, inst, at, out)
	}
	for _, key := range []string{"oneOf", "anyOf"} {
		for _, s := range sliceOf(n[key]) {
			if jsonTypeOK(s, inst) {
				r.walk(from, s, inst, at, out)
			}
		}
	}
	switch v := inst.(type) {
	case map[string]any:
		for _, name := range sortedKeys(mapAt(n, "properties")) {
			if _, ok := v[name]; !ok {
				*out = append(*out, at+"/"+escape(name))
				continue
			}
			r.walk(from, mapAt(n, "properties")[name], v[name], at+"/"+escape(name), out)
		}
	case []any:
		if items, ok := n["items"]; ok {
			for i, e := range v {
				r.walk(from, items, e, fmt.Sprintf("%s/%d", at, i), out)
			}
		}
	}
}

// jsonTypeOK reports whether a oneOf branch's type admits inst.
func jsonTypeOK(schema, inst any) bool {
	s, _ := schema.(map[string]any)
	want := str(s["type"])
	switch inst.(type) {
	case nil:
		return want == "" || want == "null"
	case map[string]any:
		return want == "" || want == "object"
	case []any:
		return want == "" || want == "array"
	}
	return want != "null" && want != "object" && want != "array"
}
