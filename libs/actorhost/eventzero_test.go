package actorhost

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/scoped"
)

// member is a caller of the Event Zero example, with the kind and ID the
// edge sends for an experiment's own accounts.
type member struct {
	Kind      string   `json:"kind"`
	ID        string   `json:"id,omitempty"`
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	Anonymous bool     `json:"anonymous"`
}

var (
	ezAda     = member{Kind: "experiment_user", ID: "u-ada", Email: "ada@example.com", Roles: []string{}}
	ezBob     = member{Kind: "experiment_user", ID: "u-bob", Email: "bob@example.com", Roles: []string{}}
	ezCarol   = member{Kind: "demo", ID: "d-guest", Email: "guest@event-zero.example", Roles: []string{"attendee"}}
	ezDan     = member{Kind: "experiment_user", ID: "u-dan", Email: "dan@example.com", Roles: []string{}}
	ezStaff   = member{Kind: "demo", ID: "d-staff", Email: "staff@event-zero.example", Roles: []string{"staff"}}
	ezNobody  = member{Kind: "anonymous", Roles: []string{}, Anonymous: true}
	ezVisitor = member{Kind: "participant", ID: "p-1", Roles: []string{}, Anonymous: true}
	// A platform user (a script with a platform token) is no account of the
	// event, whatever its platform roles.
	ezPlatform = member{Kind: "user", ID: "platform-1", Email: "root@example.com", Roles: []string{"admin"}}
	ticketCode = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`)
)

// ezEnvelope is a request envelope from m, checked against
// actor-request.json.
func ezEnvelope(t testing.TB, method, target, body string, m member) []byte {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	headers := map[string][]string{"Accept": {"application/json"}}
	if body != "" {
		headers["Content-Type"] = []string{"application/json"}
	}
	env := mustJSON(t, map[string]any{
		"method": method, "path": path, "query": query, "headers": headers,
		"body": []byte(body), "caller": m, "request_id": fmt.Sprintf("ez-%d", requests.Add(1)),
	})
	valid(t, "actor-request", env)
	return env
}

func ezHandle(inst *Instance, env []byte) (response, error) {
	out, err := inst.Handle(context.Background(), env)
	if err != nil {
		return response{}, err
	}
	var r response
	err = json.Unmarshal(out, &r)
	return r, err
}

// ezDo sends one request as m and fails the test unless it gets status.
func ezDo(t *testing.T, inst *Instance, method, target, body string, m member, status int) response {
	t.Helper()
	r, err := ezHandle(inst, ezEnvelope(t, method, target, body, m))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if r.Status != status {
		t.Fatalf("%s %s as %s: status %d, want %d: %s", method, target, m.Email, r.Status, status, r.Body)
	}
	return r
}

// ezRefused asserts an error answer's status, code and message fragment.
func ezRefused(t *testing.T, inst *Instance, method, target, body string, m member, status int, code, says string) {
	t.Helper()
	r := ezDo(t, inst, method, target, body, m, status)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code != code || !strings.Contains(e.Error.Message, says) {
		t.Errorf("%s %s as %q: %s, want code %s saying %q", method, target, m.Email, r.Body, code, says)
	}
}

type ezTicket struct {
	Code        string `json:"code"`
	Event       string `json:"event"`
	EventName   string `json:"event_name"`
	HolderEmail string `json:"holder_email"`
	CheckedIn   bool   `json:"checked_in"`
	CheckedInAt string `json:"checked_in_at"`
	CheckedInBy string `json:"checked_in_by"`
}

func ezTicketOf(t *testing.T, r response) ezTicket {
	t.Helper()
	var b struct {
		Ticket ezTicket `json:"ticket"`
	}
	r.json(t, &b)
	if !ticketCode.MatchString(b.Ticket.Code) {
		t.Errorf("ticket code %q is not four groups of four Crockford letters and digits", b.Ticket.Code)
	}
	return b.Ticket
}

// startEventZero builds the example's managed indexes on db, as the upload
// service does, and runs two instances of its actor: the platform may run
// several at once, so claims and check-ins must hold across instances.
func startEventZero(t *testing.T, db *mongo.Database) (a, b *Instance) {
	t.Helper()
	m, _ := example(t, "event_zero")
	ctx := context.Background()
	for base, specs := range m.ManagedIndexes {
		for _, spec := range specs {
			if err := scoped.CreateIndex(ctx, db, m.Slug, base, spec); err != nil {
				t.Fatalf("index %s on %s: %v", spec.Name, base, err)
			}
		}
	}
	a, _ = startExample(t, db, "event_zero", m.Slug, m.DataScope)
	b, _ = startExample(t, db, "event_zero", m.Slug, m.DataScope)
	return a, b
}

// The Event Zero example against the real data library on the embedded
// store: events seeded from its config, one ticket per account and event
// (also when two instances are asked at once), capacity, check-in once,
// staff routes refused to everyone else, and clear errors for bad input.
func TestEventZeroTickets(t *testing.T) {
	t.Parallel()
	db := database(t)
	ez, other := startEventZero(t, db)
	ctx := context.Background()

	var list struct {
		Events []struct {
			ID        string `json:"id"`
			Capacity  int64  `json:"capacity"`
			Remaining int64  `json:"remaining"`
			StartsAt  string `json:"starts_at"`
		} `json:"events"`
	}
	ezDo(t, ez, "GET", "/events", "", ezNobody, 200).json(t, &list)
	if len(list.Events) != 2 || list.Events[0].ID != "opening-night" || list.Events[1].ID != "hands-on-workshop" ||
		list.Events[1].Capacity != 2 || list.Events[1].Remaining != 2 || list.Events[0].StartsAt != "2027-03-05T19:00:00Z" {
		t.Fatalf("events seeded from the config (each instance seeds, once in all): %+v", list.Events)
	}

	// Who may hold tickets: the event's accounts, nobody else.
	ezRefused(t, ez, "POST", "/events/opening-night/tickets", "", ezNobody, 401, "unauthenticated", "sign in")
	ezRefused(t, ez, "POST", "/events/opening-night/tickets", "", ezVisitor, 401, "unauthenticated", "sign in")
	ezRefused(t, ez, "POST", "/events/opening-night/tickets", "", ezPlatform, 403, "forbidden", "accounts of Event Zero")
	ezRefused(t, ez, "GET", "/tickets", "", ezNobody, 401, "unauthenticated", "sign in")

	// A claim, and the same claim again: one ticket.
	first := ezTicketOf(t, ezDo(t, ez, "POST", "/events/opening-night/tickets", "", ezAda, 201))
	again := ezTicketOf(t, ezDo(t, other, "POST", "/events/opening-night/tickets", "", ezAda, 200))
	if again.Code != first.Code || first.HolderEmail != ezAda.Email || first.EventName != "Opening night" || first.CheckedIn {
		t.Errorf("claimed %+v, then %+v", first, again)
	}
	var mine struct{ Tickets []ezTicket }
	ezDo(t, ez, "GET", "/tickets", "", ezAda, 200).json(t, &mine)
	if len(mine.Tickets) != 1 || mine.Tickets[0].Code != first.Code {
		t.Errorf("ada's tickets: %+v", mine.Tickets)
	}
	ezDo(t, ez, "GET", "/tickets", "", ezBob, 200).json(t, &mine)
	if len(mine.Tickets) != 0 {
		t.Errorf("bob sees tickets he never claimed: %+v", mine.Tickets)
	}
	ezRefused(t, ez, "POST", "/events/no-such-event/tickets", "", ezAda, 404, "not_found", `no event "no-such-event"`)
	ezRefused(t, ez, "POST", "/events/Not_An_ID/tickets", "", ezAda, 404, "not_found", "no event")

	// Capacity: the workshop has two places.
	ezDo(t, ez, "POST", "/events/hands-on-workshop/tickets", "", ezAda, 201)
	ezDo(t, other, "POST", "/events/hands-on-workshop/tickets", "", ezCarol, 201)
	ezRefused(t, ez, "POST", "/events/hands-on-workshop/tickets", "", ezBob, 409, "conflict", "full")
	ezDo(t, ez, "POST", "/events/hands-on-workshop/tickets", "", ezAda, 200) // a holder still gets theirs

	// Two instances asked at once for the same holder's ticket: one ticket,
	// the same answer to both, and one place taken.
	codes := map[string]bool{first.Code: true}
	for i := range 6 {
		m := member{Kind: "experiment_user", ID: fmt.Sprintf("u-race-%d", i), Email: fmt.Sprintf("race%d@example.com", i), Roles: []string{}}
		env := ezEnvelope(t, "POST", "/events/opening-night/tickets", "", m)
		var wg sync.WaitGroup
		var got [2]response
		var errs [2]error
		for j, inst := range []*Instance{ez, other} {
			wg.Go(func() { got[j], errs[j] = ezHandle(inst, env) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("concurrent claims: %v, %v", errs[0], errs[1])
		}
		statuses := []int{got[0].Status, got[1].Status}
		slices.Sort(statuses)
		if statuses[0] != 200 || statuses[1] != 201 || ezTicketOf(t, got[0]).Code != ezTicketOf(t, got[1]).Code {
			t.Errorf("concurrent claims of %s: %d %s and %d %s, want one 201 and one 200 with the same ticket",
				m.Email, got[0].Status, got[0].Body, got[1].Status, got[1].Body)
		}
		codes[ezTicketOf(t, got[0]).Code] = true
	}
	if len(codes) != 7 {
		t.Errorf("%d distinct codes for 7 holders", len(codes))
	}
	tickets := db.Collection(scoped.CollectionName("event-zero", "tickets"))
	if n, _ := tickets.CountDocuments(ctx, bson.D{{Key: "event", Value: "opening-night"}}); n != 7 {
		t.Errorf("%d tickets to the opening night, want 7", n)
	}
	// Places 1 to 7, each once.
	var seats []struct {
		Seat int64 `bson:"seat"`
	}
	cur, err := tickets.Find(ctx, bson.D{{Key: "event", Value: "opening-night"}})
	if err != nil || cur.All(ctx, &seats) != nil {
		t.Fatalf("read the tickets: %v", err)
	}
	taken := map[int64]bool{}
	for _, s := range seats {
		taken[s.Seat] = true
	}
	for n := int64(1); n <= 7; n++ {
		if !taken[n] {
			t.Errorf("place %d of the opening night is not taken: %v", n, taken)
		}
	}
	// The manifest's unique index is on the store: a second ticket of one
	// holder is refused there, whatever an actor does.
	_, err = tickets.InsertOne(ctx, bson.D{{Key: "_id", Value: "X"}, {Key: "event", Value: "opening-night"}, {Key: "holder", Value: "experiment_user:u-ada"}, {Key: "experiment_id", Value: "event-zero"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second ticket of one holder written to the store directly: %v", err)
	}
	_, err = tickets.InsertOne(ctx, bson.D{{Key: "_id", Value: "Y"}, {Key: "event", Value: "hands-on-workshop"}, {Key: "seat", Value: 2}, {Key: "holder", Value: "experiment_user:u-new"}, {Key: "experiment_id", Value: "event-zero"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second ticket for one place written to the store directly: %v", err)
	}

	// Check-in: staff only, once.
	for _, m := range []member{ezAda, ezCarol} {
		ezRefused(t, ez, "POST", "/checkin", `{"code":"`+first.Code+`"}`, m, 403, "forbidden", "only staff")
		ezRefused(t, ez, "GET", "/attendance", "", m, 403, "forbidden", "only staff")
		ezRefused(t, ez, "POST", "/events", `{"id":"x","name":"X","starts_at":"2027-01-01T00:00:00Z","capacity":1}`, m, 403, "forbidden", "only staff")
	}
	ezRefused(t, ez, "POST", "/checkin", `{"code":"`+first.Code+`"}`, ezNobody, 401, "unauthenticated", "sign in")
	ezRefused(t, ez, "GET", "/attendance", "", ezPlatform, 403, "forbidden", "")
	ezRefused(t, ez, "POST", "/checkin", `{"code":`, ezStaff, 400, "invalid_json", "code")
	for _, bad := range []string{"", "1234", "UUUU-UUUU-UUUU-UUUU", "7KQ2-M9XD-4HRT-B1CW-0000", "7KQ2<M9XD>4HRT;B1CW", strings.Repeat("A", 100), "ÄKQ2-M9XD-4HRT-B1CW"} {
		ezRefused(t, ez, "POST", "/checkin", mustString(t, map[string]string{"code": bad}), ezStaff, 422, "validation_failed", "16 letters and digits")
	}
	ezRefused(t, ez, "POST", "/checkin", `{"code":"0000-0000-0000-0000"}`, ezStaff, 404, "not_found", "no ticket has the code 0000-0000-0000-0000")
	typed := strings.ToLower(strings.ReplaceAll(first.Code, "-", " "))
	in := ezTicketOf(t, ezDo(t, ez, "POST", "/checkin", mustString(t, map[string]string{"code": typed}), ezStaff, 200))
	if in.Code != first.Code || !in.CheckedIn || in.CheckedInBy != ezStaff.Email || in.HolderEmail != ezAda.Email {
		t.Errorf("checked in: %+v", in)
	}
	ezRefused(t, other, "POST", "/checkin", `{"code":"`+first.Code+`"}`, ezStaff, 409, "conflict", "already checked in at "+in.CheckedInAt)
	ezDo(t, ez, "GET", "/tickets", "", ezAda, 200).json(t, &mine)
	if len(mine.Tickets) != 2 || !mine.Tickets[0].CheckedIn || mine.Tickets[1].CheckedIn {
		t.Errorf("ada's tickets after the check-in: %+v", mine.Tickets)
	}

	// Two doors scan one code at once: it gets in once.
	carols := ezTicketOf(t, ezDo(t, ez, "POST", "/events/hands-on-workshop/tickets", "", ezCarol, 200))
	env := ezEnvelope(t, "POST", "/checkin", `{"code":"`+carols.Code+`"}`, ezStaff)
	var wg sync.WaitGroup
	var got [2]response
	for j, inst := range []*Instance{ez, other} {
		wg.Go(func() { got[j], _ = ezHandle(inst, env) })
	}
	wg.Wait()
	if statuses := []int{got[0].Status, got[1].Status}; slices.Min(statuses) != 200 || slices.Max(statuses) != 409 {
		t.Errorf("one code at two doors: %d %s and %d %s", got[0].Status, got[0].Body, got[1].Status, got[1].Body)
	}

	var att struct {
		Events []struct {
			ID                string
			Capacity, Claimed int64
			CheckedIn         int64 `json:"checked_in"`
		}
		Claimed   int64
		CheckedIn int64 `json:"checked_in"`
	}
	ezDo(t, ez, "GET", "/attendance", "", ezStaff, 200).json(t, &att)
	if len(att.Events) != 2 || att.Events[0].Claimed != 7 || att.Events[0].CheckedIn != 1 ||
		att.Events[1].Claimed != 2 || att.Events[1].CheckedIn != 1 || att.Claimed != 9 || att.CheckedIn != 2 {
		t.Errorf("attendance %+v", att)
	}

	// Staff add events; bad ones are refused with what is wrong.
	ezDo(t, ez, "POST", "/events", `{"id":"closing-party","name":"Closing party","venue":"Roof","starts_at":"2027-03-07T21:00:00+01:00","capacity":40}`, ezStaff, 201)
	ezRefused(t, ez, "POST", "/events", `{"id":"closing-party","name":"Again","starts_at":"2027-03-07T21:00:00Z","capacity":4}`, ezStaff, 409, "conflict", "exists already")
	for _, bad := range []struct{ body, says string }{
		{`{"id":"Bad ID","name":"X","starts_at":"2027-01-01T00:00:00Z","capacity":1}`, "id"},
		{`{"id":"x","name":"  ","starts_at":"2027-01-01T00:00:00Z","capacity":1}`, "name"},
		{`{"id":"x","name":"X","starts_at":"next friday","capacity":1}`, "starts_at"},
		{`{"id":"x","name":"X","starts_at":"2027-01-01T00:00:00Z","capacity":0}`, "capacity"},
		{`{"id":"x","name":"X","starts_at":"2027-01-01T00:00:00Z","capacity":1000001}`, "capacity"},
	} {
		ezRefused(t, ez, "POST", "/events", bad.body, ezStaff, 422, "validation_failed", bad.says)
	}
	ezRefused(t, ez, "POST", "/events", `{"id":"x","capacity":"many"}`, ezStaff, 400, "invalid_json", "send")
	ezDo(t, other, "POST", "/events/closing-party/tickets", "", ezDan, 201)
	ezDo(t, ez, "GET", "/events", "", ezNobody, 200).json(t, &list)
	if len(list.Events) != 3 || list.Events[2].ID != "closing-party" || list.Events[2].Remaining != 39 || list.Events[2].StartsAt != "2027-03-07T20:00:00Z" {
		t.Errorf("events after staff added one: %+v", list.Events)
	}
}

// A config the actor cannot use refuses to start, saying what is wrong.
func TestEventZeroRefusesABadConfig(t *testing.T) {
	t.Parallel()
	db := database(t)
	m, wasm := example(t, "event_zero")
	h := newTestHost(t, db, "event-zero-bad", nil, nil)
	config := map[string]any{"events": []any{map[string]any{"id": "gala", "name": "Gala", "starts_at": "2027-01-01T20:00:00Z", "capacity": 0}}}
	// Compiling takes long under the race detector on a busy machine; the
	// start is bounded by the actor's own start limit, not by this test.
	mod := compile(t, wasm, limitsOf(m))
	ctx := context.Background()
	inst, err := mod.Instantiate(ctx, "bad", h, Init{Slug: "event-zero-bad", Version: 1, Config: config}, nil)
	if err == nil {
		inst.Close(ctx)
		t.Fatal("the actor started with an event of capacity 0")
	}
	if !strings.Contains(err.Error(), "events[0]: capacity") {
		t.Errorf("the refusal does not say what is wrong: %v", err)
	}
}

func mustString(t *testing.T, v any) string {
	t.Helper()
	return string(mustJSON(t, v))
}
