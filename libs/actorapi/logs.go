package actorapi

import "time"

// An actor's log lines: what it writes with gnome.log, to stdout and
// stderr, and the JavaScript runtime's console, each published by the
// worker that runs it on LogSubject(slug) into the ACTOR_LOGS stream
// (schemas/messages/actor-log-line.json), where the edge reads them for
// GET /api/experiments/{slug}/logs and `gnome logs`.

// Log streams: where a line came from. StreamPlatform is the worker's own
// line about the actor's output (lines dropped over the budget).
const (
	LogStreamLog      = "log"
	LogStreamStdout   = "stdout"
	LogStreamStderr   = "stderr"
	LogStreamPlatform = "platform"
)

// LogSubject is where the lines of slug's actor are published.
func LogSubject(slug string) string { return "gnome.logs.actor." + slug }

// LogLine is one line of an actor's log.
type LogLine struct {
	Time time.Time `json:"time"`
	// Level is debug, info, warn or error.
	Level   string `json:"level"`
	Message string `json:"message"`
	Stream  string `json:"stream"`
	// Instance is the instance's index for an actor with several (0 for
	// the first or only one).
	Instance  int    `json:"instance"`
	Version   int    `json:"version"`
	RequestID string `json:"request_id,omitempty"`
	// Cut is set when the line was cut at the platform's longest line.
	Cut bool `json:"cut,omitempty"`
}
