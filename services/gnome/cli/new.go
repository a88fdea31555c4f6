package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// slugPattern is the manifest's slug rule (schemas/manifest.schema.json),
// with the length the platform allows.
var slugPattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// sdkModule is the Go actor SDK a Go scaffold requires.
const sdkModule = "github.com/gnome-platform/gnome/libs/actorsdk"

// GoBuildCommand builds a Go actor for the platform (WebAssembly for WASI,
// as a reactor module); make examples builds the examples the same way.
const GoBuildCommand = "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o actor.wasm ./actor"

func newCmd() *cobra.Command {
	var lang, dir, sdk string
	cmd := &cobra.Command{
		Use:   "new <slug> [--lang js|go] [--dir D]",
		Short: "Make a new experiment folder: manifest, page and actor, ready for gnome push",
		Long: "Make a folder (./<slug>, or --dir) with a manifest.json, a page (static/index.html) that calls the\n" +
			"actor, and the actor: actor.js for --lang js (the default), pushable as it is; for --lang go,\n" +
			"actor/main.go with a go.mod requiring the actor SDK and a Makefile that builds actor.wasm, which\n" +
			"gnome push needs. The SDK is found through a replace directive: --sdk names its folder (a checkout's\n" +
			"libs/actorsdk); without it, the folder is looked for above the new one. An existing non-empty\n" +
			"folder is never written to.",
		Example: "  gnome new my-study && gnome push my-study\n" +
			"  gnome new my-study --lang go --sdk ~/src/gnome/libs/actorsdk && make -C my-study && gnome push my-study",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			slug := a[0]
			if !slugPattern.MatchString(slug) {
				return usagef("slug %q: use 1 to 64 lowercase letters, digits, - or _ (it becomes /experiments/<slug>/)", oneLine(slug, 80))
			}
			if lang != "js" && lang != "go" {
				return usagef("--lang %q: want js or go", oneLine(lang, 20))
			}
			if dir == "" {
				dir = slug
			}
			files, err := scaffold(slug, lang, dir, sdk)
			if err != nil {
				return err
			}
			if err := writeScaffold(dir, files); err != nil {
				return err
			}
			if wantsJSON(cmd) {
				names := make([]string, 0, len(files))
				for _, f := range files {
					names = append(names, f.name)
				}
				return writeJSON(cmd.OutOrStdout(), map[string]any{"slug": slug, "lang": lang, "dir": dir, "files": names})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Made %s in %s:\n", slug, dir)
			for _, f := range files {
				fmt.Fprintf(w, "  %s\n", f.name)
			}
			if lang == "go" {
				fmt.Fprintf(w, "Build the actor, then push:\n  make -C %s   # %s\n  gnome push %s\n", dir, GoBuildCommand, dir)
			} else {
				fmt.Fprintf(w, "Push it:\n  gnome push %s\n", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&lang, "lang", "js", "the actor's language: js (JavaScript, no build step) or go (built to WebAssembly)")
	cmd.Flags().StringVar(&dir, "dir", "", "the folder to make (default ./<slug>); it must not exist or be empty")
	cmd.Flags().StringVar(&sdk, "sdk", "", "with --lang go: the actor SDK's folder (libs/actorsdk of a checkout), for go.mod's replace")
	addJSONFlag(cmd)
	return cmd
}

type scaffoldFile struct {
	name string
	data []byte
}

// scaffold is the new experiment's files, by their slash-separated names.
func scaffold(slug, lang, dir, sdk string) ([]scaffoldFile, error) {
	manifest := map[string]any{
		"schema_version": "2.0",
		"slug":           slug,
		"name":           slug,
		"description":    "A new experiment: its page calls its actor, which counts the visits.",
		"status":         "active",
		"auth_policy":    map[string]any{"allow_anonymous": true},
		"data_scope":     []string{"self"},
	}
	files := []scaffoldFile{{"static/index.html", []byte(strings.ReplaceAll(pageTemplate, "{{slug}}", slug))}}
	switch lang {
	case "js":
		manifest["actor"] = map[string]any{"script": "actor.js", "memory_mb": 64, "timeout_ms": 2000}
		files = append(files,
			scaffoldFile{"actor.js", []byte(jsActorTemplate)},
			// The declarations beside the actor, for editors; push uploads
			// it with the rest, and it is harmless there.
			scaffoldFile{"gnome.d.ts", actorapi.TypeScript},
			scaffoldFile{"README.md", []byte(strings.ReplaceAll(jsReadme, "{{slug}}", slug))})
	case "go":
		manifest["actor"] = map[string]any{"module": "actor.wasm", "memory_mb": 32, "timeout_ms": 2000}
		gomod, err := goMod(slug, dir, sdk)
		if err != nil {
			return nil, err
		}
		files = append(files,
			scaffoldFile{"actor/main.go", []byte(goActorTemplate)},
			scaffoldFile{"go.mod", gomod},
			scaffoldFile{"Makefile", []byte("# Builds the actor for the platform: gnome push uploads actor.wasm with the rest.\n" +
				"actor.wasm: actor/main.go go.mod\n\t" + GoBuildCommand + "\n\n" +
				".PHONY: clean\nclean:\n\trm -f actor.wasm\n")},
			scaffoldFile{".gitignore", []byte("actor.wasm\n")},
			scaffoldFile{"README.md", []byte(strings.ReplaceAll(goReadme, "{{slug}}", slug))})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(manifest); err != nil {
		return nil, fmt.Errorf("write the manifest: %w", err)
	}
	return append([]scaffoldFile{{"manifest.json", b.Bytes()}}, files...), nil
}

// goMod requires the SDK and replaces it by its folder: given, or found
// above dir (a scaffold inside a checkout), or left for the user to add.
func goMod(slug, dir, sdk string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", dir, err)
	}
	if sdk == "" {
		for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
			if isSDK(filepath.Join(d, "libs", "actorsdk")) {
				sdk = filepath.Join(d, "libs", "actorsdk")
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	} else if sdk, err = filepath.Abs(sdk); err != nil || !isSDK(sdk) {
		return nil, usagef("--sdk %s: no go.mod of %s there", sdk, sdkModule)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module example.org/%s\n\ngo 1.26\n\nrequire %s v0.0.0\n", strings.ReplaceAll(slug, "_", "-"), sdkModule)
	if sdk != "" {
		rel, err := filepath.Rel(abs, sdk)
		if err != nil {
			rel = sdk
		}
		fmt.Fprintf(&b, "\n// The SDK is taken from a checkout of the platform.\nreplace %s => %s\n", sdkModule, filepath.ToSlash(rel))
	} else {
		fmt.Fprintf(&b, "\n// The SDK is taken from a checkout of the platform: point this at its libs/actorsdk.\n// replace %s => ../gnome/libs/actorsdk\n", sdkModule)
	}
	return []byte(b.String()), nil
}

func isSDK(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.HasPrefix(b, []byte("module "+sdkModule+"\n"))
}

// writeScaffold makes dir and its files; an existing file or non-empty
// folder is refused before anything is written.
func writeScaffold(dir string, files []scaffoldFile) error {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return fmt.Errorf("%s exists and is not empty: nothing was written; choose another --dir", dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		var pe *fs.PathError
		if errors.As(err, &pe) && !isDir(dir) {
			return fmt.Errorf("%s exists and is not a folder: nothing was written", dir)
		}
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("make %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

const pageTemplate = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{slug}}</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; }
  @media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } }
  button { font-size: 1rem; padding: .6rem 1.2rem; }
</style>
</head>
<body>
<h1>{{slug}}</h1>
<p>This page calls the experiment's actor: each visit is stored in its collection <code>visits</code>.</p>
<p><button id="visit" type="button">Count a visit</button></p>
<p id="out" role="status">Visits: …</p>
<script>
// The actor's routes are under /experiments/{slug}/api/, wherever this page is served.
const base = (location.pathname.match(/^\/experiments\/[^/]+\//) || ["/"])[0] + "api/";
const out = document.getElementById("out");

async function api(path, options) {
  const res = await fetch(base + path, { credentials: "same-origin", headers: { "Accept": "application/json", "Content-Type": "application/json" }, ...options });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}

function show(p) { p.then(b => { out.textContent = "Visits: " + b.visits; }, e => { out.textContent = "Error: " + e.message; }); }
document.getElementById("visit").addEventListener("click", () => show(api("visit", { method: "POST", body: "{}" })));
show(api("visits"));
</script>
</body>
</html>
`

const jsActorTemplate = `/// <reference path="./gnome.d.ts" />
// The experiment's actor: its backend, run by the platform (docs/actors.md).
// Its routes answer under /experiments/{slug}/api/.
//
//   POST /visit    records a visit: 201 {"visits": n}
//   GET  /visits   the number of visits: {"visits": n}

gnome.route("POST", "/visit", req => {
  const by = req.caller.anonymous ? "anonymous" : req.caller.email;
  gnome.db("visits").insertOne({ by: by, at: new Date() });
  return gnome.json(201, { visits: gnome.db("visits").count({}) });
});

gnome.route("GET", "/visits", () => gnome.json(200, { visits: gnome.db("visits").count({}) }));
`

const goActorTemplate = `// The experiment's actor: its backend, run by the platform as WebAssembly
// (docs/actors.md). Its routes answer under /experiments/{slug}/api/.
//
//	POST /visit    records a visit: 201 {"visits": n}
//	GET  /visits   the number of visits: {"visits": n}
package main

import "github.com/gnome-platform/gnome/libs/actorsdk"

func init() {
	actorsdk.Route("POST", "/visit", visit)
	actorsdk.Route("GET", "/visits", func(*actorsdk.Request) *actorsdk.Response { return visits(200) })
}

func visit(req *actorsdk.Request) *actorsdk.Response {
	by := req.Caller.Email
	if req.Caller.Anonymous {
		by = "anonymous"
	}
	if _, err := actorsdk.DB("visits").InsertOne(actorsdk.M{"by": by, "at": actorsdk.Now()}); err != nil {
		return actorsdk.Fail(err)
	}
	return visits(201)
}

func visits(status int) *actorsdk.Response {
	n, err := actorsdk.DB("visits").Count(nil)
	if err != nil {
		return actorsdk.Fail(err)
	}
	return actorsdk.JSON(status, actorsdk.M{"visits": n})
}

func main() {}
`

const jsReadme = "# {{slug}}\n\nA g.nome experiment: `manifest.json`, the page `static/index.html`, and the actor `actor.js`\n" +
	"(`gnome.d.ts` describes its API for editors).\n\n```sh\ngnome push .      # upload it (a new version each time it changes)\ngnome status {{slug}}\n```\n\n" +
	"The manifest makes it active and open to anonymous visitors: change `status` and `auth_policy` before real use.\n"

const goReadme = "# {{slug}}\n\nA g.nome experiment: `manifest.json`, the page `static/index.html`, and the actor in Go (`actor/main.go`),\n" +
	"which the platform runs as WebAssembly: build `actor.wasm` before pushing.\n\n```sh\nmake              # " + GoBuildCommand + "\n" +
	"gnome push .      # upload it (go.mod and *.go stay here; actor.wasm is uploaded)\n```\n\n" +
	"go.mod takes the actor SDK from a checkout of the platform (its `replace` line).\n" +
	"The manifest makes it active and open to anonymous visitors: change `status` and `auth_policy` before real use.\n"
