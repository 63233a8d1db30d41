package ceph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// ErrSnapshotExists reports that the to-snapshot of a diff is already on the
// target: the diff was applied before.
var ErrSnapshotExists = errors.New("to-snapshot already exists")

// ErrBaseMissing reports that the from-snapshot of a diff is not on the target.
var ErrBaseMissing = errors.New("base snapshot missing")

// maxIOLen keeps each librbd call under its int-sized length limit.
const maxIOLen = 1 << 30

// ImportStats sums up an import.
type ImportStats struct {
	Header    rbddiff.Header
	DataBytes uint64
	ZeroBytes uint64
}

// Import applies the diff from src to the image target (which must exist, as
// with rbd import-diff): it checks the base, resizes the image to the recorded
// size, writes with several writes in flight, and creates (and protects, if
// the diff says so) the to-snapshot only after every write has landed. On
// error the image head may hold part of the diff but no to-snapshot is made;
// rolling back to the from-snapshot undoes it.
func (c *Cluster) Import(ctx context.Context, target ferry.ImageSpec, src rbddiff.Source, p progress.Reporter) (ImportStats, error) {
	if p == nil {
		p = progress.Discard
	}
	h, err := src.Header()
	if err != nil {
		return ImportStats{}, err
	}
	stats := ImportStats{Header: h}
	name := target.AtSnap("")
	// The writes go through a handle of librbd's C API (see aioImage). It
	// takes the image's exclusive lock first, so that from the checks on
	// nobody else writes; the checks read through a read-only go-ceph handle,
	// which needs no lock.
	io, err := c.ioctx(target.Pool)
	if err != nil {
		return stats, err
	}
	w, err := openAioWritable(io, target)
	if err != nil {
		return stats, fmt.Errorf("import into %s: %w (create the image first, e.g. rbd create --size 1 %s)", name, err, name)
	}
	defer func() { _ = w.close() }() // flushed, or failed already
	if err := w.lockExclusively(); err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	img, err := c.openImageReadOnly(name)
	if err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	defer img.Close()
	if err := checkImportable(img, target, h); err != nil {
		return stats, err
	}
	// A full diff into an image that reads as zeros need not write zeros.
	// Checked at the current size: blank stays blank when resized.
	blank := false
	if h.FromSnap == "" {
		cur, err := img.GetSize()
		if err != nil {
			return stats, fmt.Errorf("import into %s: %w", name, err)
		}
		if blank, err = readsAsZeros(img, cur); err != nil {
			return stats, fmt.Errorf("import into %s: %w", name, err)
		}
	}
	if err := w.resize(h.Size); err != nil {
		return stats, fmt.Errorf("import into %s: resize to %d bytes: %w", name, h.Size, err)
	}
	if err := applyRecords(ctx, w, src, blank, p, &stats); err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	if err := w.flush(); err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	if h.ToSnap == "" {
		return stats, nil
	}
	if err := w.createSnapshot(h.ToSnap, h.Protected); err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	return stats, nil
}

func checkImportable(img *rbd.Image, target ferry.ImageSpec, h rbddiff.Header) error {
	if h.FromSnap != "" {
		ok, err := hasSnapshot(img, h.FromSnap)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("import into %s: %w: the diff starts at snapshot %q, which %s does not have; apply the diff that ends at %q first, or start over with a full diff",
				target.AtSnap(""), ErrBaseMissing, h.FromSnap, target.AtSnap(""), h.FromSnap)
		}
	}
	if h.ToSnap != "" {
		ok, err := hasSnapshot(img, h.ToSnap)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("import into %s: %w: %s already has snapshot %q, so this diff was applied before; remove that snapshot to apply it again",
				target.AtSnap(""), ErrSnapshotExists, target.AtSnap(""), h.ToSnap)
		}
	}
	return nil
}

// readsAsZeros tells whether the head of img holds no data at all, own or
// its parent's: then a full diff's zeros are already in place. It asks
// librbd's object map, so it answers only for images with fast-diff; for
// others it says no rather than list every object.
func readsAsZeros(img *rbd.Image, size uint64) (bool, error) {
	features, err := img.GetFeatures()
	if err != nil {
		return false, err
	}
	if features&rbd.FeatureFastDiff == 0 {
		return false, nil
	}
	if size == 0 {
		return true, nil // and librbd asserts on a diff of an empty range
	}
	objects, err := diffIterate(img, "", 0, size, rbd.EnableWholeObject)
	if err != nil {
		return false, err
	}
	for _, o := range objects {
		if o.exists {
			return false, nil
		}
	}
	return true, nil
}

// writeOp is a write or zeroing op in flight.
type writeOp struct {
	op   *aioOp
	len  uint64
	held *heldBuffer // the buffer a write was cut from; nil for a zero op
}

// heldBuffer is an I/O buffer shared by the writes cut from it; the last
// reference released gives it back.
type heldBuffer struct {
	buf  []byte
	refs atomic.Int32
}

func (h *heldBuffer) release(bufs *buffers) {
	if h.refs.Add(-1) == 0 {
		bufs.put(h.buf)
	}
}

// importZeroOps bounds the zero ops in flight (data writes are bounded by
// the buffers).
const importZeroOps = 64

// applyRecords reads records in order and turns them into writes and zero
// ops (see coalescer), which it starts at once; a waiter waits for them in
// the order they were started and gives their buffers back. Records never
// overlap (the reader checks), so ops may complete in any order. On a blank
// image (see readsAsZeros) zeros are skipped. Every op started is waited
// for, on every path.
func applyRecords(ctx context.Context, w *aioImage, src rbddiff.Source, blank bool, p progress.Reporter, stats *ImportStats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bufs := newBuffers(importLargeBuffers, importSmallBuffers)
	inFlight := make(chan writeOp, importLargeBuffers+importSmallBuffers+importZeroOps)
	var waitErr error
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for o := range inFlight {
			err := o.op.wait()
			if o.held != nil {
				o.held.release(bufs)
			}
			if err != nil {
				if waitErr == nil {
					waitErr = err
					cancel() // start nothing more
				}
				continue
			}
			p.Add(o.len)
		}
	}()

	co := &coalescer{ctx: ctx, bufs: bufs, img: w, inFlight: inFlight, blank: blank, progress: p}
	readErr := func() error {
		defer close(inFlight)
		for {
			rec, err := src.Next()
			if err == io.EOF {
				return co.flush()
			}
			if err != nil {
				co.drop() // a source cut off mid-window leaves its bytes pending
				return err
			}
			// The sources check this already; librbd must never see a
			// range past the image: it took data at 2^64-4096 without an
			// error, and such a range has been seen to make it wait for good.
			if size := stats.Header.Size; rec.Offset > size || rec.Length > size-rec.Offset {
				co.drop()
				return ferry.Invalid("%v extent 0x%x+0x%x reaches past the image size 0x%x; refused before any I/O", rec.Kind, rec.Offset, rec.Length, size)
			}
			switch rec.Kind {
			case rbddiff.Zero:
				stats.ZeroBytes += rec.Length
				err = co.zero(rec.Offset, rec.Length)
			case rbddiff.Data:
				stats.DataBytes += rec.Length
				err = co.data(rec.Offset, rec.Length, rec.Payload)
			}
			if err != nil {
				co.drop()
				return err
			}
		}
	}()
	<-waited
	err := readErr
	if waitErr != nil {
		err = waitErr // a failed write explains a cancelled read
	}
	return errors.Join(err, bufs.free())
}

// zeroFillMax is the longest run of zeros that an import writes as data
// when it lies next to data in the same object. Every write or zeroing op
// costs the OSD about as much as a few hundred KiB of data, so a diff of
// data and short zero runs in turn (what an export of half-empty objects
// gives) lands as one write per object rather than hundreds of small ops;
// longer runs are zeroed, so the image stays about as thin as its source.
const zeroFillMax = 64 << 10

// coalescer turns the records of a diff into writes and zeroing ops:
// touching records within one ioSize-aligned window are gathered into one
// buffer, and when the window is done it is cut into writes and zero ops
// (flush). Untouched ranges between records are never written.
type coalescer struct {
	ctx      context.Context
	bufs     *buffers
	img      *aioImage
	inFlight chan<- writeOp
	blank    bool
	progress progress.Reporter

	off uint64 // image offset of buf[0]
	buf []byte // gathered bytes; nil when nothing is pending
}

func (c *coalescer) end() uint64 { return c.off + uint64(len(c.buf)) }

// room makes the pending buffer able to take n more bytes at off, flushing
// first unless off continues it within the same window.
func (c *coalescer) room(off, n uint64) error {
	if c.buf != nil && (c.end() != off || c.off/ioSize != off/ioSize) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if c.buf == nil {
		buf := c.bufs.get(n, c.ctx.Done())
		if buf == nil {
			return c.ctx.Err()
		}
		c.off, c.buf = off, buf[:0]
		return nil
	}
	if need := len(c.buf) + int(n); need > cap(c.buf) {
		// A small buffer outgrown: move to a large one (the window bounds it).
		large := c.bufs.get(ioSize, c.ctx.Done())
		if large == nil {
			return c.ctx.Err()
		}
		large = append(large[:0], c.buf...)
		c.bufs.put(c.buf)
		c.buf = large
	}
	return nil
}

// data gathers a data record of n bytes at off read from payload.
func (c *coalescer) data(off, n uint64, payload io.Reader) error {
	for n > 0 {
		m := min(n, ioSize-off%ioSize) // up to the end of the window
		if err := c.room(off, m); err != nil {
			return err
		}
		at := len(c.buf)
		c.buf = c.buf[:at+int(m)]
		if _, err := io.ReadFull(payload, c.buf[at:]); err != nil {
			return fmt.Errorf("read data record at %#x: %w", off, err)
		}
		off, n = off+m, n-m
		if off%ioSize == 0 {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// zero takes a zero record: short ones continuing the pending data are
// gathered as zeros, others flush it and become one zero op.
func (c *coalescer) zero(off, n uint64) error {
	// Pending bytes never reach the end of their window (it is flushed
	// there), so continuing them means staying in the same window.
	if n <= zeroFillMax && c.buf != nil && c.end() == off && off%ioSize+n <= ioSize {
		if err := c.room(off, n); err != nil {
			return err
		}
		at := len(c.buf)
		c.buf = c.buf[:at+int(n)]
		clear(c.buf[at:])
		if (off+n)%ioSize == 0 {
			return c.flush()
		}
		return nil
	}
	if err := c.flush(); err != nil {
		return err
	}
	return c.zeroOp(off, n)
}

func (c *coalescer) zeroOp(off, n uint64) error {
	if c.blank {
		c.progress.Add(n)
		return nil
	}
	for n > 0 {
		l := min(n, maxIOLen)
		if err := c.start(func() (*aioOp, error) { return c.img.zero(off, l) }, l, nil); err != nil {
			return err
		}
		off, n = off+l, n-l
	}
	return nil
}

// start starts an op of n bytes (unless the import failed) and hands it to
// the waiter; held, if any, is released when the op is done.
func (c *coalescer) start(begin func() (*aioOp, error), n uint64, held *heldBuffer) error {
	err := c.ctx.Err()
	var op *aioOp
	if err == nil {
		op, err = begin()
	}
	if err != nil {
		if held != nil {
			held.release(c.bufs)
		}
		return err
	}
	select {
	case c.inFlight <- writeOp{op: op, len: n, held: held}:
		return nil
	case <-c.ctx.Done():
		err := op.wait()
		if held != nil {
			held.release(c.bufs)
		}
		if err != nil {
			return err
		}
		return c.ctx.Err()
	}
}

// flush cuts the pending bytes into writes and zero ops: zero runs of at
// most zeroFillMax next to data stay in the writes, longer ones are zeroed.
func (c *coalescer) flush() error {
	if c.buf == nil {
		return nil
	}
	off, buf := c.off, c.buf
	c.buf = nil
	h := &heldBuffer{buf: buf}
	h.refs.Store(1) // this function's own, until every write is out
	defer h.release(c.bufs)
	for _, r := range writeRuns(off, buf) {
		runOff, runLen := off+uint64(r.from), uint64(r.to-r.from)
		if r.zero {
			if err := c.zeroOp(runOff, runLen); err != nil {
				return err
			}
			continue
		}
		h.refs.Add(1)
		data := buf[r.from:r.to]
		if err := c.start(func() (*aioOp, error) { return c.img.write(runOff, data) }, runLen, h); err != nil {
			return err
		}
	}
	return nil
}

// drop gives back the pending buffer after a failure.
func (c *coalescer) drop() {
	if c.buf != nil {
		c.bufs.put(c.buf)
		c.buf = nil
	}
}

type run struct {
	from, to int
	zero     bool
}

// writeRuns splits buf (image bytes at off) into data and zero runs, with
// zero runs of at most zeroFillMax that touch data counted as data.
func writeRuns(off uint64, buf []byte) []run {
	var raw []run
	_ = zeroRuns(off, buf, func(from, to int, zero bool) error {
		raw = append(raw, run{from, to, zero})
		return nil
	})
	var out []run
	for i, r := range raw {
		if r.zero && r.to-r.from <= zeroFillMax && ((i > 0 && !raw[i-1].zero) || (i+1 < len(raw) && !raw[i+1].zero)) {
			r.zero = false
		}
		if n := len(out); n > 0 && out[n-1].zero == r.zero {
			out[n-1].to = r.to
			continue
		}
		out = append(out, r)
	}
	return out
}
