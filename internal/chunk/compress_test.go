package chunk

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestCompressIsStandardGzip: both ways of compressing produce streams the
// standard library reads back exactly, and only compressible data shrinks.
func TestCompressIsStandardGzip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	text := bytes.Repeat([]byte("ferry carries backups across the water; "), 100000)
	s := &Store{level: DefaultLevel}
	for name, tc := range map[string]struct {
		raw    []byte
		shrink bool
	}{
		"random": {random, false},
		"text":   {text, true},
		"small":  {text[:1000], true},
	} {
		var buf bytes.Buffer
		if err := s.compress(&buf, tc.raw); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(back, tc.raw) {
			t.Fatalf("%s: standard gzip reads back %d bytes, err %v", name, len(back), err)
		}
		if shrank := buf.Len() < len(tc.raw)*9/10; shrank != tc.shrink {
			t.Errorf("%s: %d -> %d bytes", name, len(tc.raw), buf.Len())
		}
		if got, err := decode(Plain, Hash(tc.raw), buf.Bytes(), itoa(len(tc.raw)), nil); err != nil || !bytes.Equal(got, tc.raw) {
			t.Errorf("%s: decode: %v", name, err)
		}
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	raw := bytes.Repeat([]byte("abc"), 5000)
	s := &Store{level: DefaultLevel}
	var buf bytes.Buffer
	if err := s.compress(&buf, raw); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for name, tc := range map[string]struct {
		data []byte
		size string
	}{
		"not gzip":       {[]byte("hello"), itoa(len(raw))},
		"flipped byte":   {flip(good, len(good)/2), itoa(len(raw))},
		"truncated":      {good[:len(good)-10], itoa(len(raw))},
		"size too large": {good, itoa(len(raw) + 1)},
		"size too small": {good, itoa(len(raw) - 1)},
		"bad size":       {good, "x"},
	} {
		_, err := decode(Plain, Hash(raw), tc.data, tc.size, nil)
		if ce, ok := err.(*Error); !ok || ce.Hash != Hash(raw) {
			t.Errorf("%s: err = %v, want a chunk.Error naming the chunk", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestAdaptLevel: a chunk waiting for a core is compressed at a light
// level while the link has little to do, at the store's level once half
// the window waits on the link.
func TestAdaptLevel(t *testing.T) {
	const window = 512
	for _, tc := range []struct{ level, acking, want int }{
		{6, 0, 2},
		{6, window/2 - 1, 2},
		{6, window / 2, 6},
		{9, window, 9},
		{1, 0, 1},
	} {
		if got := adaptLevel(tc.level, int64(tc.acking), window); got != tc.want {
			t.Errorf("level %d, %d of %d tokens waiting on the link: level %d, want %d", tc.level, tc.acking, window, got, tc.want)
		}
	}
}
