package rbddiff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// Stream builders for tests: each returns the wire bytes of one piece, built
// from the format description rather than from Writer.

func le32(n uint32) string { return string(binary.LittleEndian.AppendUint32(nil, n)) }
func le64(n uint64) string { return string(binary.LittleEndian.AppendUint64(nil, n)) }

// v1Head is a v1 banner plus an 's' record: 21 bytes.
func v1Head(size uint64) string { return bannerV1 + "s" + le64(size) }

// v2Head is a v2 banner plus an 's' record: 29 bytes.
func v2Head(size uint64) string { return bannerV2 + "s" + le64(8) + le64(size) }

func z1(off, n uint64) string        { return "z" + le64(off) + le64(n) }
func w1(off uint64, d string) string { return "w" + le64(off) + le64(uint64(len(d))) + d }
func z2(off, n uint64) string        { return "z" + le64(16) + le64(off) + le64(n) }
func w2(off uint64, d string) string {
	return "w" + le64(16+uint64(len(d))) + le64(off) + le64(uint64(len(d))) + d
}

// extent is a decoded record with its payload read out.
type extent struct {
	Kind   Kind
	Offset uint64
	Length uint64
	Data   string
}

func (e extent) String() string {
	return fmt.Sprintf("%v 0x%x+0x%x %q", e.Kind, e.Offset, e.Length, e.Data)
}

// readAll decodes a whole stream, draining every payload. It returns what it
// got before the first error.
func readAll(r *Reader) (Header, []extent, error) {
	h, err := r.Header()
	if err != nil {
		return h, nil, err
	}
	var out []extent
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return h, out, nil
		}
		if err != nil {
			return h, out, err
		}
		e := extent{Kind: rec.Kind, Offset: rec.Offset, Length: rec.Length}
		if rec.Payload != nil {
			b, err := io.ReadAll(rec.Payload)
			if err != nil {
				return h, out, err
			}
			e.Data = string(b)
		}
		out = append(out, e)
	}
}

// wantFormatError asserts err is a *FormatError at off whose message holds
// every one of frags.
func wantFormatError(t *testing.T, err error, off int64, frags ...string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v (%T), want *FormatError", err, err)
	}
	if fe.Offset != off {
		t.Errorf("offset = %d, want %d (%v)", fe.Offset, off, fe)
	}
	for _, f := range frags {
		if !strings.Contains(fe.Error(), f) {
			t.Errorf("message %q does not contain %q", fe.Error(), f)
		}
	}
}
