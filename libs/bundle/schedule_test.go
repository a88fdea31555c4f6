package bundle

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
)

func manifestWithSchedule(schedule any) []byte {
	raw, _ := json.Marshal(map[string]any{
		"slug": "tick", "name": "Tick",
		"actor": map[string]any{"module": "actor.wasm", "schedule": schedule},
	})
	return raw
}

func TestScheduleAccepted(t *testing.T) {
	m, _, err := ParseManifest(manifestWithSchedule([]any{
		map[string]any{"name": "tick", "every": "30s", "payload": map[string]any{"n": 1}},
		map[string]any{"name": "nightly", "cron": "0 3 * * *"},
		map[string]any{"name": "hourly", "cron": "@hourly"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Actor.Schedule
	if len(s) != 3 || s[0].Interval() != 30*time.Second || string(s[0].Payload) != `{"n":1}` || s[1].Cron != "0 3 * * *" {
		t.Fatalf("schedule: %+v", s)
	}
	at := time.Date(2026, 1, 2, 10, 15, 0, 0, time.UTC)
	if got := s[1].Next(at); !got.Equal(time.Date(2026, 1, 3, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("nightly after %v: %v", at, got)
	}
	// Cron times are UTC whatever the zone of the time given.
	if got := s[2].Next(at.In(time.FixedZone("X", 5*3600+1800))); !got.Equal(time.Date(2026, 1, 2, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("hourly: %v", got)
	}
	if got := s[0].Next(at); !got.Equal(at.Add(30 * time.Second)) {
		t.Errorf("every: %v", got)
	}
}

func TestScheduleRefused(t *testing.T) {
	big := strings.Repeat("x", MaxTimerPayload)
	many := make([]any, MaxSchedules+1)
	for i := range many {
		many[i] = map[string]any{"name": "s" + string(rune('a'+i)), "every": "1m"}
	}
	for _, c := range []struct {
		name     string
		schedule any
		want     string
	}{
		{"too short", []any{map[string]any{"name": "a", "every": "1s"}}, "shorter than the shortest interval"},
		{"too long", []any{map[string]any{"name": "a", "every": "9000h"}}, "longer than the longest interval"},
		{"not a duration", []any{map[string]any{"name": "a", "every": "5 minutes"}}, "is not a duration"},
		{"negative", []any{map[string]any{"name": "a", "every": "-1h"}}, "shorter"},
		{"both", []any{map[string]any{"name": "a", "every": "1m", "cron": "* * * * *"}}, "exactly one"},
		{"neither", []any{map[string]any{"name": "a"}}, "exactly one"},
		{"bad cron", []any{map[string]any{"name": "a", "cron": "61 * * * *"}}, `cron "61 * * * *"`},
		{"six fields", []any{map[string]any{"name": "a", "cron": "0 0 * * * *"}}, "five fields"},
		{"time zone", []any{map[string]any{"name": "a", "cron": "CRON_TZ=Europe/Paris 0 3 * * *"}}, "UTC"},
		{"@every", []any{map[string]any{"name": "a", "cron": "@every 1s"}}, `"every"`},
		{"no such date", []any{map[string]any{"name": "a", "cron": "0 0 30 2 *"}}, "no date"},
		{"bad name", []any{map[string]any{"name": "a.b", "every": "1m"}}, "name"},
		{"duplicate", []any{map[string]any{"name": "a", "every": "1m"}, map[string]any{"name": "a", "cron": "@daily"}}, "already entry 0"},
		{"payload", []any{map[string]any{"name": "a", "every": "1m", "payload": big}}, "more than"},
		{"too many", many, "at most 16"},
		{"unknown field", []any{map[string]any{"name": "a", "every": "1m", "zone": "UTC"}}, "zone"},
		{"not a list", map[string]any{"name": "a"}, "schedule"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseManifest(manifestWithSchedule(c.schedule))
			if err == nil {
				t.Fatal("accepted")
			}
			ae := apierr.From(err)
			if ae.Code != apierr.CodeManifestInvalid || !strings.Contains(ae.Message, c.want) {
				t.Fatalf("got %s: %s; want manifest_invalid mentioning %q", ae.Code, ae.Message, c.want)
			}
		})
	}
}
