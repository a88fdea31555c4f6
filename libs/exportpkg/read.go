package exportpkg

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/jsondepth"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// Limits of what Open reads.
const (
	// MaxMetaSize bounds export.json.
	MaxMetaSize = 4 << 20
	// MaxConfigSize bounds config.json.
	MaxConfigSize = 16 << 20
	// MaxLineSize bounds one line of a data file: a document of the store's
	// largest (16 MiB of BSON) in Extended JSON, with room for escapes.
	MaxLineSize = 128 << 20
	// MaxDepth bounds the nesting of a document line; the store nests
	// documents up to 100 levels, and Extended JSON wraps values in up to
	// two more.
	MaxDepth = 200
	// MaxUnpacked bounds what a package unpacks to, data included.
	MaxUnpacked = 1 << 40
)

// readLimits are the bundle limits a package is opened with: its own size,
// however large, since it is the operator's file and not an upload; room
// for the data files besides a bundle's entries; and no ratio test, since
// data dumps compress far better than web files (bundle normalisation
// enforces every entry's declared size, and data is read as a stream).
func readLimits(size int64) bundle.Limits {
	return bundle.Limits{
		MaxUpload:   size,
		MaxUnpacked: MaxUnpacked,
		MaxEntries:  bundle.DefaultMaxEntries + MaxCollections + 16,
		MaxRatio:    math.MaxFloat64,
	}
}

// Package is an export package opened for reading.
type Package struct {
	// Meta is .gnome/export.json, checked.
	Meta Meta
	// Config is the experiment's experiments_config record as exported; nil
	// for upload-ready packages.
	Config *experiments.Config
	// Bundle is the experiment's files, checked as an upload is: its
	// Normalise writes the bundle as the platform stores it.
	Bundle *bundle.Bundle

	data  dataSource
	close func() error
}

// dataSource opens a package's data files.
type dataSource interface {
	open(name string) (io.ReadCloser, error)
}

// Open reads the package of size bytes that r reads: the archive is checked
// whole as an upload is (names, sizes, links, overlaps; see libs/bundle),
// then its description and configuration are read and checked. r must stay
// readable while the Package is used. Refusals wrap ErrInvalidPackage (and
// the bundle's own, their *apierr.Error); other errors come from r.
func Open(r io.ReaderAt, size int64) (*Package, error) {
	p, files, err := openArchive(r, size)
	if err != nil {
		return nil, err
	}
	data := zipData(files)
	for _, name := range p.dataFiles() {
		if data[name] == nil {
			return nil, invalid("export.json lists %s, which is not in the package", name)
		}
	}
	p.data, p.close = data, func() error { return nil }
	return p, nil
}

// OpenDir reads a package unpacked into dir, as the docker package's image
// holds it. The bundle and description are packed again into a temporary
// ZIP (stored, not compressed) so that they are checked exactly as Open
// checks them; the data files are read from dir as they are. Links and
// other special files are refused. Close removes the temporary file.
func OpenDir(dir string) (*Package, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open package directory: %w", err)
	}
	tmp, err := os.CreateTemp("", "gnome-package-*.zip")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("open package directory: %w", err)
	}
	cleanup := func() error {
		return errors.Join(tmp.Close(), os.Remove(tmp.Name()), root.Close())
	}
	p, err := openDir(root, tmp)
	if err != nil {
		cleanup()
		if !errors.Is(err, ErrInvalidPackage) {
			err = fmt.Errorf("open package directory: %w", err)
		}
		return nil, err
	}
	p.close = cleanup
	return p, nil
}

func openDir(root *os.Root, tmp *os.File) (*Package, error) {
	if err := packDir(root, tmp); err != nil {
		return nil, err
	}
	st, err := tmp.Stat()
	if err != nil {
		return nil, err
	}
	p, _, err := openArchive(tmp, st.Size())
	if err != nil {
		return nil, err
	}
	for _, name := range p.dataFiles() {
		fi, err := root.Lstat(filepath.FromSlash(name))
		if err != nil || !fi.Mode().IsRegular() {
			return nil, invalid("export.json lists %s, which is not a file in the directory", name)
		}
	}
	p.data = dirData{root}
	return p, nil
}

// packDir writes every regular file of root but the data into w as a ZIP.
func packDir(root *os.Root, w io.Writer) error {
	zw := zip.NewWriter(w)
	max, n := readLimits(0).MaxEntries, 0
	err := fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path+"/" == DataDir:
			return fs.SkipDir
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return invalid("%s is not a regular file", path)
		}
		if n++; n > max {
			return invalid("the directory holds more than %d files", max)
		}
		f, err := root.Open(filepath.FromSlash(path))
		if err != nil {
			return err
		}
		defer f.Close()
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: path, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, f)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

// dataFiles are the entries export.json lists: data, accounts, keys,
// links and runs.
func (p *Package) dataFiles() []string {
	var names []string
	for _, c := range p.Meta.Collections {
		names = append(names, c.File)
	}
	for _, e := range []*Extra{p.Meta.Accounts, p.Meta.KV, p.Meta.Links, p.Meta.Runs} {
		if e != nil {
			names = append(names, e.File)
		}
	}
	return names
}

// Close releases what the package holds; the Package is not usable after.
func (p *Package) Close() error { return p.close() }

// openArchive checks the archive and reads its description and configuration;
// files are its entries under .gnome/.
func openArchive(r io.ReaderAt, size int64) (*Package, map[string]*zip.File, error) {
	b, err := bundle.Open(r, size, readLimits(size))
	var refusal *apierr.Error
	switch {
	case errors.As(err, &refusal):
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidPackage, err)
	case err != nil:
		return nil, nil, fmt.Errorf("read package: %w", err)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, nil, invalid("%v", err)
	}
	// The bundle checks its own files for duplicates, not the ones it drops.
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, bundle.PlatformDir+"/") {
			continue
		}
		if files[f.Name] != nil {
			return nil, nil, invalid("%s is in the package twice", f.Name)
		}
		files[f.Name] = f
	}

	p := &Package{Bundle: b}
	raw, err := readSmall(files, MetaFile, MaxMetaSize)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &p.Meta); err != nil {
		return nil, nil, invalid("export.json: %v", err)
	}
	if err := p.Meta.check(); err != nil {
		return nil, nil, err
	}
	m := &p.Meta
	switch {
	case b.Manifest.Slug != m.Slug:
		return nil, nil, invalid("export.json is of experiment %q but manifest.json of %q", m.Slug, b.Manifest.Slug)
	case (b.Layout == bundle.LayoutRoot) != (m.Type == exportapi.UploadReady):
		return nil, nil, invalid("a %s package with its files in the %s layout", m.Type, b.Layout)
	case len(b.Files) != m.Files:
		return nil, nil, invalid("export.json counts %d files, the bundle has %d", m.Files, len(b.Files))
	}
	if m.Type.HasData() {
		raw, err := readSmall(files, ConfigFile, MaxConfigSize)
		if err != nil {
			return nil, nil, err
		}
		var cfg experiments.Config
		if err := checkJSON(raw); err != nil {
			return nil, nil, invalid("config.json: %v", err)
		}
		if err := bson.UnmarshalExtJSON(raw, false, &cfg); err != nil {
			return nil, nil, invalid("config.json: %v", err)
		}
		if cfg.Slug != m.Slug {
			return nil, nil, invalid("config.json is of experiment %q, not %q", cfg.Slug, m.Slug)
		}
		p.Config = &cfg
	}
	return p, files, nil
}

// readSmall reads a description file whole, within max bytes.
func readSmall(files map[string]*zip.File, name string, max int64) ([]byte, error) {
	f := files[name]
	if f == nil {
		return nil, invalid("no %s: not an export package", name)
	}
	if f.UncompressedSize64 > uint64(max) {
		return nil, invalid("%s is %d bytes, over the limit of %d", f.Name, f.UncompressedSize64, max)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, invalid("%s: %v", f.Name, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, invalid("%s: %v", f.Name, err)
	}
	return raw, nil
}

// Collections are the package's data files, by name.
func (p *Package) Collections() []Collection { return p.Meta.Collections }

// ReadCollection calls fn with each document of the base collection name,
// in the order of the data file, and stops at fn's first error, which it
// returns as is. A line that is not one Extended JSON document, a document
// without _id or of another experiment, and a file whose document count or
// SHA-256 differ from export.json's stop it with ErrInvalidPackage; fn may
// have seen documents before.
func (p *Package) ReadCollection(name string, fn func(doc bson.D) error) error {
	var c *Collection
	for i := range p.Meta.Collections {
		if p.Meta.Collections[i].Name == name {
			c = &p.Meta.Collections[i]
			break
		}
	}
	if c == nil {
		return fmt.Errorf("the package has no collection %q", name)
	}
	rc, err := p.data.open(c.File)
	if err != nil {
		return invalid("%s: %v", c.File, err)
	}
	defer rc.Close()
	sum := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(rc, sum), 64<<10)
	var (
		n    int64
		line []byte
	)
	for lineNo := 1; ; lineNo++ {
		line, err = readLine(br, line[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("%s line %d: %v", c.File, lineNo, err)
		}
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			continue
		}
		if n == c.Documents {
			return invalid("%s holds more than the %d documents export.json counts", c.File, c.Documents)
		}
		doc, err := p.decode(text)
		if err != nil {
			return invalid("%s line %d: %v", c.File, lineNo, err)
		}
		if err := fn(doc); err != nil {
			return err
		}
		n++
		if cap(line) > 1<<20 {
			line = nil // keep no huge buffer for the small lines after
		}
	}
	if n != c.Documents {
		return invalid("%s holds %d documents, export.json counts %d", c.File, n, c.Documents)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != c.SHA256 {
		return invalid("%s has SHA-256 %s, export.json says %s", c.File, got, c.SHA256)
	}
	return nil
}

// readLine appends the next line of br, newline included, to buf; a last
// line may lack the newline. It refuses lines over MaxLineSize.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineSize {
			return nil, fmt.Errorf("a line is longer than %d bytes", MaxLineSize)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// decode reads one line as a document of the package's experiment.
func (p *Package) decode(line []byte) (bson.D, error) {
	if err := checkJSON(line); err != nil {
		return nil, err
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON(line, false, &d); err != nil {
		return nil, fmt.Errorf("not an Extended JSON document: %w", err)
	}
	var (
		ids, owners int
		owner       any
	)
	for _, e := range d {
		switch e.Key {
		case "_id":
			ids++
		case scoped.Field:
			owners++
			owner = e.Value
		}
	}
	if ids != 1 || owners > 1 {
		return nil, fmt.Errorf("a document with %d fields _id and %d fields %s, not one of each", ids, owners, scoped.Field)
	}
	if s, ok := owner.(string); !ok || s != p.Meta.Slug {
		return nil, fmt.Errorf("a document whose %s is %v, not %q", scoped.Field, owner, p.Meta.Slug)
	}
	return d, nil
}

// checkJSON makes sure data is one JSON object nested at most MaxDepth
// deep before the Extended JSON decoder, which recurses, reads it.
func checkJSON(data []byte) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	if jsondepth.Exceeds(data, MaxDepth) {
		return fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	if !json.Valid(data) {
		return errors.New("not valid JSON")
	}
	return nil
}

type zipData map[string]*zip.File

func (z zipData) open(name string) (io.ReadCloser, error) {
	f := z[name]
	if f == nil {
		return nil, fs.ErrNotExist
	}
	return f.Open()
}

type dirData struct{ root *os.Root }

func (d dirData) open(name string) (io.ReadCloser, error) {
	return d.root.Open(filepath.FromSlash(name))
}
