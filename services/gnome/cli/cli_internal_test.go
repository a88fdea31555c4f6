package cli

import (
	"errors"
	"strings"
	"testing"
)

// Progress events are read as the edge sends them, and a hostile or broken
// stream neither loops nor passes for a ready export.
func TestReadEvents(t *testing.T) {
	var seen []string
	each := func(l exportLog) { seen = append(seen, l.Status) }
	stream := "retry: 3000\n\n: keepalive\n\n" +
		"event: export\ndata: {\"id\":\"ex-1\",\"status\":\"running\",\"progress\":0.5}\n\n" +
		"event: export\ndata: not json\n\n" +
		"event: other\ndata: {\"status\":\"ready\"}\n\n" +
		"event: export\ndata: {\"id\":\"ex-1\",\"status\":\"ready\",\"progress\":1,\"checksum\":\"ab\"}\n\n" +
		"event: export\ndata: {\"id\":\"ex-1\",\"status\":\"failed\"}\n\n"
	last, err := readEvents(strings.NewReader(stream), each)
	if err != nil || last == nil || last.Status != "ready" || strings.Join(seen, ",") != "running,ready" {
		t.Fatalf("last = %+v, err %v, seen %v; want ready after running, stopping there", last, err, seen)
	}

	// Cut short: the last state, for the caller to reconnect.
	last, err = readEvents(strings.NewReader("event: export\ndata: {\"status\":\"running\"}\n\nevent: export\ndata: {\"sta"), func(exportLog) {})
	if err != nil || last == nil || last.Status != "running" {
		t.Errorf("cut short: %+v %v", last, err)
	}

	_, err = readEvents(strings.NewReader("event: error\ndata: {\"error\":{\"code\":\"not_found\",\"message\":\"gone\"}}\n\n"), func(exportLog) {})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "not_found" || ExitCode(err) != ExitFailure {
		t.Errorf("error event: %v", err)
	}
}

// What a server sends is printed without terminal escapes or line breaks.
func TestRefusalsAreShownNotObeyed(t *testing.T) {
	e := &APIError{Status: 422, Code: "manifest_invalid", Message: "bad\x1b[2J\x1b]0;pwned\x07\nname", Field: "/slug\r"}
	d := e.Describe()
	if strings.ContainsAny(d, "\x1b\x07\r") || !strings.Contains(d, "field: /slug") || strings.Count(d, "\n") != 1 {
		t.Errorf("Describe = %q", d)
	}
	if got := oneLine(strings.Repeat("é", 50), 10); len([]rune(got)) != 10 {
		t.Errorf("oneLine did not cut: %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{usagef("bad"), 2},
		{errNotSignedIn, 3},
		{&APIError{Status: 401}, 3},
		{&APIError{Status: 403}, 3},
		{&APIError{Status: 404}, 1},
		{&APIError{Status: 422}, 1},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if plainHTTP("http://127.0.0.1:8080") || plainHTTP("http://clicks.localhost") || !plainHTTP("http://gnome.example.org") || plainHTTP("https://gnome.example.org") {
		t.Error("plainHTTP misjudges an address")
	}
}
