package actorsdk

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNoDocuments is what FindOne returns when no document matches.
var ErrNoDocuments = errors.New("actorsdk: no document matches")

// Reader reads one collection: the experiment's own, or another
// experiment's listed in its data_scope. Filters, sorts, projections and
// pipelines are any value encoding/json renders as the Extended JSON the
// platform expects: M, D, A, structs or json.RawMessage. Reads see only the
// documents of the experiment they name.
type Reader struct {
	slug string
	name string
}

// Collection is one of the experiment's own collections: a Reader that may
// also write.
type Collection struct {
	Reader
}

// DB is the experiment's own collection name (a base name of 1 to 64 ASCII
// letters, digits or underscores; the platform stores it as {slug}_{name}).
func DB(name string) *Collection { return &Collection{Reader{name: name}} }

// DBFrom is the collection name of the experiment slug, which the manifest's
// data_scope must list ("shared" for the platform's shared collections). It
// is read-only.
func DBFrom(slug, name string) *Reader { return &Reader{slug: slug, name: name} }

// Name is the collection's base name.
func (r *Reader) Name() string { return r.name }

// Slug is whose collection it is; "" for the experiment's own.
func (r *Reader) Slug() string { return r.slug }

// FindOption shapes Find and FindOne.
type FindOption func(*findRequest)

// Sort orders the results; use D to keep the keys' order:
// Sort(D{{"at", -1}}).
func Sort(sort any) FindOption {
	return func(r *findRequest) { r.Sort = sort }
}

// Projection picks the fields returned: M{"button": 1, "_id": 0}.
func Projection(p any) FindOption {
	return func(r *findRequest) { r.Projection = p }
}

// Limit returns at most n documents (at most 1000). Without a limit a read
// that matches more than 1000 documents fails with scope_limit.
func Limit(n int64) FindOption {
	return func(r *findRequest) { r.Limit = n }
}

// Skip skips the first n matches.
func Skip(n int64) FindOption {
	return func(r *findRequest) { r.Skip = n }
}

type findRequest struct {
	Collection string `json:"collection"`
	Slug       string `json:"slug,omitempty"`
	Filter     any    `json:"filter,omitempty"`
	Sort       any    `json:"sort,omitempty"`
	Projection any    `json:"projection,omitempty"`
	Limit      int64  `json:"limit,omitempty"`
	Skip       int64  `json:"skip,omitempty"`
}

func (r *Reader) find(filter any, opts []FindOption) findRequest {
	req := findRequest{Collection: r.name, Slug: r.slug, Filter: filter}
	for _, o := range opts {
		o(&req)
	}
	return req
}

// Find returns the documents that match filter (nil matches all).
func (r *Reader) Find(filter any, opts ...FindOption) (Documents, error) {
	var res struct {
		Documents Documents `json:"documents"`
	}
	err := Call("db.find", r.find(filter, opts), &res)
	return res.Documents, err
}

// FindOne returns the first document that matches filter, or
// ErrNoDocuments. Limit does not apply.
func (r *Reader) FindOne(filter any, opts ...FindOption) (Document, error) {
	req := r.find(filter, opts)
	req.Limit = 0
	var res struct {
		Document json.RawMessage `json:"document"`
	}
	if err := Call("db.find_one", req, &res); err != nil {
		return nil, err
	}
	if res.Document == nil || string(res.Document) == "null" {
		return nil, ErrNoDocuments
	}
	return Document(res.Document), nil
}

// Count is the number of documents that match filter (nil matches all).
func (r *Reader) Count(filter any) (int64, error) {
	var res struct {
		Count int64 `json:"count"`
	}
	err := Call("db.count", struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug,omitempty"`
		Filter     any    `json:"filter,omitempty"`
	}{r.name, r.slug, filter}, &res)
	return res.Count, err
}

// Aggregate runs pipeline, a list of stages ($match, $project, $group,
// $sort, $limit, $skip, $unwind, $count, $set, $addFields), over the
// collection's documents.
func (r *Reader) Aggregate(pipeline any) (Documents, error) {
	if pipeline == nil {
		pipeline = A{}
	}
	var res struct {
		Documents Documents `json:"documents"`
	}
	err := Call("db.aggregate", struct {
		Collection string `json:"collection"`
		Slug       string `json:"slug,omitempty"`
		Pipeline   any    `json:"pipeline"`
	}{r.name, r.slug, pipeline}, &res)
	return res.Documents, err
}

// InsertOne stores doc and returns its _id in Extended JSON
// ({"$oid": "..."} when the platform made one). The platform sets
// experiment_id.
func (c *Collection) InsertOne(doc any) (json.RawMessage, error) {
	ids, err := c.insert([]any{doc})
	if err != nil {
		return nil, err
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("db.insert: the host returned %d ids for 1 document", len(ids))
	}
	return ids[0], nil
}

// InsertMany stores docs, a slice of 1 to 1000 documents, in order, and
// returns their _ids.
func (c *Collection) InsertMany(docs any) ([]json.RawMessage, error) {
	return c.insert(docs)
}

func (c *Collection) insert(docs any) ([]json.RawMessage, error) {
	var res struct {
		IDs []json.RawMessage `json:"inserted_ids"`
	}
	err := Call("db.insert", struct {
		Collection string `json:"collection"`
		Documents  any    `json:"documents"`
	}{c.name, docs}, &res)
	return res.IDs, err
}

// UpdateOption shapes UpdateOne and UpdateMany.
type UpdateOption func(*updateRequest)

// Upsert inserts a document built from the filter's equality conditions and
// the update when nothing matches.
func Upsert() UpdateOption {
	return func(r *updateRequest) { r.Upsert = true }
}

type updateRequest struct {
	Collection string `json:"collection"`
	Filter     any    `json:"filter"`
	Update     any    `json:"update"`
	Many       bool   `json:"many,omitempty"`
	Upsert     bool   `json:"upsert,omitempty"`
}

// UpdateResult is what an update did.
type UpdateResult struct {
	Matched  int64 `json:"matched"`
	Modified int64 `json:"modified"`
	// UpsertedID is the _id of the document an upsert inserted, or nil.
	UpsertedID json.RawMessage `json:"upserted_id,omitempty"`
}

// UpdateOne applies update (update operators such as $set and $inc) to the
// first document that matches filter (nil matches all).
func (c *Collection) UpdateOne(filter, update any, opts ...UpdateOption) (UpdateResult, error) {
	return c.update(filter, update, false, opts)
}

// UpdateMany applies update to every document that matches filter.
func (c *Collection) UpdateMany(filter, update any, opts ...UpdateOption) (UpdateResult, error) {
	return c.update(filter, update, true, opts)
}

func (c *Collection) update(filter, update any, many bool, opts []UpdateOption) (UpdateResult, error) {
	req := updateRequest{Collection: c.name, Filter: orEmpty(filter), Update: update, Many: many}
	for _, o := range opts {
		o(&req)
	}
	var res UpdateResult
	err := Call("db.update", req, &res)
	return res, err
}

// DeleteOne deletes the first document that matches filter and returns how
// many it deleted (0 or 1).
func (c *Collection) DeleteOne(filter any) (int64, error) { return c.delete(filter, false) }

// DeleteMany deletes every document that matches filter (nil: all of them)
// and returns how many it deleted.
func (c *Collection) DeleteMany(filter any) (int64, error) { return c.delete(filter, true) }

func (c *Collection) delete(filter any, many bool) (int64, error) {
	var res struct {
		Deleted int64 `json:"deleted"`
	}
	err := Call("db.delete", struct {
		Collection string `json:"collection"`
		Filter     any    `json:"filter"`
		Many       bool   `json:"many,omitempty"`
	}{c.name, orEmpty(filter), many}, &res)
	return res.Deleted, err
}

func orEmpty(filter any) any {
	if filter == nil {
		return M{}
	}
	return filter
}
