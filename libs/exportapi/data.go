package exportapi

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
)

// Research data: one collection of an experiment as a CSV or JSON Lines
// file, built like any export (a job, progress, a file in the export
// store, the same download route) so that no part of the platform ever
// holds a collection whole: the export service streams it from the
// database into the store, and the edge streams it from the store.

// ResearchData is the type of a research-data export. It is no package
// type: Types and ParseType leave it out, so the package routes never
// take it, and a Request of it must carry a DataQuery.
const ResearchData Type = "research-data"

// Formats of research data.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// collectionSyntax is what a collection's base name may be (libs/scoped's
// rule, repeated here: contracts import no machinery).
var collectionSyntax = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// DataQuery is what a research-data export holds: the documents of one of
// the experiment's collections created in [From, To) (either bound may be
// absent), in Format.
type DataQuery struct {
	Collection string     `bson:"collection" json:"collection"`
	Format     string     `bson:"format" json:"format"`
	From       *time.Time `bson:"from,omitempty" json:"from,omitempty"`
	To         *time.Time `bson:"to,omitempty" json:"to,omitempty"`
}

// Check refuses a query out of shape, naming the field: the edge checks it
// on the way in, and the export service again whoever asks.
func (q *DataQuery) Check() error {
	if q == nil {
		return apierr.New(apierr.CodeValidationFailed, "a research-data export needs a collection and a format").OnField("/collection")
	}
	if !collectionSyntax.MatchString(q.Collection) {
		shown := q.Collection
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		return apierr.New(apierr.CodeValidationFailed, "collection %q is not a collection name: 1 to 64 letters, digits or _", shown).OnField("/collection")
	}
	switch q.Format {
	case FormatCSV, FormatJSONL:
	default:
		return apierr.New(apierr.CodeValidationFailed, "format must be csv or jsonl").OnField("/format")
	}
	if q.From != nil && q.To != nil && !q.From.Before(*q.To) {
		return apierr.New(apierr.CodeValidationFailed, "from must be before to").OnField("/from")
	}
	return nil
}

// Key is the query's part of an export's source key: two exports with the
// same key and data version hold the same bytes.
func (q *DataQuery) Key() string {
	bound := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s|%s|%s|%s", q.Collection, q.Format, bound(q.From), bound(q.To))
}

// ContentType is the media type of the file.
func (q *DataQuery) ContentType() string {
	if q.Format == FormatCSV {
		return "text/csv; charset=utf-8"
	}
	return "application/jsonl; charset=utf-8"
}

// DataFileName is the name a research-data file is offered under:
// {slug}-{collection}-{UTC time of the request}.{csv|jsonl}.
func DataFileName(slug string, q *DataQuery, at time.Time) string {
	return fmt.Sprintf("%s-%s-%s.%s", slug, q.Collection, at.UTC().Format("20060102T150405Z"), q.Format)
}

// DataStorageKey is where a research-data file is stored.
func DataStorageKey(id, format string) string { return "exports/" + id + "." + format }

// StorageKeyOf is where the export's own file is stored (a reused export
// holds its source's key instead).
func (l *Log) StorageKeyOf() string {
	if l.Data != nil {
		return DataStorageKey(l.ID, l.Data.Format)
	}
	return StorageKey(l.ID)
}

// ContentType is the media type of the export's file.
func (l *Log) ContentType() string {
	if l.Data != nil {
		return l.Data.ContentType()
	}
	return "application/zip"
}

// EndpointData lists an experiment's collections with their documents, for
// its owner and admins.
var EndpointData = contract.Endpoint[DataList, DataCollections]{Service: Service, Name: "data"}

// Data lists an experiment's collections.
func (c Client) Data(ctx context.Context, req DataList) (DataCollections, error) {
	return EndpointData.Call(ctx, c.T, req)
}

// DataList names the experiment whose collections are listed.
type DataList struct {
	Slug   string          `json:"slug"`
	Caller contract.Caller `json:"caller"`
}

func (r *DataList) CallerOf() *contract.Caller { return &r.Caller }

// DataCollections is the answer to DataList, collections sorted by name.
type DataCollections struct {
	Slug        string           `json:"slug"`
	Collections []DataCollection `json:"collections"`
}

// DataCollection is one collection of the experiment and how many of its
// documents are the experiment's.
type DataCollection struct {
	Name      string `json:"name"`
	Documents int64  `json:"documents"`
}

// ParseDataTime reads a bound of the time filter: RFC 3339, with a zone.
func ParseDataTime(field, s string) (*time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, apierr.New(apierr.CodeValidationFailed, "%s must be an RFC 3339 time such as 2026-01-31T00:00:00Z", field).OnField("/" + field)
	}
	t = t.UTC()
	return &t, nil
}
