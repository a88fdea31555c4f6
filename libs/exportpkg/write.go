package exportpkg

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// Source is what a package is made of.
type Source struct {
	// Config is the experiment's experiments_config record; the current
	// version (Version, Checksum) is the one exported.
	Config experiments.Config
	// Bundle reads the current version's normalised ZIP, as the bundles
	// object store holds it (experiments.BundleObject), BundleSize bytes.
	// Its SHA-256 must be Config.Checksum when that is set.
	Bundle     io.ReaderAt
	BundleSize int64
	// DB is the platform database, where the experiment's collections are;
	// standalone and docker packages need it.
	DB *mongo.Database
	// KV is the actor key-value store; nil exports no keys.
	KV KVStore
}

// Options tune Write; the zero value is right for the platform.
type Options struct {
	// Progress, when set, is called as the package is written with the
	// fraction done (0 to 1, never decreasing, 1 last) and the current step.
	Progress func(fraction float64, step string)
	// CreatedAt is the package's time; the zero value is now.
	CreatedAt time.Time
	// PlatformVersion is recorded in export.json; empty is buildinfo.Version.
	PlatformVersion string
	// Image is the gnome image docker packages build from; empty is
	// DefaultImage of the platform version.
	Image string
	// BatchSize is the most documents asked of the store per batch; zero is
	// DefaultBatchSize. Batches are made smaller to stay near BatchBytes.
	BatchSize int32
}

// DefaultImage is the published gnome image of a platform version.
func DefaultImage(platformVersion string) string {
	return "ghcr.io/gnome-platform/gnome:" + platformVersion
}

// Limits of what a package holds.
const (
	// DefaultBatchSize is the most documents asked of the store per batch.
	DefaultBatchSize = 1000
	// BatchBytes is the size of a batch aimed at. MongoDB caps a batch at
	// 16 MiB, but the embedded store returns as many documents as asked
	// whatever their size, and holds several times a batch's size while it
	// makes it; so the batch size follows the largest document seen:
	// batches of about BatchBytes, or of one document when it is larger.
	BatchBytes = 1 << 20
	// firstBatch is the first batch's size, before any document is seen.
	firstBatch = 10
	// MaxCollections is the most collections a package holds.
	MaxCollections = 1000
	// progressEvery is how many documents pass between progress reports
	// inside one collection.
	progressEvery = 1000
)

// Summary describes a written package.
type Summary struct {
	// Size is the package's size in bytes and SHA256 its hex SHA-256.
	Size   int64
	SHA256 string
	// Documents is the number of documents exported, over all collections.
	Documents int64
	// Collections are the base names of the exported collections, sorted.
	Collections []string
	// Skipped are {slug}_ collections left out because their names are not
	// the experiment's (see the package comment).
	Skipped []string
	// Meta is the package's export.json.
	Meta Meta
}

// Steps reported to Options.Progress.
const (
	StepBundle  = "copying the bundle's files"
	StepData    = "exporting collection " // + the base name
	StepFinish  = "writing the package's description"
	StepDone    = "done"
	StepPrepare = "preparing"
)

// Write writes the package of type t made of src to w, as a ZIP archive
// produced as it goes: w receives the package in pieces and nothing holds it
// whole. Documents are streamed from the store with a cursor, one batch at
// a time. On error w holds the start of a package, to be thrown away; a
// cancelled ctx stops Write at its next write or batch.
func Write(ctx context.Context, w io.Writer, t Type, src Source, opts Options) (Summary, error) {
	if _, err := exportapi.ParseType(string(t)); err != nil {
		return Summary{}, err
	}
	if src.Bundle == nil || src.BundleSize <= 0 {
		return Summary{}, errors.New("write package: no bundle")
	}
	if t.HasData() && src.DB == nil {
		return Summary{}, fmt.Errorf("write package: a %s package needs the database", t)
	}
	if !slugSyntax.MatchString(src.Config.Slug) {
		return Summary{}, fmt.Errorf("write package: %q is not a slug", src.Config.Slug)
	}
	x := &writer{
		ctx: ctx, t: t, src: src, opts: opts, slug: src.Config.Slug,
		progress: &progress{fn: opts.Progress},
	}
	if x.opts.PlatformVersion == "" {
		x.opts.PlatformVersion = buildinfo.Version
	}
	if x.opts.Image == "" {
		x.opts.Image = DefaultImage(x.opts.PlatformVersion)
	}
	if x.opts.CreatedAt.IsZero() {
		x.opts.CreatedAt = time.Now()
	}
	x.opts.CreatedAt = x.opts.CreatedAt.UTC().Truncate(time.Second)
	if x.opts.BatchSize <= 0 {
		x.opts.BatchSize = DefaultBatchSize
	}
	x.out = &output{ctx: ctx, w: w, sum: sha256.New()}
	x.zw = zip.NewWriter(x.out)
	if err := x.write(); err != nil {
		return Summary{}, fmt.Errorf("write %s package of %s: %w", t, x.slug, err)
	}
	s := Summary{
		Size: x.out.n, SHA256: hex.EncodeToString(x.out.sum.Sum(nil)),
		Documents: x.meta.Documents, Collections: []string{}, Skipped: x.skipped, Meta: x.meta,
	}
	for _, c := range x.meta.Collections {
		s.Collections = append(s.Collections, c.Name)
	}
	x.progress.report(1, StepDone)
	return s, nil
}

type writer struct {
	ctx      context.Context
	t        Type
	src      Source
	opts     Options
	slug     string
	out      *output
	zw       *zip.Writer
	progress *progress
	bundle   *bundle.Bundle
	checksum string // the bundle's
	meta     Meta
	skipped  []string
}

// collection is a candidate {slug}_ collection with the documents the store
// estimates it holds, for progress.
type collection struct {
	name, base string
	estimate   int64 // documents
	size       int64 // bytes of BSON, 0 when unknown
}

func (x *writer) write() error {
	x.progress.report(0, StepPrepare)
	if err := x.checkBundle(); err != nil {
		return err
	}
	x.meta = Meta{
		Format: FormatVersion, Type: x.t, Slug: x.slug, Name: x.src.Config.Name,
		Version: x.src.Config.Version, Checksum: x.checksum,
		CreatedAt: x.opts.CreatedAt, PlatformVersion: x.opts.PlatformVersion,
		BundleDir: BundleDir(x.t, x.slug), Files: len(x.bundle.Files),
		Collections: []Collection{},
	}
	if x.t == exportapi.Docker {
		x.meta.Image = x.opts.Image
	}
	var colls []collection
	if x.t.HasData() {
		var err error
		if colls, err = x.listCollections(); err != nil {
			return err
		}
	}
	x.progress.plan(x.src.BundleSize, colls)

	if err := x.copyBundle(); err != nil {
		return err
	}
	if x.t.HasData() {
		cfg, err := bson.MarshalExtJSONIndent(x.src.Config, false, false, "", "  ")
		if err != nil {
			return fmt.Errorf("encode config: %w", err)
		}
		if err := x.file(ConfigFile, append(cfg, '\n')); err != nil {
			return err
		}
		for i, c := range colls {
			if err := x.exportCollection(i, c); err != nil {
				return err
			}
		}
		if err := x.writeAccounts(); err != nil {
			return err
		}
		if err := x.writeKV(); err != nil {
			return err
		}
		if err := x.writeRuns(); err != nil {
			return err
		}
		if err := x.writeLinks(); err != nil {
			return err
		}
		if err := x.listSecrets(); err != nil {
			return err
		}
	}

	x.progress.report(x.progress.finishAt(), StepFinish)
	if x.t.HasData() {
		if err := x.docs(); err != nil {
			return err
		}
	}
	meta, err := json.MarshalIndent(x.meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encode export.json: %w", err)
	}
	if err := x.file(MetaFile, append(meta, '\n')); err != nil {
		return err
	}
	return x.zw.Close()
}

// checkBundle opens the source bundle and makes sure it is the normalised
// ZIP that Config names: its hash is the checksum, and its entries are the
// bundle's files, at the root, nothing else.
func (x *writer) checkBundle() error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(x.src.Bundle, 0, x.src.BundleSize)); err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if c := x.src.Config.Checksum; c != "" && c != sum {
		return fmt.Errorf("the bundle's SHA-256 is %s, not the checksum %s of version %d", sum, c, x.src.Config.Version)
	}
	x.checksum = sum
	// The platform wrote the bundle within its own limits, which may be
	// wider than the defaults; the ratio test is for uploads, not for the
	// platform's own recompression.
	b, err := bundle.Open(x.src.Bundle, x.src.BundleSize, bundle.Limits{
		MaxUpload: x.src.BundleSize, MaxUnpacked: math.MaxInt64, MaxRatio: math.MaxFloat64,
	})
	if err != nil {
		return fmt.Errorf("open bundle: %w", err)
	}
	if b.Layout != bundle.LayoutRoot || len(b.Dropped) > 0 {
		return errors.New("the bundle is not normalised: it has files besides the experiment's")
	}
	if b.Manifest.Slug != x.slug {
		return fmt.Errorf("the bundle is of experiment %q, not %q", b.Manifest.Slug, x.slug)
	}
	x.bundle = b
	return nil
}

func (x *writer) listCollections() ([]collection, error) {
	names, err := x.src.DB.ListCollectionNames(x.ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	slices.Sort(names)
	var colls []collection
	for _, name := range names {
		slug, base, ok := scoped.ParseCollectionName(name)
		if !ok {
			// The experiment's prefix with a base name scoped never makes.
			if strings.HasPrefix(name, scoped.CollectionPrefix(x.slug)) {
				x.skipped = append(x.skipped, name)
			}
			continue
		}
		if slug != x.slug {
			continue
		}
		colls = append(colls, collection{name: name, base: base})
	}
	if len(colls) > MaxCollections {
		return nil, fmt.Errorf("the experiment has %d collections, over the limit of %d", len(colls), MaxCollections)
	}
	// The counts are only for progress: an error leaves a collection
	// unweighted. The embedded store counts by reading every document, even
	// for an estimate, but its collStats is quick; MongoDB estimates from
	// its metadata.
	store, _ := scoped.DetectStore(x.ctx, x.src.DB)
	for i := range colls {
		colls[i].estimate, colls[i].size = x.estimate(store, colls[i].name)
	}
	return colls, nil
}

// estimate gives the documents a collection holds and their size in bytes
// (0 when the store does not say), from collStats on either store; MongoDB
// deprecates that command, so its document count comes from
// EstimatedDocumentCount when collStats is refused.
func (x *writer) estimate(store scoped.StoreKind, name string) (docs, size int64) {
	var stats struct {
		Count int64 `bson:"count"`
		Size  int64 `bson:"size"`
	}
	err := x.src.DB.RunCommand(x.ctx, bson.D{{Key: "collStats", Value: name}}).Decode(&stats)
	if err == nil {
		return stats.Count, max(stats.Size, 0)
	}
	if store == scoped.StoreFerretDB {
		return 0, 0
	}
	n, err := x.src.DB.Collection(name).EstimatedDocumentCount(x.ctx)
	if err != nil {
		return 0, 0
	}
	return n, 0
}

// copyBundle copies the bundle's entries into the package under its bundle
// directory, compressed as they are.
func (x *writer) copyBundle() error {
	zr, err := zip.NewReader(x.src.Bundle, x.src.BundleSize)
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	if len(zr.File) != len(x.bundle.Files) {
		return fmt.Errorf("the bundle has %d entries for %d files: it is not normalised", len(zr.File), len(x.bundle.Files))
	}
	prefix := x.meta.BundleDir
	var done int64
	for i, f := range zr.File {
		if f.Name != x.bundle.Files[i].Path {
			return fmt.Errorf("the bundle's entry %d is %q, not %q: it is not normalised", i, f.Name, x.bundle.Files[i].Path)
		}
		x.progress.report(x.progress.bundleAt(done), StepBundle)
		if err := x.copyEntry(f, prefix+f.Name); err != nil {
			return fmt.Errorf("copy %s: %w", f.Name, err)
		}
		done += int64(min(f.CompressedSize64, math.MaxInt64))
	}
	x.progress.report(x.progress.bundleAt(x.src.BundleSize), StepBundle)
	return nil
}

func (x *writer) copyEntry(f *zip.File, name string) error {
	if f.UncompressedSize64 > bundle.DefaultRatioFloor &&
		float64(f.UncompressedSize64) > bundle.DefaultMaxRatio*float64(max(f.CompressedSize64, 1)) {
		// An upload would take it for a zip bomb: store it instead.
		h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: f.Modified}
		h.SetMode(0o644)
		fw, err := x.zw.CreateHeader(h)
		if err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(fw, rc)
		return err
	}
	raw, err := f.OpenRaw()
	if err != nil {
		return err
	}
	fh := f.FileHeader
	fh.Name = name
	fw, err := x.zw.CreateRaw(&fh)
	if err != nil {
		return err
	}
	_, err = io.Copy(fw, raw)
	return err
}

// exportCollection writes the documents of the experiment in one collection;
// the data file is made with the first document, so a collection without
// any has none.
func (x *writer) exportCollection(i int, c collection) error {
	step := StepData + c.base
	x.progress.report(x.progress.collectionAt(i, 0), step)
	cur, err := x.src.DB.Collection(c.name).Find(x.ctx,
		bson.D{{Key: scoped.Field, Value: x.slug}},
		options.Find().SetBatchSize(min(firstBatch, x.opts.BatchSize)))
	if err != nil {
		return fmt.Errorf("find in %s: %w", c.name, err)
	}
	defer cur.Close(context.WithoutCancel(x.ctx))
	var (
		fw      io.Writer
		sum     hash.Hash
		n       int64
		line    []byte
		largest int
	)
	for cur.Next(x.ctx) {
		largest = max(largest, len(cur.Current))
		if cur.RemainingBatchLength() == 0 {
			cur.SetBatchSize(int32(min(max(BatchBytes/largest, 1), int(x.opts.BatchSize))))
		}
		if fw == nil {
			h := &zip.FileHeader{Name: DataFile(c.base), Method: zip.Deflate, Modified: x.opts.CreatedAt}
			h.SetMode(0o644)
			zf, err := x.zw.CreateHeader(h)
			if err != nil {
				return err
			}
			sum = sha256.New()
			fw = io.MultiWriter(zf, sum)
		}
		line, err = bson.MarshalExtJSON(cur.Current, true, false)
		if err != nil {
			return fmt.Errorf("encode a document of %s: %w", c.name, err)
		}
		line = append(line, '\n')
		if _, err := fw.Write(line); err != nil {
			return err
		}
		n++
		if n%progressEvery == 0 {
			x.progress.report(x.progress.collectionAt(i, n), step)
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read %s: %w", c.name, err)
	}
	if fw != nil {
		x.meta.Collections = append(x.meta.Collections, Collection{
			Name: c.base, Collection: c.name, File: DataFile(c.base),
			Documents: n, SHA256: hex.EncodeToString(sum.Sum(nil)),
		})
		x.meta.Documents += n
	}
	x.progress.report(x.progress.collectionAt(i, math.MaxInt64), step)
	return nil
}

// docs writes the README and, for docker, the files that deploy it.
func (x *writer) docs() error {
	d := x.docData()
	names := []string{ReadmeFile}
	if x.t == exportapi.Docker {
		names = append(names, Dockerfile, ComposeFile, DeployFile)
	}
	for _, name := range names {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, name+".tmpl", d); err != nil {
			return fmt.Errorf("render %s: %w", name, err)
		}
		if err := x.file(name, b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// file writes a small entry of the package's own.
func (x *writer) file(name string, data []byte) error {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: x.opts.CreatedAt}
	h.SetMode(0o644)
	fw, err := x.zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = fw.Write(data)
	return err
}

// output is where the archive goes: it counts and hashes what passes, and
// stops the writing once ctx is done.
type output struct {
	ctx context.Context
	w   io.Writer
	sum hash.Hash
	n   int64
}

func (o *output) Write(p []byte) (int, error) {
	if err := o.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := o.w.Write(p)
	o.sum.Write(p[:n])
	o.n += int64(n)
	return n, err
}

// progress turns the work done into a fraction of the time it takes: the
// bundle weighs its size in bytes (its entries are copied as they are), a
// collection its size as the store gives it, or the documents it holds
// times docWeight, times dataCost (each document is read, decoded, written
// as JSON and compressed), and the package's description a last
// finishFraction. Reports never go back, so an estimate that falls short
// only holds the fraction still for a while.
type progress struct {
	fn       func(float64, string)
	last     float64
	total    float64
	bundle   float64
	colls    []float64 // where each collection starts, and where the last ends
	estimate []int64
}

const (
	// docWeight is a typical document's size, in bytes, for a store that
	// does not give a collection's size.
	docWeight = 256
	// dataCost is how much longer a byte of documents takes to export than
	// a byte of the bundle. Measured on the embedded store: 50 MiB of
	// documents (4 KiB each) take about 2 s to read, encode and compress,
	// 50 MiB of bundle files 30 ms to copy, and storing either takes about
	// 0.5 s in the object store (the 100 MB export benchmark takes 3 s in
	// all): about 5 to 1. The embedded store's collStats gives about 1.5
	// times the documents' BSON size, which this figure does not undo.
	dataCost = 5
	// finishFraction is the share of the work left once the data is out.
	finishFraction = 0.01
)

func (p *progress) plan(bundleSize int64, colls []collection) {
	p.bundle = float64(bundleSize)
	p.colls = make([]float64, 0, len(colls)+1)
	at := p.bundle
	for _, c := range colls {
		p.colls = append(p.colls, at)
		p.estimate = append(p.estimate, c.estimate)
		weight := float64(c.size)
		if weight <= 0 {
			weight = float64(max(c.estimate, 1)) * docWeight
		}
		at += weight * dataCost
	}
	p.colls = append(p.colls, at)
	p.total = at / (1 - finishFraction)
}

func (p *progress) bundleAt(offset int64) float64 {
	return min(float64(offset), p.bundle) / p.total
}

// collectionAt is the fraction at n documents into collection i.
func (p *progress) collectionAt(i int, n int64) float64 {
	start, end := p.colls[i], p.colls[i+1]
	done := 1.0
	if e := p.estimate[i]; e > 0 && n < e {
		done = float64(n) / float64(e)
	}
	return (start + done*(end-start)) / p.total
}

func (p *progress) finishAt() float64 { return 1 - finishFraction }

func (p *progress) report(f float64, step string) {
	if p.fn == nil {
		return
	}
	f = min(max(f, p.last), 1)
	p.last = f
	p.fn(f, step)
}

// listSecrets records the names of the experiment's secrets, never their
// values: the package needs no key to read, and whoever imports it learns
// which secrets to set.
func (x *writer) listSecrets() error {
	names, err := store.SecretsOf(x.src.DB, nil).Names(x.ctx, x.slug)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		x.meta.Secrets = names
	}
	return nil
}
