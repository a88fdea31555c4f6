package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/gnome/platform"
)

func standaloneCmd() *cobra.Command {
	var dataDir, addr string
	cmd := &cobra.Command{
		Use:   "standalone <package.zip | directory>",
		Short: "Run one exported experiment on its own, from a standalone or docker export package",
		Long: `Run one exported experiment on its own: the platform as gnome serve runs it (embedded NATS
and store unless NATS_URL and MONGO_URI are set), with the package's data imported, its bundle
installed, and only that experiment served (its actor included). GET / leads to it; other slugs
are 404 and uploads are off.

The package is a standalone or docker export (a .zip, or the directory it was unpacked into).
Its data is imported once; a restart on the same data directory keeps what changed since.

Defaults: --data-dir is DATA_DIR, else ./data-<slug>; --addr is HTTP_ADDR, else 127.0.0.1:8080;
the embedded NATS and store listen on free loopback ports unless EMBEDDED_NATS_ADDR and
EMBEDDED_STORE_ADDR say otherwise. The other settings are gnome serve's, EMBEDDED_STORE among them:
auto by default, PostgreSQL where it is installed and the data directory has no SQLite data,
else SQLite (see gnome serve --help).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pkg, err := platform.OpenPackage(args[0])
			if err != nil {
				return err
			}
			defer pkg.Close()
			flags := map[string]string{}
			if cmd.Flags().Changed("data-dir") {
				flags["DATA_DIR"] = dataDir
			}
			if cmd.Flags().Changed("addr") {
				flags["HTTP_ADDR"] = addr
			}
			cfg, err := config.LoadFrom(platform.StandaloneEnv(os.LookupEnv, pkg.Meta.Slug, flags))
			if err != nil {
				return err
			}
			httpSetBy := "--addr (or HTTP_ADDR)"
			if cmd.Flags().Changed("addr") {
				httpSetBy = "--addr"
			} else if v, ok := os.LookupEnv("HTTP_ADDR"); ok && v != "" {
				httpSetBy = "HTTP_ADDR"
			}
			if err := checkPorts(serveAddrs(cfg, true, httpSetBy)); err != nil {
				return err
			}
			ctx, stop := svc.SignalContext()
			defer stop()
			// After the first signal starts a graceful stop, a second one
			// ends the process at once.
			go func() { <-ctx.Done(); stop() }()
			return platform.Serve(ctx, cfg, platform.Options{Standalone: pkg, Out: cmd.OutOrStdout()})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where the embedded NATS and store keep their files; without the flag, DATA_DIR when set, else ./data-<slug>")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "where the web server listens; without the flag, HTTP_ADDR when set")
	return cmd
}
