package rbddiff

import (
	"fmt"
	"io"
)

// Format is the version of the diff stream.
type Format int

const (
	V1 Format = 1 // "rbd diff v1": rbd export-diff
	V2 Format = 2 // "rbd diff v2": length-prefixed records, skippable unknown tags
)

func (f Format) String() string {
	switch f {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Banners open every stream; they are exactly 12 bytes each.
const (
	bannerV1 = "rbd diff v1\n"
	bannerV2 = "rbd diff v2\n"
)

// Record tags, as defined by rbd.
const (
	tagFromSnap  = 'f'
	tagToSnap    = 't'
	tagSize      = 's'
	tagProtected = 'p' // v2 only
	tagWrite     = 'w'
	tagZero      = 'z'
	tagEnd       = 'e'
)

// MaxSnapNameLen is the longest snapshot name rbd import-diff accepts; a
// longer length field means a garbage stream, not a real name.
const MaxSnapNameLen = 4096

// Header is the metadata that precedes the extents of a diff.
type Header struct {
	FromSnap  string // "" = diff from image creation ('f' record absent)
	ToSnap    string // "" = diff to the image head ('t' record absent)
	Size      uint64 // image size at ToSnap ('s' record); required
	Protected bool   // v2 'p' record: the to-snapshot is protected (only meaningful in v2)
}

// Kind tells data extents from zeroed ones.
type Kind int

const (
	Data Kind = iota + 1 // 'w': Length bytes of payload follow
	Zero                 // 'z': the range reads as zeroes; no payload
)

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Zero:
		return "zero"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Record is one extent of a diff. For Data, Payload yields exactly Length bytes
// and is valid only until the next call to Next.
type Record struct {
	Kind    Kind
	Offset  uint64
	Length  uint64
	Payload io.Reader // nil for Zero
}

// Source is anything that yields a diff in order (a Reader, or Ferry's network pipeline).
type Source interface {
	Header() (Header, error) // may be called before Next; reads banner+metadata on first call, cached after
	Next() (Record, error)   // io.EOF after the 'e' record
}

// Sink is anything that consumes a diff in order (a Writer, or Ferry's network pipeline).
type Sink interface {
	WriteHeader(h Header) error
	WriteData(offset uint64, p []byte) error // p is not retained after return
	WriteZero(offset, length uint64) error
	Close() error // writes the end record; does NOT close the underlying io.Writer
}

var (
	_ Source = (*Reader)(nil)
	_ Sink   = (*Writer)(nil)
)

// FormatError reports a stream that is not a valid diff (Reader), or a diff
// the Writer refuses to produce because it would be invalid.
//
// Offset is the byte offset in the stream of the offending record (its tag
// byte), or, for a truncated stream, of the point where the data ran out.
type FormatError struct {
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("rbd diff: offset %d: %s", e.Offset, e.Msg)
}

func formatErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// extentOrder enforces the invariants rbd export-diff guarantees and import
// relies on: extents ascend, never overlap and stay inside the image.
type extentOrder struct {
	prevStart, prevEnd uint64 // the previous extent; both 0 before the first
}

// check validates the extent offset+length of the record at stream offset off
// against the image size, and on success makes it the previous extent. verdict
// ends the message: the Reader blames the stream, the Writer its caller.
func (o *extentOrder) check(off int64, offset, length, size uint64, verdict string) *FormatError {
	if offset < o.prevStart {
		return formatErr(off, "extent 0x%x+0x%x is out of order: it starts before the previous extent at 0x%x; %s",
			offset, length, o.prevStart, verdict)
	}
	if offset < o.prevEnd {
		return formatErr(off, "extent 0x%x+0x%x overlaps the previous extent ending at 0x%x; %s",
			offset, length, o.prevEnd, verdict)
	}
	// Written this way so that offset+length cannot overflow.
	if offset > size || length > size-offset {
		return formatErr(off, "extent 0x%x+0x%x ends past the image size 0x%x; %s",
			offset, length, size, verdict)
	}
	o.prevStart, o.prevEnd = offset, offset+length
	return nil
}

// tagName renders a tag for messages: printable tags as 'w', others in hex.
func tagName(tag byte) string {
	if tag >= 0x21 && tag < 0x7f {
		return fmt.Sprintf("'%c'", tag)
	}
	return fmt.Sprintf("0x%02x", tag)
}
