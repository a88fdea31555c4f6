package main

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"testing"
)

// A stored vector, read back as the SDK hands it over (base64 of the
// binary data), gives the cosine similarity of the original vectors.
func TestStoredVectorsGiveCosineSimilarity(t *testing.T) {
	a, err := unit([]float64{3, 4, 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := unit([]float64{4, 3, 0})
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := json.Marshal(pack(b))
	var doc struct {
		Binary struct {
			Base64  string `json:"base64"`
			SubType string `json:"subType"`
		} `json:"$binary"`
	}
	if err := json.Unmarshal(ext, &doc); err != nil || doc.Binary.SubType != "00" {
		t.Fatalf("not Extended JSON binary data: %s", ext)
	}
	raw, err := base64.StdEncoding.DecodeString(doc.Binary.Base64)
	if err != nil || len(raw) != 12 {
		t.Fatalf("binary data: %v, %d bytes", err, len(raw))
	}
	sim, ok := dot(a, raw)
	if !ok || math.Abs(sim-24.0/25) > 1e-6 {
		t.Errorf("cosine of (3,4,0) and (4,3,0) = %v %v, want 0.96", sim, ok)
	}
	if _, ok := dot(a, raw[:8]); ok {
		t.Error("vectors of different dimensions were compared")
	}
}

// What an API could answer instead of an embedding is refused.
func TestUnusableEmbeddingsRefused(t *testing.T) {
	for name, v := range map[string][]float64{
		"empty":    {},
		"zero":     {0, 0, 0},
		"NaN":      {1, math.NaN()},
		"infinite": {1, math.Inf(1)},
		"too long": make([]float64, maxDim+1),
		"overflow": {math.MaxFloat64, math.MaxFloat64},
	} {
		if _, err := unit(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBestKeepsTheHighestScores(t *testing.T) {
	got := best([]match{{ID: "a", Score: .1}, {ID: "b", Score: .9}, {ID: "c", Score: .5}, {ID: "d", Score: .9}}, 3)
	want := []string{"b", "d", "c"}
	if len(got) != 3 {
		t.Fatalf("%v", got)
	}
	for i, m := range got {
		if m.ID != want[i] {
			t.Errorf("position %d: %s, want %s (%v)", i, m.ID, want[i], got)
		}
	}
}
