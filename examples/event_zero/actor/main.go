// The Event Zero actor sells (free) tickets to events and checks them in at
// the door. Its visitors are the experiment's own accounts (manifest
// sub_auth experiment_users): attendees sign up on the experiment's
// origin, staff are accounts whose role is "staff" (a demo account of the
// manifest here).
//
//	GET  /events                     the events, with places left (anyone)
//	POST /events                     a new event (staff)
//	POST /events/{id}/tickets        claims the caller's ticket: 201 new, 200 the one they had
//	GET  /tickets                    the caller's tickets, with their codes
//	POST /checkin  {"code": "..."}   checks a ticket in, once (staff)
//	GET  /attendance                 tickets claimed and checked in per event (staff)
//
// Events come from the manifest's actor.config (made when the actor starts,
// if missing) or from staff. A ticket's _id is its code: 80 random bits, so
// a code cannot be guessed from another.
//
// Every rule that two requests at once could break rests on a unique index,
// which the store enforces whatever runs concurrently (a conditional update
// is not enough: the embedded store may let two of them match the same
// document): the manifest's index on (event, holder) gives a holder one
// ticket per event, the one on (event, seat) numbers the places from 1 to
// the capacity so that no place is given twice, and a check-in is a
// document whose _id is the ticket's code, so a code gets in once.
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/actorsdk"
)

const (
	events   = "events"
	tickets  = "tickets"
	checkins = "checkins"
	// staffRole is the role, in the experiment, of accounts that check
	// tickets in.
	staffRole   = "staff"
	maxCapacity = 100000
)

// config is the manifest's actor.config.
type config struct {
	Events []eventInput `json:"events"`
}

func init() {
	actorsdk.OnInit(func(actorsdk.Init) error {
		var c config
		if err := actorsdk.DecodeConfig(&c); err != nil {
			return fmt.Errorf("actor.config: %w", err)
		}
		for i, in := range c.Events {
			ev, msg := in.validate()
			if msg != "" {
				return fmt.Errorf("actor.config events[%d]: %s", i, msg)
			}
			if err := seed(ev); err != nil {
				return fmt.Errorf("seed event %q: %w", ev.ID, err)
			}
		}
		actorsdk.Log.Info("event zero started", "version", actorsdk.Version(), "seeded", len(c.Events))
		return nil
	})
	actorsdk.Route("GET", "/events", listEvents)
	actorsdk.Route("POST", "/events", createEvent)
	actorsdk.Route("POST", "/events/{id}/tickets", claim)
	actorsdk.Route("GET", "/tickets", myTickets)
	actorsdk.Route("POST", "/checkin", checkIn)
	actorsdk.Route("GET", "/attendance", attendance)
}

// Event is an event as stored.
type Event struct {
	ID        string            `json:"_id"`
	Name      string            `json:"name"`
	Venue     string            `json:"venue"`
	StartsAt  actorsdk.DateTime `json:"starts_at"`
	Capacity  int64             `json:"capacity"`
	CreatedBy string            `json:"created_by"`
	CreatedAt actorsdk.DateTime `json:"created_at"`
}

// Ticket is a ticket as stored; its _id is its code, Seat its place
// (1 to the event's capacity). The checked_in fields repeat its Checkin.
type Ticket struct {
	Code        string             `json:"_id"`
	Event       string             `json:"event"`
	Seat        int64              `json:"seat"`
	Holder      string             `json:"holder"`
	HolderEmail string             `json:"holder_email"`
	ClaimedAt   actorsdk.DateTime  `json:"claimed_at"`
	CheckedIn   bool               `json:"checked_in"`
	CheckedInAt *actorsdk.DateTime `json:"checked_in_at,omitempty"`
	CheckedInBy string             `json:"checked_in_by,omitempty"`
}

// eventInput is an event as config and staff give it.
type eventInput struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Venue    string `json:"venue"`
	StartsAt string `json:"starts_at"`
	Capacity int64  `json:"capacity"`
}

var eventID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validate is in as an Event, or a message saying what is wrong.
func (in eventInput) validate() (Event, string) {
	switch {
	case !eventID.MatchString(in.ID):
		return Event{}, fmt.Sprintf("id %q must be 1 to 63 lower-case letters, digits or hyphens, starting with a letter or digit", in.ID)
	case strings.TrimSpace(in.Name) == "" || utf8.RuneCountInString(in.Name) > 120:
		return Event{}, "name must be 1 to 120 characters"
	case utf8.RuneCountInString(in.Venue) > 120:
		return Event{}, "venue must be at most 120 characters"
	case in.Capacity < 1 || in.Capacity > maxCapacity:
		return Event{}, fmt.Sprintf("capacity must be a whole number from 1 to %d", maxCapacity)
	}
	at, err := time.Parse(time.RFC3339, in.StartsAt)
	if err != nil {
		return Event{}, fmt.Sprintf("starts_at %q must be a time such as 2027-03-05T19:00:00Z", in.StartsAt)
	}
	return Event{ID: in.ID, Name: strings.TrimSpace(in.Name), Venue: strings.TrimSpace(in.Venue),
		StartsAt: actorsdk.DateTime(at.UTC().Truncate(time.Millisecond)), Capacity: in.Capacity}, ""
}

// seed makes the event of the config unless it exists: a new version's
// config never resets the places an event has given out, nor what staff
// changed.
func seed(ev Event) error {
	_, err := actorsdk.DB(events).UpdateOne(actorsdk.M{"_id": ev.ID}, actorsdk.M{"$setOnInsert": actorsdk.M{
		"name": ev.Name, "venue": ev.Venue, "starts_at": ev.StartsAt, "capacity": ev.Capacity,
		"created_by": "config", "created_at": actorsdk.Now(),
	}}, actorsdk.Upsert())
	if actorsdk.IsCode(err, actorsdk.CodeConflict) {
		// Another instance made it meanwhile.
		return nil
	}
	return err
}

// eventView is an event as the pages see it.
type eventView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Venue     string    `json:"venue"`
	StartsAt  time.Time `json:"starts_at"`
	Capacity  int64     `json:"capacity"`
	Claimed   int64     `json:"claimed"`
	Remaining int64     `json:"remaining"`
}

func (e Event) view(claimed int64) eventView {
	return eventView{ID: e.ID, Name: e.Name, Venue: e.Venue, StartsAt: e.StartsAt.Time(), Capacity: e.Capacity,
		Claimed: claimed, Remaining: max(e.Capacity-claimed, 0)}
}

// ticketView is a ticket as the pages see it.
type ticketView struct {
	Code        string     `json:"code"`
	Event       string     `json:"event"`
	Seat        int64      `json:"seat"`
	EventName   string     `json:"event_name,omitempty"`
	StartsAt    *time.Time `json:"starts_at,omitempty"`
	Venue       string     `json:"venue,omitempty"`
	HolderEmail string     `json:"holder_email"`
	ClaimedAt   time.Time  `json:"claimed_at"`
	CheckedIn   bool       `json:"checked_in"`
	CheckedInAt *time.Time `json:"checked_in_at,omitempty"`
	CheckedInBy string     `json:"checked_in_by,omitempty"`
}

func (t Ticket) view(ev *Event) ticketView {
	v := ticketView{Code: t.Code, Event: t.Event, Seat: t.Seat, HolderEmail: t.HolderEmail, ClaimedAt: t.ClaimedAt.Time(),
		CheckedIn: t.CheckedIn, CheckedInBy: t.CheckedInBy}
	if t.CheckedInAt != nil {
		at := t.CheckedInAt.Time()
		v.CheckedInAt = &at
	}
	if ev != nil {
		at := ev.StartsAt.Time()
		v.EventName, v.StartsAt, v.Venue = ev.Name, &at, ev.Venue
	}
	return v
}

// holder is the key of the caller's tickets, or a refusal: tickets belong
// to the experiment's accounts (sign-up or demo), keyed by kind and ID as
// docs/actors.md advises, never by email.
func holder(req *actorsdk.Request) (string, *actorsdk.Response) {
	c := req.Caller
	switch {
	case c.Anonymous || c.ID == "" || c.Kind == actorsdk.KindAnonymous || c.Kind == actorsdk.KindParticipant:
		return "", actorsdk.Error(401, actorsdk.CodeUnauthenticated, "sign in or sign up to hold tickets")
	case c.Kind != actorsdk.KindExperimentUser && c.Kind != actorsdk.KindDemo:
		return "", actorsdk.Error(403, actorsdk.CodeForbidden, "tickets are held by accounts of Event Zero: sign in on its page")
	}
	return c.Kind + ":" + c.ID, nil
}

// staff refuses every caller but the experiment's staff accounts.
func staff(req *actorsdk.Request) *actorsdk.Response {
	if _, refused := holder(req); refused != nil {
		return refused
	}
	if !req.Caller.HasRole(staffRole) {
		return actorsdk.Error(403, actorsdk.CodeForbidden, "only staff may do this")
	}
	return nil
}

func findEvent(id string) (*Event, error) {
	doc, err := actorsdk.DB(events).FindOne(actorsdk.M{"_id": id})
	if err != nil {
		return nil, err
	}
	var ev Event
	if err := doc.Decode(&ev); err != nil {
		return nil, fmt.Errorf("decode event %q: %w", id, err)
	}
	return &ev, nil
}

func allEvents() ([]Event, error) {
	docs, err := actorsdk.DB(events).Find(nil, actorsdk.Sort(actorsdk.D{{Key: "starts_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var list []Event
	if err := docs.Decode(&list); err != nil {
		return nil, fmt.Errorf("decode events: %w", err)
	}
	return list, nil
}

func noEvent(id string) *actorsdk.Response {
	return actorsdk.Error(404, actorsdk.CodeNotFound, fmt.Sprintf("no event %q", id))
}

func listEvents(*actorsdk.Request) *actorsdk.Response {
	list, err := allEvents()
	if err != nil {
		return actorsdk.Fail(err)
	}
	claimed, err := countByEvent(tickets, nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	out := make([]eventView, 0, len(list))
	for _, e := range list {
		out = append(out, e.view(claimed[e.ID]))
	}
	return actorsdk.JSON(200, actorsdk.M{"events": out})
}

func createEvent(req *actorsdk.Request) *actorsdk.Response {
	if refused := staff(req); refused != nil {
		return refused
	}
	var in eventInput
	if err := req.DecodeJSON(&in); err != nil {
		return actorsdk.Error(400, actorsdk.CodeInvalidJSON, `send {"id", "name", "venue", "starts_at", "capacity"}: `+err.Error())
	}
	ev, msg := in.validate()
	if msg != "" {
		return actorsdk.Error(422, actorsdk.CodeValidationFailed, msg)
	}
	ev.CreatedBy, ev.CreatedAt = req.Caller.Email, actorsdk.Now()
	if _, err := actorsdk.DB(events).InsertOne(ev); err != nil {
		if actorsdk.IsCode(err, actorsdk.CodeConflict) {
			return actorsdk.Error(409, actorsdk.CodeConflict, fmt.Sprintf("an event %q exists already", ev.ID))
		}
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(201, actorsdk.M{"event": ev.view(0)})
}

// claim gives the caller their ticket to the event: the one they hold
// (200), or a new one while places are left (201).
func claim(req *actorsdk.Request) *actorsdk.Response {
	who, refused := holder(req)
	if refused != nil {
		return refused
	}
	id := req.PathValue("id")
	if !eventID.MatchString(id) {
		return noEvent(id)
	}
	if t, err := heldTicket(id, who); err == nil {
		return ticketAnswer(200, *t)
	} else if !errors.Is(err, actorsdk.ErrNoDocuments) {
		return actorsdk.Fail(err)
	}
	ev, err := findEvent(id)
	if errors.Is(err, actorsdk.ErrNoDocuments) {
		return noEvent(id)
	} else if err != nil {
		return actorsdk.Fail(err)
	}
	// The next place is the number of tickets plus one; when two claims
	// pick the same place, the index on (event, seat) lets one in and the
	// other counts again.
	for range 8 {
		taken, err := actorsdk.DB(tickets).Count(actorsdk.M{"event": id})
		if err != nil {
			return actorsdk.Fail(err)
		}
		if taken >= ev.Capacity {
			return actorsdk.Error(409, actorsdk.CodeConflict, fmt.Sprintf("%s is full: all %d places are taken", ev.Name, ev.Capacity))
		}
		t := Ticket{Code: newCode(), Event: id, Seat: taken + 1, Holder: who, HolderEmail: req.Caller.Email, ClaimedAt: actorsdk.Now()}
		_, err = actorsdk.DB(tickets).InsertOne(t)
		if err == nil {
			actorsdk.Log.Info("ticket claimed", "event", id, "seat", t.Seat)
			return ticketAnswer(201, t)
		}
		if !actorsdk.IsCode(err, actorsdk.CodeConflict) {
			return actorsdk.Fail(err)
		}
		// The same holder's claim got in first (the index on event and
		// holder), or another holder took the place (event and seat), or,
		// once in 2^80, the code was taken.
		if held, herr := heldTicket(id, who); herr == nil {
			return ticketAnswer(200, *held)
		}
	}
	return actorsdk.Error(503, actorsdk.CodeUnavailable, "too many claims at once for "+ev.Name+": try again")
}

func heldTicket(event, who string) (*Ticket, error) {
	doc, err := actorsdk.DB(tickets).FindOne(actorsdk.M{"event": event, "holder": who})
	if err != nil {
		return nil, err
	}
	var t Ticket
	if err := doc.Decode(&t); err != nil {
		return nil, fmt.Errorf("decode ticket: %w", err)
	}
	return &t, nil
}

func ticketAnswer(status int, t Ticket) *actorsdk.Response {
	ev, err := findEvent(t.Event)
	if err != nil {
		ev = nil
	}
	return actorsdk.JSON(status, actorsdk.M{"ticket": t.view(ev)})
}

func myTickets(req *actorsdk.Request) *actorsdk.Response {
	who, refused := holder(req)
	if refused != nil {
		return refused
	}
	docs, err := actorsdk.DB(tickets).Find(actorsdk.M{"holder": who}, actorsdk.Sort(actorsdk.D{{Key: "claimed_at", Value: 1}}))
	if err != nil {
		return actorsdk.Fail(err)
	}
	var held []Ticket
	if err := docs.Decode(&held); err != nil {
		return actorsdk.Fail(err)
	}
	list, err := allEvents()
	if err != nil {
		return actorsdk.Fail(err)
	}
	byID := map[string]*Event{}
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	out := make([]ticketView, 0, len(held))
	for _, t := range held {
		out = append(out, t.view(byID[t.Event]))
	}
	return actorsdk.JSON(200, actorsdk.M{"tickets": out})
}

// Checkin is a ticket's check-in; its _id is the ticket's code, so that
// the store admits one per code.
type Checkin struct {
	Code  string            `json:"_id"`
	Event string            `json:"event"`
	At    actorsdk.DateTime `json:"at"`
	By    string            `json:"by"`
}

// checkIn checks a ticket in, once: two doors scanning one code at once
// both try to store its check-in, and the store keeps one.
func checkIn(req *actorsdk.Request) *actorsdk.Response {
	if refused := staff(req); refused != nil {
		return refused
	}
	var in struct {
		Code string `json:"code"`
	}
	if err := req.DecodeJSON(&in); err != nil {
		return actorsdk.Error(400, actorsdk.CodeInvalidJSON, `send {"code": "<the ticket's code>"}`)
	}
	code, ok := normalCode(in.Code)
	if !ok {
		return actorsdk.Error(422, actorsdk.CodeValidationFailed,
			"a ticket code is 16 letters and digits in groups of four, such as 7KQ2-M9XD-4HRT-B1CW")
	}
	doc, err := actorsdk.DB(tickets).FindOne(actorsdk.M{"_id": code})
	if errors.Is(err, actorsdk.ErrNoDocuments) {
		return actorsdk.Error(404, actorsdk.CodeNotFound, "no ticket has the code "+code)
	} else if err != nil {
		return actorsdk.Fail(err)
	}
	var t Ticket
	if err := doc.Decode(&t); err != nil {
		return actorsdk.Fail(err)
	}
	c := Checkin{Code: code, Event: t.Event, At: actorsdk.Now(), By: req.Caller.Email}
	_, err = actorsdk.DB(checkins).InsertOne(c)
	first := err == nil
	if !first {
		if !actorsdk.IsCode(err, actorsdk.CodeConflict) {
			return actorsdk.Fail(err)
		}
		doc, err := actorsdk.DB(checkins).FindOne(actorsdk.M{"_id": code})
		if err != nil {
			return actorsdk.Fail(err)
		}
		if err := doc.Decode(&c); err != nil {
			return actorsdk.Fail(err)
		}
	}
	// The ticket repeats its check-in for the holder's page; setting it
	// again on a second scan repairs a ticket whose first update was lost.
	if _, err := actorsdk.DB(tickets).UpdateOne(actorsdk.M{"_id": code},
		actorsdk.M{"$set": actorsdk.M{"checked_in": true, "checked_in_at": c.At, "checked_in_by": c.By}}); err != nil {
		return actorsdk.Fail(err)
	}
	if !first {
		return actorsdk.Error(409, actorsdk.CodeConflict, fmt.Sprintf("ticket %s was already checked in at %s by %s",
			code, c.At.Time().UTC().Format(time.RFC3339Nano), c.By))
	}
	actorsdk.Log.Info("ticket checked in", "event", t.Event)
	at := c.At
	t.CheckedIn, t.CheckedInAt, t.CheckedInBy = true, &at, c.By
	return ticketAnswer(200, t)
}

// attendance counts the tickets claimed and checked in, per event.
func attendance(req *actorsdk.Request) *actorsdk.Response {
	if refused := staff(req); refused != nil {
		return refused
	}
	list, err := allEvents()
	if err != nil {
		return actorsdk.Fail(err)
	}
	claimed, err := countByEvent(tickets, nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	in, err := countByEvent(checkins, nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	type row struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Capacity  int64  `json:"capacity"`
		Claimed   int64  `json:"claimed"`
		CheckedIn int64  `json:"checked_in"`
	}
	rows := make([]row, 0, len(list))
	var totalClaimed, totalIn int64
	for _, e := range list {
		rows = append(rows, row{ID: e.ID, Name: e.Name, Capacity: e.Capacity, Claimed: claimed[e.ID], CheckedIn: in[e.ID]})
		totalClaimed += claimed[e.ID]
		totalIn += in[e.ID]
	}
	return actorsdk.JSON(200, actorsdk.M{"events": rows, "claimed": totalClaimed, "checked_in": totalIn})
}

// countByEvent counts the documents of collection that match filter (nil:
// all), per event.
func countByEvent(collection string, filter actorsdk.M) (map[string]int64, error) {
	pipeline := actorsdk.A{}
	if filter != nil {
		pipeline = append(pipeline, actorsdk.M{"$match": filter})
	}
	pipeline = append(pipeline, actorsdk.M{"$group": actorsdk.M{"_id": "$event", "n": actorsdk.M{"$sum": 1}}})
	docs, err := actorsdk.DB(collection).Aggregate(pipeline)
	if err != nil {
		return nil, err
	}
	var groups []struct {
		Event string `json:"_id"`
		N     int64  `json:"n"`
	}
	if err := docs.Decode(&groups); err != nil {
		return nil, fmt.Errorf("decode counts: %w", err)
	}
	out := map[string]int64{}
	for _, g := range groups {
		out[g.Event] = g.N
	}
	return out, nil
}

// codeAlphabet is Crockford's base 32: no I, L, O or U, so a code read
// out at the door is not mistaken for another.
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newCode is a ticket code: 80 bits from the sandbox's secure random
// source (WASI random_get), shown as four groups of four.
func newCode() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	var s strings.Builder
	var acc uint64
	bits := 0
	n := 0
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			if n > 0 && n%4 == 0 {
				s.WriteByte('-')
			}
			s.WriteByte(codeAlphabet[(acc>>bits)&31])
			n++
		}
	}
	return s.String()
}

// normalCode is a code as typed at the door in its stored form: case,
// spaces and hyphens do not matter, and O, I and L read as 0, 1 and 1.
func normalCode(raw string) (string, bool) {
	if len(raw) > 64 {
		return "", false
	}
	var s []byte
	for _, r := range strings.ToUpper(raw) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(codeAlphabet, r) {
			return "", false
		}
		s = append(s, byte(r))
	}
	if len(s) != 16 {
		return "", false
	}
	return string(slices.Concat(s[0:4], []byte{'-'}, s[4:8], []byte{'-'}, s[8:12], []byte{'-'}, s[12:16])), true
}

func main() {}
