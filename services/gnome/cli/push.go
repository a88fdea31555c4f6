package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/bundle"
)

func pushCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push <folder|zip>",
		Short: "Upload an experiment (a folder is packed first); a new upload of a slug makes a new version",
		Long: "Upload an experiment bundle. A folder is packed as the platform checks bundles: every file under it\n" +
			"with manifest.json at the top, except hidden files, Go sources (*.go, go.mod, go.sum: build a Go actor\n" +
			"to actor.wasm first) and what operating systems leave behind (__MACOSX/, .DS_Store, __pycache__/).\n" +
			"The same files always pack to the same bytes. The progress of the upload is shown on stderr;\n" +
			"warnings and refusals name the manifest field or the file concerned.",
		Example: "  gnome push examples/clicks-js\n" +
			"  gnome push bin/examples/clicks.zip --json",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, _, err := signedIn()
			if err != nil {
				return err
			}
			path, size, cleanup, err := bundleFile(cmd, a[0])
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := upload(cmd.Context(), c, path, size, cmd.ErrOrStderr())
			if err != nil {
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
			what := "new version"
			switch {
			case res.Created:
				what = "created"
			case res.Unchanged != nil && *res.Unchanged:
				what = "unchanged: the same bundle as the current version"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Pushed %s (%s): version %d, %s\n", e.Slug, what, e.Version, e.Status)
			fmt.Fprintf(cmd.OutOrStdout(), "  checksum %s\n  %s\n", e.Checksum, e.URL)
			for _, w := range res.Warnings {
				if w.Field != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "warning: %s: %s\n", w.Field, oneLine(w.Message, 500))
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "warning: %s\n", oneLine(w.Message, 500))
				}
			}
			return nil
		},
	}
	addJSONFlag(cmd)
	return cmd
}

type pushWarning struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// pushResult is the answer to an upload, as push prints it with --json.
type pushResult struct {
	Experiment experiment    `json:"experiment"`
	Warnings   []pushWarning `json:"warnings"`
	Created    bool          `json:"created"`
	// Unchanged is set by servers that tell a re-upload of the same bundle.
	Unchanged *bool `json:"unchanged,omitempty"`
}

// bundleFile is the ZIP to upload: the file given, or the folder given
// packed into a temporary file (which cleanup removes).
func bundleFile(cmd *cobra.Command, arg string) (path string, size int64, cleanup func(), err error) {
	st, err := os.Stat(arg)
	if err != nil {
		return "", 0, nil, fmt.Errorf("read %s: %w", arg, err)
	}
	if !st.IsDir() {
		return arg, st.Size(), func() {}, nil
	}
	if err := checkActorBuilt(arg); err != nil {
		return "", 0, nil, err
	}
	tmp, err := os.CreateTemp("", "gnome-push-*.zip")
	if err != nil {
		return "", 0, nil, fmt.Errorf("pack %s: %w", arg, err)
	}
	cleanup = func() { _ = os.Remove(tmp.Name()) }
	packed, err := bundle.Pack(tmp, filepath.Clean(arg))
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", 0, nil, fmt.Errorf("pack %s: %w", arg, err)
	}
	st, err = os.Stat(tmp.Name())
	if err != nil {
		cleanup()
		return "", 0, nil, fmt.Errorf("pack %s: %w", arg, err)
	}
	if !wantsJSON(cmd) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Packed %d files of %s (%s)", len(packed.Files), arg, humanBytes(st.Size()))
		if len(packed.Skipped) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "; left out: %s", oneLine(fmt.Sprint(packed.Skipped), 300))
		}
		fmt.Fprintln(cmd.ErrOrStderr())
	}
	return tmp.Name(), st.Size(), cleanup, nil
}

// upload sends the ZIP at path as application/zip, with a progress bar of
// the bytes sent on progress.
func upload(ctx context.Context, c *client, path string, size int64, progress io.Writer) (pushResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return pushResult{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	bar := newBar(size, "uploading", progress)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	body := progressbar.NewReader(f, bar)
	req, err := c.request(ctx, http.MethodPost, "/api/experiments", &body, "application/zip")
	if err != nil {
		return pushResult{}, err
	}
	req.ContentLength = size
	resp, err := c.send(req)
	_ = bar.Finish()
	if err != nil {
		return pushResult{}, err
	}
	defer resp.Body.Close()
	var res pushResult
	if err := decodeJSON(resp.Body, &res); err != nil {
		return pushResult{}, fmt.Errorf("read the answer to the upload: %w", err)
	}
	return res, nil
}

// newBar is a progress bar of bytes on w.
func newBar(size int64, what string, w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size,
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// humanBytes is a size as people read it.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// newPercentBar is a progress bar of percent on w, for work whose size is
// not bytes (an export being built).
func newPercentBar(w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions(100,
		progressbar.OptionSetDescription("building"),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// checkActorBuilt refuses, before anything is sent, a folder whose
// manifest declares a WebAssembly actor that was not built: Go sources are
// never uploaded, only actor.wasm, and the server's refusal would not say
// how to build it.
func checkActorBuilt(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil // the packer names a missing manifest
	}
	var m struct {
		Actor *struct {
			Module string `json:"module"`
		} `json:"actor"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Actor == nil || m.Actor.Module == "" || !filepath.IsLocal(m.Actor.Module) {
		return nil // the server names what is wrong with the manifest
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(m.Actor.Module))); err == nil {
		return nil
	}
	how := "build it first"
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		how = "build the Go actor first, in " + dir + ": " + GoBuildCommand + " (or make)"
	}
	return fmt.Errorf("manifest.json declares the actor module %s, which is not in %s: %s", oneLine(m.Actor.Module, 200), dir, how)
}
