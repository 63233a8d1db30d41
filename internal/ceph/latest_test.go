package ceph

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

func TestResolveSnapLatest(t *testing.T) {
	_, c := bedSites(t)
	img := newImage(t, c, "latest", 1<<20)
	latest := img.AtSnap(ferry.LatestSnap)
	if _, err := c.ResolveSnap(latest); !errors.Is(err, ErrSnapshotNotFound) || !strings.Contains(err.Error(), "holds no Ferry snapshot") {
		t.Fatalf("no snapshot yet: %v", err)
	}
	for _, name := range []string{"ferry-20260101T000000.000000000Z", "ferry-20260102T000000.000000000Z", "manual"} {
		if err := c.CreateSnapshot(img.AtSnap(name)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.ResolveSnap(latest)
	if err != nil || got != img.AtSnap("ferry-20260102T000000.000000000Z") {
		t.Fatalf("@latest = %v, %v; want the newest ferry snapshot, not the newer manual one", got, err)
	}
	if got, err := c.ResolveSnap(img.AtSnap("manual")); err != nil || got.Snap != "manual" {
		t.Fatalf("a named snapshot = %v, %v; want it unchanged", got, err)
	}
	// An image's own snapshot named latest is what the name means.
	if err := c.CreateSnapshot(latest); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ResolveSnap(latest); err != nil || got != latest {
		t.Fatalf("with a snapshot named latest: %v, %v", got, err)
	}
}

func TestMissingSnapshotNamed(t *testing.T) {
	_, c := bedSites(t)
	img := newImage(t, c, "nosnap", 1<<20)
	_, err := c.Info(img.AtSnap("gone"))
	want := "snapshot " + img.AtSnap("gone").String() + " not found (ferry ls " + img.String() + " lists the restore points"
	if !errors.Is(err, ErrSnapshotNotFound) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v; want %q", err, want)
	}
	// A missing image is still said to be one, not a missing snapshot.
	_, err = c.Info(ferry.ImageSpec{Pool: img.Pool, Image: img.Image + "-none", Snap: "gone"})
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("missing image: %v", err)
	}
}
