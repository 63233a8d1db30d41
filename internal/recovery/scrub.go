package recovery

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/state"
)

// ScrubOptions name the backup image (or one of its snapshots) to scrub.
type ScrubOptions struct {
	Backup  *ceph.Cluster
	Records *state.ScrubRecords
	// Image is the backup image; with Snap set, only that snapshot is scrubbed.
	Image ferry.ImageSpec
	// ChunkKey as the consumer holds it (nil: none): with a key, the
	// recorded addresses are keyed hashes.
	ChunkKey chunk.Sealer
}

// ScrubMismatch is a recorded chunk whose bytes, read back from a backup
// snapshot, no longer hash to the chunk's hash.
type ScrubMismatch struct {
	Snapshot ferry.ImageSpec // POOL/IMAGE@SNAP
	Chunk    string          // the recorded hash
	Got      string          // what the bytes read back hash to
	// Offset and Length span the chunk's extents in the image: the corrupt
	// bytes are in there (in a recorded extent).
	Offset, Length uint64
	Extents        int
}

// ScrubReport is the outcome of a scrub.
type ScrubReport struct {
	Image      ferry.ImageSpec
	Checked    []string // snapshots whose records were checked
	Unrecorded []string // snapshots without a record (older than scrub records): not checked
	// StaleRemoved lists records whose snapshot no longer exists (removed by
	// retention, or an image recreated by --resync); they were deleted.
	StaleRemoved []string
	Chunks       int
	DataBytes    uint64 // recorded bytes checked
	Mismatches   []ScrubMismatch
	Duration     time.Duration
}

// Clean tells whether every checked chunk still hashed right.
func (r ScrubReport) Clean() bool { return len(r.Mismatches) == 0 }

// Scrub checks backup snapshots against their scrub records: for every chunk
// a backup wrote, it reads the chunk's extents back from the snapshot, joins
// them in chunk order and compares their SHA-256 with the chunk's hash. The
// source site is not involved.
//
// Each snapshot is read through the diff engine (several reads in flight,
// bounded buffers), first only where it differs from the snapshot before it
// on the backup image, which holds what its backup wrote; a chunk the diff
// does not cover in full (the image was rolled back, say) is read again from
// a full read of the snapshot, where a hole reads as zeros. Memory: the
// engine's buffers, the chunks being joined (one or two) and one record.
func Scrub(ctx context.Context, o ScrubOptions, p progress.Reporter) (ScrubReport, error) {
	if p == nil {
		p = progress.Discard
	}
	start := time.Now()
	img := o.Image.AtSnap("")
	rep := ScrubReport{Image: img}
	snaps, err := o.Backup.Snapshots(img)
	if err != nil {
		return rep, fmt.Errorf("scrub %s: %w", img, err)
	}
	slices.SortFunc(snaps, func(a, b ceph.Snapshot) int { return cmp.Compare(a.ID, b.ID) })
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.Name
	}

	targets := names
	if o.Image.Snap != "" {
		if !slices.Contains(names, o.Image.Snap) {
			return rep, fmt.Errorf("scrub %s: no such snapshot (list them with rbd snap ls %s)", o.Image, img)
		}
		targets = []string{o.Image.Snap}
	} else if rep.StaleRemoved, err = o.Records.RemoveStale(ctx, img, names); err != nil {
		return rep, err
	}

	var total uint64
	for _, name := range targets {
		snap := img.AtSnap(name)
		rec, err := o.Records.Get(ctx, snap)
		if err != nil {
			return rep, err
		}
		if rec == nil {
			if o.Image.Snap != "" {
				return rep, fmt.Errorf("scrub %s: no scrub record: the snapshot was backed up before Ferry recorded them (or the record could not be stored; see the consumer's log); check it against its source with ferry verify", snap)
			}
			rep.Unrecorded = append(rep.Unrecorded, name)
			continue
		}
		if err := checkRecordKey(rec, o.ChunkKey); err != nil {
			return rep, fmt.Errorf("scrub %s: %w", snap, err)
		}
		total += rec.DataBytes()
		p.SetTotal(total)
		base := ""
		if i := slices.Index(names, name); i > 0 {
			base = names[i-1]
		}
		bad, err := scrubSnapshot(ctx, o.Backup, snap, base, rec.Chunks, addresser(o.ChunkKey), p)
		if err != nil {
			return rep, fmt.Errorf("scrub %s: %w", snap, err)
		}
		rep.Checked = append(rep.Checked, name)
		rep.Chunks += len(rec.Chunks)
		rep.DataBytes += rec.DataBytes()
		rep.Mismatches = append(rep.Mismatches, bad...)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// scrubSnapshot checks chunks (ascending) against snap, reading the diff
// from base first when there is one.
func scrubSnapshot(ctx context.Context, c *ceph.Cluster, snap ferry.ImageSpec, base string, chunks []state.ScrubChunk, address func([]byte) string, p progress.Reporter) ([]ScrubMismatch, error) {
	var bad []ScrubMismatch
	check := func(from string, chunks []state.ScrubChunk) ([]state.ScrubChunk, error) {
		sink := &scrubSink{chunks: chunks, holesAreZero: from == "", snap: snap, bad: &bad, p: p, address: address}
		if _, err := c.Export(ctx, ceph.ExportOptions{Image: snap, FromSnap: from}, sink, nil); err != nil {
			return nil, err
		}
		return sink.uncovered, nil
	}
	if base != "" {
		rest, err := check(base, chunks)
		if err != nil {
			return nil, err
		}
		chunks = rest
	}
	if len(chunks) > 0 {
		if _, err := check("", chunks); err != nil {
			return nil, err
		}
	}
	return bad, nil
}

// scrubSink receives an export of a snapshot (ascending records) and joins
// the extents of each recorded chunk as they stream past, checking a chunk
// as soon as the export has moved beyond it. Chunks are disjoint and
// ascending, so only the one or two a record touches are held at a time.
type scrubSink struct {
	chunks []state.ScrubChunk
	next   int // first chunk not opened yet
	open   []*joining
	// holesAreZero: a full export, where bytes no record covers are holes.
	// Otherwise (a diff) a chunk not covered in full is left in uncovered.
	holesAreZero bool
	uncovered    []state.ScrubChunk

	snap    ferry.ImageSpec
	bad     *[]ScrubMismatch
	p       progress.Reporter
	address func([]byte) string // the chunk address of raw bytes; nil: SHA-256
}

type joining struct {
	c      state.ScrubChunk
	hi     uint64
	raw    []byte
	filled uint64
}

var _ rbddiff.Sink = (*scrubSink)(nil)

func (s *scrubSink) WriteHeader(rbddiff.Header) error     { return nil }
func (s *scrubSink) WriteData(off uint64, p []byte) error { s.put(off, uint64(len(p)), p); return nil }
func (s *scrubSink) WriteZero(off, n uint64) error        { s.put(off, n, nil); return nil }

func (s *scrubSink) Close() error {
	for _, j := range s.open {
		s.finish(j)
	}
	s.open = nil
	for ; s.next < len(s.chunks); s.next++ {
		s.finish(s.start(s.chunks[s.next]))
	}
	return nil
}

func (s *scrubSink) start(c state.ScrubChunk) *joining {
	_, hi := c.Span()
	return &joining{c: c, hi: hi, raw: make([]byte, c.RawSize())}
}

// put copies the record [off, off+n) (zeros when p is nil) into the chunks
// it covers, and checks those it has passed.
func (s *scrubSink) put(off, n uint64, p []byte) {
	end := off + n
	for s.next < len(s.chunks) {
		if lo, _ := s.chunks[s.next].Span(); lo >= end {
			break
		}
		s.open = append(s.open, s.start(s.chunks[s.next]))
		s.next++
	}
	for _, j := range s.open {
		for _, e := range j.c.Extents {
			a, b := max(off, e.Offset()), min(end, e.Offset()+e.Length())
			if a >= b {
				continue
			}
			dst := j.raw[e.ChunkOff()+a-e.Offset() : e.ChunkOff()+b-e.Offset()]
			if p != nil {
				copy(dst, p[a-off:b-off])
			} else {
				clear(dst)
			}
			j.filled += b - a
		}
	}
	still := s.open[:0]
	for _, j := range s.open {
		if j.hi <= end {
			s.finish(j)
		} else {
			still = append(still, j)
		}
	}
	clear(s.open[len(still):])
	s.open = still
}

func (s *scrubSink) finish(j *joining) {
	if !s.holesAreZero && j.filled < uint64(len(j.raw)) {
		s.uncovered = append(s.uncovered, j.c)
		return
	}
	address := s.address
	if address == nil {
		address = chunk.Hash
	}
	if got := address(j.raw); got != j.c.Hash {
		lo, hi := j.c.Span()
		*s.bad = append(*s.bad, ScrubMismatch{Snapshot: s.snap, Chunk: j.c.Hash, Got: got,
			Offset: lo, Length: hi - lo, Extents: len(j.c.Extents)})
	}
	s.p.Add(uint64(len(j.raw)))
}

// addresser is the chunk address function of key (SHA-256 without one).
func addresser(key chunk.Sealer) func([]byte) string {
	if key == nil {
		key = chunk.Plain
	}
	return key.Address
}

// checkRecordKey refuses to check a record against another chunk key than
// the one its addresses were made with: every chunk would look corrupt.
func checkRecordKey(rec *state.ScrubRecord, key chunk.Sealer) error {
	have := ""
	if key != nil {
		have = key.KeyID()
	}
	switch {
	case rec.ChunkKey == have:
		return nil
	case rec.ChunkKey == "":
		return fmt.Errorf("its scrub record was made without a chunk key, and scrub has key %s: run ferry scrub without --chunk-key (chunk.key_file)", have)
	case have == "":
		return fmt.Errorf("its scrub record was made with chunk key %s: run ferry scrub with that key file (--chunk-key, chunk.key_file)", rec.ChunkKey)
	default:
		return fmt.Errorf("its scrub record was made with chunk key %s, and scrub has key %s: run ferry scrub with the consumer's key file (--chunk-key, chunk.key_file)", rec.ChunkKey, have)
	}
}
