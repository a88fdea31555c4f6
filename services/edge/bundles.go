package edge

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// Static serving keeps each bundle served by this instance on local disk,
// fetched once from the object store by its checksum, with its files
// indexed: small files in memory with their compressed forms made once,
// larger ones on disk. Any instance can serve any experiment; a new version
// is a new checksum, so nothing is ever stale.
const (
	memFileMax     = 1 << 20   // files up to this size are kept in memory
	cacheBudget    = 256 << 20 // bytes of files kept in memory over all bundles
	precompressMin = httpx.CompressMinBytes
)

type staticFile struct {
	size     int64
	etag     string // strong, quoted, from the content's SHA-256
	ctype    string
	data     []byte // nil for files kept on disk
	br, gz   []byte // compressed forms, when worth it
	diskPath string
}

type loadedBundle struct {
	files   map[string]*staticFile
	bytes   int64
	dir     string
	lastUse atomic.Int64
}

type bundleCache struct {
	dir string
	// objs reads through the store's leader: the edge loads a version the
	// moment its event arrives, when a replica may not hold it yet.
	objs bus.Objects
	log  *slog.Logger
	mu   sync.Mutex
	m    map[string]*loadedBundle
	busy map[string]chan struct{} // checksums being loaded
	used int64
}

func newBundleCache(dir string, objs bus.Objects, log *slog.Logger) (*bundleCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle cache: %w", err)
	}
	return &bundleCache{dir: dir, objs: objs, log: log, m: map[string]*loadedBundle{}, busy: map[string]chan struct{}{}}, nil
}

// get returns the loaded bundle of the experiment's current version,
// loading it once however many requests ask at the same time.
func (bc *bundleCache) get(ctx context.Context, slug, checksum string) (*loadedBundle, error) {
	for {
		bc.mu.Lock()
		if b, ok := bc.m[checksum]; ok {
			bc.mu.Unlock()
			b.lastUse.Store(time.Now().UnixNano())
			return b, nil
		}
		if wait, ok := bc.busy[checksum]; ok {
			bc.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		bc.busy[checksum] = done
		bc.mu.Unlock()

		b, err := bc.load(ctx, slug, checksum)
		bc.mu.Lock()
		delete(bc.busy, checksum)
		if err == nil {
			bc.m[checksum] = b
			bc.used += b.bytes
			bc.evict(checksum)
		}
		bc.mu.Unlock()
		close(done)
		if err == nil {
			b.lastUse.Store(time.Now().UnixNano())
		}
		return b, err
	}
}

// evict forgets the least recently used bundles past the budget, never keep.
func (bc *bundleCache) evict(keep string) {
	for bc.used > cacheBudget {
		var oldest string
		var at int64
		for k, b := range bc.m {
			if k != keep && (oldest == "" || b.lastUse.Load() < at) {
				oldest, at = k, b.lastUse.Load()
			}
		}
		if oldest == "" {
			return
		}
		b := bc.m[oldest]
		delete(bc.m, oldest)
		bc.used -= b.bytes
		_ = os.RemoveAll(b.dir)
	}
}

func (bc *bundleCache) load(ctx context.Context, slug, checksum string) (*loadedBundle, error) {
	dir := filepath.Join(bc.dir, checksum)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	zipPath := filepath.Join(dir, "bundle.zip")
	f, err := os.Create(zipPath)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = bc.objs.Read(ctx, experiments.BundleObject(slug, checksum), f, 0)
	var n int64
	if err == nil {
		if _, err = f.Seek(0, io.SeekStart); err == nil {
			n, err = io.Copy(h, f)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("fetch bundle %s: %w", checksum, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != checksum {
		return nil, fmt.Errorf("bundle %s arrived with checksum %s", checksum, got)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", checksum, err)
	}
	defer zr.Close()
	b := &loadedBundle{files: map[string]*staticFile{}, dir: dir}
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() {
			continue
		}
		sf, err := loadFile(zf, filepath.Join(dir, "files"))
		if err != nil {
			return nil, fmt.Errorf("unpack %s of bundle %s: %w", zf.Name, checksum, err)
		}
		b.files[zf.Name] = sf
		b.bytes += int64(len(sf.data) + len(sf.br) + len(sf.gz))
	}
	_ = os.Remove(zipPath)
	bc.log.Debug("bundle cached", "slug", slug, "checksum", checksum, "files", len(b.files), "bytes", n)
	return b, nil
}

func loadFile(zf *zip.File, filesDir string) (*staticFile, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sf := &staticFile{size: int64(zf.UncompressedSize64), ctype: contentType(zf.Name)}
	h := sha256.New()
	if sf.size <= memFileMax {
		data, err := io.ReadAll(io.LimitReader(rc, memFileMax+1))
		if err != nil {
			return nil, err
		}
		h.Write(data)
		sf.data, sf.size = data, int64(len(data))
		if len(data) >= precompressMin && compressible(sf.ctype) {
			sf.br, sf.gz = compressBoth(data)
		}
	} else {
		// Names were normalised by the upload service; still, keep the
		// disk path inside the bundle's directory.
		p := filepath.Join(filesDir, filepath.FromSlash(path.Clean("/"+zf.Name)))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		out, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.MultiWriter(out, h), rc)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		sf.size, sf.diskPath = n, p
	}
	sf.etag = `"` + hex.EncodeToString(h.Sum(nil))[:40] + `"`
	return sf, nil
}

func compressBoth(data []byte) (br, gz []byte) {
	var b bytes.Buffer
	w := brotli.NewWriterLevel(&b, 6)
	_, _ = w.Write(data)
	_ = w.Close()
	br = bytes.Clone(b.Bytes())
	b.Reset()
	g, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = g.Write(data)
	_ = g.Close()
	gz = bytes.Clone(b.Bytes())
	// Keep a form only if it saves something.
	if len(br) >= len(data) {
		br = nil
	}
	if len(gz) >= len(data) {
		gz = nil
	}
	return br, gz
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".json": "application/json", ".map": "application/json", ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".wasm": "application/wasm", ".xml": "application/xml", ".csv": "text/csv; charset=utf-8",
	".mp3": "audio/mpeg", ".mp4": "video/mp4", ".webm": "video/webm", ".ogg": "audio/ogg", ".wav": "audio/wav",
	".pdf": "application/pdf", ".zip": "application/zip",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json") ||
		strings.HasPrefix(ct, "image/svg") || strings.HasPrefix(ct, "application/xml") || ct == "application/wasm"
}
