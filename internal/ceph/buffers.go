package ceph

// buffers is a fixed free list of I/O buffers in two sizes: large ones for
// whole objects, and many small ones so that an incremental of scattered
// small writes keeps many writes in flight without pinning a 4 MiB buffer
// for each. The buffers are C memory, because librbd sends asynchronous
// writes straight from them. Memory is bounded by what newBuffers
// allocates, once; free returns it.
type buffers struct {
	large, small chan []byte
	all          [][]byte
}

const smallBufSize = 64 << 10

func newBuffers(nLarge, nSmall int) *buffers {
	b := &buffers{large: make(chan []byte, nLarge), small: make(chan []byte, nSmall)}
	for range nLarge {
		buf := cAlloc(ioSize)
		b.all = append(b.all, buf)
		b.large <- buf
	}
	for range nSmall {
		buf := cAlloc(smallBufSize)
		b.all = append(b.all, buf)
		b.small <- buf
	}
	return b
}

// get returns an empty buffer with room for n bytes (n <= ioSize), waiting
// for one to come free, or nil when done is closed first.
func (b *buffers) get(n uint64, done <-chan struct{}) []byte {
	pool := b.large
	if n <= smallBufSize {
		pool = b.small
	}
	select {
	case buf := <-pool:
		return buf[:0]
	case <-done:
		return nil
	}
}

// put gives a buffer from get back.
func (b *buffers) put(buf []byte) {
	if cap(buf) == smallBufSize {
		b.small <- buf[:0]
		return
	}
	b.large <- buf[:0]
}

// free releases the memory. No buffer may be in use any more.
func (b *buffers) free() {
	for _, buf := range b.all {
		cFree(buf)
	}
	b.all = nil
}
