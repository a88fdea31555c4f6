package exportpkg

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// Research data (WriteData): one collection of an experiment, its own
// documents (experiment_id = slug) created within a time range, as CSV or
// JSON Lines, streamed to a writer one document at a time.
//
// A document's creation time is its _id's when the _id is an ObjectId
// (whole seconds), else its created_at field when that is a date; a
// document with neither is left out of a download with a time range.
//
// CSV takes two passes over the same documents: the first reads them from
// the store into a work file (their BSON as is) and gathers the columns,
// the second writes the header and then one row per document from that
// file. So the columns are the union of every document's fields, every row
// comes from one read of the collection, and memory holds one document and
// the column names (at most MaxDataColumns, MaxHeaderBytes), whatever the
// collection's size; the work file holds the documents on disk meanwhile.

// Limits of research data.
const (
	// MaxDataColumns is the most columns a CSV file has; a collection
	// whose documents have more distinct fields is refused (JSON Lines
	// has no such limit).
	MaxDataColumns = 2000
	// MaxHeaderBytes bounds the column names together.
	MaxHeaderBytes = 1 << 20
	// maxBSON is the largest document read back from the work file: the
	// store's own limit, with room for its overhead.
	maxBSON = 48 << 20
	// createdField is the creation time of a document whose _id is not an
	// ObjectId.
	createdField = "created_at"
)

// Steps of a research-data export.
const (
	StepDataRead = "reading collection " // + the collection's name
	StepDataRows = "writing the CSV rows"
)

// DataOptions tune WriteData.
type DataOptions struct {
	// WorkDir holds the work file of a CSV's first pass; "" is the
	// system's temporary directory.
	WorkDir string
	// Progress is called like Options.Progress.
	Progress func(fraction float64, step string)
	// BatchSize is the most documents asked of the store per batch; zero
	// is DefaultBatchSize.
	BatchSize int32
}

// DataSummary describes a written research-data file.
type DataSummary struct {
	Size      int64
	SHA256    string
	Documents int64
	// Columns is the CSV's number of columns (0 for JSON Lines).
	Columns int
}

// WriteData writes the documents q selects of the experiment slug's
// collection to w, in q's format. A collection that does not exist gives
// a file without documents (for CSV, an empty file).
func WriteData(ctx context.Context, w io.Writer, db *mongo.Database, slug string, q exportapi.DataQuery, opts DataOptions) (DataSummary, error) {
	if err := q.Check(); err != nil {
		return DataSummary{}, err
	}
	if !slugSyntax.MatchString(slug) {
		return DataSummary{}, fmt.Errorf("write research data: %q is not a slug", slug)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	d := &dataWriter{ctx: ctx, db: db, slug: slug, q: q, opts: opts, name: scoped.CollectionName(slug, q.Collection),
		progress: &progress{fn: opts.Progress}, out: &output{ctx: ctx, w: w, sum: sha256.New()}}
	d.progress.report(0, StepPrepare)
	store, _ := scoped.DetectStore(ctx, db)
	d.estimate, _ = (&writer{ctx: ctx, src: Source{DB: db}}).estimate(store, d.name)
	var (
		sum DataSummary
		err error
	)
	if q.Format == exportapi.FormatCSV {
		sum, err = d.csv()
	} else {
		sum, err = d.jsonl()
	}
	if err != nil {
		return DataSummary{}, fmt.Errorf("write %s of %s: %w", q.Format, d.name, err)
	}
	sum.Size, sum.SHA256 = d.out.n, hex.EncodeToString(d.out.sum.Sum(nil))
	d.progress.report(1, StepDone)
	return sum, nil
}

type dataWriter struct {
	ctx      context.Context
	db       *mongo.Database
	slug     string
	q        exportapi.DataQuery
	opts     DataOptions
	name     string
	estimate int64
	progress *progress
	out      *output
}

// filter selects the experiment's documents created in the query's range.
// The store narrows by _id (ObjectIds compare with ObjectIds only) or
// created_at; inRange checks each document again, so that a store reading
// the filter more widely never widens the file.
func (d *dataWriter) filter() bson.D {
	own := bson.D{{Key: scoped.Field, Value: d.slug}}
	if d.q.From == nil && d.q.To == nil {
		return own
	}
	ids, dates := bson.D{}, bson.D{}
	if d.q.From != nil {
		ids = append(ids, bson.E{Key: "$gte", Value: firstID(ceilSecond(*d.q.From).Unix())})
		dates = append(dates, bson.E{Key: "$gte", Value: *d.q.From})
	}
	if d.q.To != nil {
		if sec := ceilSecond(*d.q.To).Unix(); sec > math.MaxUint32 {
			// Past what an ObjectId's four bytes of seconds reach.
			ids = append(ids, bson.E{Key: "$lte", Value: lastID})
		} else {
			ids = append(ids, bson.E{Key: "$lt", Value: firstID(sec)})
		}
		dates = append(dates, bson.E{Key: "$lt", Value: *d.q.To})
	}
	return bson.D{{Key: "$and", Value: bson.A{own, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "_id", Value: ids}},
		bson.D{{Key: createdField, Value: dates}},
	}}}}}}
}

// firstID is the least ObjectId of the second sec (the driver's
// NewObjectIDFromTimestamp fills the rest with this process's bytes);
// seconds before 1970 give the least ObjectId, and past what an ObjectId
// holds the greatest.
func firstID(sec int64) bson.ObjectID {
	if sec > math.MaxUint32 {
		return lastID
	}
	sec = max(sec, 0)
	var id bson.ObjectID
	binary.BigEndian.PutUint32(id[:4], uint32(sec))
	return id
}

// lastID is the greatest ObjectId.
var lastID = bson.ObjectID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ceilSecond is the first whole second at or after t: an ObjectId's time
// t' (whole seconds) is at or after t exactly when t' >= ceilSecond(t),
// and before t exactly when t' < ceilSecond(t).
func ceilSecond(t time.Time) time.Time {
	s := t.Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}

// createdAt is the document's creation time, ok false when it has none.
func createdAt(doc bson.Raw) (time.Time, bool) {
	if id, err := doc.LookupErr("_id"); err == nil && id.Type == bson.TypeObjectID {
		return id.ObjectID().Timestamp(), true
	}
	if v, err := doc.LookupErr(createdField); err == nil && v.Type == bson.TypeDateTime {
		return time.UnixMilli(v.DateTime()).UTC(), true
	}
	return time.Time{}, false
}

func (d *dataWriter) inRange(doc bson.Raw) bool {
	if d.q.From == nil && d.q.To == nil {
		return true
	}
	t, ok := createdAt(doc)
	if !ok {
		return false
	}
	if d.q.From != nil && t.Before(*d.q.From) {
		return false
	}
	return d.q.To == nil || t.Before(*d.q.To)
}

// each calls fn with each document of the query, in the store's order, one batch
// at a time; fn's bson.Raw is valid only during the call.
func (d *dataWriter) each(step string, from, to float64, fn func(bson.Raw) error) (int64, error) {
	d.progress.report(from, step)
	// No sort: the embedded store would sort the whole collection in
	// memory; the store's natural order is about the order of insertion.
	cur, err := d.db.Collection(d.name).Find(d.ctx, d.filter(),
		options.Find().SetBatchSize(min(firstBatch, d.opts.BatchSize)))
	if err != nil {
		return 0, fmt.Errorf("find: %w", err)
	}
	defer cur.Close(context.WithoutCancel(d.ctx))
	var n, seen int64
	largest := 0
	for cur.Next(d.ctx) {
		largest = max(largest, len(cur.Current))
		if cur.RemainingBatchLength() == 0 {
			cur.SetBatchSize(int32(min(max(BatchBytes/largest, 1), int(d.opts.BatchSize))))
		}
		seen++
		if seen%progressEvery == 0 {
			done := 1.0
			if d.estimate > 0 && seen < d.estimate {
				done = float64(seen) / float64(d.estimate)
			}
			d.progress.report(from+done*(to-from), step)
		}
		if !d.inRange(cur.Current) {
			continue
		}
		if err := fn(cur.Current); err != nil {
			return n, err
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("read: %w", err)
	}
	d.progress.report(to, step)
	return n, nil
}

// jsonl writes one relaxed Extended JSON document a line.
func (d *dataWriter) jsonl() (DataSummary, error) {
	bw := bufio.NewWriterSize(d.out, 64<<10)
	n, err := d.each(StepData+d.q.Collection, 0, 0.99, func(doc bson.Raw) error {
		line, err := bson.MarshalExtJSON(doc, false, false)
		if err != nil {
			return fmt.Errorf("encode a document: %w", err)
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
		return bw.WriteByte('\n')
	})
	if err != nil {
		return DataSummary{}, err
	}
	if err := bw.Flush(); err != nil {
		return DataSummary{}, err
	}
	return DataSummary{Documents: n}, nil
}

// csv writes the header and the rows, from a work file filled by a first
// pass (see the comment at the top).
func (d *dataWriter) csv() (DataSummary, error) {
	work, err := os.CreateTemp(d.opts.WorkDir, "research-*.bson")
	if err != nil {
		return DataSummary{}, fmt.Errorf("create a work file: %w", err)
	}
	defer func() { _ = work.Close(); _ = os.Remove(work.Name()) }()
	cols := newColumns()
	bw := bufio.NewWriterSize(work, 256<<10)
	n, err := d.each(StepDataRead+d.q.Collection, 0, 0.5, func(doc bson.Raw) error {
		if err := cols.add("", doc); err != nil {
			return err
		}
		_, err := bw.Write(doc)
		return err
	})
	if err != nil {
		return DataSummary{}, err
	}
	if err := bw.Flush(); err != nil {
		return DataSummary{}, fmt.Errorf("write the work file: %w", err)
	}
	if _, err := work.Seek(0, io.SeekStart); err != nil {
		return DataSummary{}, fmt.Errorf("rewind the work file: %w", err)
	}
	d.progress.report(0.5, StepDataRows)
	if n == 0 && len(cols.names) == 0 {
		return DataSummary{}, nil
	}
	cw := csv.NewWriter(d.out)
	cw.UseCRLF = true // RFC 4180
	header := make([]string, len(cols.names))
	for i, name := range cols.names {
		header[i] = protectCell(name)
	}
	if err := cw.Write(header); err != nil {
		return DataSummary{}, err
	}
	row := make([]string, len(cols.names))
	filled := make([]bool, len(cols.names))
	br := bufio.NewReaderSize(work, 256<<10)
	var buf []byte
	for i := int64(0); i < n; i++ {
		if buf, err = readBSON(br, buf); err != nil {
			return DataSummary{}, fmt.Errorf("read the work file: %w", err)
		}
		clear(row)
		clear(filled)
		if err := cols.fill("", bson.Raw(buf), row, filled); err != nil {
			return DataSummary{}, err
		}
		if err := cw.Write(row); err != nil {
			return DataSummary{}, err
		}
		if (i+1)%progressEvery == 0 {
			d.progress.report(0.5+0.49*float64(i+1)/float64(n), StepDataRows)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return DataSummary{}, err
	}
	return DataSummary{Documents: n, Columns: len(cols.names)}, nil
}

// readBSON reads one document of the work file into buf.
func readBSON(r *bufio.Reader, buf []byte) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	size := int(binary.LittleEndian.Uint32(head[:]))
	if size < 5 || size > maxBSON {
		return nil, fmt.Errorf("a document of %d bytes", size)
	}
	buf = slices.Grow(buf[:0], size)[:size]
	copy(buf, head[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		return nil, err
	}
	return buf, nil
}

// columns are a CSV's columns in the order their fields were first seen:
// a nested document's fields are columns of their own, named by their
// dotted path; every other value (arrays included) is one cell.
type columns struct {
	names []string
	index map[string]int
	bytes int
}

func newColumns() *columns { return &columns{index: map[string]int{}} }

// errTooWide refuses a collection whose documents have too many fields
// for one CSV file.
var errTooWide = apierr.New(apierr.CodeScopeLimit,
	"the documents have over %d distinct fields (or %d bytes of field names) for CSV columns; download them as jsonl", MaxDataColumns, MaxHeaderBytes)

func (c *columns) add(prefix string, doc bson.Raw) error {
	elems, err := doc.Elements()
	if err != nil {
		return fmt.Errorf("read a document: %w", err)
	}
	for _, e := range elems {
		path := prefix + e.Key()
		v := e.Value()
		if sub, ok := v.DocumentOK(); ok && len(sub) > 5 {
			if err := c.add(path+".", sub); err != nil {
				return err
			}
			continue
		}
		if _, seen := c.index[path]; seen {
			continue
		}
		if len(c.names) >= MaxDataColumns || c.bytes+len(path) > MaxHeaderBytes {
			return errTooWide
		}
		c.index[path] = len(c.names)
		c.names = append(c.names, path)
		c.bytes += len(path)
	}
	return nil
}

// fill writes the document's cells into row; a field whose path another
// field of the same document had already (a name with a dot beside a
// nested document) keeps the first.
func (c *columns) fill(prefix string, doc bson.Raw, row []string, filled []bool) error {
	elems, err := doc.Elements()
	if err != nil {
		return fmt.Errorf("read a document: %w", err)
	}
	for _, e := range elems {
		path := prefix + e.Key()
		v := e.Value()
		if sub, ok := v.DocumentOK(); ok && len(sub) > 5 {
			if err := c.fill(path+".", sub, row, filled); err != nil {
				return err
			}
			continue
		}
		i, ok := c.index[path]
		if !ok || filled[i] {
			continue
		}
		cell, err := cellOf(v)
		if err != nil {
			return err
		}
		row[i], filled[i] = cell, true
	}
	return nil
}

// cellOf is a value as a CSV cell: numbers as numbers, strings as they are
// (guarded against formulas), dates in RFC 3339 (UTC, milliseconds when
// there are any), ObjectIds in hex, null as an empty cell, and everything
// else (arrays, binary, ...) as relaxed Extended JSON text.
func cellOf(v bson.RawValue) (string, error) {
	switch v.Type {
	case bson.TypeString:
		return protectCell(v.StringValue()), nil
	case bson.TypeInt32:
		return strconv.FormatInt(int64(v.Int32()), 10), nil
	case bson.TypeInt64:
		return strconv.FormatInt(v.Int64(), 10), nil
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return protectCell(strconv.FormatFloat(f, 'g', -1, 64)), nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case bson.TypeDecimal128:
		return protectCell(v.Decimal128().String()), nil
	case bson.TypeBoolean:
		return strconv.FormatBool(v.Boolean()), nil
	case bson.TypeNull, bson.TypeUndefined:
		return "", nil
	case bson.TypeDateTime:
		return time.UnixMilli(v.DateTime()).UTC().Format(time.RFC3339Nano), nil
	case bson.TypeObjectID:
		return v.ObjectID().Hex(), nil
	}
	j, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
	if err != nil {
		return "", fmt.Errorf("encode a value: %w", err)
	}
	const open = `{"v":`
	if len(j) < len(open)+1 || string(j[:len(open)]) != open {
		return "", errors.New("encode a value: unexpected Extended JSON")
	}
	return protectCell(string(j[len(open) : len(j)-1])), nil
}

// protectCell keeps a spreadsheet from reading text as a formula: a cell
// that starts with = + - @ (or a tab or carriage return, which some
// spreadsheets skip before one) is prefixed with '. Numbers are written as
// numbers, never prefixed.
func protectCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// ListData lists the experiment's collections, sorted, with how many of
// their documents are the experiment's (counted, not estimated).
func ListData(ctx context.Context, db *mongo.Database, slug string) ([]exportapi.DataCollection, error) {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	slices.Sort(names)
	out := []exportapi.DataCollection{}
	for _, name := range names {
		s, base, ok := scoped.ParseCollectionName(name)
		if !ok || s != slug {
			continue
		}
		if len(out) >= MaxCollections {
			return nil, fmt.Errorf("the experiment has over %d collections", MaxCollections)
		}
		n, err := db.Collection(name).CountDocuments(ctx, bson.D{{Key: scoped.Field, Value: slug}})
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		out = append(out, exportapi.DataCollection{Name: base, Documents: n})
	}
	return out, nil
}
