package ceph

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// One test bed (a source and a backup cluster) for the whole package; every
// test uses images of its own, so tests run in any order.
var source, backup *Cluster

func TestMain(m *testing.M) {
	if os.Getenv(envAbortChild) != "" {
		abortChild() // the child of TestAbortPrintsStack: no test bed
	}
	RunTests(m, &source, &backup)
}

func newImage(t testing.TB, c *Cluster, prefix string, size uint64) ferry.ImageSpec {
	return TestImage(t, c, prefix, size)
}

func writeAt(t testing.TB, c *Cluster, spec ferry.ImageSpec, off uint64, data []byte) {
	TestWrite(t, c, spec, off, data)
}

func discard(t testing.TB, c *Cluster, spec ferry.ImageSpec, off, n uint64) {
	TestDiscard(t, c, spec, off, n)
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

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// requireSameContent fails unless the source snapshot a and the backup
// snapshot b read back identically.
func requireSameContent(t testing.TB, a ferry.ImageSpec, b ferry.ImageSpec) {
	t.Helper()
	RequireSameContent(t, source, a, backup, b)
}

// ferryExport exports to a file in t's temp dir and returns its path.
func ferryExport(t testing.TB, opts ExportOptions, format rbddiff.Format) (string, ExportStats) {
	t.Helper()
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
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = backup.Import(context.Background(), target, rbddiff.NewReader(f), nil)
	return err
}
