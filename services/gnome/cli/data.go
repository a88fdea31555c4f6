package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

type dataCollection struct {
	Name      string `json:"name"`
	Documents int64  `json:"documents"`
}

type dataList struct {
	Slug        string           `json:"slug"`
	Collections []dataCollection `json:"collections"`
}

func dataCmd() *cobra.Command {
	var csv, jsonl bool
	var from, to, out string
	cmd := &cobra.Command{
		Use:   "data <slug> [<collection> [--csv|--jsonl] [--from T] [--to T] [-o file|-]]",
		Short: "List an experiment's collections, or download one as CSV or JSON Lines (owners and admins)",
		Long: "Without a collection, list the experiment's collections with their documents. With one, ask the\n" +
			"platform for it as CSV (the default: nested fields as dotted columns) or JSON Lines, follow the\n" +
			"export's progress, and download it with its SHA-256 checked against the export's checksum.\n" +
			"--from and --to keep the documents created in [from, to): RFC 3339 times, or dates (midnight UTC).\n" +
			"Without -o the file is saved under the server's name in the current folder; -o - writes it to\n" +
			"stdout (a checksum mismatch is then reported after the data, with exit code 1).",
		Example: "  gnome data clicks-js\n" +
			"  gnome data clicks-js clicks --csv -o clicks.csv\n" +
			"  gnome data clicks-js clicks --jsonl --from 2026-12-01 --to 2026-12-08T12:00:00+01:00 -o - | jq .button",
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				if csv || jsonl || from != "" || to != "" || out != "" {
					return usagef("--csv, --jsonl, --from, --to and -o need a collection: gnome data %s <collection>", oneLine(a[0], 64))
				}
				return listData(cmd, a[0])
			}
			if csv && jsonl {
				return usagef("--csv and --jsonl exclude each other")
			}
			req := map[string]string{"collection": a[1], "format": "csv"}
			if jsonl {
				req["format"] = "jsonl"
			}
			for name, v := range map[string]string{"from": from, "to": to} {
				if v == "" {
					continue
				}
				t, err := dataTime(v)
				if err != nil {
					return usagef("--%s %q: %v", name, v, err)
				}
				req[name] = t
			}
			return downloadData(cmd, a[0], req, out)
		},
	}
	cmd.Flags().BoolVar(&csv, "csv", false, "CSV, one row per document (the default)")
	cmd.Flags().BoolVar(&jsonl, "jsonl", false, "JSON Lines, one document per line, in relaxed Extended JSON")
	cmd.Flags().StringVar(&from, "from", "", "only documents created at or after this time (RFC 3339, or a date)")
	cmd.Flags().StringVar(&to, "to", "", "only documents created before this time (RFC 3339, or a date)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "save to this file (- for stdout); without it, the server's file name here")
	addJSONFlag(cmd)
	return cmd
}

// dataTime is a --from or --to as the API takes it: RFC 3339 as given, a
// date as its midnight in UTC.
func dataTime(v string) (string, error) {
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return v, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		return d.UTC().Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("want an RFC 3339 time (2026-12-07T09:30:00Z) or a date (2026-12-07)")
}

func listData(cmd *cobra.Command, slug string) error {
	c, _, err := signedIn()
	if err != nil {
		return err
	}
	var l dataList
	if err := c.call(cmd.Context(), http.MethodGet, "/api/experiments/"+seg(slug)+"/data", nil, &l); err != nil {
		return err
	}
	if l.Collections == nil {
		l.Collections = []dataCollection{}
	}
	if wantsJSON(cmd) {
		return writeJSON(cmd.OutOrStdout(), l)
	}
	if len(l.Collections) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "%s has no data yet.\n", oneLine(slug, 64))
		return nil
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLLECTION\tDOCUMENTS")
	for _, col := range l.Collections {
		fmt.Fprintf(tw, "%s\t%d\n", oneLine(col.Name, 64), col.Documents)
	}
	return tw.Flush()
}

func downloadData(cmd *cobra.Command, slug string, req map[string]string, out string) error {
	c, _, err := signedIn()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var l exportLog
	if err := c.call(ctx, http.MethodPost, "/api/experiments/"+seg(slug)+"/data", req, &l); err != nil {
		return err
	}
	human := !wantsJSON(cmd)
	if human {
		how := "queued"
		if l.Reused {
			how = "reused, ready"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Data export %s of %s, collection %s (%s): %s\n", l.ID, l.Slug, oneLine(req["collection"], 64), req["format"], how)
	}
	if l, err = follow(ctx, c, l, cmd.ErrOrStderr()); err != nil {
		return err
	}
	if l.Status != "ready" {
		return fmt.Errorf("data export %s %s: %s", l.ID, l.Status, oneLine(orDash(l.Error), 500))
	}
	if out == "-" {
		if err := downloadStream(ctx, c, l, cmd.OutOrStdout()); err != nil {
			return err
		}
		// stdout holds the data: nothing else goes there, --json or not.
		return nil
	}
	if out == "" {
		out = safeFileName(l.FileName, l.ID)
	}
	if err := download(ctx, c, l, out, cmd.ErrOrStderr()); err != nil {
		return err
	}
	l.File, l.Verified = out, true
	if !human {
		return writeJSON(cmd.OutOrStdout(), l)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Saved %s (%s), sha256 %s verified\n", l.File, humanBytes(l.Size), l.Checksum)
	return nil
}

// safeFileName is the server's name for the file, used only when it is a
// plain name: a server must not choose where on this machine a file goes.
func safeFileName(name, id string) string {
	ok := name != "" && name != "." && name != ".." && len(name) <= 200 && !strings.HasPrefix(name, ".")
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r)) {
			ok = false
		}
	}
	if ok {
		return name
	}
	return "gnome-data-" + safeID(id)
}

func safeID(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, oneLine(id, 64))
}

// downloadStream writes the ready export to w as it comes, hashing it; a
// checksum mismatch cannot take back what was written, so it is an error
// after the fact (exit code 1).
func downloadStream(ctx context.Context, c *client, l exportLog, w io.Writer) error {
	if l.Checksum == "" {
		return fmt.Errorf("export %s has no checksum to verify", l.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	req, err := c.request(ctx, http.MethodGet, "/api/exports/"+seg(l.ID)+"/download", nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return fmt.Errorf("download %s: %w", l.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(l.Checksum) {
		return fmt.Errorf("download of %s is corrupt: %d bytes with sha256 %s, want %s", l.ID, n, got, l.Checksum)
	}
	return nil
}
