package rbddiff

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReaderErrors(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name  string
		in    string
		off   int64
		frags []string
	}{
		{"empty stream", "", 0, []string{"inside the banner", "cut short"}},
		{"short banner", "rbd diff", 8, []string{"after 8 bytes, inside the banner"}},
		{"wrong banner", "rbd image v2\n" + strings.Repeat("x", 20), 0,
			[]string{`"rbd image v2"`, "not an rbd diff"}},
		{"unknown tag v1", v1Head(mib) + "x", 21,
			[]string{"unknown record tag 'x' in a v1 diff"}},
		{"unknown binary tag v1", v1Head(mib) + "\x00", 21, []string{"unknown record tag 0x00"}},
		{"protection record in v1", bannerV1 + "p\x01" + "s" + le64(mib) + "e", 12,
			[]string{"unknown record tag 'p' in a v1 diff"}},
		{"truncated tag body", v1Head(mib) + "w" + le64(0), 30,
			[]string{"ends inside the 'w' record at offset 21", "truncated"}},
		{"truncated size", bannerV1 + "s\x01\x02", 15, []string{"inside the 's' record at offset 12"}},
		{"truncated snap name", bannerV1 + "f" + le32(5) + "ab", 19, []string{"inside the 'f' record at offset 12"}},
		{"truncated payload", v1Head(mib) + "w" + le64(0) + le64(10) + "abc", 41,
			[]string{"3 bytes into the 10-byte payload of the 'w' record at offset 21", "truncated"}},
		{"overlap", v1Head(1<<30) + z1(0x400000, 0x1000) + z1(0x400800, 0x1000) + "e", 38,
			[]string{"extent 0x400800+0x1000 overlaps the previous extent ending at 0x401000; the diff is corrupt"}},
		{"overlap after data", v1Head(mib) + w1(0x10, "abcd") + z1(0x13, 1) + "e", 42,
			[]string{"extent 0x13+0x1 overlaps the previous extent ending at 0x14"}},
		{"out of order", v1Head(mib) + z1(0x2000, 0x1000) + z1(0x1000, 0x10) + "e", 38,
			[]string{"extent 0x1000+0x10 is out of order", "previous extent at 0x2000"}},
		{"past image size", v1Head(0x1000) + z1(0xf00, 0x200) + "e", 21,
			[]string{"extent 0xf00+0x200 ends past the image size 0x1000"}},
		{"offset past image size", v1Head(0x1000) + z1(0x2000, 0) + "e", 21,
			[]string{"extent 0x2000+0x0 ends past the image size"}},
		{"length overflows", v1Head(0x1000) + z1(0x800, ^uint64(0)) + "e", 21,
			[]string{"extent 0x800+0xffffffffffffffff ends past the image size 0x1000"}},
		{"snap name too long", bannerV1 + "f" + le32(4097), 12,
			[]string{"'f' record", "length 4097 exceeds the 4096-byte limit"}},
		{"to snap name too long v2", bannerV2 + "t" + le64(4+1<<31) + le32(1<<31), 12,
			[]string{"'t' record", "length 2147483648 exceeds"}},
		{"missing size before extent", bannerV1 + z1(0, 1) + "e", 12,
			[]string{"'z' record before any image size record 's'"}},
		{"missing size before end", bannerV1 + "t" + le32(1) + "a" + "e", 18,
			[]string{"'e' record before any image size record 's'"}},
		{"duplicate size", v1Head(1) + "s" + le64(2) + "e", 21, []string{"second 's' record"}},
		{"metadata after extent", v1Head(mib) + z1(0, 1) + "s" + le64(2) + "e", 38,
			[]string{"metadata record 's' after the first extent"}},
		{"v2 size length", bannerV2 + "s" + le64(9) + le64(mib) + "\x00e", 12,
			[]string{"'s' record declares length 9, want 8"}},
		{"v2 protection length", bannerV2 + "p" + le64(8) + le64(1) + v2Head(1)[12:] + "e", 12,
			[]string{"'p' record declares length 8, want 1"}},
		{"v2 snap length", bannerV2 + "f" + le64(4) + le32(2) + "ab" + v2Head(1)[12:] + "e", 12,
			[]string{"'f' record declares length 4, want 6"}},
		{"v2 zero length", v2Head(mib) + "z" + le64(24) + le64(0) + le64(1) + le64(0) + "e", 29,
			[]string{"'z' record declares length 24, want 16"}},
		{"v2 write length", v2Head(mib) + "w" + le64(16) + le64(0) + le64(2) + "ab" + "e", 29,
			[]string{"'w' record declares length 16, want 18"}},
		{"v2 write length overflow", v2Head(mib) + "w" + le64(15) + le64(0) + le64(^uint64(0)-3), 29,
			[]string{"cannot fit the record length field"}},
		{"v2 unknown tag truncated", v2Head(mib) + "X" + le64(100) + "ab", 29 + 9 + 2,
			[]string{"inside the unknown 'X' record at offset 29 (declared length 100)"}},
		{"no end record", v1Head(mib) + z1(0, 1), 38, []string{"without the end record 'e'", "truncated"}},
		{"no end record after header", v2Head(mib), 29, []string{"without the end record 'e'"}},
		{"trailing bytes", v1Head(mib) + "e" + "x", 22,
			[]string{"unexpected byte 0x78 after the end record 'e'"}},
		{"two diffs concatenated", v1Head(mib) + "e" + v1Head(mib) + "e", 22,
			[]string{"after the end record", "concatenated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			_, _, err := readAll(r)
			wantFormatError(t, err, tt.off, tt.frags...)
			if !strings.HasPrefix(err.Error(), "rbd diff: offset ") {
				t.Errorf("message %q lacks the rbd diff: offset prefix", err)
			}
			// Errors are final.
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("second Next = %v, want the same error %v", err2, err)
			}
		})
	}
}

func TestReaderAccepts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		format  Format
		hdr     Header
		extents []extent
	}{
		{"empty diff v1", v1Head(7) + "e", V1, Header{Size: 7}, nil},
		{"empty diff v2", v2Head(7) + "e", V2, Header{Size: 7}, nil},
		{"metadata in any order", bannerV1 + "s" + le64(9) + "t" + le32(2) + "to" + "f" + le32(2) + "fr" + "e", V1,
			Header{FromSnap: "fr", ToSnap: "to", Size: 9}, nil},
		{"zero-length extents", v1Head(16) + w1(0, "") + z1(0, 0) + z1(4, 0) + w1(4, "ab") + z1(16, 0) + "e", V1,
			Header{Size: 16}, []extent{{Data, 0, 0, ""}, {Zero, 0, 0, ""}, {Zero, 4, 0, ""}, {Data, 4, 2, "ab"}, {Zero, 16, 0, ""}}},
		{"adjacent extents up to size", v1Head(8) + w1(0, "abcd") + z1(4, 4) + "e", V1,
			Header{Size: 8}, []extent{{Data, 0, 4, "abcd"}, {Zero, 4, 4, ""}}},
		{"v2 unknown tags skipped", bannerV2 + "Q" + le64(3) + "xyz" + "s" + le64(8) + le64(8) +
			"R" + le64(0) + w2(0, "ab") + "\xff" + le64(5) + "12345" + z2(2, 2) + "e", V2,
			Header{Size: 8}, []extent{{Data, 0, 2, "ab"}, {Zero, 2, 2, ""}}},
		{"v2 protection nonzero byte", bannerV2 + "t" + le64(5) + le32(1) + "s" + "p" + le64(1) + "\x07" + "s" + le64(8) + le64(1) + "e", V2,
			Header{ToSnap: "s", Size: 1, Protected: true}, nil},
		{"v2 protection zero", bannerV2 + "t" + le64(5) + le32(1) + "s" + "p" + le64(1) + "\x00" + "s" + le64(8) + le64(1) + "e", V2,
			Header{ToSnap: "s", Size: 1}, nil},
		{"longest snap name", bannerV1 + "f" + le32(4096) + strings.Repeat("n", 4096) + "s" + le64(0) + "e", V1,
			Header{FromSnap: strings.Repeat("n", 4096)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			if r.Format() != 0 {
				t.Errorf("Format before Header = %v, want 0", r.Format())
			}
			h, got, err := readAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format() != tt.format {
				t.Errorf("Format = %v, want %v", r.Format(), tt.format)
			}
			if h != tt.hdr {
				t.Errorf("header = %+v, want %+v", h, tt.hdr)
			}
			if !reflect.DeepEqual(got, tt.extents) {
				t.Errorf("extents = %v, want %v", got, tt.extents)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after end = %v, want io.EOF", err)
			}
			if h2, err := r.Header(); err != nil || h2 != h {
				t.Errorf("Header after end = %+v, %v; want the cached header", h2, err)
			}
		})
	}
}

func TestReaderNextWithoutHeader(t *testing.T) {
	r := NewReader(strings.NewReader(bannerV1 + "t" + le32(1) + "b" + "s" + le64(8) + w1(0, "ab") + "e"))
	rec, err := r.Next()
	if err != nil || rec.Kind != Data || rec.Offset != 0 || rec.Length != 2 {
		t.Fatalf("Next = %+v, %v", rec, err)
	}
	if h, err := r.Header(); err != nil || h.ToSnap != "b" || h.Size != 8 {
		t.Errorf("Header = %+v, %v", h, err)
	}
	if r.Format() != V1 {
		t.Errorf("Format = %v", r.Format())
	}
}

// An undrained payload is skipped by Next, and the stale Payload refuses to
// hand out bytes of later records.
func TestReaderSkipsUndrainedPayload(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 20000) // larger than the read buffer
	in := v2Head(1<<20) + w2(0, big) + w2(uint64(len(big)), "tail") + "e"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)))
	first, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var b [5]byte
	if n, err := io.ReadFull(first.Payload, b[:]); n != 5 || err != nil || string(b[:]) != "01234" {
		t.Fatalf("Payload.Read = %d, %v, %q", n, err, b[:n])
	}
	second, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Payload.Read(b[:]); err == nil || err == io.EOF {
		t.Errorf("stale Payload.Read error = %v, want a misuse error", err)
	}
	if d, err := io.ReadAll(second.Payload); err != nil || string(d) != "tail" {
		t.Errorf("second payload = %q, %v", d, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next = %v, want io.EOF", err)
	}
}

// A truncated payload is reported by the Payload reader and by Next, whether
// or not the caller drains it.
func TestReaderTruncatedPayload(t *testing.T) {
	in := v1Head(1<<20) + "w" + le64(0) + le64(10) + "abc"
	for _, drain := range []bool{true, false} {
		r := NewReader(strings.NewReader(in))
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if drain {
			n, err := io.Copy(io.Discard, rec.Payload)
			if n != 3 {
				t.Errorf("copied %d bytes, want 3", n)
			}
			wantFormatError(t, err, 41, "3 bytes into the 10-byte payload")
		}
		_, err = r.Next()
		wantFormatError(t, err, 41, "3 bytes into the 10-byte payload")
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestReaderPassesIOErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader(v1Head(8)), failingReader{boom}))
	if _, err := r.Header(); !errors.Is(err, boom) {
		t.Fatalf("Header error = %v, want it to wrap %v", err, boom)
	}
	var fe *FormatError
	if _, err := r.Next(); errors.As(err, &fe) || !errors.Is(err, boom) {
		t.Errorf("Next error = %v, want the I/O error, not a FormatError", err)
	}
}

// A 'w' record claiming 2^60 bytes must stream, not allocate: the stream
// ends early and that is all that happens.
func TestReaderBoundedMemory(t *testing.T) {
	const huge = 1 << 60
	in := []byte(v1Head(1<<61) + "w" + le64(0) + le64(huge) + strings.Repeat("x", 1000))
	inV2 := []byte(v2Head(1<<61) + "?" + le64(huge) + strings.Repeat("x", 1000))

	run := func(in []byte, drain bool) error {
		r := NewReader(bytes.NewReader(in))
		rec, err := r.Next()
		if err != nil {
			return err
		}
		if drain {
			if _, err := io.Copy(io.Discard, rec.Payload); err == nil {
				t.Error("draining a truncated payload succeeded")
			}
		}
		_, err = r.Next()
		return err
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		drain bool
		off   int64
	}{
		{"drain payload", in, true, int64(len(in))},
		{"skip payload", in, false, int64(len(in))},
		{"skip v2 unknown record", inV2, false, int64(len(inV2))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFormatError(t, run(tc.in, tc.drain), tc.off, "truncated")

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 10
			for range runs {
				run(tc.in, tc.drain)
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			// The read buffer and a few small values; nothing near the claimed length.
			if perRun > 256<<10 {
				t.Errorf("allocated %d bytes per run, want a bounded amount", perRun)
			}
		})
	}
}
