package ceph

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// Tuning of the I/O engine. Reads and writes are at most ioSize bytes and a
// fixed number of buffers exist at once, so memory stays bounded whatever
// the image size.
const (
	ioSize = 4 << 20
	// DefaultReaders sizes an export's large reads (up to ioSize): it gets
	// 1.5 times as many ioSize buffers, each a read in flight or data
	// waiting to be emitted; enough to outrun rbd export-diff. A caller
	// whose consumer is slower than the reads (the publisher, which
	// compresses and sends) can ask for fewer and save the memory. Small
	// reads have exportSmallBuffers of their own.
	DefaultReaders = 8
	// Imports of scattered small writes are bound by their round trips, so
	// many more of them are kept in flight, in small buffers.
	importSmallBuffers = 64
	// Large writes in flight. Since librbd sends from these buffers instead
	// of copying them, 8 import faster than 4 for a little more memory
	// (docs/performance.md).
	importLargeBuffers = 8
)

// ExportOptions selects what to export: the changes of Image between FromSnap
// ("" = since creation) and Image.Snap ("" = the head).
type ExportOptions struct {
	Image       ferry.ImageSpec
	FromSnap    string
	WholeObject bool // report changes at object granularity, like rbd's --whole-object
	Readers     int  // sizes the large reads, see DefaultReaders; 0 means DefaultReaders
}

// ExportStats sums up an export.
type ExportStats struct {
	Header       rbddiff.Header
	ScannedBytes uint64 // length of the changed extents librbd reported
	DataBytes    uint64 // bytes sent as data records
	ZeroBytes    uint64 // bytes sent as zero records
}

// Export writes the diff selected by opts to sink, in ascending order, and
// closes the sink. Progress counts changed bytes against the total of the
// changed objects.
func (c *Cluster) Export(ctx context.Context, opts ExportOptions, sink rbddiff.Sink, p progress.Reporter) (ExportStats, error) {
	if p == nil {
		p = progress.Discard
	}
	img, err := c.openImageReadOnly(opts.Image)
	if err != nil {
		return ExportStats{}, err
	}
	defer img.Close()

	h, read, err := exportHeader(img, opts)
	if err != nil {
		return ExportStats{}, fmt.Errorf("export %s: %w", opts.Image, err)
	}
	stats := ExportStats{Header: h}
	if err := sink.WriteHeader(h); err != nil {
		return stats, err
	}
	io, err := c.ioctx(opts.Image.Pool)
	if err != nil {
		return stats, err
	}
	reader, err := openAioReadOnly(io, opts.Image)
	if err != nil {
		return stats, fmt.Errorf("export %s: %w", opts.Image, err)
	}
	defer func() { _ = reader.close() }()
	if err := exportExtents(ctx, img, reader, opts, h.Size, sink, p, &stats); err != nil {
		return stats, fmt.Errorf("export %s: %w", opts.Image, err)
	}
	// Only now may the diff end: the end record is what makes it whole.
	if err := c.checkSnapshotsKept(opts.Image, read); err != nil {
		return stats, fmt.Errorf("export %s: %w", opts.Image, err)
	}
	return stats, sink.Close()
}

// ErrSnapshotRemoved reports that a snapshot an export read from was
// removed before the export ended.
var ErrSnapshotRemoved = errors.New("a snapshot was removed while it was being exported")

// checkSnapshotsKept makes sure the snapshots an export read from (the
// snapshot it exports, and the one its diff starts from) still exist as the
// ones with the ids in read. librbd goes on reading a snapshot that is
// removed under it and returns what the OSDs still have as they trim it,
// without an error (docs/performance.md); a from-snapshot removed
// during the scan can leave changes out of the diff. Such a diff must never
// end as if it were whole. One removed after the scan fails the export
// too, though its diff would be right: one check at the end costs one
// open, and a backup tried again starts from a base that is there. A handle
// opened now reads the image header afresh; the export's own handle learns
// of a removal only when librbd's watch delivers it.
func (c *Cluster) checkSnapshotsKept(spec ferry.ImageSpec, read map[string]uint64) error {
	if len(read) == 0 {
		return nil // the head since creation: nothing to lose
	}
	head, err := c.openImageReadOnly(spec.AtSnap(""))
	if err != nil {
		return err
	}
	defer head.Close()
	for name, id := range read {
		now, err := head.GetSnapID(name)
		switch {
		case errors.Is(wrapNotFound(err), ErrNotFound):
			return fmt.Errorf("%w: %s is gone, and data read after its removal may come from a newer state of the image or read as zeros, so this diff is discarded; export a snapshot that is not being removed", ErrSnapshotRemoved, spec.AtSnap(name))
		case err != nil:
			return fmt.Errorf("check that snapshot %s still exists: %w", spec.AtSnap(name), err)
		case now != id:
			return fmt.Errorf("%w: %s was removed and taken again (snapshot id %d, the export read %d), so this diff is discarded; export the snapshot again", ErrSnapshotRemoved, spec.AtSnap(name), now, id)
		}
	}
	return nil
}

// exportHeader reads the diff's header from img and checks the snapshots
// it names; it returns their ids, for checkSnapshotsKept.
func exportHeader(img *rbd.Image, opts ExportOptions) (rbddiff.Header, map[string]uint64, error) {
	size, err := img.GetSize()
	if err != nil {
		return rbddiff.Header{}, nil, err
	}
	h := rbddiff.Header{FromSnap: opts.FromSnap, ToSnap: opts.Image.Snap, Size: size}
	ids := map[string]uint64{}
	for _, s := range []struct{ name, what string }{{opts.FromSnap, "from-snapshot"}, {opts.Image.Snap, "snapshot"}} {
		if s.name == "" {
			continue
		}
		if ids[s.name], err = img.GetSnapID(s.name); err != nil {
			return h, nil, fmt.Errorf("%s %q: %w", s.what, s.name, wrapNotFound(err))
		}
	}
	if opts.FromSnap != "" && opts.Image.Snap != "" && ids[opts.FromSnap] >= ids[opts.Image.Snap] {
		return h, nil, fmt.Errorf("from-snapshot %q is not older than %q; swap them", opts.FromSnap, opts.Image.Snap)
	}
	if opts.Image.Snap != "" {
		if h.Protected, err = img.GetSnapshot(opts.Image.Snap).IsProtected(); err != nil {
			return h, nil, fmt.Errorf("snapshot %q: %w", opts.Image.Snap, err)
		}
	}
	return h, ids, nil
}

// readJob is one read of at most ioSize bytes in flight, or a known-zero
// range (no buffer, no read).
type readJob struct {
	ext extent
	buf []byte // the read's buffer, librbd's until op is waited for
	op  *aioOp // nil for a zero range, or when submitting failed (err)
	err error
}

// wait waits for the read, if one is in flight.
func (j *readJob) wait() error {
	if j.op != nil {
		j.err = j.op.wait()
		j.op = nil
	}
	return j.err
}

// finish waits for the read and gives its buffer back.
func (j *readJob) finish(bufs *buffers) {
	_ = j.wait() // the caller has its error, or is draining after another
	if j.buf != nil {
		bufs.put(j.buf)
		j.buf = nil
	}
}

// exportSmallBuffers are the small reads an export keeps in flight besides
// its large ones. An incremental of scattered small writes is bound by the
// round trip of each read, not by bytes, so it needs many more reads in
// flight than a full export does, and they cost little memory.
const exportSmallBuffers = 96

// exportExtents runs the scan, the reads and the ordered emitter:
//
//	scan (librbd callbacks) -> submitter -> librbd (aio) -> in-order emit -> sink
//
// The submitter takes a buffer for each read before it starts the read, in
// order, so every buffer is held by a read that comes before the one
// waiting for a buffer: the emitter always gets the read it waits for, and
// memory never exceeds the buffers. Every read started is waited for, on
// every path, before its buffer is reused or freed.
func exportExtents(ctx context.Context, img *rbd.Image, reader *aioImage, opts ExportOptions, size uint64, sink rbddiff.Sink, p progress.Reporter, stats *ExportStats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var changed []extent
	var total uint64
	if err := scanChanges(img, opts.FromSnap, size, opts.WholeObject, func(e extent) error {
		changed = append(changed, e)
		total += e.len
		return nil
	}); err != nil {
		return err
	}
	p.SetTotal(total)
	stats.ScannedBytes = total

	readers := opts.Readers
	if readers <= 0 {
		readers = DefaultReaders
	}
	nLarge := readers * 3 / 2 // a few more buffers than reads keep the emitter fed
	bufs := newBuffers(nLarge, exportSmallBuffers)
	ordered := make(chan *readJob, nLarge+exportSmallBuffers)

	// The submitter cuts extents into ioSize pieces aligned to ioSize.
	go func() {
		defer close(ordered)
		for _, e := range changed {
			for off := e.off; off < e.end(); {
				n := min(e.end()-off, ioSize-off%ioSize)
				job := &readJob{ext: extent{off: off, len: n, exists: e.exists}}
				if e.exists {
					if job.buf = bufs.get(n, ctx.Done()); job.buf == nil {
						return
					}
					job.op, job.err = reader.read(off, job.buf)
				}
				select {
				case ordered <- job:
				case <-ctx.Done():
					job.finish(bufs)
					return
				}
				off += n
			}
		}
	}()

	em := emitter{sink: sink, stats: stats}
	var err error
	for job := range ordered {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			// Failed or cancelled: drain, waiting for every read started.
			job.finish(bufs)
			cancel()
			continue
		}
		if job.buf == nil {
			err = em.zero(job.ext.off, job.ext.len)
		} else {
			if err = job.wait(); err == nil {
				err = em.data(job.ext.off, job.buf)
			}
			job.finish(bufs)
		}
		if err == nil {
			p.Add(job.ext.len)
		}
	}
	// The submitter has ended (it closed ordered), and every read is waited for.
	if err = errors.Join(err, bufs.free()); err != nil {
		return err
	}
	return em.flush()
}

// emitter turns read data into data and zero records, merging touching zero
// runs so a sparse area becomes one record.
type emitter struct {
	sink           rbddiff.Sink
	stats          *ExportStats
	zeroOff, zeroN uint64
}

func (e *emitter) zero(off, n uint64) error {
	if e.zeroN > 0 && e.zeroOff+e.zeroN == off {
		e.zeroN += n
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.zeroOff, e.zeroN = off, n
	return nil
}

func (e *emitter) flush() error {
	if e.zeroN == 0 {
		return nil
	}
	e.stats.ZeroBytes += e.zeroN
	err := e.sink.WriteZero(e.zeroOff, e.zeroN)
	e.zeroN = 0
	return err
}

// data splits buf (image bytes at off) into data and zero records.
func (e *emitter) data(off uint64, buf []byte) error {
	return zeroRuns(off, buf, func(from, to int, zero bool) error { return e.run(off, buf, from, to, zero) })
}

func (e *emitter) run(off uint64, buf []byte, from, to int, zero bool) error {
	if from == to {
		return nil
	}
	if zero {
		return e.zero(off+uint64(from), uint64(to-from))
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.stats.DataBytes += uint64(to - from)
	return e.sink.WriteData(off+uint64(from), buf[from:to])
}
