package ceph

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// Tuning of the import. The OSD's cost is mostly per operation and per byte
// written, so the importer gathers records into as few writes as it can and
// writes no zeros where the target already reads as zeros.
const (
	// Buffers for writes in flight. Writes are zero-copy, so a buffer is all
	// a write in flight costs.
	importWriteBuffers      = 12
	importSmallWriteBuffers = 64
	// importOpsInFlight bounds writes and zeroings in flight together.
	importOpsInFlight = 96
	// maxZeroFold is the longest zero record folded into a write of the data
	// around it, and the shortest run of zero blocks inside data that is left
	// out of a write where the target reads as zeros. An OSD op costs about
	// as much as writing 64-128 KiB, so shorter runs are cheaper to write.
	maxZeroFold = 256 << 10
)

// applyRecords reads records in order and writes them with several
// operations in flight. Records never overlap (the reader checks), so
// operations may complete in any order.
func applyRecords(ctx context.Context, img *aioImage, plan importPlan, src rbddiff.Source, p progress.Reporter, stats *ImportStats) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &importWriter{
		ctx: ctx, img: img, plan: plan, p: p,
		bufs:     newBuffers(importWriteBuffers, importSmallWriteBuffers),
		inFlight: make(chan pendingOp, importOpsInFlight),
	}
	w.reaped.Add(1)
	go w.reap(cancel)

	readErr := w.readAll(src, stats)
	if readErr == nil {
		readErr = w.flush()
	} else if w.win.buf != nil {
		w.bufs.put(w.win.buf)
		w.win = window{}
	}
	close(w.inFlight)
	w.reaped.Wait() // every operation has completed: the buffers are free
	w.bufs.free()
	if w.opErr != nil {
		return w.opErr // a failed write explains a cancelled read
	}
	return readErr
}

// importWriter turns records into librbd operations.
type importWriter struct {
	ctx  context.Context
	img  *aioImage
	plan importPlan
	p    progress.Reporter
	bufs *buffers

	win window // data gathered for the next write

	inFlight chan pendingOp
	reaped   sync.WaitGroup
	opErr    error // set by reap before reaped is done
}

// window is data for one write: contiguous records within one chunk.
type window struct {
	off  uint64 // image offset of buf[0]
	buf  []byte // len = bytes gathered; nil when no window is open
	data int    // buf[data:] came from zero records (folded zeros)
}

func (w window) end() uint64 { return w.off + uint64(len(w.buf)) }

// pendingOp is an operation in flight. buf goes back to the free list once
// the operation completed; several operations may share a buffer, and only
// the last of them carries it.
type pendingOp struct {
	op  aioOp
	buf []byte
	n   uint64 // bytes of the diff it applies, for progress
}

// reap waits for the operations in the order they were started (they finish
// in about that order) and frees their buffers. The first failure cancels
// the import; later operations are still waited for, so no buffer is freed
// while librbd may use it.
func (w *importWriter) reap(cancel func()) {
	defer w.reaped.Done()
	for op := range w.inFlight {
		err := op.op.wait()
		if op.buf != nil {
			w.bufs.put(op.buf)
		}
		if err != nil {
			if w.opErr == nil {
				w.opErr = err
				cancel()
			}
			continue
		}
		w.p.Add(op.n)
	}
}

func (w *importWriter) start(op aioOp, buf []byte, n uint64) error {
	select {
	case w.inFlight <- pendingOp{op: op, buf: buf, n: n}:
		return nil
	case <-w.ctx.Done():
		// Never drop an operation in flight: wait for it here.
		err := op.wait()
		if buf != nil {
			w.bufs.put(buf)
		}
		if err != nil {
			return err
		}
		return w.ctx.Err()
	}
}

func (w *importWriter) readAll(src rbddiff.Source, stats *ImportStats) error {
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		rec, err := src.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch rec.Kind {
		case rbddiff.Zero:
			stats.ZeroBytes += rec.Length
			err = w.zero(rec.Offset, rec.Length)
		case rbddiff.Data:
			stats.DataBytes += rec.Length
			err = w.data(rec.Offset, rec.Length, rec.Payload)
		}
		if err != nil {
			return err
		}
	}
}

// chunkEnd is the end of the chunk that holds off.
func (w *importWriter) chunkEnd(off uint64) uint64 {
	return off - off%w.plan.chunk + w.plan.chunk
}

// extends reports whether [off, off+n) continues the open window within its chunk.
func (w *importWriter) extends(off, n uint64) bool {
	return w.win.buf != nil && w.win.end() == off && off+n <= w.chunkEnd(w.win.off)
}

// room makes room in the window for n more bytes, moving it from a small
// buffer to a large one if needed.
func (w *importWriter) room(n uint64) error {
	if uint64(cap(w.win.buf)-len(w.win.buf)) >= n {
		return nil
	}
	large := w.bufs.get(ioSize, w.ctx.Done())
	if large == nil {
		return w.ctx.Err()
	}
	large = append(large, w.win.buf...)
	w.bufs.put(w.win.buf)
	w.win.buf = large
	return nil
}

func (w *importWriter) data(off, n uint64, payload io.Reader) error {
	for end := off + n; off < end; {
		piece := min(end-off, w.chunkEnd(off)-off)
		if !w.extends(off, piece) {
			if err := w.flush(); err != nil {
				return err
			}
			buf := w.bufs.get(piece, w.ctx.Done())
			if buf == nil {
				return w.ctx.Err()
			}
			w.win = window{off: off, buf: buf}
		}
		if err := w.room(piece); err != nil {
			return err
		}
		l := len(w.win.buf)
		w.win.buf = w.win.buf[:l+int(piece)]
		if _, err := io.ReadFull(payload, w.win.buf[l:]); err != nil {
			return fmt.Errorf("read data record at %#x: %w", off, err)
		}
		w.win.data = len(w.win.buf)
		off += piece
	}
	return nil
}

func (w *importWriter) zero(off, n uint64) error {
	// A short zero record between data joins their write: one op instead of
	// two or three.
	if n <= maxZeroFold && w.extends(off, n) {
		if err := w.room(n); err != nil {
			return err
		}
		l := len(w.win.buf)
		w.win.buf = w.win.buf[:l+int(n)]
		clear(w.win.buf[l:])
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	var zeroed uint64
	err := w.plan.allocated.eachMaybeData(off, n, func(off, n uint64) error {
		for n > 0 {
			l := min(n, maxIOLen)
			op, err := w.img.writeZeroes(off, l)
			if err != nil {
				return err
			}
			if err := w.start(op, nil, l); err != nil {
				return err
			}
			zeroed += l
			off += l
			n -= l
		}
		return nil
	})
	w.p.Add(n - zeroed) // already zero at the target
	return err
}

// flush writes the open window. Where the target reads as zeros it leaves
// out the folded zeros at its end and long runs of zero blocks in the data
// (rbd export-diff ships a new object whole, holes included).
func (w *importWriter) flush() error {
	win := w.win
	if win.buf == nil {
		return nil
	}
	w.win = window{}
	total := uint64(len(win.buf))
	if !w.plan.allocated.mayHoldData(win.off, total) {
		return w.writeSparse(win, total)
	}
	op, err := w.img.write(win.off, win.buf)
	if err != nil {
		w.bufs.put(win.buf)
		return err
	}
	return w.start(op, win.buf, total)
}

// writeSparse writes the non-zero parts of a window over a range that reads
// as zeros: runs of zero blocks shorter than maxZeroFold stay in the writes.
func (w *importWriter) writeSparse(win window, total uint64) error {
	buf := win.buf[:win.data]
	var runs [][2]int // [from, to) of buf to write
	from, zeroFrom := -1, -1
	for i := 0; i < len(buf); i += zeroBlock {
		j := min(i+zeroBlock, len(buf))
		if !isZero(buf[i:j]) {
			if from < 0 {
				from = i
			} else if zeroFrom >= 0 && i-zeroFrom >= maxZeroFold {
				runs = append(runs, [2]int{from, zeroFrom})
				from = i
			}
			zeroFrom = -1
			continue
		}
		if zeroFrom < 0 {
			zeroFrom = i
		}
	}
	if from >= 0 {
		to := len(buf)
		if zeroFrom >= 0 {
			to = zeroFrom
		}
		runs = append(runs, [2]int{from, to})
	}
	if len(runs) == 0 {
		w.bufs.put(win.buf)
		w.p.Add(total)
		return nil
	}
	written := uint64(0)
	for i, r := range runs {
		var owned []byte // the last write gives the buffer back
		if i == len(runs)-1 {
			owned = win.buf
		}
		op, err := w.img.write(win.off+uint64(r[0]), buf[r[0]:r[1]])
		if err != nil {
			if i == 0 {
				w.bufs.put(win.buf)
			} // else writes in flight still use it; it is freed with the rest
			return err
		}
		n := uint64(r[1] - r[0])
		if err := w.start(op, owned, n); err != nil {
			return err
		}
		written += n
	}
	w.p.Add(total - written) // already zero at the target
	return nil
}
