package bundle

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// packStamp is every packed entry's time: a fixed one makes the same
// folder give the same archive, so that pushing it again is seen as
// unchanged.
var packStamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Packed is what Pack put in the archive and what it left out.
type Packed struct {
	// Files are the archive's names, sorted.
	Files []string
	// Skipped are the folder's files left out (hidden files, Go sources,
	// the files Open drops), relative to the folder.
	Skipped []string
}

// Pack writes the experiment folder dir to w as a ZIP, by the rules an
// upload is checked by: every regular file under dir, with manifest.json
// at the archive's root, except hidden files and folders, Go sources
// (*.go, go.mod, go.sum: a Go actor is uploaded as its built actor.wasm)
// and the files Open drops anyway (__MACOSX/, .DS_Store, __pycache__/,
// *.pyc). Names Open would refuse are refused here, before anything is
// sent. Entries are sorted, deflated, with a fixed time and mode, so the
// same files always give the same bytes.
func Pack(w io.Writer, dir string) (Packed, error) {
	var p Packed
	files := map[string]string{} // name in the archive → path on disk
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		base := d.Name()
		skip := strings.HasPrefix(base, ".") || isPlatformFile(name)
		if !d.IsDir() && (strings.HasSuffix(base, ".go") || base == "go.mod" || base == "go.sum") {
			skip = true
		}
		if skip {
			if d.IsDir() {
				p.Skipped = append(p.Skipped, name+"/")
				return filepath.SkipDir
			}
			p.Skipped = append(p.Skipped, name)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return apierr.New(apierr.CodeBundleUnsafePath, "%s is not a regular file (links and devices are not packed)", name)
		}
		norm, _, aerr := normaliseName(name)
		if aerr != nil {
			return aerr
		}
		files[norm] = path
		return nil
	})
	if err != nil {
		return Packed{}, fmt.Errorf("read the folder: %w", err)
	}
	if _, ok := files["manifest.json"]; !ok {
		return Packed{}, apierr.New(apierr.CodeManifestMissing, "%s has no manifest.json at its top", dir)
	}
	p.Files = make([]string, 0, len(files))
	for n := range files {
		p.Files = append(p.Files, n)
	}
	slices.Sort(p.Files)
	zw := zip.NewWriter(w)
	for _, name := range p.Files {
		if err := packFile(zw, name, files[name]); err != nil {
			return Packed{}, fmt.Errorf("pack %s: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return Packed{}, fmt.Errorf("finish the archive: %w", err)
	}
	return p, nil
}

func packFile(zw *zip.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: packStamp}
	h.SetMode(0o644)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
