package ceph

import (
	"errors"
	"fmt"
)

// errBuffersOut: an I/O buffer was not given back by the end of an export or
// import, a bug. The buffer is left allocated, since librbd may hold it.
var errBuffersOut = errors.New("internal error: I/O buffers not given back")

// buffers is a fixed free list of I/O buffers in two sizes: large ones for
// whole objects, and many small ones so that an incremental of scattered
// small extents keeps many reads (export) or writes (import) in flight
// without pinning a 4 MiB buffer for each. Memory is bounded by what
// newBuffers allocates, once.
type buffers struct {
	large, small chan []byte
}

const smallBufSize = 64 << 10

// newBuffers allocates C memory, for librbd's asynchronous calls (see
// aioImage); give it back with free once every buffer is home.
func newBuffers(nLarge, nSmall int) *buffers {
	b := &buffers{large: make(chan []byte, nLarge), small: make(chan []byte, nSmall)}
	for range nLarge {
		b.large <- cAlloc(ioSize)
	}
	for range nSmall {
		b.small <- cAlloc(smallBufSize)
	}
	return b
}

// free releases the buffers that are home. A buffer still
// out may be in librbd's hands: it is left alone (leaked), and reported.
func (b *buffers) free() error {
	out := 0
	for _, pool := range []chan []byte{b.large, b.small} {
		out += cap(pool) - len(pool)
		for len(pool) > 0 {
			cFree(<-pool)
		}
	}
	if out > 0 {
		return fmt.Errorf("%w: %d left allocated", errBuffersOut, out)
	}
	return nil
}

// get returns a buffer of n bytes (n <= ioSize), waiting for one to come
// free, or nil when done is closed first.
func (b *buffers) get(n uint64, done <-chan struct{}) []byte {
	pool := b.large
	if n <= smallBufSize {
		pool = b.small
	}
	select {
	case buf := <-pool:
		return buf[:n]
	case <-done:
		return nil
	}
}

// put gives a buffer from get back.
func (b *buffers) put(buf []byte) {
	if cap(buf) == smallBufSize {
		b.small <- buf[:smallBufSize]
		return
	}
	b.large <- buf[:cap(buf)]
}
