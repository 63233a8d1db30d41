package recovery

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/state"
)

// TestScrubSink feeds the joining sink exports cut in odd pieces: whole
// reads, holes, diffs that miss part of a chunk, and a flipped byte. (The
// end-to-end scrub on the test bed is consumer's TestScrub.)
func TestScrubSink(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	img := randomBytes(r, 8*kib)
	clear(img[5000:5200]) // a hole inside chunk c
	var rec state.ScrubRecord
	window := func(exts ...[2]uint64) { // one chunk: these extents' bytes back to back
		var raw []byte
		var list []ferry.Extent
		for _, e := range exts {
			list = append(list, ferry.Extent{Offset: e[0], Length: e[1], ChunkOff: uint64(len(raw))})
			raw = append(raw, img[e[0]:e[0]+e[1]]...)
		}
		for _, e := range list {
			e.Chunk = chunk.Hash(raw)
			rec.AddExtent(e)
		}
	}
	window([2]uint64{100, 100}, [2]uint64{300, 50})
	window([2]uint64{1000, 500})
	window([2]uint64{4900, 400}) // spans the hole
	if len(rec.Chunks) != 3 || len(rec.Chunks[0].Extents) != 2 {
		t.Fatalf("record: %+v", rec.Chunks)
	}

	// feed exports [from, to) of content in pieces of n bytes; zero pieces
	// of the hole become zero records, as the engine sends them.
	run := func(full bool, content []byte, n uint64, ranges ...[2]uint64) (*scrubSink, []ScrubMismatch) {
		var bad []ScrubMismatch
		s := &scrubSink{chunks: rec.Chunks, holesAreZero: full, bad: &bad, p: progress.Discard}
		for _, rg := range ranges {
			for off := rg[0]; off < rg[1]; off += n {
				end := min(off+n, rg[1])
				if off >= 5000 && end <= 5200 {
					s.WriteZero(off, end-off)
				} else {
					s.WriteData(off, slices.Clone(content[off:end]))
				}
			}
		}
		s.Close()
		return s, bad
	}
	for _, n := range []uint64{37, 512, 8 * kib} {
		if _, bad := run(true, img, n, [2]uint64{0, 5000}, [2]uint64{5200, 8 * kib}); len(bad) != 0 {
			t.Fatalf("pieces of %d: intact image reports %+v", n, bad)
		}
	}
	// A diff that covers chunk a fully and b only in part: b and c (not
	// touched at all) are left for the full read; a is checked.
	s, bad := run(false, img, 64, [2]uint64{0, 400}, [2]uint64{1000, 1200})
	if len(bad) != 0 || len(s.uncovered) != 2 || s.uncovered[0].Hash != rec.Chunks[1].Hash || s.uncovered[1].Hash != rec.Chunks[2].Hash {
		t.Fatalf("diff pass: bad %+v, uncovered %+v", bad, s.uncovered)
	}
	// A flipped byte in chunk b, read in full, names b only.
	damaged := slices.Clone(img)
	damaged[1234] ^= 1
	_, bad = run(true, damaged, 100, [2]uint64{0, 8 * kib})
	if len(bad) != 1 || bad[0].Chunk != rec.Chunks[1].Hash || bad[0].Offset != 1000 || bad[0].Length != 500 {
		t.Fatalf("flipped byte at 1234: %+v", bad)
	}
	// Bytes outside every recorded extent are not the backup's: no report.
	damaged = slices.Clone(img)
	damaged[250] ^= 1
	if _, bad = run(true, damaged, 100, [2]uint64{0, 8 * kib}); len(bad) != 0 {
		t.Fatalf("flip outside the recorded extents: %+v", bad)
	}
}
