package rbddiff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// readBufferSize bounds the Reader's memory: payloads and skipped records
// stream through a buffer of this size, whatever lengths the stream claims.
const readBufferSize = 64 << 10

const corrupt = "the diff is corrupt"

// errPayloadStale is returned by a Payload read after Next moved on; the bytes
// it would have returned are gone.
var errPayloadStale = errors.New("rbd diff: Payload read after the next call to Next")

// Reader decodes a v1 or v2 diff from an io.Reader. It implements Source.
// A Reader is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	off int64 // stream offset of the next unread byte

	format  Format
	hdr     Header
	hdrRead bool
	hdrErr  error

	// pending is an extent or end tag (at pendingOff) that Header read to
	// learn that the metadata was over; Next handles it first.
	pending    byte
	pendingOff int64

	ended   bool // the 'e' record has been read
	order   extentOrder
	payload *payload // payload of the last Data record, until the next Next

	err error // sticky: once set, Header and Next keep returning it
}

// NewReader returns a Reader decoding the diff in r. It reads nothing until
// Header or Next is called.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, readBufferSize)}
}

// Format reports whether the stream is v1 or v2. It is 0 until Header (or
// Next) has read the banner.
func (r *Reader) Format() Format { return r.format }

// Header reads the banner and metadata records on its first call and returns
// the cached result after. It stops at the first extent, so Next streams all
// extents.
func (r *Reader) Header() (Header, error) {
	if !r.hdrRead {
		r.hdrRead = true
		if err := r.readHeader(); err != nil {
			r.hdrErr, r.err = err, err
		}
	}
	if r.hdrErr != nil {
		return Header{}, r.hdrErr
	}
	return r.hdr, nil
}

// Next returns the next extent, or io.EOF after the end record. A Data
// payload the caller did not drain is skipped. Any error is final: later
// calls return it again.
func (r *Reader) Next() (Record, error) {
	if _, err := r.Header(); err != nil {
		return Record{}, err
	}
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	if err := r.finishPayload(); err != nil {
		return Record{}, err
	}
	for {
		if r.ended {
			return Record{}, r.checkTrailing()
		}
		var tag byte
		var recOff int64
		if r.pending != 0 {
			tag, recOff, r.pending = r.pending, r.pendingOff, 0
		} else {
			var err error
			if tag, recOff, err = r.readTag(); err != nil {
				return Record{}, err
			}
		}
		switch tag {
		case tagEnd:
			r.ended = true
		case tagWrite, tagZero:
			return r.readExtent(tag, recOff)
		case tagFromSnap, tagToSnap, tagSize, tagProtected:
			if tag == tagProtected && r.format == V1 {
				return Record{}, r.unknownV1(tag, recOff)
			}
			return Record{}, formatErr(recOff, "metadata record %s after the first extent; metadata must precede all extents, %s",
				tagName(tag), corrupt)
		default:
			if err := r.skipUnknown(tag, recOff); err != nil {
				return Record{}, err
			}
		}
	}
}

func (r *Reader) readHeader() error {
	var banner [len(bannerV1)]byte
	n, err := io.ReadFull(r.br, banner[:])
	r.off += int64(n)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return formatErr(r.off, "stream ends after %d bytes, inside the banner; want %q or %q (is the diff empty or cut short?)",
			n, bannerV1, bannerV2)
	case err != nil:
		return r.ioErr(err)
	}
	switch string(banner[:]) {
	case bannerV1:
		r.format = V1
	case bannerV2:
		r.format = V2
	default:
		return formatErr(0, "stream starts with %q, want %q or %q; this is not an rbd diff (a full image export starts with \"rbd image\")",
			banner[:], bannerV1, bannerV2)
	}

	var haveFrom, haveTo, haveSize, haveProt bool
	dup := func(have *bool, tag byte, off int64) error {
		if *have {
			return formatErr(off, "second %s record; a diff carries each metadata record at most once, %s", tagName(tag), corrupt)
		}
		*have = true
		return nil
	}
	for {
		tag, recOff, err := r.readTag()
		if err != nil {
			return err
		}
		switch tag {
		case tagWrite, tagZero, tagEnd:
			if !haveSize {
				return formatErr(recOff, "%s record before any image size record 's'; rbd writes 's' before the extents, so %s or was not produced by rbd",
					tagName(tag), corrupt)
			}
			r.pending, r.pendingOff = tag, recOff
			return nil
		case tagFromSnap, tagToSnap:
			have, name := &haveFrom, &r.hdr.FromSnap
			if tag == tagToSnap {
				have, name = &haveTo, &r.hdr.ToSnap
			}
			if err := dup(have, tag, recOff); err != nil {
				return err
			}
			if *name, err = r.readSnapName(tag, recOff); err != nil {
				return err
			}
		case tagSize:
			if err := dup(&haveSize, tag, recOff); err != nil {
				return err
			}
			if err := r.readRecordLen(tag, recOff, 8); err != nil {
				return err
			}
			var b [8]byte
			if err := r.readFull(b[:], tag, recOff); err != nil {
				return err
			}
			r.hdr.Size = binary.LittleEndian.Uint64(b[:])
		case tagProtected:
			if r.format == V1 {
				return r.unknownV1(tag, recOff)
			}
			if err := dup(&haveProt, tag, recOff); err != nil {
				return err
			}
			if err := r.readRecordLen(tag, recOff, 1); err != nil {
				return err
			}
			var b [1]byte
			if err := r.readFull(b[:], tag, recOff); err != nil {
				return err
			}
			r.hdr.Protected = b[0] != 0 // as rbd import-diff reads it
		default:
			if err := r.skipUnknown(tag, recOff); err != nil {
				return err
			}
		}
	}
}

// readSnapName reads the body of an 'f' or 't' record.
func (r *Reader) readSnapName(tag byte, recOff int64) (string, error) {
	var recLen uint64
	if r.format == V2 {
		var err error
		if recLen, err = r.readUint64(tag, recOff); err != nil {
			return "", err
		}
	}
	var b [4]byte
	if err := r.readFull(b[:], tag, recOff); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(b[:])
	if n > MaxSnapNameLen {
		return "", formatErr(recOff, "%s record: snapshot name length %d exceeds the %d-byte limit of rbd; %s",
			tagName(tag), n, MaxSnapNameLen, corrupt)
	}
	if r.format == V2 && recLen != 4+uint64(n) {
		return "", r.badRecordLen(tag, recOff, recLen, 4+uint64(n))
	}
	name := make([]byte, n) // bounded by MaxSnapNameLen above
	if err := r.readFull(name, tag, recOff); err != nil {
		return "", err
	}
	return string(name), nil
}

// readExtent reads a 'w' or 'z' record up to (not including) the payload.
func (r *Reader) readExtent(tag byte, recOff int64) (Record, error) {
	var recLen uint64
	if r.format == V2 {
		var err error
		if recLen, err = r.readUint64(tag, recOff); err != nil {
			return Record{}, err
		}
	}
	var b [16]byte
	if err := r.readFull(b[:], tag, recOff); err != nil {
		return Record{}, err
	}
	rec := Record{
		Kind:   Zero,
		Offset: binary.LittleEndian.Uint64(b[0:8]),
		Length: binary.LittleEndian.Uint64(b[8:16]),
	}
	if tag == tagWrite {
		rec.Kind = Data
	}
	if r.format == V2 {
		want := uint64(16)
		if tag == tagWrite {
			if rec.Length > ^uint64(0)-16 {
				return Record{}, formatErr(recOff, "%s record: extent length 0x%x cannot fit the record length field; %s",
					tagName(tag), rec.Length, corrupt)
			}
			want += rec.Length
		}
		if recLen != want {
			return Record{}, r.badRecordLen(tag, recOff, recLen, want)
		}
	}
	if err := r.order.check(recOff, rec.Offset, rec.Length, r.hdr.Size, corrupt); err != nil {
		return Record{}, err
	}
	if tag == tagWrite {
		r.payload = &payload{r: r, left: rec.Length, total: rec.Length, recOff: recOff, dataOff: r.off}
		rec.Payload = r.payload
	}
	return rec, nil
}

// skipUnknown passes over a record rbd does not define: v2 can, using the
// record length (as rbd import-diff does, for forward compatibility); v1 has
// no length to skip by.
func (r *Reader) skipUnknown(tag byte, recOff int64) error {
	if r.format == V1 {
		return r.unknownV1(tag, recOff)
	}
	n, err := r.readUint64(tag, recOff)
	if err != nil {
		return err
	}
	return r.discard(n, func() error {
		return formatErr(r.off, "stream ends inside the unknown %s record at offset %d (declared length %d); the diff is truncated, re-send or re-export it",
			tagName(tag), recOff, n)
	})
}

func (r *Reader) unknownV1(tag byte, recOff int64) error {
	return formatErr(recOff, "unknown record tag %s in a v1 diff, which cannot skip unknown records; %s", tagName(tag), corrupt)
}

func (r *Reader) badRecordLen(tag byte, recOff int64, got, want uint64) error {
	return formatErr(recOff, "%s record declares length %d, want %d; %s or from an incompatible rbd version",
		tagName(tag), got, want, corrupt)
}

// readRecordLen checks the v2 length field of a fixed-size record.
func (r *Reader) readRecordLen(tag byte, recOff int64, want uint64) error {
	if r.format != V2 {
		return nil
	}
	got, err := r.readUint64(tag, recOff)
	if err != nil {
		return err
	}
	if got != want {
		return r.badRecordLen(tag, recOff, got, want)
	}
	return nil
}

// checkTrailing turns a clean end of stream after 'e' into io.EOF; anything
// more is an error, because it means the stream is not the one diff we think.
func (r *Reader) checkTrailing() error {
	b, err := r.br.ReadByte()
	switch {
	case err == io.EOF:
		return io.EOF
	case err != nil:
		return r.ioErr(err)
	}
	return formatErr(r.off, "unexpected byte 0x%02x after the end record 'e'; the stream carries trailing data (two diffs concatenated?), split it or re-export", b)
}

// finishPayload skips what the caller left of the previous payload and
// invalidates it.
func (r *Reader) finishPayload() error {
	p := r.payload
	if p == nil {
		return nil
	}
	r.payload = nil
	p.stale = true
	if p.err != nil {
		return p.err
	}
	return r.discard(p.left, p.truncated)
}

// discard skips n bytes without buffering them; onEOF builds the error for a
// stream that ends first.
func (r *Reader) discard(n uint64, onEOF func() error) error {
	for n > 0 {
		chunk := min(n, 1<<30) // Discard takes an int
		d, err := r.br.Discard(int(chunk))
		r.off += int64(d)
		n -= uint64(d)
		if err == io.EOF {
			return onEOF()
		}
		if err != nil {
			return r.ioErr(err)
		}
	}
	return nil
}

func (r *Reader) readTag() (tag byte, recOff int64, err error) {
	recOff = r.off
	tag, err = r.br.ReadByte()
	if err == io.EOF {
		return 0, recOff, formatErr(r.off, "stream ends without the end record 'e'; the diff is truncated, re-send or re-export it")
	}
	if err != nil {
		return 0, recOff, r.ioErr(err)
	}
	r.off++
	return tag, recOff, nil
}

func (r *Reader) readUint64(tag byte, recOff int64) (uint64, error) {
	var b [8]byte
	if err := r.readFull(b[:], tag, recOff); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// readFull reads the fixed part of the record tag at recOff.
func (r *Reader) readFull(b []byte, tag byte, recOff int64) error {
	n, err := io.ReadFull(r.br, b)
	r.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatErr(r.off, "stream ends inside the %s record at offset %d; the diff is truncated, re-send or re-export it",
			tagName(tag), recOff)
	}
	if err != nil {
		return r.ioErr(err)
	}
	return nil
}

// ioErr wraps a failure of the underlying reader; it is not a format problem.
func (r *Reader) ioErr(err error) error {
	return fmt.Errorf("rbd diff: read at offset %d: %w", r.off, err)
}

// payload streams the data of one 'w' record straight from the Reader's buffer.
type payload struct {
	r       *Reader
	left    uint64 // bytes of the record not yet read
	total   uint64
	recOff  int64 // stream offset of the record's tag
	dataOff int64 // stream offset of the first payload byte
	stale   bool  // Next has moved past this record
	err     error // sticky
}

func (p *payload) Read(b []byte) (int, error) {
	if p.stale {
		return 0, errPayloadStale
	}
	if p.err != nil {
		return 0, p.err
	}
	if p.left == 0 {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	if uint64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.br.Read(b)
	p.r.off += int64(n)
	p.left -= uint64(n)
	switch {
	case err == io.EOF && p.left > 0:
		p.err = p.truncated()
	case err == io.EOF:
		// The record is complete; the end of stream is Next's to report.
	case err != nil:
		p.err = p.r.ioErr(err)
	}
	if p.err != nil {
		// Next must report it too, even if the caller drops this error.
		p.r.err = p.err
		return n, p.err
	}
	return n, nil
}

func (p *payload) truncated() error {
	return formatErr(p.r.off, "stream ends %d bytes into the %d-byte payload of the 'w' record at offset %d; the diff is truncated, re-send or re-export it",
		p.r.off-p.dataOff, p.total, p.recOff)
}
