package rbddiff

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// Golden streams, written out byte by byte from the rbd diff format and the
// record order of rbd export-diff: banner, 'f', 't', ('p' in v2, whenever 't'
// is present), 's', extents, 'e'.
var (
	goldenV1 = "" +
		"rbd diff v1\n" +
		"f" + "\x05\x00\x00\x00" + "snap1" +
		"t" + "\x05\x00\x00\x00" + "snap2" +
		"s" + "\x00\x00\x10\x00\x00\x00\x00\x00" + // 1 MiB
		"w" + "\x00\x10\x00\x00\x00\x00\x00\x00" + "\x04\x00\x00\x00\x00\x00\x00\x00" + "abcd" +
		"z" + "\x00\x20\x00\x00\x00\x00\x00\x00" + "\x00\x10\x00\x00\x00\x00\x00\x00" +
		"e"

	goldenV2 = "" +
		"rbd diff v2\n" +
		"f" + "\x09\x00\x00\x00\x00\x00\x00\x00" + "\x05\x00\x00\x00" + "snap1" +
		"t" + "\x09\x00\x00\x00\x00\x00\x00\x00" + "\x05\x00\x00\x00" + "snap2" +
		"p" + "\x01\x00\x00\x00\x00\x00\x00\x00" + "\x01" +
		"s" + "\x08\x00\x00\x00\x00\x00\x00\x00" + "\x00\x00\x10\x00\x00\x00\x00\x00" +
		"w" + "\x14\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x10\x00\x00\x00\x00\x00\x00" + "\x04\x00\x00\x00\x00\x00\x00\x00" + "abcd" +
		"z" + "\x10\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x20\x00\x00\x00\x00\x00\x00" + "\x00\x10\x00\x00\x00\x00\x00\x00" +
		"e"

	// A diff from image creation to the head: no 'f', no 't', so no 'p'.
	goldenV2Head = "" +
		"rbd diff v2\n" +
		"s" + "\x08\x00\x00\x00\x00\x00\x00\x00" + "\x00\x02\x00\x00\x00\x00\x00\x00" +
		"z" + "\x10\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00" + "\x00\x02\x00\x00\x00\x00\x00\x00" +
		"e"
)

func TestGolden(t *testing.T) {
	full := Header{FromSnap: "snap1", ToSnap: "snap2", Size: 1 << 20, Protected: true}
	fullExtents := []extent{{Data, 0x1000, 4, "abcd"}, {Zero, 0x2000, 0x1000, ""}}
	tests := []struct {
		name    string
		format  Format
		golden  string
		hdr     Header // what the Reader must return
		extents []extent
	}{
		// v1 cannot carry the protection status: the Writer drops it.
		{"v1", V1, goldenV1, Header{FromSnap: "snap1", ToSnap: "snap2", Size: 1 << 20}, fullExtents},
		{"v2", V2, goldenV2, full, fullExtents},
		{"v2 head", V2, goldenV2Head, Header{Size: 0x200}, []extent{{Zero, 0, 0x200, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, tt.format)
			in := tt.hdr
			if tt.format == V1 {
				in.Protected = true
			}
			mustNil(t, w.WriteHeader(in))
			for _, e := range tt.extents {
				if e.Kind == Data {
					mustNil(t, w.WriteData(e.Offset, []byte(e.Data)))
				} else {
					mustNil(t, w.WriteZero(e.Offset, e.Length))
				}
			}
			mustNil(t, w.Close())
			if buf.String() != tt.golden {
				t.Errorf("Writer output differs from golden\n got %q\nwant %q", buf.String(), tt.golden)
			}

			r := NewReader(strings.NewReader(tt.golden))
			h, got, err := readAll(r)
			mustNil(t, err)
			if h != tt.hdr {
				t.Errorf("header = %+v, want %+v", h, tt.hdr)
			}
			if !reflect.DeepEqual(got, tt.extents) {
				t.Errorf("extents = %v, want %v", got, tt.extents)
			}
			if r.Format() != tt.format {
				t.Errorf("Format = %v, want %v", r.Format(), tt.format)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	big := strings.Repeat("ferry\x00\xff", 40000) // spans several buffers
	headers := []Header{
		{Size: 0},
		{Size: 1 << 40},
		{FromSnap: "base", Size: 1 << 40},
		{ToSnap: "nightly 2024-05-01", Size: 1 << 40},
		{FromSnap: "avant l’été", ToSnap: "снимок 2 スナップ", Size: 1 << 40, Protected: true},
		{FromSnap: "a", ToSnap: "b", Size: 1 << 40, Protected: false},
		{FromSnap: strings.Repeat("é", MaxSnapNameLen/2), ToSnap: "x", Size: 1 << 40},
	}
	extentSets := [][]extent{
		nil,
		{{Data, 0, 1, "x"}},
		{{Zero, 0, 4 << 20, ""}, {Data, 4 << 20, 3, "abc"}, {Data, 4<<20 + 3, uint64(len(big)), big}, {Zero, 1<<40 - 512, 512, ""}},
		{{Data, 4096, 0, ""}, {Zero, 4096, 0, ""}, {Zero, 8192, 4096, ""}},
	}
	for _, f := range []Format{V1, V2} {
		for hi, h := range headers {
			for ei, exts := range extentSets {
				if h.Size == 0 && len(exts) > 0 {
					continue
				}
				t.Run(fmt.Sprintf("%v/header%d/extents%d", f, hi, ei), func(t *testing.T) {
					var buf bytes.Buffer
					w := NewWriter(&buf, f)
					mustNil(t, w.WriteHeader(h))
					for _, e := range exts {
						if e.Kind == Data {
							mustNil(t, w.WriteData(e.Offset, []byte(e.Data)))
						} else {
							mustNil(t, w.WriteZero(e.Offset, e.Length))
						}
					}
					mustNil(t, w.Close())

					// Short reads exercise every partial-read path.
					r := NewReader(iotest.HalfReader(bytes.NewReader(buf.Bytes())))
					gotH, got, err := readAll(r)
					mustNil(t, err)
					want := h
					if f == V1 || h.ToSnap == "" {
						want.Protected = false
					}
					if gotH != want {
						t.Errorf("header %d: got %+v, want %+v", hi, gotH, want)
					}
					if !reflect.DeepEqual(got, exts) {
						t.Errorf("extents %d: got %d records, want %d", ei, len(got), len(exts))
					}
				})
			}
		}
	}
}

func TestWriterRefuses(t *testing.T) {
	long := strings.Repeat("n", MaxSnapNameLen+1)
	tests := []struct {
		name   string
		format Format
		hdr    Header
		do     func(w *Writer) error
		off    int64 // -1: a plain (non-Format) error
		frags  []string
	}{
		{"from name too long", V1, Header{FromSnap: long}, nil, 12,
			[]string{"'f' record", "4097 bytes exceeds the 4096-byte limit"}},
		{"to name too long v2", V2, Header{FromSnap: "ab", ToSnap: long}, nil, 12 + 9 + 4 + 2,
			[]string{"'t' record", "exceeds"}},
		{"overlap", V1, Header{Size: 1 << 30}, func(w *Writer) error {
			mustNil(t, w.WriteZero(0x400000, 0x1000))
			return w.WriteData(0x400800, []byte("x"))
		}, 21 + 17, []string{"extent 0x400800+0x1 overlaps the previous extent ending at 0x401000", "refusing to write"}},
		{"out of order", V2, Header{Size: 1 << 30}, func(w *Writer) error {
			mustNil(t, w.WriteData(0x2000, []byte("abcd")))
			return w.WriteZero(0x1000, 1)
		}, 29 + 29, []string{"out of order"}},
		{"past size", V1, Header{Size: 0x1000}, func(w *Writer) error {
			return w.WriteZero(0xfff, 2)
		}, 21, []string{"ends past the image size 0x1000"}},
		{"overflow", V1, Header{Size: 0x1000}, func(w *Writer) error {
			return w.WriteZero(1, ^uint64(0))
		}, 21, []string{"ends past the image size"}},
		{"bad format", Format(3), Header{}, nil, -1, []string{"format Format(3)"}},
		{"header twice", V1, Header{}, func(w *Writer) error { return w.WriteHeader(Header{}) }, -1,
			[]string{"WriteHeader called twice"}},
		{"extent after close", V1, Header{Size: 8}, func(w *Writer) error {
			mustNil(t, w.Close())
			return w.WriteZero(0, 1)
		}, -1, []string{"WriteZero after Close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, tt.format)
			err := w.WriteHeader(tt.hdr)
			if tt.do != nil {
				mustNil(t, err)
				err = tt.do(w)
			}
			if tt.off >= 0 {
				wantFormatError(t, err, tt.off, tt.frags...)
				return
			}
			var fe *FormatError
			if err == nil || errors.As(err, &fe) {
				t.Fatalf("error = %v, want a plain error", err)
			}
			for _, f := range tt.frags {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("message %q does not contain %q", err, f)
				}
			}
		})
	}
}

// A refused extent writes nothing; the diff can still be completed.
func TestWriterRefusalLeavesStreamValid(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, V2)
	mustNil(t, w.WriteHeader(Header{Size: 100}))
	mustNil(t, w.WriteData(10, []byte("abc")))
	if err := w.WriteData(11, []byte("x")); err == nil {
		t.Fatal("overlapping WriteData succeeded")
	}
	mustNil(t, w.WriteZero(13, 87))
	mustNil(t, w.Close())
	_, got, err := readAll(NewReader(&buf))
	mustNil(t, err)
	want := []extent{{Data, 10, 3, "abc"}, {Zero, 13, 87, ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("extents = %v, want %v", got, want)
	}
}

func TestWriterBeforeHeader(t *testing.T) {
	w := NewWriter(&bytes.Buffer{}, V1)
	if err := w.WriteData(0, nil); err == nil || !strings.Contains(err.Error(), "before WriteHeader") {
		t.Errorf("WriteData = %v", err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "before WriteHeader") {
		t.Errorf("Close = %v", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterIOErrorIsSticky(t *testing.T) {
	boom := errors.New("disk full")
	w := NewWriter(failingWriter{boom}, V1)
	mustNil(t, w.WriteHeader(Header{Size: 1 << 30})) // buffered
	// Larger than the buffer, so it reaches the failing writer now.
	if err := w.WriteData(0, make([]byte, 100<<10)); !errors.Is(err, boom) {
		t.Fatalf("WriteData = %v, want %v", err, boom)
	}
	if err := w.WriteZero(100<<10, 1); !errors.Is(err, boom) {
		t.Errorf("WriteZero after failure = %v, want %v", err, boom)
	}
	err := w.Close()
	if !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want %v", err, boom)
	}
	if err2 := w.Close(); !errors.Is(err2, boom) {
		t.Errorf("second Close = %v", err2)
	}
}

func TestCloseTwice(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, V1)
	mustNil(t, w.WriteHeader(Header{Size: 1}))
	mustNil(t, w.Close())
	mustNil(t, w.Close())
	if buf.String() != v1Head(1)+"e" {
		t.Errorf("output = %q", buf.String())
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
