package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// exportTypes are the packages an export makes.
var exportTypes = []string{"standalone", "upload-ready", "docker"}

// exportLog is an export as the client prints it (the stable fields of
// the export log, schemas/messages/export-log.json).
type exportLog struct {
	ID          string  `json:"id"`
	Slug        string  `json:"slug"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	Progress    float64 `json:"progress"`
	Step        string  `json:"step"`
	Error       string  `json:"error,omitempty"`
	Version     int     `json:"version"`
	Size        int64   `json:"size"`
	Checksum    string  `json:"checksum"`
	FileName    string  `json:"file_name"`
	Reused      bool    `json:"reused"`
	DownloadURL string  `json:"download_url,omitempty"`
	// File and Verified are set when the package was downloaded.
	File     string `json:"file,omitempty"`
	Verified bool   `json:"checksum_verified,omitempty"`
}

func finalStatus(s string) bool { return s == "ready" || s == "failed" || s == "invalidated" }

func exportCmd() *cobra.Command {
	var typ, out string
	var wait bool
	cmd := &cobra.Command{
		Use:   "export <slug> --type standalone|upload-ready|docker [--wait] [-o file.zip]",
		Short: "Ask for an export package, follow its progress and download it with its checksum verified",
		Long: "Ask for an export package of an experiment. Without --wait the export is queued and its ID printed.\n" +
			"With --wait the progress is followed until it is ready (or failed); with -o the package is then\n" +
			"downloaded to that file and its SHA-256 checked against the server's checksum (a mismatch deletes\n" +
			"the file and fails). A ready package of the same version and type is reused.",
		Example: "  gnome export clicks-js --type standalone --wait -o clicks.zip\n" +
			"  gnome export clicks-js --type upload-ready --json",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if typ == "" {
				return usagef("--type is required: %s", strings.Join(exportTypes, ", "))
			}
			known := false
			for _, t := range exportTypes {
				known = known || t == typ
			}
			if !known {
				return usagef("--type %q: want one of %s", typ, strings.Join(exportTypes, ", "))
			}
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var l exportLog
			if err := c.call(ctx, http.MethodPost, "/api/experiments/"+seg(a[0])+"/exports", map[string]string{"type": typ}, &l); err != nil {
				return err
			}
			human := !wantsJSON(cmd)
			if human {
				how := "queued"
				if l.Reused {
					how = "reused, ready"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Export %s of %s v%d (%s): %s\n", l.ID, l.Slug, l.Version, l.Type, how)
			}
			if wait || out != "" {
				if l, err = follow(ctx, c, l, cmd.ErrOrStderr()); err != nil {
					return err
				}
				if l.Status != "ready" {
					why := l.Error
					if why == "" {
						why = l.Status
					}
					return fmt.Errorf("export %s %s: %s", l.ID, l.Status, why)
				}
			}
			if out != "" {
				if err := download(ctx, c, l, out, cmd.ErrOrStderr()); err != nil {
					return err
				}
				l.File, l.Verified = out, true
			}
			if !human {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			switch {
			case l.File != "":
				fmt.Fprintf(cmd.OutOrStdout(), "Saved %s (%s), sha256 %s verified\n", l.File, humanBytes(l.Size), l.Checksum)
			case l.Status == "ready":
				fmt.Fprintf(cmd.OutOrStdout(), "Ready: %s (%s), sha256 %s\n  download: %s%s\n", l.FileName, humanBytes(l.Size), l.Checksum, c.base, l.DownloadURL)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s; follow it with: gnome export %s --type %s --wait\n", l.ID, l.Status, l.Slug, l.Type)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "the package: standalone, upload-ready or docker")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the progress until the package is ready or failed")
	cmd.Flags().StringVarP(&out, "output", "o", "", "download the package to this file (implies --wait)")
	addJSONFlag(cmd)
	return cmd
}

// follow reads the export's progress events until a final status,
// reconnecting when the stream ends first (the server closes long ones).
func follow(ctx context.Context, c *client, l exportLog, progress io.Writer) (exportLog, error) {
	bar := newPercentBar(progress)
	defer func() {
		switch {
		case bar.IsFinished():
		case l.Status == "ready":
			_ = bar.Finish()
		default:
			_ = bar.Exit() // keeps the bar where the build stopped
		}
	}()
	_ = bar.Set(min(int(l.Progress*100), 99))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	for attempt := 0; !finalStatus(l.Status); attempt++ {
		if attempt > 0 {
			// A stream that ended early is opened again after a pause,
			// as an EventSource would (the server asks for 3 s).
			select {
			case <-ctx.Done():
				return l, fmt.Errorf("follow export %s: %w", l.ID, ctx.Err())
			case <-time.After(min(time.Duration(attempt)*time.Second, 3*time.Second)):
			}
		}
		req, err := c.request(ctx, http.MethodGet, "/api/exports/"+seg(l.ID)+"/events", nil, "")
		if err != nil {
			return l, err
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := c.send(req)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) || attempt > 20 {
				return l, err
			}
			continue
		}
		got, err := readEvents(resp.Body, func(e exportLog) {
			if bar.IsFinished() {
				return
			}
			// A full bar ends it (and prints its newline): only a ready
			// export fills it.
			pct := min(int(e.Progress*100), 99)
			if e.Status == "ready" {
				pct = 100
			}
			bar.Describe(e.Step)
			_ = bar.Set(pct)
		})
		resp.Body.Close()
		if err != nil {
			return l, err
		}
		if got != nil {
			l = *got
		}
	}
	return l, nil
}

// readEvents reads server-sent events of an export, calling each for
// every export event; it returns the last one, or the server's error event
// as an *APIError.
func readEvents(r io.Reader, each func(exportLog)) (*exportLog, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last *exportLog
	event := ""
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				switch event {
				case "error":
					var body struct {
						Error struct {
							Code, Message, Field string
							RequestID            string `json:"request_id"`
						} `json:"error"`
					}
					_ = json.Unmarshal([]byte(data.String()), &body)
					return last, &APIError{Status: http.StatusNotFound, Code: body.Error.Code, Message: body.Error.Message, Field: body.Error.Field, RequestID: body.Error.RequestID}
				case "", "export":
					var l exportLog
					if err := json.Unmarshal([]byte(data.String()), &l); err == nil {
						last = &l
						each(l)
						if finalStatus(l.Status) {
							return last, nil
						}
					}
				}
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	// A stream cut short is read again by the caller.
	return last, nil
}

// download writes the ready export's package to out, hashing it as it
// comes; the file appears only when its SHA-256 matches the checksum.
func download(ctx context.Context, c *client, l exportLog, out string, progress io.Writer) error {
	if l.Checksum == "" {
		return fmt.Errorf("export %s has no checksum to verify", l.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	req, err := c.request(ctx, http.MethodGet, "/api/exports/"+seg(l.ID)+"/download", nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/zip")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if h := resp.Header.Get("X-Checksum-SHA256"); h != "" && !strings.EqualFold(h, l.Checksum) {
		return fmt.Errorf("download %s: the server announces checksum %s, the export says %s", l.ID, h, l.Checksum)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".gnome-download-*")
	if err != nil {
		return fmt.Errorf("download to %s: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	size := resp.ContentLength
	if size < 0 {
		size = l.Size
	}
	bar := newBar(size, "downloading", progress)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h, bar), resp.Body)
	_ = bar.Finish()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download to %s: %w", out, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(l.Checksum) {
		return fmt.Errorf("download of %s is corrupt: %d bytes with sha256 %s, want %s; nothing was saved", l.ID, n, got, l.Checksum)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("download to %s: %w", out, err)
	}
	return nil
}

// decodeJSON reads one JSON value from r into v.
func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
