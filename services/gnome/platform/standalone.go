package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// A standalone run (gnome standalone) is Serve with Options.Standalone: the
// platform as `gnome serve` runs it, then, before the edge takes requests,
//
//  1. the package's data is imported (exportpkg.ImportKeepExisting), with
//     the experiment's accounts, its actor's keys and its study links
//     (format 2), once per package: a record in standalone_imports notes
//     the package imported, and a restart with the same package imports
//     nothing, so that what changed since (deletions included) stays as it
//     is;
//  2. the bundle is installed through the normal upload path (staged in
//     the uploads object store, then the upload service's process
//     endpoint), by an admin caller with the owner's email, so the
//     experiment keeps its owner; skipped when that bundle is the current
//     version already;
//  3. on a new install, the exported status and manifest fields (which may
//     have been changed on the platform since the upload) are applied
//     through the update endpoint.
//
// The edge then serves that experiment alone (edge.Service.Only). An
// experiment deleted in a standalone run comes back, data included, at the
// next start.

// StandaloneEnv is the environment of a standalone run: flags (by variable
// name) first, then get, then the standalone defaults: DATA_DIR
// ./data-{slug}, so that a run never mixes into the ./data of gnome serve,
// and the embedded NATS server and store on free loopback ports, so that it
// runs beside a platform on the same machine.
func StandaloneEnv(get config.Getenv, slug string, flags map[string]string) config.Getenv {
	defaults := map[string]string{
		"DATA_DIR":            "./data-" + slug,
		"EMBEDDED_NATS_ADDR":  "127.0.0.1:0",
		"EMBEDDED_STORE_ADDR": "127.0.0.1:0",
	}
	return func(name string) (string, bool) {
		if v, ok := flags[name]; ok {
			return v, true
		}
		if v, ok := get(name); ok && strings.TrimSpace(v) != "" {
			return v, true
		}
		v, ok := defaults[name]
		return v, ok
	}
}

// Package is an export package opened from a path, for a standalone run.
type Package struct {
	*exportpkg.Package
	// Path is where the package was opened from.
	Path string
	file *os.File
}

// OpenPackage opens the export package at path: a ZIP file, or a directory
// it was unpacked into. Only packages with data (standalone and docker)
// run on their own; the errors say what else path is.
func OpenPackage(path string) (*Package, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file or directory; give an export package: a .zip file, or the directory it was unpacked into", path)
	case err != nil:
		return nil, fmt.Errorf("open package: %w", err)
	}
	p := &Package{Path: path}
	if fi.IsDir() {
		p.Package, err = exportpkg.OpenDir(path)
	} else {
		if p.file, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("open package: %w", err)
		}
		p.Package, err = exportpkg.Open(p.file, fi.Size())
	}
	if err != nil {
		if p.file != nil {
			p.file.Close()
		}
		if ae := (*apierr.Error)(nil); errors.As(err, &ae) && ae.Code == apierr.CodeBundleNotZip {
			return nil, fmt.Errorf("%s is not a ZIP archive: give an export package, a .zip file or the directory it was unpacked into", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !p.Meta.Type.HasData() {
		p.Close()
		return nil, fmt.Errorf("%s is an %s package of experiment %q: it holds the experiment's files but not its data or configuration, so it does not run on its own. "+
			"Upload it to a g.nome platform instead (POST /api/experiments, or the admin page of gnome serve), or export the experiment as a standalone package",
			path, p.Meta.Type, p.Meta.Slug)
	}
	return p, nil
}

// Close releases the package.
func (p *Package) Close() error {
	err := p.Package.Close()
	if p.file != nil {
		err = errors.Join(err, p.file.Close())
	}
	return err
}

// stagedBundle is the package's bundle normalised into a work file, as the
// upload service will store it.
type stagedBundle struct {
	path string
	sum  bundle.Summary
}

// stageBundle normalises the bundle under DATA_DIR, and raises
// MAX_UPLOAD_SIZE_MB to fit it: the package is the operator's file, and a
// standalone edge takes no uploads.
func stageBundle(cfg *config.Config, p *Package) (*stagedBundle, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create DATA_DIR: %w", err)
	}
	f, err := os.CreateTemp(cfg.DataDir, ".standalone-bundle-*.zip")
	if err != nil {
		return nil, fmt.Errorf("stage the bundle: %w", err)
	}
	sb := &stagedBundle{path: f.Name()}
	sb.sum, err = p.Bundle.Normalise(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		sb.remove()
		return nil, fmt.Errorf("stage the bundle: %w", err)
	}
	if mb := sb.sum.Size>>20 + 1; mb > cfg.MaxUploadSizeMB {
		cfg.MaxUploadSizeMB = mb
	}
	return sb, nil
}

func (sb *stagedBundle) remove() { _ = os.Remove(sb.path) }

// standaloneRun is what installStandalone found and did, for the banner.
type standaloneRun struct {
	pkg *Package
	// imported is this start's import; previous the earlier one of the
	// same package, when there was one and nothing was imported now.
	imported exportpkg.ImportSummary
	previous *store.Import
	// installed is false when the bundle was the current version already.
	installed bool
	exp       experiments.Config
	// unsetSecrets are the secrets the package names that this data dir
	// has no value for: packages never hold values.
	unsetSecrets []string
}

// installTimeout bounds the import and the installation together.
const installTimeout = 30 * time.Minute

// installStandalone imports the package's data and installs its experiment;
// the services but the edge run already.
func installStandalone(ctx context.Context, d *svc.Deps, p *Package, staged *stagedBundle) (*standaloneRun, error) {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	slug := p.Meta.Slug
	r := &standaloneRun{pkg: p}
	cur, err := d.Store.Experiments().Get(ctx, slug)
	if err != nil {
		return nil, err
	}
	if err := r.importData(ctx, d, cur == nil); err != nil {
		return nil, err
	}
	if err := r.installBundle(ctx, d, cur, staged); err != nil {
		return nil, err
	}
	have, err := d.Store.Secrets(nil).Names(ctx, slug)
	if err != nil {
		return nil, err
	}
	for _, name := range p.Meta.Secrets {
		if !slices.Contains(have, name) {
			r.unsetSecrets = append(r.unsetSecrets, name)
		}
	}
	return r, nil
}

// importData imports the package's data unless this package's data was
// imported before and the experiment is still there (fresh is false).
func (r *standaloneRun) importData(ctx context.Context, d *svc.Deps, fresh bool) error {
	p := r.pkg
	key, err := packageKey(p.Meta)
	if err != nil {
		return err
	}
	records := d.Store.Imports()
	prev, err := records.Get(ctx, p.Meta.Slug)
	if err != nil {
		return err
	}
	if prev != nil && prev.Package == key && !fresh {
		r.previous = prev
		d.Log.Info("standalone: this package's data was imported before; kept as it is", "slug", p.Meta.Slug, "imported_at", prev.ImportedAt)
		return nil
	}
	// The actor's keys go where the actor worker keeps them; it made the
	// bucket at its start, and this makes sure of it whatever the order.
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketActorKV); err != nil {
		return fmt.Errorf("import the actor's keys: %w", err)
	}
	kv, err := d.JS.KeyValue(ctx, bus.BucketActorKV)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", bus.BucketActorKV, err)
	}
	start := time.Now()
	last := time.Now()
	r.imported, err = exportpkg.Import(ctx, d.Store.DB, p.Package, exportpkg.ImportOptions{
		Mode: exportpkg.ImportKeepExisting,
		KV:   exportpkg.BucketKV{KV: kv},
		Progress: func(f float64, step string) {
			if time.Since(last) > 2*time.Second {
				last = time.Now()
				d.Log.Info("standalone: importing data", "progress", fmt.Sprintf("%.0f%%", f*100), "step", step)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("import the package's data: %w", err)
	}
	err = records.Put(ctx, store.Import{Slug: p.Meta.Slug, Package: key, Documents: r.imported.Documents, Inserted: r.imported.Inserted, ImportedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	d.Log.Info("standalone: data imported", "slug", p.Meta.Slug, "collections", r.imported.Collections,
		"documents", r.imported.Documents, "inserted", r.imported.Inserted, "existing", r.imported.Existing,
		"accounts", r.imported.Accounts, "accounts_existing", r.imported.AccountsExisting,
		"keys", r.imported.Keys, "keys_existing", r.imported.KeysExisting,
		"links", r.imported.Links, "links_existing", r.imported.LinksExisting,
		"runs", r.imported.Runs, "runs_existing", r.imported.RunsExisting,
		"took_ms", time.Since(start).Milliseconds())
	return nil
}

// packageKey names a package by its description, which counts and hashes
// its bundle and data.
func packageKey(m exportpkg.Meta) (string, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("describe the package: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// installBundle uploads the bundle as a new version unless it is the
// current one, then applies the exported status and manifest fields.
func (r *standaloneRun) installBundle(ctx context.Context, d *svc.Deps, cur *experiments.Config, staged *stagedBundle) error {
	p := r.pkg
	if cur != nil && (cur.Checksum == p.Meta.Checksum || cur.Checksum == staged.sum.Checksum) {
		r.exp = *cur
		d.Log.Info("standalone: the package's bundle is the current version already", "slug", cur.Slug, "version", cur.Version)
		return nil
	}
	owner := p.Config.OwnerEmail
	if owner == "" {
		owner = d.Config.AdminEmail
	}
	id := "standalone-" + rand.Text()
	ctx = telemetry.WithRequestID(ctx, id)
	// The upload service acts on verified identity only: this process,
	// holding SECRET_KEY, proves that it installs as the owner with a
	// short-lived token of its own.
	token, err := serviceToken(d.Config.SecretKey, owner)
	if err != nil {
		return err
	}
	caller := uploadapi.Caller{Email: owner, Roles: []string{authz.RoleAdmin}, IsAdmin: true, RequestID: id, Token: token}

	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		return fmt.Errorf("open uploads store: %w", err)
	}
	f, err := os.Open(staged.path)
	if err != nil {
		return fmt.Errorf("install the bundle: %w", err)
	}
	defer f.Close()
	upload := uploadapi.Client{T: bus.Client{NC: d.NC}, Staging: bus.ObjectStaging{Store: uploads}}
	res, err := upload.Upload(ctx, f, caller)
	if err != nil {
		return fmt.Errorf("install the bundle: %w", err)
	}
	r.installed, r.exp = true, res.Experiment

	upd := uploadapi.Update{Slug: p.Meta.Slug, Caller: caller}
	if want := p.Config.Status; want != "" && want != res.Experiment.Status {
		upd.Status = &want
	}
	if upd.Fields, err = manifestPatch(p.Bundle.RawManifest, []byte(p.Config.Manifest)); err != nil {
		return err
	}
	if upd.Status == nil && upd.Fields == nil {
		return nil
	}
	res, err = upload.Update(ctx, upd)
	if err != nil {
		return fmt.Errorf("apply the exported status and manifest: %w", err)
	}
	r.exp = res.Experiment
	return nil
}

// manifestPatch is the update (top-level fields to set, null to remove)
// that turns the bundle's manifest into the one the experiment had when it
// was exported; nil when they are the same or no manifest was exported.
func manifestPatch(bundled, exported []byte) (json.RawMessage, error) {
	if len(bytes.TrimSpace(exported)) == 0 {
		return nil, nil
	}
	var from, to map[string]json.RawMessage
	if err := json.Unmarshal(bundled, &from); err != nil {
		return nil, fmt.Errorf("read the bundle's manifest: %w", err)
	}
	if err := json.Unmarshal(exported, &to); err != nil {
		return nil, fmt.Errorf("read the exported manifest: %w", err)
	}
	patch := map[string]json.RawMessage{}
	for k, v := range to {
		if old, ok := from[k]; !ok || !sameJSON(old, v) {
			patch[k] = v
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			patch[k] = json.RawMessage("null")
		}
	}
	if len(patch) == 0 {
		return nil, nil
	}
	return json.Marshal(patch)
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

// banner tells the person at the terminal where the experiment is and what
// became of the package.
func (r *standaloneRun) banner(w io.Writer, cfg *config.Config, url, storeURI string) {
	m, e := r.pkg.Meta, r.exp
	fmt.Fprintf(w, "\ng.nome is serving experiment %q alone on %s\n", m.Slug, url)
	fmt.Fprintf(w, "  package     %s (%s, version %d, exported %s)\n", r.pkg.Path, m.Type, m.Version, m.CreatedAt.Format(time.RFC3339))
	how := "installed now"
	if !r.installed {
		how = "already installed"
	}
	status := e.Status
	if status != experiments.StatusActive {
		status += ": only its owner and admins may open it"
	}
	fmt.Fprintf(w, "  experiment  %s as version %d, owner %s, status %s\n", how, e.Version, e.OwnerEmail, status)
	if p := r.previous; p != nil {
		fmt.Fprintf(w, "  data        imported from this package on %s; kept as it is since\n", p.ImportedAt.Format(time.RFC3339))
	} else {
		s := r.imported
		colls := fmt.Sprintf("%d collections", s.Collections)
		if s.Collections == 1 {
			colls = "1 collection"
		}
		fmt.Fprintf(w, "  data        %d documents in %s imported (%d already there, left as they were)\n", s.Inserted, colls, s.Existing)
		if s.Accounts+s.AccountsExisting+s.Keys+s.KeysExisting > 0 {
			fmt.Fprintf(w, "  people      %d accounts and %d keys of the actor's store imported (%d and %d already there, left as they were)\n",
				s.Accounts, s.Keys, s.AccountsExisting, s.KeysExisting)
		}
		if s.Links+s.LinksExisting > 0 {
			fmt.Fprintf(w, "  links       %d study links and %d runs imported (%d and %d already there, left as they were)\n",
				s.Links, s.Runs, s.LinksExisting, s.RunsExisting)
		}
	}
	if len(r.unsetSecrets) > 0 {
		fmt.Fprintf(w, "  secrets     the actor reads secrets this package cannot hold: %s\n", strings.Join(r.unsetSecrets, ", "))
		fmt.Fprintf(w, "              set each, signed in as an admin: PUT /api/experiments/%s/secrets/<name> {\"value\": \"...\"}\n", m.Slug)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	if cfg.EmbeddedStore() {
		fmt.Fprintf(w, "  data dir    %s (delete it to start again from the package)\n", dir)
		fmt.Fprintf(w, "  store       %s (database %s, embedded on %s)\n", storeURI, cfg.MongoDB, cfg.EmbeddedEngine)
	} else {
		fmt.Fprintf(w, "  data dir    %s\n", dir)
		fmt.Fprintf(w, "  store       MONGO_URI (database %s)\n", cfg.MongoDB)
	}
	if cfg.AdminPassword != "" {
		fmt.Fprintf(w, "  admin       %s, with ADMIN_PASSWORD\n", cfg.AdminEmail)
	} else {
		fmt.Fprintf(w, "  admin       %s, with the password printed once when this data dir was first used (set ADMIN_PASSWORD to choose it)\n", cfg.AdminEmail)
	}
	fmt.Fprintf(w, "Only this experiment is served; uploads are off. Ctrl-C stops.\n\n")
}

// serviceToken is a short-lived token with which `gnome standalone` installs
// its package as the package's owner, with the admin role.
func serviceToken(secret, owner string) (string, error) {
	key, err := authn.DeriveKey(secret)
	if err != nil {
		return "", fmt.Errorf("SECRET_KEY: %w", err)
	}
	t, _, err := authn.NewSigner(key).MintService(authn.Subject{
		ID: "service:gnome-standalone", Email: owner, Roles: []string{authz.RoleAdmin},
	}, time.Now())
	if err != nil {
		return "", fmt.Errorf("mint the installer's token: %w", err)
	}
	return t, nil
}
