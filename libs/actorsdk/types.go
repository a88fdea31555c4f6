package actorsdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// M is a document whose key order does not matter: a filter, an update, a
// document to store.
type M = map[string]any

// A is an array, such as a pipeline.
type A = []any

// E is one field of a D.
type E struct {
	Key   string
	Value any
}

// D is a document whose keys keep their order, as a sort needs:
// D{{"at", -1}, {"button", 1}}.
type D []E

// MarshalJSON writes the fields in order.
func (d D) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", e.Key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Document is one document as the platform returns it: relaxed Extended
// JSON, which keeps the stored types ({"at": {"$date": "..."}, "_id":
// {"$oid": "..."}}). Decode hands actor code native values; Plain is the
// document as a browser expects it.
type Document json.RawMessage

// Decode decodes the document into v with its Extended JSON made plain
// first (Plain): a date decodes into a time.Time or DateTime field, an
// ObjectId into an ObjectID or string field, a $numberLong into an int64.
// Into map[string]any or any, dates and ids are strings.
func (d Document) Decode(v any) error {
	plain, err := plainJSON(string(d))
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// Plain is the document as plain JSON, for a response: dates as RFC 3339
// strings in UTC ("2026-12-07T10:00:00Z", with the milliseconds when there
// are any), ObjectIds as their 24 hexadecimal digits, numbers as numbers
// (NaN and the infinities as null), binary data as base64 strings; keys,
// their order and every other value stay as they are. A document that is
// not JSON gives null. What Plain returns has lost the stored types: to
// write a document back, use the Document itself, or DateTime and ObjectID
// fields.
func (d Document) Plain() json.RawMessage {
	plain, err := plainJSON(string(d))
	if err != nil {
		return json.RawMessage("null")
	}
	return plain
}

// UnmarshalJSON keeps the document's JSON text.
func (d *Document) UnmarshalJSON(b []byte) error {
	*d = append((*d)[:0], b...)
	return nil
}

// MarshalJSON writes the document as it is.
func (d Document) MarshalJSON() ([]byte, error) {
	if d == nil {
		return []byte("null"), nil
	}
	return d, nil
}

// Documents are the documents a read returned, in order.
type Documents []Document

// Decode decodes the documents into v, a pointer to a slice, as
// Document.Decode decodes one.
func (ds Documents) Decode(v any) error {
	plain, err := plainJSON(string(ds.array()))
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// Plain is the documents as a plain JSON array (Document.Plain), for a
// response: actorsdk.JSON(200, actorsdk.M{"clicks": docs.Plain()}).
func (ds Documents) Plain() json.RawMessage {
	plain, err := plainJSON(string(ds.array()))
	if err != nil {
		return json.RawMessage("null")
	}
	return plain
}

func (ds Documents) array() []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		if d == nil {
			b.WriteString("null")
			continue
		}
		b.Write(d)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// ObjectID is a MongoDB ObjectId, 24 hexadecimal digits. It is written as
// {"$oid": "..."}, so that a filter or a document holding one reaches the
// store as an ObjectId (a plain string would match nothing), and decodes
// from that form or a plain string (Document.Decode gives the latter). For
// a response, send id.Hex() or the documents' Plain.
type ObjectID string

// Hex is the id's hexadecimal digits.
func (id ObjectID) Hex() string { return string(id) }

// String is the id's hexadecimal digits.
func (id ObjectID) String() string { return string(id) }

// MarshalJSON writes {"$oid": "..."}.
func (id ObjectID) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, len(id)+12), `{"$oid":`...)
	b = appendJSONString(b, string(id))
	return append(b, '}'), nil
}

// UnmarshalJSON reads {"$oid": "..."} or a string.
func (id *ObjectID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, (*string)(id))
	}
	var v struct {
		OID *string `json:"$oid"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.OID == nil {
		return fmt.Errorf("actorsdk: %s is not an ObjectId", b)
	}
	*id = ObjectID(*v.OID)
	return nil
}

// DateTime is a BSON date: a time with millisecond precision, written as
// {"$date": "<RFC 3339>"} so that the store keeps it as a date (sortable,
// usable by TTL indexes) rather than a string.
type DateTime time.Time

// Now is the current time as a DateTime.
func Now() DateTime { return DateTime(time.Now().UTC().Truncate(time.Millisecond)) }

// Time is t as a time.Time.
func (t DateTime) Time() time.Time { return time.Time(t) }

// MarshalJSON writes {"$date": "<RFC 3339, milliseconds, UTC>"}.
func (t DateTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Date string `json:"$date"`
	}{time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z07:00")})
}

// String is the time in RFC 3339 with milliseconds, in UTC.
func (t DateTime) String() string {
	return time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// UnmarshalJSON reads the relaxed {"$date": "<RFC 3339>"} and the canonical
// {"$date": {"$numberLong": "<ms>"}} forms, and a plain RFC 3339 string
// (what Document.Decode hands over).
func (t *DateTime) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("actorsdk: date %s: %w", b, err)
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("actorsdk: date %q: %w", s, err)
		}
		*t = DateTime(tm)
		return nil
	}
	var v struct {
		Date json.RawMessage `json:"$date"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Date == nil {
		return fmt.Errorf("actorsdk: %s is not a date", b)
	}
	var s string
	if json.Unmarshal(v.Date, &s) == nil {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("actorsdk: date %q: %w", s, err)
		}
		*t = DateTime(tm)
		return nil
	}
	var n struct {
		Long string `json:"$numberLong"`
	}
	if err := json.Unmarshal(v.Date, &n); err != nil || n.Long == "" {
		return errors.New("actorsdk: " + string(b) + " is not a date")
	}
	ms, err := strconv.ParseInt(n.Long, 10, 64)
	if err != nil {
		return fmt.Errorf("actorsdk: date %s: %w", b, err)
	}
	*t = DateTime(time.UnixMilli(ms).UTC())
	return nil
}
