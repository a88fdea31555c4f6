package exportpkg

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/scoped"
)

// ImportMode is what Import does with a document whose _id is in the
// database already.
type ImportMode int

const (
	// ImportReplace upserts by _id: the package's document replaces the one
	// in the database. Importing twice leaves the database as importing once.
	ImportReplace ImportMode = iota
	// ImportKeepExisting inserts only the documents whose _id is not in the
	// database, and leaves the others as they are: what a restart of
	// `gnome standalone` wants, so that it does not undo changes made since
	// the first import.
	ImportKeepExisting
)

// ImportOptions tune Import.
type ImportOptions struct {
	Mode ImportMode
	// BatchSize is the most documents per write; zero is
	// DefaultImportBatch. A batch also stops at ImportBatchBytes.
	BatchSize int
	// Progress, when set, is called after each batch with the fraction of
	// the package's documents done and the step.
	Progress func(fraction float64, step string)
	// KV receives the package's keys of the actor's store; nil leaves them
	// out.
	KV KVStore
}

// Batches of Import.
const (
	DefaultImportBatch = 500
	ImportBatchBytes   = 8 << 20
)

// ImportSummary counts what Import did.
type ImportSummary struct {
	Collections int
	// Documents were read from the package: Inserted of them were not in
	// the database, Existing were (replaced or left, by the mode).
	Documents int64
	Inserted  int64
	Existing  int64
	// Accounts and Keys were imported (format 2): the ones already there
	// are left as they are in either mode, so that a restart undoes no
	// change of password, state or value.
	Accounts, AccountsExisting int64
	Keys, KeysExisting         int64
	// Links (with their claims) and Runs of study links, likewise: a link
	// revoked or used, or a run finished, since stays so.
	Links, LinksExisting int64
	Runs, RunsExisting   int64
}

// Import writes every document of the package into the experiment's
// collection of each name (scoped.CollectionName) in db, in batches, the documents as they are (experiment_id
// included). Packages without data import nothing. On error, the batches
// before it are written.
func Import(ctx context.Context, db *mongo.Database, p *Package, opts ImportOptions) (ImportSummary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultImportBatch
	}
	im := &importer{ctx: ctx, opts: opts, total: p.Meta.Documents}
	for _, c := range p.Collections() {
		coll := db.Collection(scoped.CollectionName(p.Meta.Slug, c.Name))
		im.step = StepData + c.Name
		err := p.ReadCollection(c.Name, func(doc bson.D) error {
			raw, err := bson.Marshal(doc)
			if err != nil {
				return fmt.Errorf("encode a document: %w", err)
			}
			if len(im.batch) > 0 && (len(im.batch) >= opts.BatchSize || im.bytes+len(raw) > ImportBatchBytes) {
				if err := im.flush(coll); err != nil {
					return err
				}
			}
			im.batch = append(im.batch, raw)
			im.ids = append(im.ids, idOf(doc))
			im.bytes += len(raw)
			return nil
		})
		if err == nil {
			err = im.flush(coll)
		}
		if err != nil {
			return im.sum, fmt.Errorf("import %s: %w", coll.Name(), err)
		}
		im.sum.Collections++
	}
	var err error
	if im.sum.Accounts, im.sum.AccountsExisting, err = importAccounts(ctx, db, p); err != nil {
		return im.sum, fmt.Errorf("import accounts: %w", err)
	}
	if im.sum.Links, im.sum.LinksExisting, im.sum.Runs, im.sum.RunsExisting, err = importLinks(ctx, db, p); err != nil {
		return im.sum, fmt.Errorf("import study links: %w", err)
	}
	if opts.KV != nil {
		if im.sum.Keys, im.sum.KeysExisting, err = importKV(ctx, opts.KV, p); err != nil {
			return im.sum, fmt.Errorf("import the key-value store: %w", err)
		}
	}
	if opts.Progress != nil {
		opts.Progress(1, StepDone)
	}
	return im.sum, nil
}

type importer struct {
	ctx   context.Context
	opts  ImportOptions
	step  string
	total int64
	batch []bson.Raw
	ids   []any
	bytes int
	sum   ImportSummary
}

func idOf(doc bson.D) any {
	for _, e := range doc {
		if e.Key == "_id" {
			return e.Value
		}
	}
	return nil // ReadCollection lets no such document through
}

func (im *importer) flush(coll *mongo.Collection) error {
	if len(im.batch) == 0 {
		return nil
	}
	n := int64(len(im.batch))
	var inserted int64
	switch im.opts.Mode {
	case ImportKeepExisting:
		_, err := coll.InsertMany(im.ctx, im.batch, options.InsertMany().SetOrdered(false))
		dups, err := onlyDuplicates(err)
		if err != nil {
			return err
		}
		inserted = n - dups
	default:
		models := make([]mongo.WriteModel, len(im.batch))
		for i, raw := range im.batch {
			models[i] = mongo.NewReplaceOneModel().
				SetFilter(bson.D{{Key: "_id", Value: im.ids[i]}}).
				SetReplacement(raw).SetUpsert(true)
		}
		res, err := coll.BulkWrite(im.ctx, models, options.BulkWrite().SetOrdered(true))
		if err != nil {
			return err
		}
		inserted = res.UpsertedCount
	}
	im.sum.Documents += n
	im.sum.Inserted += inserted
	im.sum.Existing += n - inserted
	clear(im.batch) // let the written documents go
	clear(im.ids)
	im.batch, im.ids, im.bytes = im.batch[:0], im.ids[:0], 0
	if im.opts.Progress != nil && im.total > 0 {
		im.opts.Progress(min(float64(im.sum.Documents)/float64(im.total), 1), im.step)
	}
	return nil
}

// onlyDuplicates counts the writes of an unordered insert refused because
// their _id exists; any other failure is returned.
func onlyDuplicates(err error) (int64, error) {
	if err == nil {
		return 0, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return 0, err
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return 0, err
		}
	}
	return int64(len(bwe.WriteErrors)), nil
}
