package ferry

import (
	"errors"
	"fmt"
)

// ErrInvalid marks a message or extent list from the bus that can never be
// applied as it stands: extents that wrap, overlap, run out of order or
// past the image, a chunk reference outside its chunk, a count or size
// beyond Ferry's bounds. Retrying the same input cannot help, so whoever
// reads it gives it up at once instead of trying again (or crashing on it).
var ErrInvalid = errors.New("invalid backup data")

// Invalid returns an error that wraps ErrInvalid.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// IsChunkHash tells whether s is a chunk address: hex SHA-256, lower case.
// Chunk addresses become subject tokens, so anything else (a '.', '*' or
// '>' in a forged address would reach other chunks) is refused.
func IsChunkHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ExtentCheck validates the extents of one backup in order, at least as
// strictly as rbd import-diff checks a diff file: extents ascend, never
// overlap and stay inside the image; a zero extent names no chunk; a data
// extent names a chunk by its address and lies inside the largest chunk
// there can be. All arithmetic is safe from overflow. The zero value is
// not usable: see NewExtentCheck.
type ExtentCheck struct {
	size     uint64 // of the image at the backup's to-snapshot
	maxChunk uint64 // bytes in the largest chunk
	n        int    // extents checked so far
	prevEnd  uint64
}

// NewExtentCheck checks the extents of a backup of an image of size bytes
// whose chunks hold at most maxChunk bytes.
func NewExtentCheck(size, maxChunk uint64) *ExtentCheck {
	return &ExtentCheck{size: size, maxChunk: maxChunk}
}

// Next checks the next extent of the backup.
func (c *ExtentCheck) Next(e Extent) error {
	i := c.n
	c.n++
	switch {
	case e.Offset < c.prevEnd:
		return Invalid("%s starts before the end 0x%x of the extent before it (extents must ascend and not overlap)", e.Name(i), c.prevEnd)
	case e.Offset > c.size || e.Length > c.size-e.Offset:
		return Invalid("%s reaches past the image size 0x%x", e.Name(i), c.size)
	}
	if e.Zero {
		if e.Chunk != "" || e.ChunkOff != 0 {
			return Invalid("%s is a zero extent but names chunk %.64q at 0x%x", e.Name(i), e.Chunk, e.ChunkOff)
		}
	} else {
		if !IsChunkHash(e.Chunk) {
			return Invalid("%s names chunk %.80q, which is not a chunk address (64 hex digits)", e.Name(i), e.Chunk)
		}
		if e.ChunkOff > c.maxChunk || e.Length > c.maxChunk-e.ChunkOff {
			return Invalid("%s takes 0x%x bytes from 0x%x in chunk %s, past the largest chunk (0x%x bytes)", e.Name(i), e.Length, e.ChunkOff, e.Chunk, c.maxChunk)
		}
	}
	c.prevEnd = e.Offset + e.Length
	return nil
}

// Count is the number of extents checked so far.
func (c *ExtentCheck) Count() int { return c.n }

// InChunk checks that the data extent e lies inside its chunk, which holds
// n bytes.
func (e Extent) InChunk(i int, n uint64) error {
	if e.ChunkOff > n || e.Length > n-e.ChunkOff {
		return Invalid("%s takes 0x%x bytes from 0x%x in chunk %s, which holds only 0x%x bytes", e.Name(i), e.Length, e.ChunkOff, e.Chunk, n)
	}
	return nil
}

// Name names the extent, the i-th of its backup (from 0), in messages.
func (e Extent) Name(i int) string {
	kind := "data"
	if e.Zero {
		kind = "zero"
	}
	return fmt.Sprintf("%s extent %d (0x%x+0x%x)", kind, i, e.Offset, e.Length)
}
