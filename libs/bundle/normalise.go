package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Summary describes a normalised bundle.
type Summary struct {
	// Checksum is the hex SHA-256 of the normalised ZIP: the bundle's
	// content address.
	Checksum string
	// Size is the normalised ZIP's size in bytes.
	Size int64
	// Files are the bundle's files, sorted by Path.
	Files []FileInfo
}

// FileInfo is one file of a normalised bundle.
type FileInfo struct {
	Path   string
	Size   int64
	SHA256 string // hex
}

// epoch is the modification time of every normalised file, so that the
// output depends on names and content only.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// storedExt are formats that are compressed already; deflating them again
// costs time and gains nothing.
var storedExt = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true, ".avif": true,
	".woff": true, ".woff2": true,
	".mp3": true, ".mp4": true, ".m4a": true, ".webm": true, ".ogg": true, ".oga": true, ".ogv": true, ".opus": true,
	".zip": true, ".gz": true, ".tgz": true, ".br": true, ".zst": true, ".xz": true, ".bz2": true, ".7z": true,
}

// method is the compression of a file in the normalised ZIP; it depends on
// the name only, so that it is the same on every run.
func method(p string) uint16 {
	if storedExt[strings.ToLower(path.Ext(p))] {
		return zip.Store
	}
	return zip.Deflate
}

// Normalise writes the bundle to w as a deterministic ZIP: the files of
// Files, at the root, sorted by path, each with the same modification time
// and mode, compressed by a rule of their names. It unpacks each entry with
// its declared size enforced, so an entry that unpacks to more (or less) than
// it declares, or a total over Limits.MaxUnpacked, stops it with the matching
// *apierr.Error; w then holds a partial ZIP to be thrown away. The same
// content gives the same bytes on every run, and Summary.Checksum addresses
// it. Normalise may be called more than once.
func (b *Bundle) Normalise(w io.Writer) (Summary, error) {
	out := &countingWriter{w: w}
	sum := sha256.New()
	zw := zip.NewWriter(io.MultiWriter(out, sum))
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.DefaultCompression)
	})
	s := Summary{Files: make([]FileInfo, 0, len(b.Files))}
	buf := make([]byte, 32<<10)
	var total int64
	for i, f := range b.Files {
		e := b.entries[i]
		h := &zip.FileHeader{Name: f.Path, Method: method(f.Path), Modified: epoch}
		h.SetMode(0o644)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return Summary{}, fmt.Errorf("normalise bundle: %w", err)
		}
		var src io.Reader = openEntry(b.r, e)
		if f.Path == "manifest.json" {
			// Checked and in memory already, without a byte order mark.
			src = bytes.NewReader(b.RawManifest)
		}
		fileSum := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(fw, fileSum), src, buf)
		if err != nil {
			var ae *apierr.Error
			if errors.As(err, &ae) {
				return Summary{}, ae
			}
			return Summary{}, fmt.Errorf("normalise bundle: %w", err)
		}
		total += n
		if total > b.lim.MaxUnpacked {
			return Summary{}, apierr.New(apierr.CodeBundleUnpackedTooLarge, "the archive's entries unpack to more than the limit of %d bytes (reached at entry %q)", b.lim.MaxUnpacked, e.raw)
		}
		s.Files = append(s.Files, FileInfo{Path: f.Path, Size: n, SHA256: hex.EncodeToString(fileSum.Sum(nil))})
	}
	if err := zw.Close(); err != nil {
		return Summary{}, fmt.Errorf("normalise bundle: %w", err)
	}
	s.Checksum = hex.EncodeToString(sum.Sum(nil))
	s.Size = out.n
	return s, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
