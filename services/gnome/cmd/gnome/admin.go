package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/gnome/cli"
)

// adminCmd groups what an operator does on the server's machine, with the
// server's settings (DATA_DIR, the embedded addresses, or NATS_URL and
// MONGO_URI), rather than over HTTP: a lost admin password cannot be
// recovered by signing in.
func adminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator tasks on the server's machine (reads DATA_DIR and the server's settings)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return cli.Usagef("unknown command %q for %q", a[0], cmd.CommandPath())
			}
			return cli.Usagef("%s needs a subcommand: reset-password", cmd.CommandPath())
		},
	}
	cmd.AddCommand(resetPasswordCmd())
	return cmd
}

func resetPasswordCmd() *cobra.Command {
	var email string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "reset-password [--email EMAIL] [--stdin]",
		Short: "Set a new password for the admin (ADMIN_EMAIL) or --email, ending the account's sessions",
		Long: "Set a new password for the account ADMIN_EMAIL names (or --email), in the platform whose data\n" +
			"is under DATA_DIR (or at NATS_URL and MONGO_URI): run it on the server's machine with the\n" +
			"server's settings. A random password is made and printed once, alone on stdout; with --stdin\n" +
			"the first line of stdin is the password. Every session of the account ends (on every edge\n" +
			"that runs); its personal API tokens keep working. Works whether gnome serve runs or not.",
		Example: "  gnome admin reset-password\n" +
			"  DATA_DIR=/var/lib/gnome gnome admin reset-password --email ann@example.org\n" +
			"  printf '%s\\n' \"$NEW_PASSWORD\" | gnome admin reset-password --stdin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			if email == "" {
				email = cfg.AdminEmail
			}
			password, generated := "", false
			if fromStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read the password from stdin: %w", err)
				}
				if password = strings.TrimRight(line, "\r\n"); password == "" {
					return cli.Usagef("--stdin: stdin holds no password")
				}
			} else {
				buf := make([]byte, 18)
				_, _ = rand.Read(buf)
				password, generated = base64.RawURLEncoding.EncodeToString(buf), true
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			u, how, err := resetPassword(ctx, cfg, email, password)
			if err != nil {
				return err
			}
			errOut := cmd.ErrOrStderr()
			fmt.Fprintf(errOut, "The password of %s was reset (%s); every session of the account has ended.\n", u, how)
			if generated {
				fmt.Fprintln(errOut, "The new password, shown only this once:")
				fmt.Fprintln(cmd.OutOrStdout(), password)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "the account (default: ADMIN_EMAIL)")
	cmd.Flags().BoolVar(&fromStdin, "stdin", false, "read the new password from the first line of stdin instead of making one")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "the same as --stdin")
	_ = cmd.Flags().MarkHidden("password-stdin")
	return cmd
}

// resetPassword reaches the platform's bus and store as the server has
// them: a running gnome serve's embedded NATS server and store, on their
// addresses, or, when it is stopped, the same files under DATA_DIR opened
// for the moment. Both are safe while it runs, since a running server's
// files are only ever touched through the server itself. It returns the
// account and how the platform was reached.
func resetPassword(ctx context.Context, cfg *config.Config, email, password string) (string, string, error) {
	if cfg.EmbeddedNATS() || cfg.EmbeddedStore() {
		abs, _ := filepath.Abs(cfg.DataDir)
		for _, sub := range []string{"nats", "db"} {
			if _, err := os.Stat(filepath.Join(cfg.DataDir, sub)); errors.Is(err, fs.ErrNotExist) {
				return "", "", fmt.Errorf("no platform data under DATA_DIR=%s (no %s/): set DATA_DIR as for gnome serve, or run gnome serve once", abs, sub)
			}
		}
	}
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome-admin", Version: buildinfo.Version, LogLevel: "ERROR", LogWriter: os.Stderr})
	if err != nil {
		return "", "", err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()

	natsURL, mongoURI := cfg.NATSURL, cfg.MongoURI
	natsUp, storeUp := cfg.EmbeddedNATS() && listening(cfg.EmbeddedNATSAddr), cfg.EmbeddedStore() && listening(cfg.EmbeddedStoreAddr)
	how := "through the running server"
	switch {
	case cfg.EmbeddedNATS() && cfg.EmbeddedStore() && natsUp != storeUp:
		return "", "", fmt.Errorf("only one of the embedded NATS server (EMBEDDED_NATS_ADDR %s, %s) and store (EMBEDDED_STORE_ADDR %s, %s) answers: gnome serve is starting or stopping; try again in a moment",
			cfg.EmbeddedNATSAddr, upDown(natsUp), cfg.EmbeddedStoreAddr, upDown(storeUp))
	case !cfg.EmbeddedNATS() && !cfg.EmbeddedStore():
		how = "on NATS_URL and MONGO_URI"
	case !natsUp && !storeUp:
		how = "in DATA_DIR, the server being stopped"
	}
	if cfg.EmbeddedNATS() {
		if natsUp {
			natsURL = "nats://" + cfg.EmbeddedNATSAddr
		} else {
			// Port 0: a temporary server never takes the port gnome serve
			// wants, should it start meanwhile.
			n, err := embedded.StartNATS(filepath.Join(cfg.DataDir, "nats"), "127.0.0.1:0")
			if err != nil {
				return "", "", fmt.Errorf("open the bus under DATA_DIR: %w", err)
			}
			defer n.Shutdown()
			natsURL = n.URL()
		}
	}
	if cfg.EmbeddedStore() {
		if storeUp {
			mongoURI = "mongodb://" + cfg.EmbeddedStoreAddr + "/"
		} else {
			s, err := embedded.StartStoreEngine(filepath.Join(cfg.DataDir, "db"), "127.0.0.1:0", cfg.EmbeddedEngine, tel.Logger)
			if err != nil {
				return "", "", fmt.Errorf("open the store under DATA_DIR: %w", err)
			}
			defer s.Shutdown()
			mongoURI = s.URI()
		}
	}
	d, err := svc.Connect(ctx, cfg, tel, natsURL, mongoURI, bus.Admin)
	if err != nil {
		if natsUp {
			abs, _ := filepath.Abs(cfg.DataDir)
			return "", "", fmt.Errorf("the NATS server on EMBEDDED_NATS_ADDR %s refuses the credentials under DATA_DIR=%s: is it a gnome serve with another DATA_DIR? Set DATA_DIR (and the EMBEDDED_* addresses) as for the server you mean: %w", cfg.EmbeddedNATSAddr, abs, err)
		}
		return "", "", err
	}
	defer d.Close(context.Background())
	u, err := auth.SetPassword(ctx, d, email, password, "gnome admin reset-password")
	if err != nil {
		switch ae := apierr.From(err); ae.Code {
		case apierr.CodeNotFound:
			return "", "", fmt.Errorf("no account %s in this platform: name one with --email (the default is ADMIN_EMAIL)", email)
		case apierr.CodeValidationFailed:
			return "", "", fmt.Errorf("the new password is refused: %s", ae.Message)
		}
		return "", "", err
	}
	name := u.Email
	if u.Disabled {
		name += " (disabled: it still cannot sign in; gnome users enable, or PATCH /admin/api/users, lifts that)"
	}
	return name, how, nil
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func upDown(up bool) string {
	if up {
		return "answering"
	}
	return "not answering"
}
