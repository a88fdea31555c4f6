// Package cli is the command-line client of the platform: the verbs of
// gnome that talk to a running server over its HTTP API (login, ls,
// status, push, export, versions, rollback, data, new, tokens, users), with
// output for people and, with --json, for scripts, and exit codes scripts
// can trust.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, documented in gnome --help (ExitCodesHelp) and docs/cli.md.
const (
	ExitOK = 0
	// ExitFailure: the request failed or was refused (not found, invalid
	// bundle, a failed export, the server unreachable...).
	ExitFailure = 1
	// ExitUsage: the command line is wrong (unknown verb or flag, missing
	// argument); nothing was sent.
	ExitUsage = 2
	// ExitAuth: not signed in, the sign-in was refused, the token is no
	// longer valid, or the account may not do this.
	ExitAuth = 3
)

// ExitCodesHelp is the exit codes' paragraph of gnome --help.
const ExitCodesHelp = `Exit codes:
  0  done
  1  the request failed or was refused (not found, invalid bundle, failed export, server unreachable)
  2  usage error: unknown verb or flag, missing or extra argument; nothing was sent
  3  not signed in, wrong email or password, token expired or revoked, or not allowed (401/403)

Client settings: gnome login stores the server's URL and a personal API token in
` + "`<user config dir>/gnome/config.json`" + ` (mode 0600). GNOME_URL and GNOME_TOKEN override it (for CI).`

// usageError is a command line that cannot be run.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// Usagef is a usage error (exit 2) for the verbs outside this package
// (gnome admin, which works on the server's machine rather than over HTTP).
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// notSignedIn is the error of a verb run without credentials.
var errNotSignedIn = errors.New("not signed in: run `gnome login` (or set GNOME_URL and GNOME_TOKEN)")

// ExitCode is the exit code for err, the error of a command.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	if errors.Is(err, errNotSignedIn) {
		return ExitAuth
	}
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403) {
		return ExitAuth
	}
	return ExitFailure
}

// isCobraUsage recognises the command-line errors cobra makes itself,
// which are plain errors: an unknown verb, a verb's missing subcommand.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command ") || strings.HasPrefix(m, "unknown flag") ||
		strings.HasPrefix(m, "unknown shorthand flag") || strings.HasPrefix(m, "required flag")
}

// Commands are the client's verbs, for the gnome root command.
func Commands() []*cobra.Command {
	return []*cobra.Command{loginCmd(), logoutCmd(), lsCmd(), statusCmd(), logsCmd(), pushCmd(), exportCmd(), versionsCmd(), rollbackCmd(), dataCmd(), newCmd(), tokensCmd(), usersCmd()}
}

// Run executes root, prints a failure (as text, or as JSON on stdout when
// the verb was given --json) and returns the process's exit code. Flag and
// argument errors of every verb count as usage errors.
func Run(root *cobra.Command) int {
	setUsageErrors(root)
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	if cmd != nil && wantsJSON(cmd) {
		writeJSONError(cmd.OutOrStdout(), err, code)
		return code
	}
	out := io.Writer(os.Stderr)
	if cmd != nil {
		out = cmd.ErrOrStderr()
	}
	var ae *APIError
	if errors.As(err, &ae) {
		fmt.Fprintln(out, "gnome: "+ae.Describe())
	} else {
		fmt.Fprintln(out, "gnome:", err)
	}
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(out, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// setUsageErrors marks flag errors of cmd and its children as usage errors.
func setUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	for _, c := range cmd.Commands() {
		setUsageErrors(c)
	}
}

// args wraps a cobra argument check so that its refusal is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// groupRun is the RunE of a verb that only groups others: run without a
// subcommand (or with an unknown one) it is a usage error.
func groupRun(cmd *cobra.Command, a []string) error {
	if len(a) > 0 {
		return usagef("unknown command %q for %q", a[0], cmd.CommandPath())
	}
	return usagef("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(subNames(cmd), ", "))
}

func subNames(cmd *cobra.Command) []string {
	var out []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}

func addJSONFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("json", false, "print machine-readable JSON on stdout (errors too, as {\"error\": {...}})")
}

func wantsJSON(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Value.String() == "true"
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// jsonError is a failure as --json prints it: the API's error shape, plus
// the HTTP status (0 when no answer came) and the exit code.
type jsonError struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Field     string `json:"field,omitempty"`
		RequestID string `json:"request_id,omitempty"`
		Status    int    `json:"status"`
		ExitCode  int    `json:"exit_code"`
	} `json:"error"`
}

func writeJSONError(w io.Writer, err error, code int) {
	var out jsonError
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		out.Error.Code, out.Error.Message, out.Error.Field, out.Error.RequestID, out.Error.Status = ae.Code, ae.Message, ae.Field, ae.RequestID, ae.Status
	case code == ExitUsage:
		out.Error.Code, out.Error.Message = "usage", err.Error()
	case code == ExitAuth:
		out.Error.Code, out.Error.Message = "not_signed_in", err.Error()
	default:
		out.Error.Code, out.Error.Message = "failed", err.Error()
	}
	out.Error.ExitCode = code
	_ = writeJSON(w, out)
}
