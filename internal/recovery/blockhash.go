package recovery

import (
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// Verification grain: blocks are hashed one by one (so a difference is named
// to the block), and compared a window at a time.
const (
	blockSize   = 4 << 10
	windowSize  = 4 << 20
	windowSlots = windowSize / blockSize
)

// digest is a block's SHA-256, or all zero bytes for a block that reads as
// zeros: those are neither read nor hashed when librbd already knows them as
// zeros, and the marker is decided by content, never by how the bytes came.
type digest [sha256.Size]byte

// window is the digests of one windowSize range of an image, in order.
// blocks is nil when the whole window reads as zeros.
type window struct {
	off, len uint64
	blocks   []digest
}

// blockHasher is an rbddiff.Sink that turns a full export (from creation:
// every byte is either in a data record, in a zero record or in no record at
// all, which also reads as zeros) into windows of block digests, in order.
type blockHasher struct {
	emit func(window) error

	size    uint64
	pos     uint64 // bytes of the image accounted for
	cur     window
	h       hash.Hash
	inBlock uint64 // bytes of the current block fed to h
	nonZero bool   // the current block has a non-zero byte
}

func newBlockHasher(emit func(window) error) *blockHasher {
	return &blockHasher{emit: emit, h: sha256.New()}
}

func (b *blockHasher) WriteHeader(h rbddiff.Header) error {
	b.size = h.Size
	b.cur = window{len: min(windowSize, b.size)}
	return nil
}

func (b *blockHasher) WriteData(off uint64, p []byte) error {
	if err := b.zeros(off); err != nil {
		return err
	}
	for len(p) > 0 {
		n := min(uint64(len(p)), blockSize-b.inBlock)
		chunk := p[:n]
		b.h.Write(chunk)
		if !b.nonZero && !allZero(chunk) {
			b.nonZero = true
		}
		b.inBlock += n
		b.pos += n
		p = p[n:]
		if err := b.endBlockIfFull(); err != nil {
			return err
		}
	}
	return nil
}

func (b *blockHasher) WriteZero(off, length uint64) error {
	if err := b.zeros(off); err != nil {
		return err
	}
	return b.zeros(off + length)
}

// Close accounts for the unreported tail of the image.
func (b *blockHasher) Close() error { return b.zeros(b.size) }

// zeros advances to end, the range up to it reading as zeros. Whole blocks
// are marked without hashing.
func (b *blockHasher) zeros(end uint64) error {
	for b.pos < end {
		if b.inBlock == 0 && end-b.pos >= b.blockLen() {
			b.pos += b.blockLen()
			b.inBlock = b.blockLen()
			if err := b.endBlock(digest{}); err != nil {
				return err
			}
			continue
		}
		n := min(end-b.pos, b.blockLen()-b.inBlock)
		b.h.Write(zeroBlock[:n])
		b.inBlock += n
		b.pos += n
		if err := b.endBlockIfFull(); err != nil {
			return err
		}
	}
	return nil
}

// blockLen is the length of the current block: blockSize, or less at the end.
func (b *blockHasher) blockLen() uint64 {
	start := b.pos - b.inBlock
	return min(blockSize, b.size-start)
}

func (b *blockHasher) endBlockIfFull() error {
	if b.inBlock < b.blockLen() {
		return nil
	}
	var d digest
	if b.nonZero {
		b.h.Sum(d[:0])
	}
	return b.endBlock(d)
}

func (b *blockHasher) endBlock(d digest) error {
	b.h.Reset()
	b.inBlock, b.nonZero = 0, false
	idx := int((b.pos - 1 - b.cur.off) / blockSize) // the block just finished
	if d != (digest{}) && b.cur.blocks == nil {
		b.cur.blocks = make([]digest, idx, windowSlots) // the blocks before it were all zero
	}
	if b.cur.blocks != nil {
		b.cur.blocks = append(b.cur.blocks, d)
	}
	if b.pos < b.cur.off+b.cur.len {
		return nil
	}
	w := b.cur
	if w.blocks != nil && len(w.blocks) != blocksIn(w.len) {
		return fmt.Errorf("verify: internal error: %d block digests for window %#x+%#x", len(w.blocks), w.off, w.len)
	}
	next := w.off + w.len
	b.cur = window{off: next, len: min(windowSize, b.size-next)}
	return b.emit(w)
}

func blocksIn(n uint64) int { return int((n + blockSize - 1) / blockSize) }

var zeroBlock = make([]byte, blockSize)

func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if string(p[:n]) != string(zeroBlock[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}
