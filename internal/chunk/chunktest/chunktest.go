// Package chunktest stores chunks and extent pages for tests, and holds
// the extent lists no publisher writes. Nothing that ships imports it.
package chunktest

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// InvalidExtents is a backup's extent list that no publisher writes, for
// the tests of everything that reads extents from the bus.
type InvalidExtents struct {
	Name    string
	Extents []ferry.Extent
	Want    string // in the refusal: names the extent
}

// InvalidExtentLists returns the invalid extent lists of a backup of an
// image of size bytes (at least 64 KiB) whose data lies in the 4 KiB chunk
// that Chunk stored under hash.
func InvalidExtentLists(hash string, size uint64) []InvalidExtents {
	data := func(off, n, chunkOff uint64) ferry.Extent {
		return ferry.Extent{Offset: off, Length: n, Chunk: hash, ChunkOff: chunkOff}
	}
	zero := func(off, n uint64) ferry.Extent { return ferry.Extent{Offset: off, Length: n, Zero: true} }
	return []InvalidExtents{
		{"chunk reference wraps", []ferry.Extent{data(0, 4096, math.MaxUint64-100)}, "data extent 0 (0x0+0x1000)"},
		{"data at 2^64-4096", []ferry.Extent{data(0, 4096, 0), data(math.MaxUint64-4095, 4096, 0)},
			"data extent 1 (0xfffffffffffff000+0x1000) reaches past the image size"},
		{"overlapping", []ferry.Extent{data(0, 4096, 0), zero(4000, 100)}, "zero extent 1 (0xfa0+0x64) starts before the end 0x1000"},
		{"out of order", []ferry.Extent{zero(8192, 10), data(0, 10, 0)}, "data extent 1 (0x0+0xa)"},
		{"past the image", []ferry.Extent{zero(0, 4096), data(size-100, 200, 0)},
			fmt.Sprintf("data extent 1 (0x%x+0xc8) reaches past the image size 0x%x", size-100, size)},
		{"zero of 2^64-1 bytes", []ferry.Extent{zero(1, math.MaxUint64)}, "zero extent 0 (0x1+0xffffffffffffffff)"},
	}
}

// Chunk stores a chunk of 4 KiB in s and returns its address.
func Chunk(t testing.TB, s *chunk.Store) string {
	t.Helper()
	raw := make([]byte, 4096)
	for i := range raw {
		raw[i] = byte(i*13 + 5)
	}
	hash := chunk.Hash(raw)
	if _, err := s.Put(context.Background(), hash, raw); err != nil {
		t.Fatal(err)
	}
	return hash
}

// Page stores extents as one extent page in s and returns its address.
func Page(t testing.TB, s *chunk.Store, extents []ferry.Extent) string {
	t.Helper()
	raw, page, err := s.EncodePage(extents)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), page, raw); err != nil {
		t.Fatal(err)
	}
	return page
}
