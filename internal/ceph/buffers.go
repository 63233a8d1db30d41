package ceph

// buffers is a fixed free list of I/O buffers in two sizes: large ones for
// whole objects, and many small ones so that an incremental of scattered
// small extents keeps many reads (export) or writes (import) in flight
// without pinning a 4 MiB buffer for each. Memory is bounded by what
// newBuffers allocates, once.
type buffers struct {
	large, small chan []byte
}

const smallBufSize = 64 << 10

func newBuffers(nLarge, nSmall int) *buffers {
	b := &buffers{large: make(chan []byte, nLarge), small: make(chan []byte, nSmall)}
	for range nLarge {
		b.large <- make([]byte, ioSize)
	}
	for range nSmall {
		b.small <- make([]byte, smallBufSize)
	}
	return b
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
