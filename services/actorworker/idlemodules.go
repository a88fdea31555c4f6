package actorworker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The module cache: each version's module, as read out of its bundle, kept
// on disk under DATA_DIR/cache/modules, so that starting an actor again (an
// idle one woken by a call above all) reads one file instead of fetching
// the bundle from the object store, checking it and unzipping the module:
// that is tens of milliseconds of a start that should take under 100. The
// compiled code is in the compilation cache beside it.
//
// A file is named after the bundle's checksum (which covers the manifest,
// and so which module it names) and holds the module's SHA-256 before the
// module (for a JavaScript actor, its scripts as JSON: jsactor.go): a file that does not match, torn or damaged, is ignored and
// replaced. Files go when their actor is retired or replaced by another
// version here, and, left by a worker that stopped before, once unused for
// moduleCacheAge.

// moduleCacheAge is how long a cached module no actor used is kept.
const moduleCacheAge = 7 * 24 * time.Hour

func (s *Service) moduleCacheDir() string {
	return filepath.Join(s.d.Config.DataDir, "cache", "modules")
}

func (s *Service) moduleCachePath(sp *spec) string {
	return filepath.Join(s.moduleCacheDir(), sp.checksum+".wasm")
}

// moduleOf is sp's module: from the module cache, or fetched from its
// bundle and kept there.
func (s *Service) moduleOf(ctx context.Context, sp *spec) ([]byte, error) {
	path := s.moduleCachePath(sp)
	if b, err := os.ReadFile(path); err == nil && len(b) > sha256.Size {
		sum := sha256.Sum256(b[sha256.Size:])
		if bytes.Equal(sum[:], b[:sha256.Size]) {
			now := time.Now()
			_ = os.Chtimes(path, now, now) // in use: not to be swept
			return b[sha256.Size:], nil
		}
	}
	wasm, err := s.fetchModule(ctx, sp)
	if err != nil {
		return nil, err
	}
	// Written beside the start, which need not wait for it; wasm is never
	// changed after this.
	go func() {
		if err := s.keepModule(path, wasm); err != nil {
			// The next start fetches it again; nothing else is lost.
			s.d.Log.Warn("keep actor module in the cache failed", "slug", sp.slug, "err", err)
		}
	}()
	return wasm, nil
}

// keepModule writes wasm, behind its SHA-256, to path, whole or not at all.
func (s *Service) keepModule(path string, wasm []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".module-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, there is nothing left to remove
	sum := sha256.Sum256(wasm)
	_, err = f.Write(sum[:])
	if err == nil {
		_, err = f.Write(wasm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// dropModule removes sp's module from the cache: its actor no longer runs
// that version here.
func (s *Service) dropModule(sp *spec) {
	if sp == nil {
		return
	}
	if err := os.Remove(s.moduleCachePath(sp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.d.Log.Warn("remove cached actor module failed", "slug", sp.slug, "err", err)
	}
}

// sweepModules removes cached modules unused for moduleCacheAge, and
// files a write left half done.
func (s *Service) sweepModules() {
	entries, err := os.ReadDir(s.moduleCacheDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || e.IsDir() {
			continue
		}
		stale := time.Since(info.ModTime()) > moduleCacheAge
		torn := strings.HasPrefix(e.Name(), ".module-") && time.Since(info.ModTime()) > time.Hour
		if stale || torn {
			_ = os.Remove(filepath.Join(s.moduleCacheDir(), e.Name()))
		}
	}
}
