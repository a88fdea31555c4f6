package bundle

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Schedule is one entry of actor.schedule: the actor receives a timer event
// named Name every Every (a Go duration: "30s", "5m", "1h30m") or at the
// times of Cron (five fields: minute hour day-of-month month day-of-week,
// or @hourly, @daily, @weekly, @monthly, @yearly; always UTC), with
// Payload. Exactly one of Every and Cron is given.
type Schedule struct {
	Name    string          `json:"name"`
	Every   string          `json:"every,omitempty"`
	Cron    string          `json:"cron,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Bounds of actor.schedule; the manifest schema repeats them.
const (
	// MaxSchedules bounds the entries of actor.schedule.
	MaxSchedules = 16
	// MinScheduleInterval is the shortest every: a schedule wakes the
	// actor on its worker, and one that fires more often than this is
	// better served by a loop in a call or a timer set by the actor.
	MinScheduleInterval = 10 * time.Second
	// MaxScheduleInterval is the longest every (a year); longer periods
	// are cron expressions.
	MaxScheduleInterval = 366 * 24 * time.Hour
	// MaxTimerPayload bounds a schedule's payload, and the payload of a
	// timer an actor sets, in bytes of JSON.
	MaxTimerPayload = 16 << 10
)

// ScheduleNameSyntax is what a schedule's name may be: it is part of the
// key the platform keeps the schedule's last firing under.
var ScheduleNameSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// cronParser reads the standard five fields and the named descriptors.
// Seconds are not offered: the shortest cron period is a minute.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Interval is s's every, or 0 for a cron schedule (or an invalid every,
// which validation refuses).
func (s Schedule) Interval() time.Duration {
	if s.Every == "" {
		return 0
	}
	d, err := time.ParseDuration(s.Every)
	if err != nil {
		return 0
	}
	return d
}

// Next is the first time s fires after t: t plus the interval, or the
// cron expression's next time after t, in UTC. The zero time means never
// (a cron expression naming no real date, which validation refuses).
func (s Schedule) Next(t time.Time) time.Time {
	if d := s.Interval(); d > 0 {
		return t.Add(d)
	}
	sch, err := parseCron(s.Cron)
	if err != nil {
		return time.Time{}
	}
	return sch.Next(t.UTC())
}

func parseCron(expr string) (cron.Schedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case strings.Contains(e, "TZ="):
		return nil, fmt.Errorf("time zones are not accepted: schedules run in UTC")
	case strings.HasPrefix(e, "@every"):
		return nil, fmt.Errorf(`write an interval as "every": %q, not as a cron expression`, strings.TrimSpace(strings.TrimPrefix(e, "@every")))
	}
	return cronParser.Parse(e)
}

// Problem says what is wrong with s, or "".
func (s Schedule) Problem() string {
	switch {
	case !ScheduleNameSyntax.MatchString(s.Name):
		return fmt.Sprintf("name %q must be 1 to 64 letters, digits, '_' or '-'", s.Name)
	case (s.Every == "") == (s.Cron == ""):
		return `give exactly one of "every" (an interval such as "30s") and "cron" (such as "*/5 * * * *")`
	case len(s.Payload) > MaxTimerPayload:
		return fmt.Sprintf("payload is %d bytes of JSON, more than %d", len(s.Payload), MaxTimerPayload)
	}
	if s.Every != "" {
		d, err := time.ParseDuration(s.Every)
		switch {
		case err != nil:
			return fmt.Sprintf(`every %q is not a duration: write it as "30s", "5m" or "1h30m"`, s.Every)
		case d < MinScheduleInterval:
			return fmt.Sprintf("every %q is shorter than the shortest interval, %v", s.Every, MinScheduleInterval)
		case d > MaxScheduleInterval:
			return fmt.Sprintf("every %q is longer than the longest interval, %v: use a cron expression", s.Every, MaxScheduleInterval)
		}
		return ""
	}
	sch, err := parseCron(s.Cron)
	if err != nil {
		return fmt.Sprintf("cron %q: %v (five fields: minute hour day-of-month month day-of-week, in UTC)", s.Cron, err)
	}
	if sch.Next(time.Now().UTC()).IsZero() {
		return fmt.Sprintf("cron %q names no date that exists", s.Cron)
	}
	return ""
}

// checkActorSchedule refuses, before the schema does, the entries of
// actor.schedule whose problem the schema could not explain: durations,
// cron expressions, names given twice, payloads over the bound.
func checkActorSchedule(doc any) error {
	obj, _ := doc.(map[string]any)
	actor, _ := obj["actor"].(map[string]any)
	list, _ := actor["schedule"].([]any)
	if len(list) > MaxSchedules {
		return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: /actor/schedule has %d entries, at most %d", len(list), MaxSchedules).OnField("/actor/schedule")
	}
	seen := map[string]int{}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue // the schema names the wrong type
		}
		field := fmt.Sprintf("/actor/schedule/%d", i)
		var s Schedule
		s.Name, _ = m["name"].(string)
		s.Every, _ = m["every"].(string)
		s.Cron, _ = m["cron"].(string)
		if p, ok := m["payload"]; ok {
			s.Payload, _ = json.Marshal(p)
		}
		if why := s.Problem(); why != "" {
			return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: %s", field, why).OnField(field)
		}
		if j, dup := seen[s.Name]; dup {
			return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: the name %q is already entry %d", field, s.Name, j).OnField(field + "/name")
		}
		seen[s.Name] = i
	}
	return nil
}
