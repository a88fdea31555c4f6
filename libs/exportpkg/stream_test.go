package exportpkg_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// sampler is where the package goes: it keeps nothing of it, but counts and
// hashes it as the export store's writer does, and every MiB it reads the
// heap twice: as it is (live objects and garbage not yet collected), then
// after a collection (what Write and the store hold at that moment).
type sampler struct {
	n, next            int64
	sum                hash.Hash
	base               uint64
	peakHeap, peakLive uint64
}

func newSampler() *sampler {
	// Twice: the first collection moves pooled buffers aside, the second
	// frees them.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &sampler{sum: sha256.New(), base: ms.HeapAlloc, next: 1 << 20}
}

func (s *sampler) Write(p []byte) (int, error) {
	s.sum.Write(p)
	s.n += int64(len(p))
	if s.n >= s.next {
		s.next += 1 << 20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.peakHeap = max(s.peakHeap, ms.HeapAlloc)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		s.peakLive = max(s.peakLive, ms.HeapAlloc)
	}
	return len(p), nil
}

// growth is how far the heap rose above where it was before Write.
func (s *sampler) growth() (heap, live int64) {
	return int64(s.peakHeap) - int64(s.base), int64(s.peakLive) - int64(s.base)
}

// TestWriteStreams exports documents of random content (so that the package
// does not compress away) and checks that the heap holds a small fraction of
// the package's size while it is written: the package is never held whole,
// nor the data. The store runs in this process, so its memory for the query
// counts too.
//
// Figures on the 2-core test machine. Without the race detector: 200,000
// documents of 128 random bytes make a 32 MiB package in about 12 s, with
// the live heap at most 1.3 MiB above where it was before (12 MiB counting
// the garbage not yet collected); 3,000 documents of 24 KiB make a 73 MiB
// package in about 4 s with 2 to 3 MiB more live heap (20 MiB with
// garbage). With the race detector, which slows the store tenfold, 800
// documents of 24 KiB make a 21 MiB package with 1.9 MiB more live heap.
func TestWriteStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("exports tens of MiB")
	}
	client := connect(t)
	for _, tc := range []struct {
		name    string
		docs    int
		payload int
		race    bool // runs with the race detector
	}{
		{"200,000 small documents", 200_000, 128, false},
		{"3,000 big documents", 3_000, 24 << 10, false},
		{"800 big documents", 800, 24 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case raceEnabled && !tc.race:
				t.Skip("takes minutes with the race detector")
			case !raceEnabled && tc.race:
				t.Skip("the smaller export for runs with the race detector")
			}
			streams(t, client.Database(fmt.Sprintf("export_stream_%d", tc.docs)), tc.docs, tc.payload)
		})
	}
}

func streams(t *testing.T, db *mongo.Database, docs, payloadSize int) {
	norm, sum := normalised(t, uploadZip(t))
	src := exportpkg.Source{Bundle: bytes.NewReader(norm), BundleSize: int64(len(norm)), DB: db}
	src.Config.Slug, src.Config.Version, src.Config.Checksum = slug, 1, sum.Checksum

	ctx := ctxT(t)
	rng := rand.New(rand.NewPCG(1, 2))
	batchSize := max(1, min(5000, (8<<20)/payloadSize))
	batch := make([]any, 0, batchSize)
	for i := range docs {
		payload := make([]byte, payloadSize)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		batch = append(batch, bson.D{
			{Key: "_id", Value: bson.NewObjectID()},
			{Key: "experiment_id", Value: slug},
			{Key: "i", Value: int32(i)},
			{Key: "at", Value: bson.DateTime(1_700_000_000_000 + int64(i))},
			{Key: "tag", Value: hex.EncodeToString(payload[:8])},
			{Key: "payload", Value: bson.Binary{Subtype: 0, Data: payload}},
		})
		if len(batch) == cap(batch) || i == docs-1 {
			if _, err := db.Collection(scoped.CollectionName("shop", "events")).InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	batch = nil

	sink := newSampler()
	var fractions []float64
	start := time.Now()
	s, err := exportpkg.Write(ctx, sink, exportapi.Standalone, src, exportpkg.Options{
		Progress: func(fr float64, _ string) { fractions = append(fractions, fr) },
	})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if s.Documents != int64(docs) || s.Size != sink.n {
		t.Fatalf("exported %d documents in %d bytes; want %d documents, %d bytes written", s.Documents, s.Size, docs, sink.n)
	}
	if got := hex.EncodeToString(sink.sum.Sum(nil)); got != s.SHA256 {
		t.Errorf("summary sha256 %s, the written bytes hash to %s", s.SHA256, got)
	}
	heap, live := sink.growth()
	t.Logf("%d documents, package %.1f MiB, in %v; heap growth at most %.1f MiB, %.1f MiB live",
		s.Documents, mib(s.Size), elapsed.Round(time.Millisecond), mib(heap), mib(live))
	// Only the live heap is held to a bound: how much garbage waits for the
	// collector depends on its pacing, not on Write.
	if live > s.Size/4 {
		t.Errorf("the live heap grew by %.1f MiB for a package of %.1f MiB", mib(live), mib(s.Size))
	}
	// Progress is reported along the collection, not only at its ends.
	if len(fractions) < docs/1000 || fractions[len(fractions)-1] != 1 {
		t.Errorf("%d progress reports, last %v", len(fractions), fractions[len(fractions)-1])
	}
	for i := 1; i < len(fractions); i++ {
		if fractions[i] < fractions[i-1] {
			t.Fatalf("progress goes back at %d: %v then %v", i, fractions[i-1], fractions[i])
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
