// Package cephtest has the helpers of every test that runs on the Ceph test
// bed (internal/testbed) through Ferry's ceph package: connecting to its two
// sites, making images, writing, zeroing and reading them, and comparing
// their content. It is for tests only; nothing that ships imports it.
package cephtest

import (
	"fmt"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// Conn returns the options that connect to a test bed site.
func Conn(s *testbed.Site) ceph.ConnOptions {
	return ceph.ConnOptions{Conf: s.Conf, ID: s.ID, Keyring: s.Keyring}
}

// Image creates an image with a name unique to the test on c.
func Image(t testing.TB, c *ceph.Cluster, prefix string, size uint64) ferry.ImageSpec {
	t.Helper()
	spec := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, prefix)}
	if err := c.CreateImage(spec, size); err != nil {
		t.Fatal(err)
	}
	return spec
}

// Write writes data into the head of spec, straight through librbd.
func Write(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec, off uint64, data []byte) {
	t.Helper()
	if err := c.WriteAt(spec, data, off); err != nil {
		t.Fatal(err)
	}
}

// Discard zeroes a range of the head of spec.
func Discard(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec, off, n uint64) {
	t.Helper()
	if err := c.Zero(spec, off, n); err != nil {
		t.Fatal(err)
	}
}

// SnapshotNames lists the snapshots of spec's image, oldest first.
func SnapshotNames(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec) []string {
	t.Helper()
	snaps, err := c.Snapshots(spec)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.Name
	}
	return names
}

// Read reads n bytes at off of spec (image@snap, or the head).
func Read(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec, off, n uint64) []byte {
	t.Helper()
	buf := make([]byte, n)
	if err := c.ReadAt(spec, buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

// Content reads spec (image@snap, or the head) back through librbd, block
// by block: the judge of every test, trusting neither Ferry's engine nor the
// rbd tool.
func Content(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec) ceph.Content {
	t.Helper()
	ct, err := c.ReadContent(spec)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// RequireSameContent fails t unless a on cluster ca reads back exactly as b on cb.
func RequireSameContent(t testing.TB, ca *ceph.Cluster, a ferry.ImageSpec, cb *ceph.Cluster, b ferry.ImageSpec) {
	t.Helper()
	x, y := Content(t, ca, a), Content(t, cb, b)
	if x != y {
		t.Fatalf("%s (%d bytes, sha256 %x) differs from %s (%d bytes, sha256 %x)", a, x.Size, x.SHA256[:8], b, y.Size, y.SHA256[:8])
	}
}

// Sites returns connections to the source and the backup site of the test
// bed (testbed.Shared), made once for the test binary; the test fails if
// they cannot be had.
func Sites(t testing.TB) (source, backup *ceph.Cluster) {
	t.Helper()
	s := sites(t)
	return s[0], s[1]
}

var sites = testbed.Lazy(func(bed *testbed.Bed) (s [2]*ceph.Cluster, err error) {
	if s[0], err = ceph.Connect(Conn(bed.Source)); err != nil {
		return s, fmt.Errorf("test bed's source site: %w", err)
	}
	if s[1], err = ceph.Connect(Conn(bed.Backup)); err != nil {
		return s, fmt.Errorf("test bed's backup site: %w", err)
	}
	return s, nil
})

// Snap takes the snapshot name of spec's image.
func Snap(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec, name string) {
	t.Helper()
	if err := c.CreateSnapshot(spec.AtSnap(name)); err != nil {
		t.Fatal(err)
	}
}
