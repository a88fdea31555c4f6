package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gnome-platform/gnome/libs/authn"
)

func loginCmd() *cobra.Command {
	var serverURL, email string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [--url URL] [--email EMAIL] [--password-stdin]",
		Short: "Sign in and keep a personal API token for the other verbs",
		Long: "Sign in with your email and password, create a personal API token named after this machine,\n" +
			"and keep the server's URL and the token (never the password) in <user config dir>/gnome/config.json,\n" +
			"readable by you alone. The session used to create the token is ended at once.",
		Example: "  gnome login --url https://gnome.example.org --email me@example.org\n" +
			"  printf '%s\\n' \"$PASSWORD\" | gnome login --email me@example.org --password-stdin",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := bufio.NewReader(cmd.InOrStdin())
			if email == "" {
				if passwordStdin {
					return usagef("--password-stdin needs --email")
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Email: ")
				line, err := in.ReadString('\n')
				if err != nil && line == "" {
					return usagef("no email: give --email")
				}
				email = strings.TrimSpace(line)
			}
			password, err := readPassword(cmd, in, passwordStdin)
			if err != nil {
				return err
			}
			u, err := normaliseURL(serverURL)
			if err != nil {
				return err
			}
			if plainHTTP(u) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is plain HTTP: the password and the token cross the network unencrypted\n", u)
			}
			s, err := login(cmd.Context(), u, email, password)
			if err != nil {
				return err
			}
			p, err := saveSettings(s)
			if err != nil {
				return err
			}
			if wantsJSON(cmd) {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"url": s.URL, "email": s.Email, "token_id": s.TokenID, "token_name": s.TokenName, "config": p})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s.\nToken %q kept in %s.\n", s.URL, s.Email, s.TokenName, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&serverURL, "url", DefaultURL, "the server's address (GNOME_URL)")
	cmd.Flags().StringVar(&email, "email", "", "your email (asked when not given)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin instead of asking")
	addJSONFlag(cmd)
	return cmd
}

// readPassword reads the password from the terminal without echo, or
// from stdin's first line with --password-stdin.
func readPassword(cmd *cobra.Command, in *bufio.Reader, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from stdin: %w", err)
		}
		p := strings.TrimRight(line, "\r\n")
		if p == "" {
			return "", usagef("--password-stdin: stdin holds no password")
		}
		return p, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usagef("no terminal to ask the password on: pipe it with --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return string(b), nil
}

// normaliseURL checks the server's address: an http(s) URL without query,
// trailing slash removed.
func normaliseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--url %q: want the server's address, like https://gnome.example.org", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// plainHTTP reports an http:// address off this machine.
func plainHTTP(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return false
	}
	h := p.Hostname()
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

// login signs in, creates a personal API token with the session and ends
// the session.
func login(ctx context.Context, base, email, password string) (Settings, error) {
	c := newClient(Settings{URL: base})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := c.request(ctx, http.MethodPost, "/auth/login", strings.NewReader(mustJSON(map[string]string{"email": email, "password": password})), "application/json")
	if err != nil {
		return Settings{}, err
	}
	resp, err := c.send(req)
	if err != nil {
		return Settings{}, err
	}
	resp.Body.Close()
	// The session token rides in the cookie; the client sends it as a
	// bearer token, which needs no CSRF dance.
	var session string
	for _, ck := range resp.Cookies() {
		if ck.Name == authn.CookieName || ck.Name == "__Host-"+authn.CookieName {
			session = ck.Value
		}
	}
	if session == "" {
		return Settings{}, errors.New("the server signed in without a session token: is --url the platform's address?")
	}
	c.token = session
	defer func() {
		// The session was only needed to make the token.
		_ = c.call(context.WithoutCancel(ctx), http.MethodPost, "/auth/logout", nil, nil)
	}()
	var me struct {
		Email string `json:"email"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/me", nil, &me); err != nil {
		return Settings{}, err
	}
	var tok struct {
		Token string `json:"token"`
		ID    string `json:"id"`
		Name  string `json:"name"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/tokens", map[string]string{"name": tokenName(time.Now())}, &tok); err != nil {
		return Settings{}, fmt.Errorf("create the API token: %w", err)
	}
	return Settings{URL: base, Email: me.Email, Token: tok.Token, TokenID: tok.ID, TokenName: tok.Name}, nil
}

// tokenName names the login's token after the machine and the moment, so
// that the user's page tells which token is which machine's, and a second
// login from the same machine does not collide with the first.
func tokenName(now time.Time) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	if len(host) > 60 {
		host = host[:60]
	}
	return "gnome CLI on " + host + ", " + now.UTC().Format("2006-01-02 15:04:05")
}

func logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Revoke the stored API token and forget it",
		Long:    "Revoke the personal API token gnome login stored, on the server, and delete the settings file.",
		Example: "  gnome logout",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, ok, err := loadSettings()
			if err != nil {
				return err
			}
			if !ok {
				return errNotSignedIn
			}
			c := newClient(s)
			if s.TokenID != "" {
				err := c.call(cmd.Context(), http.MethodDelete, "/api/tokens/"+seg(s.TokenID), nil, nil)
				// A token already revoked (or deleted with its user) is
				// what logout wants; anything else keeps the file, so that
				// the token is not forgotten while still valid.
				if err != nil && !isStatus(err, http.StatusUnauthorized) && !isStatus(err, http.StatusNotFound) {
					return fmt.Errorf("revoke the token: %w", err)
				}
			}
			p, err := configPath()
			if err != nil {
				return err
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("delete %s: %w", p, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed out of %s: token revoked, %s deleted.\n", s.URL, p)
			return nil
		},
	}
}
