package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gnome-platform/gnome/libs/bundle"
)

// runCLI runs one verb in process, as gnome would.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := &cobra.Command{Use: "gnome", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Commands()...)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	code = Run(root)
	return out.String(), errb.String(), code
}

// packAndOpen packs dir as gnome push does and checks it as the upload
// service does.
func packAndOpen(t *testing.T, dir string) *bundle.Bundle {
	t.Helper()
	var zip bytes.Buffer
	if _, err := bundle.Pack(&zip, dir); err != nil {
		t.Fatalf("pack %s: %v", dir, err)
	}
	b, err := bundle.Open(bytes.NewReader(zip.Bytes()), int64(zip.Len()), bundle.DefaultLimits(100<<20))
	if err != nil {
		t.Fatalf("the scaffold of %s is refused: %v", dir, err)
	}
	return b
}

// A JavaScript scaffold is a bundle the platform accepts as it is, with
// its page and actor; bad slugs and non-empty folders are refused.
func TestNewJavaScript(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-study")
	out, errs, code := runCLI(t, "new", "my-study", "--dir", dir)
	if code != 0 {
		t.Fatalf("gnome new: exit %d: %s %s", code, out, errs)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, warnings, err := bundle.ParseManifest(raw)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("manifest: %v, warnings %v", err, warnings)
	}
	if m.Slug != "my-study" || m.Actor == nil || m.Actor.Script != "actor.js" {
		t.Errorf("manifest = %+v", m)
	}
	b := packAndOpen(t, dir)
	var names []string
	for _, f := range b.Files {
		names = append(names, f.Path)
	}
	for _, want := range []string{"manifest.json", "static/index.html", "actor.js"} {
		if !slices.Contains(names, want) {
			t.Errorf("bundle files %v lack %s", names, want)
		}
	}
	js, _ := os.ReadFile(filepath.Join(dir, "actor.js"))
	if !strings.HasPrefix(string(js), `/// <reference path="./gnome.d.ts" />`) {
		t.Errorf("actor.js lacks the reference to gnome.d.ts:\n%s", js)
	}
	if _, err := os.Stat(filepath.Join(dir, "gnome.d.ts")); err != nil {
		t.Errorf("gnome.d.ts: %v", err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "static", "index.html"))
	if !strings.Contains(string(page), `api("visits")`) {
		t.Errorf("the page does not call the actor")
	}

	// The same folder again is refused, and nothing in it changes.
	before, _ := os.ReadFile(filepath.Join(dir, "actor.js"))
	if err := os.WriteFile(filepath.Join(dir, "actor.js"), append(before, "// mine\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runCLI(t, "new", "my-study", "--dir", dir); code != ExitFailure || !strings.Contains(errs, "not empty") {
		t.Errorf("into a non-empty folder: exit %d, %s", code, errs)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "actor.js")); !bytes.HasSuffix(after, []byte("// mine\n")) {
		t.Error("a refused gnome new overwrote actor.js")
	}
	// An empty folder is fine.
	empty := t.TempDir()
	if _, errs, code := runCLI(t, "new", "other", "--dir", empty); code != 0 {
		t.Errorf("into an empty folder: exit %d, %s", code, errs)
	}
	for _, slug := range []string{"Bad", "a/b", "../up", "", "x y", strings.Repeat("a", 65), "é"} {
		d := filepath.Join(t.TempDir(), "x")
		if _, _, code := runCLI(t, "new", slug, "--dir", d); code != ExitUsage {
			t.Errorf("slug %q: exit %d, want %d", slug, code, ExitUsage)
		}
		if _, err := os.Stat(d); err == nil {
			t.Errorf("slug %q: the folder was made", slug)
		}
	}
	if _, _, code := runCLI(t, "new", "ok", "--lang", "python", "--dir", filepath.Join(t.TempDir(), "x")); code != ExitUsage {
		t.Errorf("--lang python: exit %d", code)
	}
}

// A Go scaffold builds for the platform with the command it documents,
// outside the workspace with the SDK replaced by this checkout's, and
// packs to an accepted bundle once built; before, push names the build.
func TestNewGo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WebAssembly module")
	}
	sdk, err := filepath.Abs("../../../libs/actorsdk")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "go_study")
	if _, errs, code := runCLI(t, "new", "go_study", "--lang", "go", "--dir", dir, "--sdk", sdk); code != 0 {
		t.Fatalf("gnome new --lang go: exit %d: %s", code, errs)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if m, _, err := bundle.ParseManifest(raw); err != nil || m.Actor == nil || m.Actor.Module != "actor.wasm" {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	for _, f := range []string{"Makefile", "README.md"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); !strings.Contains(string(b), "GOOS=wasip1 GOARCH=wasm go build") {
			t.Errorf("%s does not give the build command", f)
		}
	}
	if err := checkActorBuilt(dir); err == nil || !strings.Contains(err.Error(), GoBuildCommand) {
		t.Errorf("push before the build: %v; want the build command", err)
	}

	build := exec.Command("sh", "-c", GoBuildCommand)
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", GoBuildCommand, err, out)
	}
	if err := checkActorBuilt(dir); err != nil {
		t.Errorf("after the build: %v", err)
	}
	b := packAndOpen(t, dir)
	var names []string
	for _, f := range b.Files {
		names = append(names, f.Path)
	}
	if !slices.Contains(names, "actor.wasm") || slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".go") || n == "go.mod" }) {
		t.Errorf("bundle files = %v: want actor.wasm and no Go sources", names)
	}
}
