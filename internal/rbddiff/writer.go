package rbddiff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const writeBufferSize = 64 << 10

// directWriteMin is the data record payload from which the payload goes
// straight to the underlying writer instead of through the buffer: one
// more write call, but no copy of the bytes (an export is mostly payload).
const directWriteMin = 32 << 10

const refuse = "refusing to write it (extents must ascend, not overlap and stay within Header.Size)"

// Writer encodes a diff as rbd export-diff would: for the same content the
// bytes are identical. It implements Sink. A Writer is not safe for
// concurrent use.
//
// Calls out of order (an extent before WriteHeader, anything after Close)
// return a plain error; content that would make an invalid diff returns a
// *FormatError and writes nothing, so the caller may carry on.
type Writer struct {
	out    io.Writer
	bw     *bufio.Writer
	format Format
	off    int64 // stream offset of the next byte written

	state int // writerNew, writerOpen, writerClosed
	size  uint64
	order extentOrder

	err error // sticky write error
	buf [1 + 8 + 16]byte
}

const (
	writerNew = iota
	writerOpen
	writerClosed
)

// NewWriter returns a Writer producing a diff of format f (V1 or V2) on w.
func NewWriter(w io.Writer, f Format) *Writer {
	return &Writer{out: w, bw: bufio.NewWriterSize(w, writeBufferSize), format: f}
}

// WriteHeader writes the banner and metadata in rbd's order: 'f' if FromSnap
// is set, 't' if ToSnap is set, in v2 'p' whenever 't' is written, then 's'.
// Protected is dropped where rbd could not express it: in v1, or with no ToSnap.
func (w *Writer) WriteHeader(h Header) error {
	if w.err != nil {
		return w.err
	}
	if w.state != writerNew {
		return errors.New("rbd diff: WriteHeader called twice or after Close")
	}
	var banner string
	switch w.format {
	case V1:
		banner = bannerV1
	case V2:
		banner = bannerV2
	default:
		return fmt.Errorf("rbd diff: cannot write format %v, only v1 and v2 exist", w.format)
	}
	// Validate before writing so a refused header leaves the output untouched.
	off := int64(len(banner))
	for _, s := range []struct {
		tag  byte
		name string
	}{{tagFromSnap, h.FromSnap}, {tagToSnap, h.ToSnap}} {
		if s.name == "" {
			continue
		}
		if len(s.name) > MaxSnapNameLen {
			return formatErr(off, "%s record: snapshot name of %d bytes exceeds the %d-byte limit of rbd; refusing to write it",
				tagName(s.tag), len(s.name), MaxSnapNameLen)
		}
		off += int64(w.recordHeaderLen() + 4 + len(s.name))
	}

	w.write([]byte(banner))
	if h.FromSnap != "" {
		w.writeName(tagFromSnap, h.FromSnap)
	}
	if h.ToSnap != "" {
		w.writeName(tagToSnap, h.ToSnap)
		if w.format == V2 {
			// rbd export always states the protection of the to-snapshot in v2.
			b := w.recordHeader(tagProtected, 1)
			if h.Protected {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			w.write(b)
		}
	}
	b := w.recordHeader(tagSize, 8)
	w.write(binary.LittleEndian.AppendUint64(b, h.Size))
	w.size = h.Size
	w.state = writerOpen
	return w.err
}

// WriteData writes a 'w' record carrying p at offset.
func (w *Writer) WriteData(offset uint64, p []byte) error {
	if err := w.checkExtent("WriteData", offset, uint64(len(p))); err != nil {
		return err
	}
	w.writeExtent(tagWrite, offset, uint64(len(p)))
	if len(p) >= directWriteMin {
		w.writeDirect(p)
	} else {
		w.write(p)
	}
	return w.err
}

// WriteZero writes a 'z' record: length bytes at offset read as zeroes.
func (w *Writer) WriteZero(offset, length uint64) error {
	if err := w.checkExtent("WriteZero", offset, length); err != nil {
		return err
	}
	w.writeExtent(tagZero, offset, length)
	return w.err
}

// Close writes the end record and flushes. It does not close the underlying
// io.Writer. Calling it again returns the first result.
func (w *Writer) Close() error {
	switch {
	case w.state == writerClosed || w.err != nil:
		return w.err
	case w.state == writerNew:
		return errors.New("rbd diff: Close before WriteHeader; a diff without a header is invalid")
	}
	w.state = writerClosed
	w.write([]byte{tagEnd})
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("rbd diff: write: %w", err)
		}
	}
	return w.err
}

func (w *Writer) checkExtent(call string, offset, length uint64) error {
	if w.err != nil {
		return w.err
	}
	switch w.state {
	case writerNew:
		return fmt.Errorf("rbd diff: %s before WriteHeader; the header must come first", call)
	case writerClosed:
		return fmt.Errorf("rbd diff: %s after Close", call)
	}
	if err := w.order.check(w.off, offset, length, w.size, refuse); err != nil {
		return err
	}
	return nil
}

func (w *Writer) writeExtent(tag byte, offset, length uint64) {
	recLen := uint64(16)
	if tag == tagWrite {
		recLen += length
	}
	b := w.recordHeader(tag, recLen)
	b = binary.LittleEndian.AppendUint64(b, offset)
	w.write(binary.LittleEndian.AppendUint64(b, length))
}

func (w *Writer) writeName(tag byte, name string) {
	b := w.recordHeader(tag, 4+uint64(len(name)))
	w.write(binary.LittleEndian.AppendUint32(b, uint32(len(name))))
	w.write([]byte(name))
}

// recordHeader returns, in w.buf, the tag and (in v2) the record length.
func (w *Writer) recordHeader(tag byte, recLen uint64) []byte {
	b := append(w.buf[:0], tag)
	if w.format == V2 {
		b = binary.LittleEndian.AppendUint64(b, recLen)
	}
	return b
}

func (w *Writer) recordHeaderLen() int {
	if w.format == V2 {
		return 9
	}
	return 1
}

// writeDirect flushes what is buffered, then writes b unbuffered.
func (w *Writer) writeDirect(b []byte) {
	if w.err != nil {
		return
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("rbd diff: write at offset %d: %w", w.off-int64(w.bw.Buffered()), err)
		return
	}
	n, err := w.out.Write(b)
	w.off += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("rbd diff: write at offset %d: %w", w.off, err)
	}
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(b)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("rbd diff: write at offset %d: %w", w.off, err)
	}
}
