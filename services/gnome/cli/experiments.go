package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// experiment is an experiment as the client prints it: the stable fields
// of GET /api/experiments/{slug}.
type experiment struct {
	Slug        string       `json:"slug"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Status      string       `json:"status"`
	Version     int          `json:"version"`
	Checksum    string       `json:"checksum"`
	OwnerEmail  string       `json:"owner_email,omitempty"`
	URL         string       `json:"url"`
	Actor       actorState   `json:"actor"`
	Indexes     []indexState `json:"indexes"`
	UpdatedAt   string       `json:"updated_at"`
}

type actorState struct {
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

type indexState struct {
	Collection string `json:"collection"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	State      string `json:"state"`
}

func (e *experiment) fill() {
	if e.Indexes == nil {
		e.Indexes = []indexState{}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are marshalled
	}
	return string(b)
}

func lsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the experiments you may see",
		Long: "List the experiments you may see: the active ones you may open and, for their owners and admins,\n" +
			"drafts and the rest, with status, current version and the actor's state.",
		Example: "  gnome ls\n  gnome ls --json | jq -r '.experiments[].slug'",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			if err := c.checkSignedIn(cmd.Context()); err != nil {
				return err
			}
			var out struct {
				Experiments []experiment `json:"experiments"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, "/api/experiments", nil, &out); err != nil {
				return err
			}
			if out.Experiments == nil {
				out.Experiments = []experiment{}
			}
			for i := range out.Experiments {
				out.Experiments[i].fill()
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			if len(out.Experiments) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No experiments yet: gnome push <folder|zip> uploads one.")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tNAME\tSTATUS\tVERSION\tACTOR")
			for _, e := range out.Experiments {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Slug, oneLine(e.Name, 40), e.Status, e.Version, orDash(e.Actor.State))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd)
	return cmd
}

func statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status <slug>",
		Short: "Show one experiment: status, version, checksum, actor state and last error, indexes",
		Example: "  gnome status clicks-js\n" +
			"  gnome status clicks-js --json | jq -r .actor.state",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			if err := c.checkSignedIn(cmd.Context()); err != nil {
				return err
			}
			var e experiment
			if err := c.call(cmd.Context(), http.MethodGet, "/api/experiments/"+seg(a[0]), nil, &e); err != nil {
				return err
			}
			e.fill()
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			printExperiment(cmd.OutOrStdout(), e)
			return nil
		},
	}
	addJSONFlag(cmd)
	return cmd
}

func printExperiment(w io.Writer, e experiment) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "slug:\t%s\n", e.Slug)
	fmt.Fprintf(tw, "name:\t%s\n", oneLine(e.Name, 200))
	fmt.Fprintf(tw, "status:\t%s\n", e.Status)
	fmt.Fprintf(tw, "version:\t%d\n", e.Version)
	fmt.Fprintf(tw, "checksum:\t%s\n", orDash(e.Checksum))
	if e.OwnerEmail != "" {
		fmt.Fprintf(tw, "owner:\t%s\n", e.OwnerEmail)
	}
	fmt.Fprintf(tw, "url:\t%s\n", e.URL)
	fmt.Fprintf(tw, "actor:\t%s\n", orDash(e.Actor.State))
	if e.Actor.LastError != "" {
		fmt.Fprintf(tw, "last error:\t%s\n", oneLine(e.Actor.LastError, 500))
	}
	_ = tw.Flush()
	if len(e.Indexes) == 0 {
		fmt.Fprintln(w, "indexes:   none")
		return
	}
	fmt.Fprintln(w, "indexes:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  COLLECTION\tNAME\tTYPE\tSTATE")
	for _, i := range e.Indexes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", i.Collection, i.Name, i.Type, i.State)
	}
	_ = tw.Flush()
}

// oneLine keeps what the server sends on one line of at most n runes: a
// name or an error message must not break the table (nor carry terminal
// escapes).
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
