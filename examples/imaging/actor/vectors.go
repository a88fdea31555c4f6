package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"sort"
)

// maxDim bounds the embeddings accepted from the API: the largest common
// models have 3072 dimensions.
const maxDim = 4096

// unit returns v scaled to length 1 as float32, so that the cosine
// similarity of two stored vectors is their dot product. A vector that is
// empty, too long, not finite or zero cannot be compared and is refused.
func unit(v []float64) ([]float32, error) {
	if len(v) == 0 || len(v) > maxDim {
		return nil, errors.New("an embedding of 1 to 4096 numbers")
	}
	var sum float64
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("an embedding of finite numbers")
		}
		sum += x * x
	}
	norm := math.Sqrt(sum)
	if norm == 0 || math.IsInf(norm, 0) {
		return nil, errors.New("an embedding that is not zero")
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out, nil
}

// packed is a vector as stored: float32 little-endian, written to the store
// as BSON binary data ({"$binary": ...}), a third the size of an array of
// numbers and quick to read back inside WebAssembly.
type packed []byte

func pack(v []float32) packed {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// MarshalJSON writes Extended JSON binary data (subtype 0).
func (p packed) MarshalJSON() ([]byte, error) {
	return []byte(`{"$binary":{"base64":"` + base64.StdEncoding.EncodeToString(p) + `","subType":"00"}}`), nil
}

// dot is the cosine similarity of a unit vector and a packed unit vector of
// the same dimension; ok is false when the dimensions differ (a document
// from another model, or damaged).
func dot(q []float32, p []byte) (sim float64, ok bool) {
	if len(p) != 4*len(q) {
		return 0, false
	}
	var s float32
	for i, x := range q {
		s += x * math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return float64(s), true
}

// match is a stored text and its similarity to the query.
type match struct {
	ID    string  `json:"id"`
	Text  string  `json:"text"`
	Score float64 `json:"score"`
}

// best keeps the k highest scores, highest first (ties: the newer, which
// was offered first).
func best(all []match, k int) []match {
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score > all[j].Score })
	if len(all) > k {
		all = all[:k]
	}
	return all
}

// round keeps four decimals of a score: more would only be noise of the
// float32 arithmetic.
func round(s float64) float64 { return math.Round(s*1e4) / 1e4 }
