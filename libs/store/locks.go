package store

import (
	"hash/maphash"
	"slices"
	"sync"
)

// docLocks serialise this process's writes of one document. MongoDB applies
// each update atomically, so they cost it nothing but a little waiting; the
// embedded store (FerretDB on SQLite) applies an update by reading the
// document and writing it back whole, so two updates of one document at
// the same instant can lose one (a build's heartbeat writing back an
// export that an invalidation had just marked). In the embedded mode every
// service runs in this process, so serialising here closes that gap.
// Documents are spread over a fixed set of stripes.
type docLocks struct {
	seed    maphash.Seed
	stripes [256]sync.Mutex
}

var locks = &docLocks{seed: maphash.MakeSeed()}

func (l *docLocks) stripe(collection, id string) int {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(collection)
	h.WriteByte(0)
	h.WriteString(id)
	return int(h.Sum64() % uint64(len(l.stripes)))
}

// lock takes the locks of the documents ids of collection, in a fixed
// order so that two callers never wait for each other, and returns their
// release.
func (l *docLocks) lock(collection string, ids ...string) (unlock func()) {
	idx := make([]int, 0, len(ids))
	for _, id := range ids {
		idx = append(idx, l.stripe(collection, id))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			l.stripes[i].Unlock()
		}
	}
}
