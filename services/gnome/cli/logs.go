package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

// logLine is one line of an actor's log, as GET
// /api/experiments/{slug}/logs gives it.
type logLine struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Stream    string    `json:"stream"`
	Instance  int       `json:"instance"`
	Version   int       `json:"version"`
	RequestID string    `json:"request_id,omitempty"`
	Cut       bool      `json:"cut,omitempty"`
}

type logList struct {
	Slug      string    `json:"slug"`
	Lines     []logLine `json:"lines"`
	Truncated bool      `json:"truncated"`
}

// logsRetry is the wait before following again after the stream ended.
const logsRetry = 2 * time.Second

func logsCmd() *cobra.Command {
	var (
		follow bool
		since  string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "logs <slug>",
		Short: "Print an experiment's actor log (owners and admins)",
		Long: "Print the lines an experiment's actor wrote (gnome.log, stdout, stderr, console), oldest first:\n" +
			"time, level, where from (log, stdout, stderr, or platform for the platform's own word that\n" +
			"lines were dropped over the actor's output budget), instance and version, the message and the\n" +
			"request being served. The platform keeps a day of lines. With -f, print new lines as they come\n" +
			"until Ctrl-C, reconnecting without repeating or missing a line if the stream ends.",
		Example: "  gnome logs clicks-js\n" +
			"  gnome logs clicks-js -f --since 10m\n" +
			"  gnome logs clicks-js --json --limit 1000 | jq -r '.lines[] | select(.level == \"error\") | .message'",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if limit < 1 || limit > 1000 {
				return usagef("--limit must be from 1 to 1000")
			}
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			q := url.Values{}
			q.Set("limit", fmt.Sprint(limit))
			if since != "" {
				q.Set("since", since)
			}
			path := "/api/experiments/" + seg(a[0]) + "/logs"
			if !follow {
				ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
				defer cancel()
				var out logList
				if err := c.call(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				if out.Lines == nil {
					out.Lines = []logLine{}
				}
				if wantsJSON(cmd) {
					return writeJSON(cmd.OutOrStdout(), out)
				}
				for _, l := range out.Lines {
					printLogLine(cmd.OutOrStdout(), l)
				}
				return nil
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return followLogs(ctx, cmd, c, path, q)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on printing new lines as they come, until Ctrl-C")
	cmd.Flags().StringVar(&since, "since", "", "from this time (RFC 3339) or this long ago (10m, 2h); default 1h, at most the 24h kept")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most the last this many lines (1 to 1000) before following")
	addJSONFlag(cmd)
	return cmd
}

// followLogs reads the log's event stream, and reads it again from the
// last line printed whenever it ends (the server restarting, a proxy's
// timeout), until ctx ends. A refusal (signed out, not allowed, no such
// experiment, a bad --since) ends it with that error.
func followLogs(ctx context.Context, cmd *cobra.Command, c *client, path string, q url.Values) error {
	q.Set("follow", "1")
	lastID := ""
	for {
		err := followOnce(ctx, cmd, c, path+"?"+q.Encode(), &lastID)
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			return err
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "gnome: the log stream ended (%v); reconnecting\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logsRetry):
		}
	}
}

func followOnce(ctx context.Context, cmd *cobra.Command, c *client, path string, lastID *string) error {
	req, err := c.request(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				var l logLine
				if json.Unmarshal([]byte(data), &l) == nil {
					if wantsJSON(cmd) {
						b, _ := json.Marshal(l)
						fmt.Fprintln(cmd.OutOrStdout(), string(b))
					} else {
						printLogLine(cmd.OutOrStdout(), l)
					}
				}
				if id != "" {
					*lastID = id
				}
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the log stream: %w", err)
	}
	return io.EOF
}

// printLogLine prints l on one line. The message is the actor's own text:
// control characters (terminal escapes among them) are blanked.
func printLogLine(w io.Writer, l logLine) {
	var b strings.Builder
	b.WriteString(l.Time.Local().Format("2006-01-02 15:04:05.000"))
	fmt.Fprintf(&b, " %-5s %-8s v%d", strings.ToUpper(l.Level), l.Stream, l.Version)
	if l.Instance > 0 {
		fmt.Fprintf(&b, "#%d", l.Instance)
	}
	b.WriteString("  ")
	b.WriteString(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, l.Message))
	if l.Cut {
		b.WriteString(" …(cut)")
	}
	if l.RequestID != "" {
		b.WriteString("  request=" + oneLine(l.RequestID, 80))
	}
	fmt.Fprintln(w, b.String())
}
