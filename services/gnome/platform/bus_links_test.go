package platform_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// Request IDs of the study-link calls that must fail.
const (
	ridLinkUsed     = "probe-link-single-used"
	ridLinkRevoked  = "probe-link-revoked"
	ridLinkUnknown  = "probe-link-unknown"
	ridLinkNotOwner = "probe-links-not-owner"
)

// The links exercise's error replies join the others the live-bus test
// expects, so that it accounts for every error reply it records.
func init() {
	maps.Copy(wantErrors, map[string]apierr.Code{
		ridLinkUsed: apierr.CodeGone, ridLinkRevoked: apierr.CodeGone,
		ridLinkUnknown: apierr.CodeNotFound, ridLinkNotOwner: apierr.CodeForbidden,
	})
}

var (
	linkIDShape        = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	participantIDShape = regexp.MustCompile(`^[a-f0-9]{24}$`)
)

const prolificURL = "https://app.prolific.com/submissions/complete?cc={code}"

// exerciseLinks calls every study-link endpoint as the edge does: the
// owner creates single, multi and personal links and lists them;
// participants open them (a single-use link twice, a multi-use link with
// a recruiter's parameters, a personal link twice); the owner lists the
// runs and revokes a link, which then opens nothing. A stranger and a
// guessed link ID get nothing.
func exerciseLinks(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug, owner = "bus-links", "owner@example.com"
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: owner, Status: "active", Version: 1,
		Manifest: `{"slug":"bus-links"}`, CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	actor := authapi.Actor{Email: owner, Token: testenv.Token(owner, "developer")}

	single, err := call(ctx, d.NC, "auth-links-create-single", authapi.EndpointLinksCreate,
		authapi.LinksCreate{Actor: actor, Slug: slug, Kind: authapi.LinkSingle, CompletionURL: prolificURL, CompletionCode: "C1A2B3C4"})
	if err != nil || len(single.Links) != 1 {
		t.Fatalf("links.create single: %+v %v", single, err)
	}
	if l := single.Links[0]; !linkIDShape.MatchString(l.ID) || l.Kind != authapi.LinkSingle || l.Slug != slug || l.CreatedBy != owner ||
		l.CompletionURL != prolificURL || l.CompletionCode != "C1A2B3C4" || l.Revoked || l.Opened != 0 {
		t.Fatalf("links.create single: %+v", l)
	}
	multi, err := call(ctx, d.NC, "auth-links-create-multi", authapi.EndpointLinksCreate,
		authapi.LinksCreate{Actor: actor, Slug: slug, Kind: authapi.LinkMulti, Count: 2})
	if err != nil || len(multi.Links) != 2 || multi.Links[0].ID == multi.Links[1].ID {
		t.Fatalf("links.create multi: %+v %v", multi, err)
	}
	personal, err := call(ctx, d.NC, "auth-links-create-personal", authapi.EndpointLinksCreate,
		authapi.LinksCreate{Actor: actor, Slug: slug, Kind: authapi.LinkPersonal, Labels: []string{"participant 01", "participant 02"}})
	if err != nil || len(personal.Links) != 2 || personal.Links[0].Label != "participant 01" || personal.Links[1].Label != "participant 02" {
		t.Fatalf("links.create personal: %+v %v", personal, err)
	}

	_, err = call(ctx, d.NC, ridLinkNotOwner, authapi.EndpointLinksList,
		authapi.LinksList{Actor: authapi.Actor{Email: owner, Token: testenv.Token("stranger@example.com", "developer")}, Slug: slug})
	wantCode(t, "links.list by a developer who does not own the experiment, naming its owner", err, apierr.CodeForbidden)
	list, err := call(ctx, d.NC, "auth-links-list", authapi.EndpointLinksList, authapi.LinksList{Actor: actor, Slug: slug})
	if err != nil || len(list.Links) != 5 {
		t.Fatalf("links.list: %+v %v", list, err)
	}

	// A single-use link admits one participant; the second is told it is used.
	s1, err := call(ctx, d.NC, "auth-links-open-single", authapi.EndpointLinksOpen,
		authapi.LinkOpen{Slug: slug, ID: single.Links[0].ID})
	if err != nil || s1.Resumed || s1.Run.Link != single.Links[0].ID || !linkIDShape.MatchString(s1.Run.ID) ||
		!participantIDShape.MatchString(s1.Run.Participant) || !s1.ExpiresAt.After(time.Now()) {
		t.Fatalf("links.open single: %+v %v", s1, err)
	}
	checkParticipantToken(t, s1, slug)
	_, err = call(ctx, d.NC, ridLinkUsed, authapi.EndpointLinksOpen, authapi.LinkOpen{Slug: slug, ID: single.Links[0].ID})
	wantCode(t, "links.open of a used single-use link", err, apierr.CodeGone)

	// A multi-use link records the recruiter's parameters with the run.
	params := map[string]string{"PROLIFIC_PID": "5f8e2a1b9c3d4e6f7a8b9c0d", "STUDY_ID": "65a1b2c3d4e5f6a7b8c9d0e1", "SESSION_ID": "s7t8u9v0w1x2"}
	m1, err := call(ctx, d.NC, "auth-links-open-multi", authapi.EndpointLinksOpen,
		authapi.LinkOpen{Slug: slug, ID: multi.Links[0].ID, Params: params})
	if err != nil || !maps.Equal(m1.Run.Params, params) || m1.Run.Participant == s1.Run.Participant {
		t.Fatalf("links.open multi: %+v %v", m1, err)
	}

	// A personal link opened again resumes its participant's run.
	p1, err := call(ctx, d.NC, "auth-links-open-personal", authapi.EndpointLinksOpen, authapi.LinkOpen{Slug: slug, ID: personal.Links[0].ID})
	if err != nil || p1.Resumed || p1.Run.Label != "participant 01" {
		t.Fatalf("links.open personal: %+v %v", p1, err)
	}
	p2, err := call(ctx, d.NC, "auth-links-open-personal-again", authapi.EndpointLinksOpen, authapi.LinkOpen{Slug: slug, ID: personal.Links[0].ID})
	if err != nil || !p2.Resumed || p2.Run.ID != p1.Run.ID || p2.Run.Participant != p1.Run.Participant {
		t.Fatalf("links.open personal again: %+v %v, want the run %s resumed", p2, err, p1.Run.ID)
	}

	// A guessed ID of the right shape opens nothing.
	_, err = call(ctx, d.NC, ridLinkUnknown, authapi.EndpointLinksOpen, authapi.LinkOpen{Slug: slug, ID: "AAAAAAAAAAAAAAAAAAAAAA"})
	wantCode(t, "links.open of a link that does not exist", err, apierr.CodeNotFound)

	runs, err := call(ctx, d.NC, "auth-links-runs", authapi.EndpointLinksRuns, authapi.RunsList{Actor: actor, Slug: slug})
	if err != nil || len(runs.Runs) != 3 {
		t.Fatalf("links.runs: %+v %v, want the single, multi and personal runs", runs, err)
	}
	one, err := call(ctx, d.NC, "auth-links-runs-one", authapi.EndpointLinksRuns, authapi.RunsList{Actor: actor, Slug: slug, Link: multi.Links[0].ID})
	if err != nil || len(one.Runs) != 1 || one.Runs[0].ID != m1.Run.ID || !maps.Equal(one.Runs[0].Params, params) {
		t.Fatalf("links.runs of one link: %+v %v", one, err)
	}

	rev, err := call(ctx, d.NC, "auth-links-revoke", authapi.EndpointLinksRevoke, authapi.LinkRevoke{Actor: actor, Slug: slug, ID: multi.Links[0].ID})
	if err != nil || !rev.Revoked || rev.RevokedAt == nil || rev.Opened != 1 {
		t.Fatalf("links.revoke: %+v %v", rev, err)
	}
	_, err = call(ctx, d.NC, ridLinkRevoked, authapi.EndpointLinksOpen, authapi.LinkOpen{Slug: slug, ID: multi.Links[0].ID})
	wantCode(t, "links.open of a revoked link", err, apierr.CodeGone)

	after, err := call(ctx, d.NC, "auth-links-list-after", authapi.EndpointLinksList, authapi.LinksList{Actor: actor, Slug: slug})
	if err != nil || len(after.Links) != 5 {
		t.Fatalf("links.list after: %+v %v", after, err)
	}
	opened := map[string]int64{}
	for _, l := range after.Links {
		opened[l.ID] = l.Opened
		if l.ID == multi.Links[0].ID && !l.Revoked {
			t.Errorf("links.list: the revoked link %s is not revoked", l.ID)
		}
	}
	// The refused openings and the resumption counted nothing.
	want := map[string]int64{single.Links[0].ID: 1, multi.Links[0].ID: 1, multi.Links[1].ID: 0, personal.Links[0].ID: 1, personal.Links[1].ID: 0}
	if !maps.Equal(opened, want) {
		t.Errorf("links.list counts opened %v, want %v", opened, want)
	}
}

// checkParticipantToken reads the session's token claims (the auth
// service's tests verify its signature): a participant's token for slug's
// origin alone, for the run's participant, carrying the run.
func checkParticipantToken(t *testing.T, s authapi.LinkSession, slug string) {
	t.Helper()
	parts := strings.Split(s.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("links.open: token %q is not a JWT", s.Token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("links.open: token claims: %v", err)
	}
	var cl authn.Claims
	if err := json.Unmarshal(raw, &cl); err != nil {
		t.Fatalf("links.open: token claims: %v", err)
	}
	aud, _ := cl.GetAudience()
	if cl.Kind != authn.KindParticipant || cl.Subject != s.Run.Participant || len(aud) != 1 || aud[0] != authn.ExperimentAudience(slug) ||
		cl.Run == nil || cl.Run.ID != s.Run.ID || cl.Run.Link != s.Run.Link {
		t.Errorf("links.open: token claims %s, want a participant's for %s with run %s", raw, slug, s.Run.ID)
	}
}

// TestLinkTypesMatchSchemas marshals the fullest values of the study-link
// types (and the leanest the service sends) and checks them against the
// payload schemas of their messages: the values validate, and the fullest
// shows every property the schema documents.
func TestLinkTypesMatchSchemas(t *testing.T) {
	doc := loadAsyncAPI(t)
	ms := time.Date(2025, 6, 1, 12, 0, 0, 123000000, time.UTC)
	const id, runID, pid = "3q2-7wX9Zk1mQ0aBcDeFgA", "Yk3mN8pQ2rS5tU7vW9xZ1A", "6a1f0c9e8d7b6a5f4e3d2c1b"
	actor := authapi.Actor{Email: "dev@example.com", RequestID: "req-1", Token: "aGVhZGVy.Y2xhaW1z.c2ln"}
	params := map[string]string{"PROLIFIC_PID": "5f8e2a1b9c3d4e6f7a8b9c0d", "workerId": "A1B2C3"}
	link := authapi.Link{ID: id, Slug: "survey", Kind: authapi.LinkPersonal, URL: "https://survey.exp.example.com/_gnome/l/" + id,
		Label: "participant 01", CompletionURL: prolificURL, CompletionCode: "C1A2B3C4", Revoked: true, RevokedAt: &ms,
		CreatedBy: "dev@example.com", CreatedAt: ms, Opened: 3, Started: 2, Finished: 1}
	lean := authapi.Link{ID: id, Slug: "survey", Kind: authapi.LinkMulti, CreatedBy: "dev@example.com", CreatedAt: ms}
	run := authapi.Run{ID: runID, Link: id, Label: "participant 01", Participant: pid, Params: params, OpenedAt: ms, StartedAt: &ms, FinishedAt: &ms}
	leanRun := authapi.Run{ID: runID, Link: id, Participant: pid, OpenedAt: ms}
	cases := []struct {
		message string
		values  []any
	}{
		{"LinksCreate", []any{
			authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkPersonal, Count: 2, Labels: []string{"a", "b"}, CompletionURL: prolificURL, CompletionCode: "C1"},
			authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle},
		}},
		{"LinksList", []any{authapi.LinksList{Actor: actor, Slug: "survey", After: "1765000000000~" + id}}},
		{"LinkRevoke", []any{authapi.LinkRevoke{Actor: actor, Slug: "survey", ID: id}}},
		{"RunsList", []any{authapi.RunsList{Actor: actor, Slug: "survey", Link: id, After: "1765000000000~" + runID}, authapi.RunsList{Actor: actor, Slug: "survey"}}},
		{"LinkOpen", []any{authapi.LinkOpen{Slug: "survey", ID: id, Params: params}, authapi.LinkOpen{Slug: "survey", ID: id}}},
		{"Link", []any{link, lean}},
		{"Links", []any{authapi.Links{Links: []authapi.Link{link}, Next: "1765000000000~" + id}, authapi.Links{Links: []authapi.Link{}}}},
		{"Runs", []any{authapi.Runs{Runs: []authapi.Run{run}, Next: "1765000000000~" + runID}, authapi.Runs{Runs: []authapi.Run{leanRun}}}},
		{"LinkSession", []any{
			authapi.LinkSession{Token: "aGVhZGVy.Y2xhaW1z.c2ln", ExpiresAt: ms, Run: run, Resumed: true},
			authapi.LinkSession{Token: "a.b.c", ExpiresAt: ms, Run: leanRun},
		}},
	}
	raw := newRawSchemas(t, filepath.Dir(doc.path))
	for _, c := range cases {
		m, err := doc.message(map[string]any{"$ref": "#/components/messages/" + c.message}, "")
		if err != nil {
			t.Errorf("%s: %v", c.message, err)
			continue
		}
		for i, v := range c.values {
			inst := roundTrip(t, v)
			if err := m.payload.Validate(inst); err != nil {
				t.Errorf("%s: %T %v does not validate:\n%v", c.message, v, inst, err)
			}
			if i > 0 {
				continue
			}
			ref := str(mapAt(mapAt(m.node, "payload"), "schema")["$ref"])
			for _, missing := range raw.unproduced(ref, inst) {
				t.Errorf("%s: %s documents %s, which %T never writes", c.message, ref, missing, v)
			}
		}
	}

	// Values the service refuses are refused by the schemas too, at the
	// field that is wrong.
	long := func(n int) string { return strings.Repeat("x", n) }
	tooMany := map[string]string{}
	for i := range authapi.MaxParams + 1 {
		tooMany[string(rune('a'+i))] = "v"
	}
	for _, tc := range []struct {
		message string
		value   any
		pointer string
	}{
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: "open"}, "/kind"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkMulti, Count: authapi.MaxLinksPerRequest + 1}, "/count"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle, Count: -1}, "/count"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkPersonal, Labels: []string{long(authapi.MaxLabelLen + 1)}}, "/labels/0"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkPersonal, Labels: []string{"a\nb"}}, "/labels/0"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle, CompletionURL: "javascript:alert(1)//{code}"}, "/completion_url"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle, CompletionURL: "https://x.example/" + long(authapi.MaxURLLen)}, "/completion_url"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle, CompletionURL: prolificURL, CompletionCode: long(authapi.MaxCodeLen + 1)}, "/completion_code"},
		{"LinksCreate", authapi.LinksCreate{Actor: actor, Slug: "survey", Kind: authapi.LinkSingle, CompletionURL: "https://x.example/done", CompletionCode: "C1"}, "/completion_url"},
		{"LinkRevoke", authapi.LinkRevoke{Actor: actor, Slug: "survey", ID: "../" + id}, "/id"},
		{"RunsList", authapi.RunsList{Actor: actor, Slug: "survey", Link: id + "x"}, "/link"},
		{"LinkOpen", authapi.LinkOpen{Slug: "Survey", ID: id}, "/slug"},
		{"LinkOpen", authapi.LinkOpen{Slug: "survey", ID: id, Params: tooMany}, "/params"},
		{"LinkOpen", authapi.LinkOpen{Slug: "survey", ID: id, Params: map[string]string{"PROLIFIC PID": "1"}}, "/params"},
		{"LinkOpen", authapi.LinkOpen{Slug: "survey", ID: id, Params: map[string]string{long(authapi.MaxParamNameLen + 1): "1"}}, "/params"},
		{"LinkOpen", authapi.LinkOpen{Slug: "survey", ID: id, Params: map[string]string{"workerId": long(authapi.MaxParamValueLen + 1)}}, "/params/workerId"},
		{"LinkOpen", authapi.LinkOpen{Slug: "survey", ID: id, Params: map[string]string{"workerId": "a\x00b"}}, "/params/workerId"},
		{"LinkSession", authapi.LinkSession{Token: "not a jwt", ExpiresAt: ms, Run: leanRun}, "/token"},
		{"Runs", authapi.Runs{Runs: []authapi.Run{{ID: runID, Link: id, Participant: "Participant-1", OpenedAt: ms}}}, "/runs/0/participant"},
		{"Link", func() authapi.Link { l := lean; l.Revoked = true; return l }(), "/revoked_at"},
	} {
		m, err := doc.message(map[string]any{"$ref": "#/components/messages/" + tc.message}, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.message, err)
		}
		err = m.payload.Validate(roundTrip(t, tc.value))
		if err == nil {
			t.Errorf("%s: %+v validates, want it refused at %q", tc.message, tc.value, tc.pointer)
			continue
		}
		// A bad property name fails at "" (the name itself); the validator
		// does not always name its object, so the message is what tells.
		named := strings.Contains(err.Error(), "invalid propertyName")
		got := leafPointers(err)
		if len(got) == 0 || slices.ContainsFunc(got, func(p string) bool { return !strings.HasPrefix(p, tc.pointer) && !(p == "" && named) }) {
			t.Errorf("%s: %+v refused at %v, want %q\n%v", tc.message, tc.value, got, tc.pointer, err)
		}
	}
}
