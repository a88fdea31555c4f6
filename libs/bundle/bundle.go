// Package bundle checks an uploaded experiment ZIP strictly and normalises it.
//
// Open reads the archive's central directory and refuses, each with its own
// apierr code and nothing unpacked, whatever could hurt the platform or mean
// different things to different unpackers: archives that are not ZIPs or are
// cut short, too large, with too many entries or too much unpacked data,
// zip bombs, unsafe or ambiguous names, links and devices, and a missing or
// invalid manifest.json. Normalise then writes the accepted files as a new,
// deterministic ZIP, enforcing every declared size again as it unpacks, so
// that the same content always gives the same bytes and checksum.
//
// Bundles come in three layouts: files at the archive's root, under
// experiments/{slug}/ as the Python platform exported them, or under one
// top-level folder (with {folder}/manifest.json) as a desktop compresses a
// folder. Files that
// operating systems and the Python platform leave in archives (__MACOSX/,
// .DS_Store, __pycache__/, *.pyc) are dropped, and so is the wrapper of an
// export, everything outside experiments/{slug}/; Bundle.Dropped lists them.
package bundle

//go:generate cp ../../schemas/manifest.schema.json manifest.schema.json

import (
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Limits bound what Open and Normalise accept. A zero field takes its value
// from DefaultLimits of MaxUpload (itself 100 MiB when zero).
type Limits struct {
	// MaxUpload is the largest archive accepted, in bytes.
	MaxUpload int64
	// MaxUnpacked bounds the sum of the entries' unpacked sizes, in bytes.
	MaxUnpacked int64
	// MaxEntries bounds the number of entries, directories included.
	MaxEntries int
	// MaxRatio is the largest unpacked-to-packed size ratio of an entry
	// larger than RatioFloor; above it the archive is taken for a zip bomb.
	MaxRatio float64
	// RatioFloor exempts entries up to this unpacked size from MaxRatio, so
	// that small, very compressible text files are accepted.
	RatioFloor int64
}

// Defaults of the limits.
const (
	DefaultMaxUpload  = 100 << 20
	DefaultMaxEntries = 10_000
	DefaultMaxRatio   = 100
	DefaultRatioFloor = 1 << 20
	// UnpackedFactor is MaxUnpacked over MaxUpload by default.
	UnpackedFactor = 10
	// MaxManifestSize bounds manifest.json, the only entry read into memory.
	MaxManifestSize = 256 << 10
)

// DefaultLimits are the limits for uploads of at most maxUploadBytes.
func DefaultLimits(maxUploadBytes int64) Limits {
	if maxUploadBytes <= 0 {
		maxUploadBytes = DefaultMaxUpload
	}
	return Limits{
		MaxUpload:   maxUploadBytes,
		MaxUnpacked: UnpackedFactor * maxUploadBytes,
		MaxEntries:  DefaultMaxEntries,
		MaxRatio:    DefaultMaxRatio,
		RatioFloor:  DefaultRatioFloor,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits(l.MaxUpload)
	if l.MaxUpload <= 0 {
		l.MaxUpload = d.MaxUpload
	}
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = d.MaxUnpacked
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.RatioFloor <= 0 {
		l.RatioFloor = d.RatioFloor
	}
	return l
}

// Layout is where the experiment's files sit in the archive.
type Layout string

const (
	// LayoutRoot: manifest.json and the other files at the archive's root.
	LayoutRoot Layout = "root"
	// LayoutExport: the files under experiments/{slug}/, as the Python
	// platform exported them; everything else is the export's wrapper.
	LayoutExport Layout = "export"
	// LayoutFolder: every file under one top-level folder, as a desktop's
	// "Compress" makes it; a manifest without a slug takes the folder's name.
	LayoutFolder Layout = "folder"
)

// File is one file of the bundle.
type File struct {
	// Path is relative to the bundle's root, in normal form: components
	// separated by single slashes, no "." or "..", no leading slash.
	Path string
	// Size is the unpacked size the archive declares, which Normalise enforces.
	Size int64
	// Mode is the permission bits the archive records for the entry (0644
	// when it records none). Normalise writes every file as 0644, so that the
	// output depends on names and content only.
	Mode fs.FileMode
}

// Warning is something accepted that the uploader should know about.
type Warning struct {
	// Field is the JSON pointer of the manifest field concerned.
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Bundle is an archive that passed every check of Open.
type Bundle struct {
	// Manifest is manifest.json, validated, with defaults applied.
	Manifest *Manifest
	// RawManifest is manifest.json as uploaded (without a byte order mark).
	RawManifest []byte
	// Warnings are about accepted manifest fields the platform ignores.
	Warnings []Warning
	// Layout is where the files were found.
	Layout Layout
	// Files are the bundle's regular files, sorted by Path.
	Files []File
	// Dropped are the names, as the archive has them, of the files left out
	// as platform files or as an export's wrapper. Directory entries are
	// always left out and not listed.
	Dropped []string

	r       io.ReaderAt
	lim     Limits
	slugDir string   // {slug} of experiments/{slug}/ in LayoutExport, the folder in LayoutFolder
	entries []*entry // the files, in the order of Files
}

// Open checks the archive of size bytes that r reads and returns its bundle.
// It reads the central directory, the local headers and manifest.json only;
// the files are unpacked by Normalise. r must stay readable until Normalise
// returns. Every refusal is an *apierr.Error with a code of its own; other
// errors come from r.
func Open(r io.ReaderAt, size int64, lim Limits) (*Bundle, error) {
	lim = lim.withDefaults()
	switch {
	case size > lim.MaxUpload:
		return nil, apierr.New(apierr.CodeBundleTooLarge, "the archive is %d bytes, over the limit of %d", size, lim.MaxUpload)
	case size <= 0:
		return nil, apierr.New(apierr.CodeBundleNotZip, "the upload is empty")
	}
	dir, err := findDirectory(r, size, lim)
	if err != nil {
		return nil, err
	}
	entries, err := readDirectory(r, dir, lim)
	if err != nil {
		return nil, err
	}
	if err := readLocalHeaders(r, entries, dir.offset); err != nil {
		return nil, err
	}

	b := &Bundle{r: r, lim: lim}
	kept, err := b.selectFiles(entries)
	if err != nil {
		return nil, err
	}
	manifest := kept["manifest.json"]
	if manifest.usize > MaxManifestSize {
		return nil, apierr.New(apierr.CodeManifestTooLarge, "manifest.json is %d bytes, over the limit of %d", manifest.usize, MaxManifestSize)
	}
	raw, err := io.ReadAll(openEntry(r, manifest))
	if err != nil {
		return nil, err
	}
	if b.Layout == LayoutFolder {
		if raw, err = slugFromFolder(raw, b.slugDir); err != nil {
			return nil, err
		}
	}
	b.Manifest, b.RawManifest, b.Warnings, err = parseManifest(raw)
	if err != nil {
		return nil, err
	}
	if b.Layout == LayoutExport {
		if b.Manifest.Slug != b.slugDir {
			return nil, apierr.New(apierr.CodeManifestSlugMismatch, "manifest.json names the slug %q but sits in experiments/%s/", b.Manifest.Slug, b.slugDir).OnField("/slug")
		}
	}
	if a := b.Manifest.Actor; a != nil && a.Script == "" {
		if _, ok := kept[a.Module]; !ok {
			return nil, apierr.New(apierr.CodeActorModuleMissing, "the actor module %q that manifest.json declares is not in the bundle", a.Module).OnField("/actor/module")
		}
	}
	if a := b.Manifest.Actor; a != nil && a.Script != "" {
		if err := checkScript(r, kept, a.Script); err != nil {
			return nil, err
		}
	}

	paths := make([]string, 0, len(kept))
	for p := range kept {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		e := kept[p]
		b.entries = append(b.entries, e)
		size := int64(e.usize)
		if p == "manifest.json" {
			size = int64(len(b.RawManifest))
		}
		b.Files = append(b.Files, File{Path: p, Size: size, Mode: e.mode})
	}
	if w, ok := pythonWarning(b.Files, b.Manifest.Actor != nil); ok {
		b.Warnings = append(b.Warnings, w)
	}
	return b, nil
}

// selectFiles drops platform files and directories, refuses names that
// collide, finds the layout, and returns the bundle's files by their path
// relative to the bundle's root.
func (b *Bundle) selectFiles(entries []entry) (map[string]*entry, error) {
	files := make(map[string]*entry, len(entries))
	// dirs maps a directory's path to an entry that makes it one. With a
	// directory, its parents are in too, so a walk up can stop at the first
	// one known.
	dirs := map[string]string{}
	addDirs := func(p, raw string) {
		for p != "" {
			if _, ok := dirs[p]; ok {
				return
			}
			dirs[p] = raw
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				return
			}
			p = p[:i]
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.dir {
			if !isPlatformFile(e.path) {
				addDirs(e.path, e.raw)
			}
			continue
		}
		if isPlatformFile(e.path) {
			b.Dropped = append(b.Dropped, e.raw)
			continue
		}
		if other, ok := files[e.path]; ok {
			return nil, apierr.New(apierr.CodeBundleDuplicateName, "entries %q and %q are the same file %q", other.raw, e.raw, e.path)
		}
		files[e.path] = e
		if i := strings.LastIndexByte(e.path, '/'); i >= 0 {
			addDirs(e.path[:i], e.raw)
		}
	}
	for i := range entries {
		e := &entries[i]
		if raw, ok := dirs[e.path]; ok && files[e.path] == e {
			return nil, apierr.New(apierr.CodeBundleDuplicateName, "%q is both a file (entry %q) and a directory (entry %q)", e.path, e.raw, raw)
		}
	}

	if _, ok := files["manifest.json"]; ok {
		b.Layout = LayoutRoot
		return files, nil
	}
	var slugs, elsewhere []string
	for p := range files {
		parts := strings.Split(p, "/")
		if parts[len(parts)-1] != "manifest.json" {
			continue
		}
		if len(parts) == 3 && parts[0] == "experiments" {
			slugs = append(slugs, parts[1])
		} else {
			elsewhere = append(elsewhere, p)
		}
	}
	sort.Strings(slugs)
	sort.Strings(elsewhere)
	if len(slugs) == 0 {
		if folder, ok := oneFolder(files); ok {
			b.Layout, b.slugDir = LayoutFolder, folder
			kept := make(map[string]*entry, len(files))
			for p, e := range files {
				kept[strings.TrimPrefix(p, folder+"/")] = e
			}
			return kept, nil
		}
	}
	switch {
	case len(slugs) == 0 && len(elsewhere) == 0:
		return nil, apierr.New(apierr.CodeManifestMissing, "the bundle has no manifest.json at its root or at experiments/{slug}/manifest.json")
	case len(slugs) == 0:
		return nil, apierr.New(apierr.CodeManifestMissing, "manifest.json must be at the archive's root or at experiments/{slug}/manifest.json, not at %q", elsewhere[0])
	case len(slugs) > 1:
		return nil, apierr.New(apierr.CodeBundleAmbiguousLayout, "the archive has no manifest.json at its root and several under experiments/ (%s): upload one experiment at a time", strings.Join(slugs, ", "))
	}
	b.Layout, b.slugDir = LayoutExport, slugs[0]
	prefix := "experiments/" + slugs[0] + "/"
	kept := make(map[string]*entry, len(files))
	for i := range entries {
		e := &entries[i]
		if _, ok := files[e.path]; !ok || files[e.path] != e {
			continue
		}
		if rel, ok := strings.CutPrefix(e.path, prefix); ok {
			kept[rel] = e
		} else {
			b.Dropped = append(b.Dropped, e.raw)
		}
	}
	return kept, nil
}
