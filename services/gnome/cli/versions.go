package cli

import (
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// versionInfo is one kept version, as GET /api/experiments/{slug}/versions
// lists it.
type versionInfo struct {
	Version     int       `json:"version"`
	Checksum    string    `json:"checksum"`
	Size        int64     `json:"size"`
	Files       int       `json:"files"`
	UploadedAt  time.Time `json:"uploaded_at"`
	UploadedBy  string    `json:"uploaded_by"`
	Current     bool      `json:"current"`
	Available   bool      `json:"available"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
}

type versionList struct {
	Slug     string        `json:"slug"`
	Current  int           `json:"current"`
	Keep     int           `json:"keep"`
	Versions []versionInfo `json:"versions"`
}

func versionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions <slug>",
		Short: "List an experiment's kept versions (owners and admins)",
		Long: "List the versions of an experiment the platform keeps, newest first: when and by whom each was\n" +
			"uploaded, its size and checksum, which one is current (*), and whether its bundle is still\n" +
			"stored (only an available version can be made current with gnome rollback).",
		Example: "  gnome versions clicks-js\n" +
			"  gnome versions clicks-js --json | jq -r '.versions[] | select(.available) | .version'",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			var out versionList
			if err := c.call(cmd.Context(), http.MethodGet, "/api/experiments/"+seg(a[0])+"/versions", nil, &out); err != nil {
				return err
			}
			if out.Versions == nil {
				out.Versions = []versionInfo{}
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tUPLOADED\tBY\tSIZE\tCHECKSUM\tAVAILABLE")
			for _, v := range out.Versions {
				mark := " "
				if v.Current {
					mark = "*"
				}
				avail := "yes"
				if !v.Available {
					avail = "no"
				}
				fmt.Fprintf(tw, "%s %d\t%s\t%s\t%s\t%s\t%s\n", mark, v.Version, v.UploadedAt.Local().Format("2006-01-02 15:04:05"),
					orDash(oneLine(v.UploadedBy, 60)), humanBytes(v.Size), short(v.Checksum), avail)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "* current: version %d; the platform keeps the last %d\n", out.Current, out.Keep)
			return nil
		},
	}
	addJSONFlag(cmd)
	return cmd
}

// short is the start of a checksum, enough to tell versions apart.
func short(sum string) string {
	sum = oneLine(sum, 64)
	if len(sum) > 12 {
		return sum[:12]
	}
	return orDash(sum)
}

// rollbackResult is the answer of POST /api/experiments/{slug}/rollback.
type rollbackResult struct {
	Experiment experiment    `json:"experiment"`
	From       int           `json:"from"`
	Changed    bool          `json:"changed"`
	Warnings   []pushWarning `json:"warnings"`
}

func rollbackCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback <slug> <version>",
		Short: "Make a kept version of an experiment current again (owners and admins)",
		Long: "Make one of the versions gnome versions lists current again: its files are served, its actor\n" +
			"restarts with its code and its managed indexes are built. Nothing is deleted: a later rollback\n" +
			"can return to the version that was current. Rolling back to the current version changes nothing.",
		Example: "  gnome rollback clicks-js 2\n" +
			"  gnome rollback clicks-js 2 --json | jq .changed",
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			version, err := strconv.Atoi(a[1])
			if err != nil || version < 1 {
				return usagef("version %q: want a version number, as gnome versions %s lists them", oneLine(a[1], 40), oneLine(a[0], 64))
			}
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			var res rollbackResult
			if err := c.call(cmd.Context(), http.MethodPost, "/api/experiments/"+seg(a[0])+"/rollback", map[string]int{"version": version}, &res); err != nil {
				return err
			}
			res.Experiment.fill()
			if res.Warnings == nil {
				res.Warnings = []pushWarning{}
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			e := res.Experiment
			if res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "Rolled back %s: version %d is current (was %d)\n  checksum %s\n", e.Slug, e.Version, res.From, e.Checksum)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: version %d is already current; nothing changed\n", e.Slug, e.Version)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.OutOrStdout(), "warning: %s\n", oneLine(w.Field+" "+w.Message, 500))
			}
			return nil
		},
	}
	addJSONFlag(cmd)
	return cmd
}
