package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// errHandoffClosed tells the exporting side that the importing side stopped.
var errHandoffClosed = errors.New("the receiving side of the restore stopped")

// handoff connects an Export (an rbddiff.Sink, on its own goroutine) to an
// Import (an rbddiff.Source) in memory. A data record's bytes are handed over
// without a copy: WriteData returns only once the Source has been asked for
// the next record, which is when Import is done with the previous payload
// (rbddiff.Record's contract). Both engines keep their own buffers and
// parallelism; the handoff adds no memory of its own.
type handoff struct {
	header    chan rbddiff.Header
	records   chan rbddiff.Record
	consumed  chan struct{} // Source -> Sink: the last data payload is no longer used
	stop      chan struct{} // closed when the importing side gives up
	stopOnce  sync.Once
	failed    chan struct{} // closed when the exporting side fails
	failErr   error
	failOnce  sync.Once
	editHdr   func(rbddiff.Header) rbddiff.Header
	hdr       *rbddiff.Header
	inPayload bool
}

func newHandoff(editHeader func(rbddiff.Header) rbddiff.Header) *handoff {
	return &handoff{
		header:   make(chan rbddiff.Header, 1),
		records:  make(chan rbddiff.Record),
		consumed: make(chan struct{}),
		stop:     make(chan struct{}),
		failed:   make(chan struct{}),
		editHdr:  editHeader,
	}
}

// closeReceiver is called by the importing side when it returns, so a
// blocked exporter returns too.
func (h *handoff) closeReceiver() { h.stopOnce.Do(func() { close(h.stop) }) }

// fail is called by the exporting side when Export returns an error, so a
// blocked importer returns that error.
func (h *handoff) fail(err error) {
	h.failOnce.Do(func() { h.failErr = err; close(h.failed) })
}

// Sink side (the exporter's goroutine).

func (h *handoff) WriteHeader(hdr rbddiff.Header) error {
	if h.editHdr != nil {
		hdr = h.editHdr(hdr)
	}
	h.header <- hdr // buffered: sent exactly once
	return nil
}

func (h *handoff) WriteData(offset uint64, p []byte) error {
	rec := rbddiff.Record{Kind: rbddiff.Data, Offset: offset, Length: uint64(len(p)), Payload: bytes.NewReader(p)}
	if err := h.send(rec); err != nil {
		return err
	}
	select {
	case <-h.consumed:
		return nil
	case <-h.stop:
		return errHandoffClosed
	}
}

func (h *handoff) WriteZero(offset, length uint64) error {
	return h.send(rbddiff.Record{Kind: rbddiff.Zero, Offset: offset, Length: length})
}

func (h *handoff) Close() error {
	close(h.records)
	return nil
}

func (h *handoff) send(rec rbddiff.Record) error {
	select {
	case h.records <- rec:
		return nil
	case <-h.stop:
		return errHandoffClosed
	}
}

// Source side (the importer's goroutine).

func (h *handoff) Header() (rbddiff.Header, error) {
	if h.hdr != nil {
		return *h.hdr, nil
	}
	select {
	case hdr := <-h.header:
		h.hdr = &hdr
		return hdr, nil
	case <-h.failed:
		return rbddiff.Header{}, h.exportErr()
	}
}

func (h *handoff) Next() (rbddiff.Record, error) {
	if h.inPayload {
		h.inPayload = false
		select {
		case h.consumed <- struct{}{}:
		case <-h.failed:
			return rbddiff.Record{}, h.exportErr()
		}
	}
	select {
	case rec, ok := <-h.records:
		if !ok {
			return rbddiff.Record{}, io.EOF
		}
		h.inPayload = rec.Kind == rbddiff.Data
		return rec, nil
	case <-h.failed:
		return rbddiff.Record{}, h.exportErr()
	}
}

func (h *handoff) exportErr() error { return fmt.Errorf("reading the backup: %w", h.failErr) }

var (
	_ rbddiff.Sink   = (*handoff)(nil)
	_ rbddiff.Source = (*handoff)(nil)
)
