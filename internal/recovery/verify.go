package recovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// VerifyOptions name the two snapshots to compare, each on its cluster.
type VerifyOptions struct {
	Source     *ceph.Cluster
	SourceSnap ferry.ImageSpec // POOL/IMAGE@SNAP at the source site
	Backup     *ceph.Cluster
	BackupSnap ferry.ImageSpec // the same snapshot of the backup image

	// alsoBackup, when set, receives the backup side's export too, so a
	// drill checks its recorded hashes in the same read.
	alsoBackup rbddiff.Sink
}

// Range is a byte range of an image.
type Range struct {
	Offset, Length uint64
}

// VerifyReport is the outcome of a comparison.
type VerifyReport struct {
	SourceSnap, BackupSnap ferry.ImageSpec
	SourceSize, BackupSize uint64
	// Differences are the ranges whose content differs, block-aligned
	// (blockSize), merged when adjacent, in ascending order. Bytes beyond
	// the smaller size, and the block holding its end, count as different.
	Differences []Range
	// DataBytes is how much was read and hashed (both sides); the rest of
	// the image was known to read as zeros on both sides.
	DataBytes uint64
	Duration  time.Duration
}

// Identical tells whether both snapshots read back the same.
func (r VerifyReport) Identical() bool {
	return r.SourceSize == r.BackupSize && len(r.Differences) == 0
}

// DifferentBytes sums the lengths of the differences.
func (r VerifyReport) DifferentBytes() uint64 {
	var n uint64
	for _, d := range r.Differences {
		n += d.Length
	}
	return n
}

// Verify compares a backup snapshot with its source snapshot by content: both
// are exported in full at the same time (each with several reads in flight on
// its own cluster), hashed per 4 KiB block with SHA-256, and compared a 4 MiB
// window at a time as the windows arrive. Ranges librbd reports as holes, and
// blocks that read as zeros, are compared as zeros without hashing. Memory
// stays bounded: a few windows of digests plus the exports' own buffers.
func Verify(ctx context.Context, o VerifyOptions, p progress.Reporter) (VerifyReport, error) {
	if p == nil {
		p = progress.Discard
	}
	start := time.Now()
	rep := VerifyReport{SourceSnap: o.SourceSnap, BackupSnap: o.BackupSnap}
	if o.SourceSnap.Snap == "" || o.BackupSnap.Snap == "" {
		return rep, fmt.Errorf("verify %s: name a snapshot (POOL/IMAGE@SNAP): an image head changes while it is read", o.SourceSnap)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	totals := &sumReporter{out: p}
	type side struct {
		windows chan window
		stats   ceph.ExportStats
		err     error
	}
	sides := []*side{{windows: make(chan window, 4)}, {windows: make(chan window, 4)}}
	var wg sync.WaitGroup
	for i, src := range []struct {
		c    *ceph.Cluster
		spec ferry.ImageSpec
	}{{o.Source, o.SourceSnap}, {o.Backup, o.BackupSnap}} {
		s := sides[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.windows)
			var sink rbddiff.Sink = newBlockHasher(func(w window) error {
				select {
				case s.windows <- w:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if i == 1 && o.alsoBackup != nil {
				sink = teeSink{sink, o.alsoBackup}
			}
			s.stats, s.err = src.c.Export(ctx, ceph.ExportOptions{Image: src.spec}, sink, totals.side(i))
			if s.err != nil {
				s.err = fmt.Errorf("read %s: %w", src.spec, s.err)
				cancel()
			}
		}()
	}

	var diffs rangeList
	srcW, bakW := sides[0].windows, sides[1].windows
	for srcW != nil || bakW != nil {
		a, okA := recvWindow(&srcW)
		b, okB := recvWindow(&bakW)
		if okA && okB {
			compareWindows(a, b, &diffs)
		}
		// A window only one side has lies beyond the other's size; it is
		// reported from the sizes below.
	}
	wg.Wait()
	for _, s := range sides {
		if s.err != nil {
			return rep, fmt.Errorf("verify %s against %s: %w", o.BackupSnap, o.SourceSnap, s.err)
		}
	}
	rep.SourceSize, rep.BackupSize = sides[0].stats.Header.Size, sides[1].stats.Header.Size
	if lo, hi := min(rep.SourceSize, rep.BackupSize), max(rep.SourceSize, rep.BackupSize); lo < hi {
		diffs.add(lo, hi-lo)
	}
	rep.Differences = diffs
	rep.DataBytes = sides[0].stats.DataBytes + sides[1].stats.DataBytes
	rep.Duration = time.Since(start)
	return rep, nil
}

// recvWindow receives from *ch, setting it to nil once it is closed.
func recvWindow(ch *chan window) (window, bool) {
	if *ch == nil {
		return window{}, false
	}
	w, ok := <-*ch
	if !ok {
		*ch = nil
	}
	return w, ok
}

// compareWindows adds the blocks where a and b differ. Both start at the same
// offset; the shorter one's missing blocks are left to the size check.
func compareWindows(a, b window, diffs *rangeList) {
	if a.blocks == nil && b.blocks == nil {
		return
	}
	n := min(blocksIn(a.len), blocksIn(b.len))
	end := a.off + min(a.len, b.len)
	for i := range n {
		if digestAt(a, i) == digestAt(b, i) {
			continue
		}
		off := a.off + uint64(i)*blockSize
		diffs.add(off, min(blockSize, end-off))
	}
}

func digestAt(w window, i int) digest {
	if w.blocks == nil {
		return digest{}
	}
	return w.blocks[i]
}

// rangeList collects ascending ranges, merging touching ones.
type rangeList []Range

func (l *rangeList) add(off, n uint64) {
	if k := len(*l); k > 0 && (*l)[k-1].Offset+(*l)[k-1].Length == off {
		(*l)[k-1].Length += n
		return
	}
	*l = append(*l, Range{Offset: off, Length: n})
}

// sumReporter feeds one progress.Reporter from several exports, each
// announcing its own total.
type sumReporter struct {
	out    progress.Reporter
	totals [2]atomic.Uint64
}

func (s *sumReporter) side(i int) progress.Reporter { return sideReporter{s, i} }

type sideReporter struct {
	s *sumReporter
	i int
}

func (r sideReporter) SetTotal(n uint64) {
	r.s.totals[r.i].Store(n)
	r.s.out.SetTotal(r.s.totals[0].Load() + r.s.totals[1].Load())
}

func (r sideReporter) Add(n uint64) { r.s.out.Add(n) }

// teeSink passes an export to two sinks; each uses a payload only until
// its WriteData returns, as rbddiff.Sink's contract has it.
type teeSink [2]rbddiff.Sink

func (t teeSink) WriteHeader(h rbddiff.Header) error {
	return errors.Join(t[0].WriteHeader(h), t[1].WriteHeader(h))
}

func (t teeSink) WriteData(off uint64, p []byte) error {
	if err := t[0].WriteData(off, p); err != nil {
		return err
	}
	return t[1].WriteData(off, p)
}

func (t teeSink) WriteZero(off, n uint64) error {
	if err := t[0].WriteZero(off, n); err != nil {
		return err
	}
	return t[1].WriteZero(off, n)
}

func (t teeSink) Close() error { return errors.Join(t[0].Close(), t[1].Close()) }
