package scoped

import (
	"bytes"
	"encoding/json"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/jsondepth"
)

// MaxJSONBytes is the largest JSON input the Parse functions take.
const MaxJSONBytes = 16 << 20

// jsonDepthSlack lets Extended JSON wrappers such as {"$date": {"$numberLong":
// "1"}} sit at the deepest BSON level: they nest in JSON, not in BSON.
const jsonDepthSlack = 2

// ParseDocument decodes a filter, update, projection, sort or document sent
// as MongoDB Extended JSON (canonical or relaxed) into a bson.D. The Scope
// checks what it is given; this only bounds the input's size and nesting
// before decoding it.
func ParseDocument(data []byte) (bson.D, error) {
	if err := checkJSON(data, '{'); err != nil {
		return nil, err
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON(data, false, &d); err != nil {
		return nil, apierr.Wrap(apierr.CodeInvalidJson, err, "not a valid Extended JSON document")
	}
	return d, nil
}

// ParseArray decodes a pipeline or a list of documents sent as MongoDB
// Extended JSON into a bson.A, like ParseDocument.
func ParseArray(data []byte) (bson.A, error) {
	if err := checkJSON(data, '['); err != nil {
		return nil, err
	}
	// Extended JSON decodes documents only; data is one valid JSON array
	// (checkJSON), so wrapping it cannot add keys.
	wrapped := make([]byte, 0, len(data)+7)
	wrapped = append(append(append(wrapped, `{"v":`...), data...), '}')
	var d struct {
		V bson.A `bson:"v"`
	}
	if err := bson.UnmarshalExtJSON(wrapped, false, &d); err != nil {
		return nil, apierr.Wrap(apierr.CodeInvalidJson, err, "not a valid Extended JSON array")
	}
	if d.V == nil {
		d.V = bson.A{}
	}
	return d.V, nil
}

// checkJSON refuses data that is too large, not one JSON value opening with
// open, or nested deeper than the default limit (the decoder recurses).
func checkJSON(data []byte, open byte) error {
	if len(data) > MaxJSONBytes {
		return apierr.New(apierr.CodeScopeLimit, "the JSON is %d bytes, over the limit of %d", len(data), MaxJSONBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != open {
		what := "a JSON object"
		if open == '[' {
			what = "a JSON array"
		}
		return apierr.New(apierr.CodeInvalidJson, "not %s", what)
	}
	if jsondepth.Exceeds(data, DefaultLimits.MaxDepth+jsonDepthSlack) {
		return apierr.New(apierr.CodeScopeLimit, "the JSON is nested deeper than %d levels", DefaultLimits.MaxDepth)
	}
	if !json.Valid(data) {
		return apierr.New(apierr.CodeInvalidJson, "not valid JSON")
	}
	return nil
}

// MarshalResults renders documents as a JSON array in relaxed Extended JSON,
// as actors receive them.
func MarshalResults(docs []bson.Raw) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, d := range docs {
		if i > 0 {
			b.WriteByte(',')
		}
		j, err := bson.MarshalExtJSON(d, false, false)
		if err != nil {
			return nil, apierr.Wrap(apierr.CodeInternal, err, "internal error")
		}
		b.Write(j)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}
