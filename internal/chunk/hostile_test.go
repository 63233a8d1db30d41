package chunk

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// TestDiffReaderRefusesInvalidExtents: extent pages a publisher never
// writes, stored as honest chunks, stop the diff with ferry.ErrInvalid
// naming the extent, before the import gets the extent: no panic, no
// record past the image, and a good chunk is not blamed (ErrCorrupt would
// have the consumer remove it).
func TestDiffReaderRefusesInvalidExtents(t *testing.T) {
	c := bus.TestConn(t)
	ctx := context.Background()
	store, err := Open(ctx, c.Backup, 6)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4096)
	for i := range raw {
		raw[i] = byte(i*7 + 1)
	}
	hash := Hash(raw)
	if _, err := store.Put(ctx, hash, raw); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	data := func(off, n, chunkOff uint64) ferry.Extent {
		return ferry.Extent{Offset: off, Length: n, Chunk: hash, ChunkOff: chunkOff}
	}
	zero := func(off, n uint64) ferry.Extent { return ferry.Extent{Offset: off, Length: n, Zero: true} }
	for _, tc := range []struct {
		name    string
		extents []ferry.Extent
		want    string // in the error
	}{
		{"chunk offset plus length wraps", []ferry.Extent{data(0, 4096, math.MaxUint64-100)}, "data extent 0 (0x0+0x1000)"},
		{"past the end of its chunk", []ferry.Extent{data(0, 200, 4000)}, "holds only 0x1000 bytes"},
		{"offset wraps past 2^64", []ferry.Extent{data(math.MaxUint64-4095, 4096, 0)}, "past the image size"},
		{"past the image", []ferry.Extent{zero(0, 4096), data(size-100, 200, 0)}, "data extent 1 (0xfff9c+0xc8) reaches past the image size 0x100000"},
		{"zero of 2^64-1 bytes", []ferry.Extent{zero(1, math.MaxUint64)}, "zero extent 0"},
		{"overlapping", []ferry.Extent{data(0, 4096, 0), zero(4000, 100)}, "zero extent 1 (0xfa0+0x64) starts before the end 0x1000"},
		{"out of order", []ferry.Extent{zero(8192, 10), data(0, 10, 0)}, "data extent 1"},
		{"zero extent naming a chunk", []ferry.Extent{{Offset: 0, Length: 10, Zero: true, Chunk: hash}}, "zero extent but names chunk"},
		{"chunk address a subject wildcard", []ferry.Extent{{Offset: 0, Length: 10, Chunk: ">"}}, "not a chunk address"},
		{"beyond the largest chunk", []ferry.Extent{data(0, 16, bus.MaxChunkSize)}, "past the largest chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, addr, err := EncodePage(tc.extents)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Put(ctx, addr, page); err != nil {
				t.Fatal(err)
			}
			requireInvalid(t, store, PageList{addr}, tc.want)
		})
	}

	t.Run("page address a subject wildcard", func(t *testing.T) {
		requireInvalid(t, store, PageList{"*"}, `"*" is not a chunk address`)
	})
	for name, page := range map[string]string{
		"page that does not parse": `{"o":0}`,
		"empty page":               `[]`,
		"page of too many extents": "[" + strings.Repeat("{},", PageSize) + "{}]",
	} {
		t.Run(name, func(t *testing.T) {
			addr := Hash([]byte(page))
			if _, err := store.Put(ctx, addr, []byte(page)); err != nil {
				t.Fatal(err)
			}
			requireInvalid(t, store, PageList{addr}, "extent page "+addr)
		})
	}
}

// requireInvalid reads the diff of pages to its end and requires that it
// stops with ferry.ErrInvalid, the message containing want, and that no
// record handed out lies outside the image.
func requireInvalid(t *testing.T, store *Store, pages PageList, want string) {
	t.Helper()
	const size = 1 << 20
	r := NewDiffReader(context.Background(), store, rbddiff.Header{Size: size}, &pages)
	defer r.Close()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			t.Fatal("the diff was read to its end, want an error")
		}
		if err != nil {
			if !errors.Is(err, ferry.ErrInvalid) || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q, want ferry.ErrInvalid with %q", err, want)
			}
			var ce *Error
			if errors.As(err, &ce) {
				t.Fatalf("error %q blames chunk %s", err, ce.Hash)
			}
			return
		}
		if rec.Offset > size || rec.Length > size-rec.Offset {
			t.Fatalf("record 0x%x+0x%x handed out, past the image", rec.Offset, rec.Length)
		}
		if rec.Payload != nil {
			if _, err := io.Copy(io.Discard, rec.Payload); err != nil {
				t.Fatal(err)
			}
		}
	}
}
