package cli

import (
	"strings"
	"testing"
)

// The server names the file gnome data saves without -o; a hostile server
// must not choose where it goes nor hide it.
func TestSafeFileName(t *testing.T) {
	for name, want := range map[string]string{
		"clicks-js-clicks-20261207T093000Z.csv": "clicks-js-clicks-20261207T093000Z.csv",
		"../../.bashrc":                         "gnome-data-ex-1",
		"/etc/passwd":                           "gnome-data-ex-1",
		".profile":                              "gnome-data-ex-1",
		"..":                                    "gnome-data-ex-1",
		"a\\b.csv":                              "gnome-data-ex-1",
		"x\x1b[2J.csv":                          "gnome-data-ex-1",
		"":                                      "gnome-data-ex-1",
		strings.Repeat("a", 300):                "gnome-data-ex-1",
	} {
		if got := safeFileName(name, "ex-1"); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", name, got, want)
		}
	}
	if got := safeFileName("../x", "../../ex\x1b"); got != "gnome-data-ex" {
		t.Errorf("a hostile export ID gives %q", got)
	}
}

func TestDataTime(t *testing.T) {
	for in, want := range map[string]string{
		"2026-12-07":                "2026-12-07T00:00:00Z",
		"2026-12-07T09:30:00+01:00": "2026-12-07T09:30:00+01:00",
		"yesterday":                 "",
		"2026-13-01":                "",
	} {
		got, err := dataTime(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("dataTime(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
