package actorworker

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorhost"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// spec is what an actor runs: one experiment version's module, limits,
// config and data scope.
type spec struct {
	slug     string
	version  int
	checksum string
	seq      int64
	actor    bundle.Actor
	scope    []string
	limits   actorhost.Limits
	// instances is how many instances serve the actor (instances.go).
	instances int
	// key changes exactly when the running actor must be replaced: another
	// bundle, or another actor field or data scope in the manifest.
	key string
	// script is a JavaScript actor's scripts, set on the copy of the spec
	// that compile returns (jsactor.go); nil otherwise.
	script *actorhost.Script
}

// specOf is the actor cfg should run, or nil when it should run none: the
// experiment is not active or declares no actor.
func specOf(cfg *experiments.Config) *spec {
	if cfg == nil || cfg.Status != experiments.StatusActive {
		return nil
	}
	m, _, err := bundle.ParseManifest([]byte(cfg.Manifest))
	if err != nil || m.Actor == nil {
		return nil
	}
	a := *m.Actor
	limits := actorhost.Limits{MemoryMB: a.MemoryMB, Timeout: time.Duration(a.TimeoutMS) * time.Millisecond}.Normalize()
	// The number of instances is not part of the key: changing it alone
	// starts or stops instances, and leaves the others running.
	keyed := a
	keyed.Instances = 0
	key, _ := json.Marshal([]any{cfg.Checksum, keyed, m.DataScope})
	return &spec{
		slug: cfg.Slug, version: cfg.Version, checksum: cfg.Checksum, seq: cfg.Seq,
		actor: a, scope: m.DataScope, limits: limits, instances: a.InstanceCount(), key: string(key),
	}
}

// loadError is a start failure no retry can mend: only another version or
// manifest can.
type loadError struct{ err error }

func (e loadError) Error() string { return e.err.Error() }
func (e loadError) Unwrap() error { return e.err }

func permanent(format string, args ...any) error { return loadError{fmt.Errorf(format, args...)} }

func isPermanent(err error) bool { var le loadError; return errors.As(err, &le) }

// compile fetches sp's module from its bundle and compiles it. It returns
// the spec to run: sp, or for a JavaScript actor a copy of sp with its
// scripts (sp may be shared by the actor's instances, and is not changed).
func (s *Service) compile(ctx context.Context, sp *spec) (*actorhost.Module, *spec, error) {
	if sp.actor.Script != "" {
		return s.compileScript(ctx, sp) // the shared JavaScript runtime (jsactor.go)
	}
	wasm, err := s.moduleOf(ctx, sp) // through the module cache (idlemodules.go)
	if err != nil {
		return nil, nil, err
	}
	t := time.Now()
	m, err := s.engine.Compile(ctx, wasm, sp.limits)
	s.metrics.compile.Observe(time.Since(t).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, err
		}
		return nil, nil, permanent("%w", err)
	}
	return m, sp, nil
}

// fetchModule reads the actor's code out of the version's bundle, checking
// the bundle against its checksum: the module, or a JavaScript actor's
// scripts (jsactor.go).
func (s *Service) fetchModule(ctx context.Context, sp *spec) ([]byte, error) {
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	f, err := os.CreateTemp(s.tmpDir, "actor-bundle-*.zip")
	if err != nil {
		return nil, fmt.Errorf("create work file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// The version's event may arrive before a replica holds its bundle:
	// read through the store's leader, or a missing bundle would fail the
	// actor for good.
	_, err = bus.Objects{JS: s.d.JS, Bucket: bus.ObjectBundles}.Read(ctx, experiments.BundleObject(sp.slug, sp.checksum), f, 0)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, permanent("the bundle of version %d is not in the object store", sp.version)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch bundle of %s: %w", sp.slug, err)
	}
	h := sha256.New()
	var size int64
	if _, err = f.Seek(0, io.SeekStart); err == nil {
		size, err = io.Copy(h, f)
	}
	if err != nil {
		return nil, fmt.Errorf("read bundle of %s: %w", sp.slug, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sp.checksum {
		return nil, fmt.Errorf("bundle of %s arrived with checksum %s, want %s", sp.slug, got, sp.checksum)
	}
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, permanent("open bundle: %w", err)
	}
	if sp.actor.Script != "" {
		return s.scriptsIn(zr, sp)
	}
	name := path.Clean(sp.actor.Module)
	for _, zf := range zr.File {
		if zf.Name != name {
			continue
		}
		if zf.UncompressedSize64 > uint64(s.tune.MaxModule) {
			return nil, permanent("module %s is %d bytes, over the limit of %d", name, zf.UncompressedSize64, s.tune.MaxModule)
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, permanent("open module %s: %w", name, err)
		}
		defer rc.Close()
		wasm, err := io.ReadAll(io.LimitReader(rc, s.tune.MaxModule+1))
		if err != nil {
			return nil, permanent("read module %s: %w", name, err)
		}
		if int64(len(wasm)) > s.tune.MaxModule {
			return nil, permanent("module %s is over the limit of %d bytes", name, s.tune.MaxModule)
		}
		return wasm, nil
	}
	return nil, permanent("module %s is not in the bundle", name)
}
