package scoped

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/store"
)

// NamingMigration is the _id of MigrateNames' record in data_migrations.
const NamingMigration = "collection-names-v2"

// Migration states.
const (
	MigrationRunning = "running"
	MigrationDone    = "done"
)

// migrateBatch is how many documents move per write.
const migrateBatch = 500

// Moved is what MigrateNames moved from one old collection to a new one.
type Moved struct {
	From      string `bson:"from"`
	To        string `bson:"to"`
	Slug      string `bson:"slug"`
	Base      string `bson:"base"`
	Documents int64  `bson:"documents"`
}

// Left is an old collection MigrateNames could not empty: documents whose
// experiment_id does not name a slug the collection's name starts with.
type Left struct {
	Collection string `bson:"collection"`
	Documents  int64  `bson:"documents"`
}

// Migration is MigrateNames' record in data_migrations.
type Migration struct {
	ID         string     `bson:"_id"`
	State      string     `bson:"state"`
	StartedAt  time.Time  `bson:"started_at"`
	FinishedAt *time.Time `bson:"finished_at,omitempty"`
	Moved      []Moved    `bson:"moved"`
	Left       []Left     `bson:"left"`
}

// platformCollections are never an experiment's, under either naming.
var platformCollections = []string{
	store.Users, store.ExperimentsConfig, store.ExportLogs, store.AuditLog, store.DataVersions,
	store.DataGrants, store.DataMigrations, store.StandaloneImports, "casbin_rules",
}

// MigrateNames moves the documents of collections of the old naming
// {slug}_{base} to the injective names, once per database: a record in
// data_migrations says it is done, and a later call returns it without
// touching anything (ran is false then). The old naming was ambiguous, so
// an old collection may hold the documents of several experiments (slug
// "p" with "x_notes" and slug "p_x" with "notes" both wrote p_x_notes):
// each document goes by its experiment_id E to CollectionName(E, rest),
// where the old name is E_rest. A batch is copied, then deleted from the
// old collection, so an interrupted run resumes where it stopped (a copy
// already made is kept, never overwritten) and two services running it at
// once only repeat each other's work. An old collection left empty is
// dropped; documents that fit no slug stay where they are and are listed
// in the record. Indexes are not copied: the caller builds the managed
// indexes of the experiments that moved.
func MigrateNames(ctx context.Context, db *mongo.Database, log *slog.Logger) (rec Migration, ran bool, err error) {
	if log == nil {
		log = slog.Default()
	}
	records := db.Collection(store.DataMigrations)
	prev, err := store.FindByID[Migration](ctx, records, NamingMigration)
	if err != nil {
		return Migration{}, false, err
	}
	if prev != nil && prev.State == MigrationDone {
		return *prev, false, nil
	}
	rec = Migration{ID: NamingMigration, State: MigrationRunning, StartedAt: time.Now().UTC(), Moved: []Moved{}, Left: []Left{}}
	if prev != nil {
		rec.StartedAt = prev.StartedAt
	}
	if err := putMigration(ctx, records, rec); err != nil {
		return rec, true, err
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return rec, true, fmt.Errorf("list collections: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if !oldExperimentCollection(name) {
			continue
		}
		moved, left, err := migrateCollection(ctx, db, name)
		rec.Moved = append(rec.Moved, moved...)
		if err != nil {
			return rec, true, fmt.Errorf("migrate %s: %w", name, err)
		}
		if left > 0 {
			rec.Left = append(rec.Left, Left{Collection: name, Documents: left})
			log.WarnContext(ctx, "collection of the old naming keeps documents that name no experiment it could belong to",
				"collection", name, "documents", left)
		}
		for _, m := range moved {
			log.InfoContext(ctx, "experiment collection renamed", "from", m.From, "to", m.To, "documents", m.Documents)
		}
	}
	done := time.Now().UTC()
	rec.State, rec.FinishedAt = MigrationDone, &done
	if err := putMigration(ctx, records, rec); err != nil {
		return rec, true, err
	}
	return rec, true, nil
}

// putMigration writes rec. Two services starting at once may both upsert
// the first record: the store lets one insert and refuses the other as a
// duplicate, which then finds the record there and replaces it.
func putMigration(ctx context.Context, c *mongo.Collection, rec Migration) error {
	var err error
	for range 3 {
		_, err = c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: rec.ID}}, rec, options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("record migration %s: %w", rec.ID, err)
	}
	return nil
}

// oldExperimentCollection tells whether name may be a collection of the
// old naming: not the platform's, not the store's, not a new name.
func oldExperimentCollection(name string) bool {
	switch {
	case strings.Contains(name, "."), // new names, and system.*
		!strings.Contains(name, "_"),
		strings.HasPrefix(name, Shared+"_"),
		slices.Contains(platformCollections, name):
		return false
	}
	return true
}

// migrateCollection moves the documents of the old collection name to
// their new collections, per experiment_id; left counts the documents it
// had to leave.
func migrateCollection(ctx context.Context, db *mongo.Database, name string) (moved []Moved, left int64, err error) {
	old := db.Collection(name)
	var groups []struct {
		Slug string `bson:"_id"`
	}
	// A $group, not distinct: the embedded store refuses distinct with the
	// time limit the driver adds under a deadline.
	cur, err := old.Aggregate(ctx, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: Field, Value: bson.D{{Key: "$type", Value: "string"}}}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + Field}}}},
	})
	if err == nil {
		err = cur.All(ctx, &groups)
	}
	if err != nil && droppedMeanwhile(ctx, db, name) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list its experiments: %w", err)
	}
	owners := make([]string, 0, len(groups))
	for _, g := range groups {
		owners = append(owners, g.Slug)
	}
	slices.Sort(owners)
	for _, slug := range owners {
		base, ok := strings.CutPrefix(name, slug+"_")
		// A reserved slug (experiments, shared, ...) was never an
		// experiment's: its "documents" are not moved.
		if !ok || checkSlug(slug) != nil || !baseSyntax.MatchString(base) {
			continue
		}
		to := CollectionName(slug, base)
		n, err := moveDocuments(ctx, old, db.Collection(to), slug)
		if n > 0 {
			moved = append(moved, Moved{From: name, To: to, Slug: slug, Base: base, Documents: n})
		}
		if err != nil && droppedMeanwhile(ctx, db, name) {
			return moved, 0, nil
		}
		if err != nil {
			return moved, 0, err
		}
	}
	left, err = old.CountDocuments(ctx, bson.D{})
	if err != nil && droppedMeanwhile(ctx, db, name) {
		return moved, 0, nil
	}
	if err != nil {
		return moved, 0, fmt.Errorf("count what is left: %w", err)
	}
	if left == 0 {
		if err := old.Drop(ctx); err != nil {
			return moved, 0, fmt.Errorf("drop it: %w", err)
		}
	}
	return moved, left, nil
}

// droppedMeanwhile reports whether the collection name no longer exists:
// a concurrent migration moved its documents and dropped it while this one
// was reading or deleting. MongoDB answers such operations as on an empty
// collection; the embedded store may fail them ("no such table" on
// SQLite, "relation ... does not exist" on PostgreSQL), which then means
// the same: nothing is left to move.
func droppedMeanwhile(ctx context.Context, db *mongo.Database, name string) bool {
	names, err := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: name}})
	return err == nil && len(names) == 0
}

// moveDocuments copies the documents of slug from old to to in batches,
// deleting each batch from old once it is in to.
func moveDocuments(ctx context.Context, old, to *mongo.Collection, slug string) (int64, error) {
	var n int64
	for {
		cur, err := old.Find(ctx, bson.D{{Key: Field, Value: slug}}, options.Find().SetLimit(migrateBatch).SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return n, fmt.Errorf("read documents of %s: %w", slug, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			return n, fmt.Errorf("read documents of %s: %w", slug, err)
		}
		if len(docs) == 0 {
			return n, nil
		}
		ids := make(bson.A, 0, len(docs))
		batch := make([]any, 0, len(docs))
		for _, d := range docs {
			ids = append(ids, d.Lookup("_id"))
			batch = append(batch, d)
		}
		if _, err := to.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return n, fmt.Errorf("copy documents of %s: %w", slug, err)
		}
		if _, err := old.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: Field, Value: slug}}); err != nil {
			return n, fmt.Errorf("delete moved documents of %s: %w", slug, err)
		}
		n += int64(len(docs))
	}
}

// onlyDuplicates tells whether every error of an unordered insert is a
// duplicate _id: documents an interrupted run had copied already. The copy
// in the new collection is kept; it may be newer.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}
