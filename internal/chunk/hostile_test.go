package chunk_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/chunk/chunktest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// TestDiffReaderRefusesInvalidExtents: extent pages a publisher never
// writes, stored as honest chunks, stop the diff with ferry.ErrInvalid
// naming the extent, before the import gets the extent: no panic, no
// record past the image, and a good chunk is not blamed (ErrCorrupt would
// have the consumer remove it).
func TestDiffReaderRefusesInvalidExtents(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	store, err := chunk.Open(ctx, c.Backup)
	if err != nil {
		t.Fatal(err)
	}
	hash := chunktest.Chunk(t, store)
	const size = 1 << 20
	cases := append(chunktest.InvalidExtentLists(hash, size),
		chunktest.InvalidExtents{Name: "past the end of its chunk", Extents: []ferry.Extent{{Offset: 0, Length: 200, Chunk: hash, ChunkOff: 4000}}, Want: "holds only 0x1000 bytes"},
		chunktest.InvalidExtents{Name: "zero extent naming a chunk", Extents: []ferry.Extent{{Offset: 0, Length: 10, Zero: true, Chunk: hash}}, Want: "zero extent but names chunk"},
		chunktest.InvalidExtents{Name: "chunk address a subject wildcard", Extents: []ferry.Extent{{Offset: 0, Length: 10, Chunk: ">"}}, Want: "not a chunk address"},
		chunktest.InvalidExtents{Name: "beyond the largest chunk", Extents: []ferry.Extent{{Offset: 0, Length: 16, Chunk: hash, ChunkOff: bus.MaxChunkSize}}, Want: "past the largest chunk"},
	)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			requireInvalid(t, store, chunk.PageList{chunktest.Page(t, store, tc.Extents)}, tc.Want)
		})
	}

	t.Run("page address a subject wildcard", func(t *testing.T) {
		requireInvalid(t, store, chunk.PageList{"*"}, `"*" is not a chunk address`)
	})
	for name, page := range map[string]string{
		"page that does not parse": `{"o":0}`,
		"empty page":               `[]`,
		"page of too many extents": "[" + strings.Repeat("{},", chunk.PageSize) + "{}]",
	} {
		t.Run(name, func(t *testing.T) {
			addr := chunk.Hash([]byte(page))
			if _, err := store.Put(ctx, addr, []byte(page)); err != nil {
				t.Fatal(err)
			}
			requireInvalid(t, store, chunk.PageList{addr}, "extent page "+addr)
		})
	}
}

// requireInvalid reads the diff of pages to its end and requires that it
// stops with ferry.ErrInvalid, the message containing want, and that no
// record handed out lies outside the image.
func requireInvalid(t *testing.T, store *chunk.Store, pages chunk.PageList, want string) {
	t.Helper()
	const size = 1 << 20
	r := chunk.NewDiffReader(context.Background(), store, rbddiff.Header{Size: size}, &pages)
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
			var ce *chunk.Error
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
