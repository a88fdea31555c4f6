// Command gnome is the all-in-one server (gnome serve) and the command-line
// client of the platform.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/gnome/platform"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gnome:", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "gnome",
		Short:         "g.nome runs many small web experiments side by side",
		Version:       buildinfo.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.AddCommand(serveCmd(), standaloneCmd())
	return cmd
}

func serveCmd() *cobra.Command {
	var infraOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run every service in one process (embedding NATS and the store unless NATS_URL and MONGO_URI are set)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load()
			if err != nil {
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
	cmd.Flags().BoolVar(&infraOnly, "infra-only", false, "start only the embedded NATS server and store, print their URLs, and wait")
	return cmd
}
