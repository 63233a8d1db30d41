package ceph

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// A snapshot through a SnapshotTarget, in either mode, holds what the head
// held when it was taken, and later writes stay out of it.
func TestSnapshotTarget(t *testing.T) {
	source, _ := bedSites(t)
	for _, mode := range []SnapshotMode{SkipQuiesce, LibrbdQuiesce} {
		spec := newImage(t, source, "snaptarget", 4<<20)
		before := bytes.Repeat([]byte{0xa5}, 8192)
		writeAt(t, source, spec, 4096, before)
		target, err := source.OpenSnapshotTarget(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := target.CreateSnapshot("s1", mode); err != nil {
			t.Fatal(err)
		}
		writeAt(t, source, spec, 4096, bytes.Repeat([]byte{0x5a}, 8192))
		if err := target.CreateSnapshot("s1", mode); err == nil {
			t.Fatalf("mode %d: a second snapshot s1 was created", mode)
		}
		if err := target.Close(); err != nil {
			t.Fatal(err)
		}
		if err := target.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := target.CreateSnapshot("s2", mode); err == nil {
			t.Fatal("snapshot through a closed target succeeded")
		}
		if got := readAt(t, source, spec.AtSnap("s1"), 4096, 8192); !bytes.Equal(got, before) {
			t.Fatalf("mode %d: snapshot s1 does not hold the data written before it", mode)
		}
		if err := source.RemoveSnapshot(spec.AtSnap("s1")); err != nil {
			t.Fatal(err)
		}
		if err := source.RemoveImage(spec); err != nil {
			t.Fatal(err)
		}
	}
	_, err := source.OpenSnapshotTarget(ferry.ImageSpec{Pool: testbed.Pool, Image: "no-such-image-ferry"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("open a missing image: %v, want ErrNotFound", err)
	}
}
