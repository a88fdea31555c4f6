// Command gnome is the all-in-one server (gnome serve) and the command-line
// client of the platform.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/gnome/cli"
	"github.com/gnome-platform/gnome/services/gnome/platform"
)

func main() {
	// The client's verbs promise exit codes scripts can trust (cli.ExitCode).
	os.Exit(cli.Run(root()))
}

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "gnome",
		Short:         "g.nome runs many small web experiments side by side",
		Long:          "g.nome runs many small web experiments side by side: gnome serve runs the platform,\nthe other verbs are its command-line client.\n\n" + cli.ExitCodesHelp,
		Version:       buildinfo.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.AddCommand(serveCmd(), standaloneCmd(), natsConfigCmd(), adminCmd())
	cmd.AddCommand(cli.Commands()...)
	return cmd
}

func serveCmd() *cobra.Command {
	var infraOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run every service in one process (embedding NATS and the store unless NATS_URL and MONGO_URI are set)",
		Long: `Run every service in one process. With NATS_URL and MONGO_URI empty it embeds a NATS server
(DATA_DIR/nats) and the store, FerretDB, under DATA_DIR/db.

EMBEDDED_STORE picks the store's engine. auto, the default, runs PostgreSQL as a child process
when its server is installed (Debian, Ubuntu: apt-get install postgresql) and DATA_DIR/db holds no
SQLite data yet; otherwise SQLite, with a warning at start that says why and how to get
PostgreSQL. sqlite or postgres force one. Data does not move between engines. The engine that
runs is logged at start ("embedded store started") and shown to admins in /health/detailed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			if err := checkPorts(serveAddrs(cfg, !infraOnly, "HTTP_ADDR")); err != nil {
				return err
			}
			ctx, stop := svc.SignalContext()
			defer stop()
			// After the first signal starts a graceful stop, a second one
			// ends the process at once.
			go func() { <-ctx.Done(); stop() }()
			return platform.Serve(ctx, cfg, platform.Options{InfraOnly: infraOnly, Out: cmd.OutOrStdout()})
		},
	}
	cmd.Flags().BoolVar(&infraOnly, "infra-only", false, "start only the embedded NATS server and store, print their URLs and where each service's bus credentials are, and wait")
	return cmd
}

// natsConfigCmd prints the bus users and their permissions for a NATS
// cluster's configuration (deploy/compose/nats-users.conf is its output).
func natsConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nats-config",
		Short: "Print the nats-server authorization block: one user per service, with its permissions",
		Long: "Print the nats-server authorization block: one user per service, each with the permissions the\n" +
			"embedded server gives it. Passwords are read by nats-server from the environment variables\n" +
			"GNOME_NATS_<USER>_PASSWORD; each service gets NATS_USER=<service> and NATS_PASSWORD.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), bus.ServerConfig(func(user string) string { return "$" + bus.PasswordVariable(user) }))
			return err
		},
	}
}
