// Command mkzip packs an example experiment into an uploadable ZIP:
//
//	mkzip -o bin/examples/clicks.zip -add actor.wasm=bin/examples/clicks.wasm examples/clicks
//
// It takes every regular file under the directory except Go sources
// (*.go, go.mod, go.sum) and hidden files, adds the files given with -add
// (name in the archive = path on disk), and writes them sorted by name,
// deflated, with a fixed time and mode, so that the same inputs always give
// the same archive (and the same checksum on upload).
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type adds map[string]string

func (a adds) String() string { return fmt.Sprint(map[string]string(a)) }

func (a adds) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return errors.New("want name=path")
	}
	a[filepath.ToSlash(name)] = path
	return nil
}

func main() {
	out := flag.String("o", "", "the ZIP to write")
	extra := adds{}
	flag.Var(extra, "add", "name=path: add the file at path as name (repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: mkzip -o out.zip [-add name=path]... dir")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := pack(*out, flag.Arg(0), extra); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

// stamp is every entry's time: a fixed one keeps the archive reproducible.
var stamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pack(out, dir string, extra adds) error {
	files := map[string]string{} // name in the archive → path on disk
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if path != dir && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = path
		return nil
	})
	if err != nil {
		return err
	}
	for name, path := range extra {
		if _, ok := files[name]; ok {
			return fmt.Errorf("%s is both in %s and added", name, dir)
		}
		files[name] = path
	}
	if _, ok := files["manifest.json"]; !ok {
		return fmt.Errorf("%s has no manifest.json", dir)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkzip-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw := zip.NewWriter(tmp)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := add(zw, name, files[name]); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func add(zw *zip.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: stamp}
	h.SetMode(0o644)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
