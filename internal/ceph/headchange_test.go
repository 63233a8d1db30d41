package ceph

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// TestHeadChangedSince: the head compared with a snapshot reports writes,
// discards and resizes (a shrink included, whose removed objects lie past
// the head's end), and nothing right after the snapshot; with no snapshot
// named, it tells whether the head holds any data at all.
func TestHeadChangedSince(t *testing.T) {
	source, _ := bedSites(t)
	r := rand.New(rand.NewPCG(7, 7))
	const size = 16 << 20
	fresh := func(t *testing.T) ferry.ImageSpec {
		img := newImage(t, source, "head", size)
		writeAt(t, source, img, 0, randomBytes(r, size))
		snap(t, source, img, "base")
		return img
	}
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, img ferry.ImageSpec)
		bytes   bool // objects written or removed
		resized bool
	}{
		{"unchanged", func(*testing.T, ferry.ImageSpec) {}, false, false},
		{"one byte written", func(t *testing.T, img ferry.ImageSpec) { writeAt(t, source, img, 9<<20, []byte{1}) }, true, false},
		{"partial discard", func(t *testing.T, img ferry.ImageSpec) { discard(t, source, img, 4096, 8192) }, true, false},
		{"whole object discarded", func(t *testing.T, img ferry.ImageSpec) { discard(t, source, img, 4<<20, 4<<20) }, true, false},
		{"grown", func(t *testing.T, img ferry.ImageSpec) { resize(t, source, img, size+(4<<20)) }, false, true},
		{"shrunk", func(t *testing.T, img ferry.ImageSpec) { resize(t, source, img, size-(4<<20)) }, false, true},
		{"shrunk and grown back", func(t *testing.T, img ferry.ImageSpec) {
			resize(t, source, img, size-(8<<20))
			resize(t, source, img, size)
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := fresh(t)
			tc.change(t, img)
			h, err := source.HeadChangedSince(img, "base")
			if err != nil {
				t.Fatal(err)
			}
			if (h.Bytes > 0) != tc.bytes || h.Resized != tc.resized || h.Changed() != (tc.bytes || tc.resized) {
				t.Fatalf("HeadChangedSince = %+v (%s); want bytes changed %v, resized %v", h, h, tc.bytes, tc.resized)
			}
		})
	}

	t.Run("any data", func(t *testing.T) {
		img := newImage(t, source, "head", size)
		if h, err := source.HeadChangedSince(img, ""); err != nil || h.Changed() {
			t.Fatalf("a new image: %+v, %v; want no data", h, err)
		}
		writeAt(t, source, img, size-1, []byte{1})
		if h, err := source.HeadChangedSince(img, ""); err != nil || h.Bytes == 0 {
			t.Fatalf("after a write: %+v, %v; want data", h, err)
		}
	})
	t.Run("no such snapshot", func(t *testing.T) {
		img := fresh(t)
		if _, err := source.HeadChangedSince(img, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}
