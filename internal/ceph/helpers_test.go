package ceph

import (
	"context"
	"github.com/ferry-dr/ferry/internal/testutil"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// One test bed (a source and a backup cluster) for the whole package, had
// by the first test that asks (bedSites); every test uses images of its
// own, so tests run in any order.
func TestMain(m *testing.M) {
	if os.Getenv(envAbortChild) != "" {
		abortChild() // the child of TestAbortPrintsStack: no test bed
	}
	testbed.Main(m)
}

// bedSites gives what cephtest's Sites gives other packages.
func bedSites(t testing.TB) (source, backup *Cluster) {
	t.Helper()
	s := sites(t)
	return s[0], s[1]
}

var sites = testbed.Lazy(func(bed *testbed.Bed) (s [2]*Cluster, err error) {
	if s[0], err = Connect(siteConn(bed.Source)); err == nil {
		s[1], err = Connect(siteConn(bed.Backup))
	}
	return s, err
})

// The helpers of cephtest, which this package's tests cannot import.

func siteConn(s *testbed.Site) ConnOptions {
	return ConnOptions{Conf: s.Conf, ID: s.ID, Keyring: s.Keyring}
}

func newImage(t testing.TB, c *Cluster, prefix string, size uint64) ferry.ImageSpec {
	t.Helper()
	spec := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, prefix)}
	if err := c.CreateImage(spec, size); err != nil {
		t.Fatal(err)
	}
	return spec
}

func writeAt(t testing.TB, c *Cluster, spec ferry.ImageSpec, off uint64, data []byte) {
	t.Helper()
	if err := c.WriteAt(spec, data, off); err != nil {
		t.Fatal(err)
	}
}

func discard(t testing.TB, c *Cluster, spec ferry.ImageSpec, off, n uint64) {
	t.Helper()
	if err := c.Zero(spec, off, n); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, c *Cluster, spec ferry.ImageSpec, off, n uint64) []byte {
	t.Helper()
	buf := make([]byte, n)
	if err := c.ReadAt(spec, buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

func content(t testing.TB, c *Cluster, spec ferry.ImageSpec) Content {
	t.Helper()
	ct, err := c.ReadContent(spec)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func resize(t testing.TB, c *Cluster, spec ferry.ImageSpec, size uint64) {
	t.Helper()
	img, err := c.openImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Resize(size); err != nil {
		t.Fatal(err)
	}
}

func snap(t testing.TB, c *Cluster, spec ferry.ImageSpec, name string) {
	t.Helper()
	if err := c.CreateSnapshot(spec.AtSnap(name)); err != nil {
		t.Fatal(err)
	}
}

var randomBytes = testutil.RandomBytes

// requireSameContent fails unless the source snapshot a and the backup
// snapshot b read back identically.
func requireSameContent(t testing.TB, a ferry.ImageSpec, b ferry.ImageSpec) {
	t.Helper()
	source, backup := bedSites(t)
	x, y := content(t, source, a), content(t, backup, b)
	if x != y {
		t.Fatalf("%s (%d bytes, sha256 %x) differs from %s (%d bytes, sha256 %x)", a, x.Size, x.SHA256[:8], b, y.Size, y.SHA256[:8])
	}
}

// ferryExport exports to a file in t's temp dir and returns its path.
func ferryExport(t testing.TB, opts ExportOptions, format rbddiff.Format) (string, ExportStats) {
	t.Helper()
	source, _ := bedSites(t)
	path := filepath.Join(t.TempDir(), "diff")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stats, err := source.Export(context.Background(), opts, rbddiff.NewWriter(f, format), nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, stats
}

func ferryImport(t testing.TB, path string, target ferry.ImageSpec) error {
	t.Helper()
	_, backup := bedSites(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = backup.Import(context.Background(), target, rbddiff.NewReader(f), nil)
	return err
}

// snapshotNames lists the snapshots of spec's image, oldest first.
func snapshotNames(t testing.TB, c *Cluster, spec ferry.ImageSpec) []string {
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
