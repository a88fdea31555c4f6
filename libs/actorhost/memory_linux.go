package actorhost

import (
	"context"
	"runtime"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// withLinearMemory makes instances created under ctx keep their linear
// memory in an anonymous mapping reserved at the memory's maximum size.
// Growing it only lengthens the slice: wazero's default memory copies the
// whole of it into a larger buffer on each growth, so an actor that grows
// to its limit spends time quadratic in the limit before it traps. The
// reservation commits no memory (MAP_NORESERVE): pages are taken when the
// guest first writes them and given back when the instance closes.
func withLinearMemory(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(newMappedMemory))
}

// mappedMemory is one instance's linear memory: a reservation of max
// bytes, or, when the mapping cannot be made, a Go slice grown by copying
// as wazero's own memory is.
type mappedMemory struct {
	buf    []byte
	max    uint64
	region *region // the mapping; nil for a Go slice
}

// region is a mapping, unmapped once: by Free, or, for an instance wazero
// never freed (one whose call ran out of time just as it returned, then
// closed), when the memory is garbage collected.
type region struct{ mem []byte }

func (r *region) unmap() {
	if r.mem != nil {
		_ = syscall.Munmap(r.mem)
		r.mem = nil
	}
}

func newMappedMemory(_, limit uint64) experimental.LinearMemory {
	m := &mappedMemory{max: limit}
	if limit > 0 && limit <= 1<<32 {
		buf, err := syscall.Mmap(-1, 0, int(limit), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
		if err == nil {
			m.buf, m.region = buf, &region{mem: buf}
			runtime.AddCleanup(m, (*region).unmap, m.region)
		}
	}
	return m
}

// Reallocate returns the first size bytes of the memory, or nil (the
// guest's memory.grow fails) past its maximum.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	switch {
	case size > m.max:
		return nil
	case m.region != nil:
		return m.buf[:size:size]
	case size > uint64(cap(m.buf)):
		grown := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.max))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.buf = m.buf[:size]
	return m.buf
}

// Free unmaps the reservation.
func (m *mappedMemory) Free() {
	if m.region != nil {
		m.region.unmap()
	}
	m.buf = nil
}
