package cli

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// token is a personal API token as the client prints it (never its secret,
// except in the answer of its creation).
type token struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Roles      []string `json:"roles"`
	CreatedAt  string   `json:"created_at"`
	ExpiresAt  *string  `json:"expires_at"`
	LastUsedAt *string  `json:"last_used_at"`
	// Token is the secret, in create's answer only.
	Token string `json:"token,omitempty"`
}

func tokensCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "List, create and revoke your personal API tokens",
		Long: "Personal API tokens act as you (with your roles, or fewer) from scripts and CI:\n" +
			"send one as Authorization: Bearer, or set GNOME_TOKEN for this client.",
		Example: "  gnome tokens ls\n  gnome tokens create ci --role developer --expires-in-days 90\n  gnome tokens revoke 6650f1c2a9e4b3d2c1f0e9a8",
		RunE:    groupRun,
	}
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List your tokens with their last use",
		Example: "  gnome tokens ls --json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			var out struct {
				Tokens []token `json:"tokens"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, "/api/tokens", nil, &out); err != nil {
				return err
			}
			if out.Tokens == nil {
				out.Tokens = []token{}
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLES\tCREATED\tEXPIRES\tLAST USED")
			for _, t := range out.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, oneLine(t.Name, 60), strings.Join(t.Roles, ","), t.CreatedAt, orDash(deref(t.ExpiresAt)), orDash(deref(t.LastUsedAt)))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(ls)
	var roles []string
	var days int
	create := &cobra.Command{
		Use:   "create <name> [--role ROLE]... [--expires-in-days N]",
		Short: "Create a token; its secret is printed this once",
		Example: "  gnome tokens create ci --role developer --expires-in-days 90\n" +
			"  TOKEN=$(gnome tokens create ci --json | jq -r .token)",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			in := map[string]any{"name": a[0]}
			if len(roles) > 0 {
				in["roles"] = roles
			}
			if cmd.Flags().Changed("expires-in-days") {
				in["expires_in_days"] = days
			}
			var t token
			if err := c.call(cmd.Context(), http.MethodPost, "/api/tokens", in, &t); err != nil {
				return err
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %s (%s) with roles %s; it is shown only now:\n", t.ID, t.Name, strings.Join(t.Roles, ","))
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			return nil
		},
	}
	create.Flags().StringSliceVar(&roles, "role", nil, "a role the token carries (repeatable; default: all of yours)")
	create.Flags().IntVar(&days, "expires-in-days", 0, "days until it expires (default: never)")
	addJSONFlag(create)
	revoke := &cobra.Command{
		Use:     "revoke <id>",
		Short:   "Revoke a token: it stops working everywhere within a second",
		Example: "  gnome tokens revoke 6650f1c2a9e4b3d2c1f0e9a8",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), http.MethodDelete, "/api/tokens/"+seg(a[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s.\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(ls, create, revoke)
	return cmd
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// user is an account as the admin API shows it.
type user struct {
	ID        string   `json:"id"`
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	Disabled  bool     `json:"disabled"`
	CreatedAt string   `json:"created_at"`
}

func usersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage accounts (admins only): list, create, grant and revoke roles, disable",
		Example: "  gnome users ls\n  gnome users create ann@example.org --role developer\n" +
			"  gnome users grant ann@example.org admin\n  gnome users disable ann@example.org",
		RunE: groupRun,
	}
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List every user with their roles",
		Example: "  gnome users ls --json | jq -r '.users[] | select(.disabled) | .email'",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			var out struct {
				Users []user `json:"users"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, "/admin/api/users", nil, &out); err != nil {
				return err
			}
			if out.Users == nil {
				out.Users = []user{}
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EMAIL\tROLES\tDISABLED\tCREATED")
			for _, u := range out.Users {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", u.Email, strings.Join(u.Roles, ","), u.Disabled, u.CreatedAt)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(ls)

	var roles []string
	var passwordStdin bool
	create := &cobra.Command{
		Use:   "create <email> [--role ROLE]... [--password-stdin]",
		Short: "Create an account (the password is asked without echo, or read from stdin)",
		Example: "  gnome users create ann@example.org --role developer\n" +
			"  printf '%s\\n' \"$PW\" | gnome users create ann@example.org --password-stdin",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			password, err := readPassword(cmd, bufio.NewReader(cmd.InOrStdin()), passwordStdin)
			if err != nil {
				return err
			}
			var u user
			if err := c.call(cmd.Context(), http.MethodPost, "/admin/api/users", map[string]any{"email": a[0], "password": password, "roles": roles}, &u); err != nil {
				return err
			}
			return printUser(cmd, "Created", u)
		},
	}
	create.Flags().StringSliceVar(&roles, "role", nil, "a role to give (repeatable; default: user)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	addJSONFlag(create)

	roleCmd := func(verb, short, method, done string) *cobra.Command {
		c := &cobra.Command{
			Use:     verb + " <email> <role>",
			Short:   short,
			Example: "  gnome users " + verb + " ann@example.org developer",
			Args:    args(cobra.ExactArgs(2)),
			RunE: func(cmd *cobra.Command, a []string) error {
				c, _, err := signedIn()
				if err != nil {
					return err
				}
				var u user
				if err := c.call(cmd.Context(), method, "/admin/api/users/"+seg(a[0])+"/roles/"+seg(a[1]), nil, &u); err != nil {
					return err
				}
				return printUser(cmd, done, u)
			},
		}
		addJSONFlag(c)
		return c
	}
	stateCmd := func(verb, short string, disabled bool, done string) *cobra.Command {
		c := &cobra.Command{
			Use:     verb + " <email>",
			Short:   short,
			Example: "  gnome users " + verb + " ann@example.org",
			Args:    args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				c, _, err := signedIn()
				if err != nil {
					return err
				}
				var u user
				if err := c.call(cmd.Context(), http.MethodPatch, "/admin/api/users/"+seg(a[0]), map[string]bool{"disabled": disabled}, &u); err != nil {
					return err
				}
				return printUser(cmd, done, u)
			},
		}
		addJSONFlag(c)
		return c
	}
	cmd.AddCommand(ls, create,
		roleCmd("grant", "Give a user a role", http.MethodPost, "Granted"),
		roleCmd("revoke", "Take a role from a user", http.MethodDelete, "Revoked"),
		stateCmd("disable", "Disable an account: it cannot sign in and its sessions and tokens stop working", true, "Disabled"),
		stateCmd("enable", "Enable a disabled account again", false, "Enabled"))
	return cmd
}

func printUser(cmd *cobra.Command, done string, u user) error {
	if u.Roles == nil {
		u.Roles = []string{}
	}
	if wantsJSON(cmd) {
		return writeJSON(cmd.OutOrStdout(), u)
	}
	state := ""
	if u.Disabled {
		state = ", disabled"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (roles %s%s)\n", done, u.Email, orDash(strings.Join(u.Roles, ",")), state)
	return nil
}
