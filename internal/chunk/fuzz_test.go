package chunk

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// FuzzPage feeds arbitrary page bytes, image sizes and chunk lengths to
// what the diff reader does with a page: DecodePage, then ferry.ExtentCheck
// and Extent.InChunk on each extent. None may panic, every refusal is
// ferry.ErrInvalid, and every extent accepted is one the import can take:
// ascending, not overlapping, inside the image, and its bytes inside its
// chunk (sliced here as the reader slices them).
func FuzzPage(f *testing.F) {
	hash := Hash([]byte("chunk"))
	for _, extents := range [][]ferry.Extent{
		{{Offset: 0, Length: 4096, Chunk: hash}, {Offset: 4096, Length: 8192, Zero: true}, {Offset: 65536, Length: 100, Chunk: hash, ChunkOff: 4096}},
		{{Offset: 0, Length: 4096, Chunk: hash, ChunkOff: math.MaxUint64 - 100}},
		{{Offset: math.MaxUint64 - 4095, Length: 4096, Chunk: hash}},
		{{Offset: 1, Length: math.MaxUint64, Zero: true}},
	} {
		raw, err := json.Marshal(extents)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, uint64(1<<20), uint32(8192))
	}
	f.Fuzz(func(t *testing.T, raw []byte, size uint64, chunkLen uint32) {
		chunkLen %= 1 << 16 // a buffer of this many bytes is sliced below
		extents, err := DecodePage(raw)
		if err != nil {
			requireErrInvalid(t, err)
			return
		}
		if len(extents) == 0 || len(extents) > PageSize {
			t.Fatalf("accepted a page of %d extents", len(extents))
		}
		back, err := json.Marshal(extents)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := DecodePage(back); err != nil || !reflect.DeepEqual(again, extents) {
			t.Fatalf("page does not survive a round trip: %v", err)
		}
		check := ferry.NewExtentCheck(size, bus.MaxChunkSize)
		buf := make([]byte, chunkLen)
		var prevEnd uint64
		for i, e := range extents {
			if err := check.Next(e); err != nil {
				requireErrInvalid(t, err)
				return
			}
			if e.Offset < prevEnd || e.Offset > size || e.Length > size-e.Offset {
				t.Fatalf("accepted extent %d 0x%x+0x%x after 0x%x in an image of 0x%x bytes", i, e.Offset, e.Length, prevEnd, size)
			}
			prevEnd = e.Offset + e.Length
			if e.Zero {
				if e.Chunk != "" || e.ChunkOff != 0 {
					t.Fatalf("accepted zero extent %d naming a chunk", i)
				}
				continue
			}
			if !ferry.IsChunkHash(e.Chunk) {
				t.Fatalf("accepted extent %d naming chunk %q", i, e.Chunk)
			}
			if err := e.InChunk(i, uint64(len(buf))); err != nil {
				requireErrInvalid(t, err)
				continue
			}
			_ = buf[e.ChunkOff : e.ChunkOff+e.Length]
		}
	})
}

func requireErrInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ferry.ErrInvalid) {
		t.Fatalf("error %v is not ferry.ErrInvalid", err)
	}
}
