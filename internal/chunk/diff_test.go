package chunk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// record is a diff record with its payload read out, for comparing diffs.
type record struct {
	zero    bool
	off, n  uint64
	payload []byte
}

// testDiff is a diff of more than one extent page: many small data extents
// in few windows of 64 KiB (none across two windows), zero ranges between
// them, and at the end two windows of the same bytes (dedup within a diff).
func testDiff(r *rand.Rand) []record {
	const window = 64 << 10
	var recs []record
	off := uint64(0)
	for i := range PageSize + 500 {
		if i%97 == 0 {
			recs = append(recs, record{zero: true, off: off, n: 4096})
			off += 4096
			continue
		}
		p := make([]byte, 1+r.IntN(300))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if off/window != (off+uint64(len(p))-1)/window {
			off = (off/window + 1) * window
		}
		recs = append(recs, record{off: off, n: uint64(len(p)), payload: p})
		off += uint64(len(p)) + 1
	}
	// Two windows of the same bytes, also in 4 MiB windows.
	const big = 4 << 20
	same := make([]byte, window)
	for j := range same {
		same[j] = byte(r.Uint32())
	}
	off = (off/big + 1) * big
	for range 2 {
		recs = append(recs, record{off: off, n: window, payload: same})
		off += big
	}
	return recs
}

// TestDiffRoundTrip: a diff written into the store reads back record for
// record, and each page is announced only once it and every chunk it (or
// an earlier page) names can be read: a follower told of a page never
// finds a chunk missing.
func TestDiffRoundTrip(t *testing.T) {
	// Small chunks close pages by their chunk count, large ones by their
	// extent count.
	for _, chunkSize := range []uint64{64 << 10, 4 << 20} {
		t.Run(fmt.Sprint(chunkSize>>10, "KiB"), func(t *testing.T) { testDiffRoundTrip(t, chunkSize) })
	}
}

func testDiffRoundTrip(t *testing.T, chunkSize uint64) {
	c := bustest.Conn(t)
	ctx := context.Background()
	store, err := Open(ctx, c.Backup, 6)
	if err != nil {
		t.Fatal(err)
	}
	recs := testDiff(rand.New(rand.NewPCG(3, 4)))
	header := rbddiff.Header{ToSnap: "snap", Size: recs[len(recs)-1].off + 1<<20}

	var announced []string
	checked := map[string]bool{}
	w := NewDiffWriter(ctx, store, WriterOptions{
		ChunkSize: chunkSize,
		OnPage: func(page string) error {
			extents, err := store.GetPage(ctx, page)
			if err != nil {
				return fmt.Errorf("announced page %s cannot be read: %w", page, err)
			}
			for _, e := range extents {
				if e.Zero || checked[e.Chunk] {
					continue
				}
				checked[e.Chunk] = true
				if _, err := store.Get(ctx, e.Chunk, nil); err != nil {
					return fmt.Errorf("page %d announced before its chunk %s was stored: %w", len(announced), e.Chunk, err)
				}
			}
			announced = append(announced, page)
			return nil
		},
	})
	stats := writeDiff(t, w, header, recs)
	if len(stats.Pages) < 2 || !slices.Equal(stats.Pages, announced) {
		t.Fatalf("pages %v, announced %v: want the same, in order, and more than one", stats.Pages, announced)
	}
	if stats.Extents != len(recs) || stats.ChunksDuplicate != 1 || stats.ChunksSent+stats.ChunksDuplicate != stats.Chunks {
		t.Fatalf("stats %+v for %d records", stats, len(recs))
	}

	readDiff(t, store, header, stats.Pages, recs, 0)
}

// TestDiffReaderReusesBuffers: the reader recycles a chunk's buffer only
// once Next has moved past every record of that chunk. Equal-sized chunks
// (so a recycled buffer is always big enough to be reused), several records
// each, read slowly enough that the chunks fetched ahead have landed.
func TestDiffReaderReusesBuffers(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	store, err := Open(ctx, c.Backup, 6)
	if err != nil {
		t.Fatal(err)
	}
	const chunkSize, perChunk, chunks = 64 << 10, 4, 3 * prefetch
	r := rand.New(rand.NewPCG(5, 6))
	var recs []record
	for i := range chunks * perChunk {
		p := make([]byte, chunkSize/perChunk)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		recs = append(recs, record{off: uint64(i) * chunkSize / perChunk, n: uint64(len(p)), payload: p})
	}
	header := rbddiff.Header{ToSnap: "snap", Size: chunks * chunkSize}
	stats := writeDiff(t, NewDiffWriter(ctx, store, WriterOptions{ChunkSize: chunkSize}), header, recs)
	readDiff(t, store, header, stats.Pages, recs, 2*time.Millisecond)
}

// writeDiff writes recs through w and returns what it stored.
func writeDiff(t *testing.T, w *DiffWriter, header rbddiff.Header, recs []record) WriteStats {
	t.Helper()
	if err := w.WriteHeader(header); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		var err error
		if rec.zero {
			err = w.WriteZero(rec.off, rec.n)
		} else {
			err = w.WriteData(rec.off, rec.payload)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stats, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// readDiff reads the diff of pages back and requires exactly recs, reading
// each payload pause after its record came (as a slow importer would).
func readDiff(t *testing.T, store *Store, header rbddiff.Header, pages []string, recs []record, pause time.Duration) {
	t.Helper()
	list := PageList(pages)
	src := NewDiffReader(context.Background(), store, header, &list)
	defer src.Close()
	for i, want := range recs {
		got, err := src.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if got.Offset != want.off || got.Length != want.n || (got.Kind == rbddiff.Zero) != want.zero {
			t.Fatalf("record %d: got %+v, want %+v", i, got, want)
		}
		if !want.zero {
			time.Sleep(pause)
			p, _ := io.ReadAll(got.Payload)
			if !bytes.Equal(p, want.payload) {
				t.Fatalf("record %d: payload differs", i)
			}
		}
	}
	if _, err := src.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

// TestDiffReaderCancelledIsNotTheEnd: a reader cancelled midway reports the
// cancellation, never io.EOF (which would let an import create the
// to-snapshot over half the data).
func TestDiffReaderCancelledIsNotTheEnd(t *testing.T) {
	c := bustest.Conn(t)
	store, err := Open(context.Background(), c.Backup, 6)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := NewDiffReader(ctx, store, rbddiff.Header{Size: 1 << 20}, blockedPages{})
	cancel()
	if _, err := src.Next(); err == nil || err == io.EOF {
		t.Fatalf("cancelled reader: %v, want the cancellation", err)
	}
	src.Close()
}

// blockedPages never yields a page: a feed whose publisher is still busy.
type blockedPages struct{}

func (blockedPages) NextPage(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}
