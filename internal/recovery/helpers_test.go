package recovery

import (
	"bytes"
	"context"
	"github.com/ferry-dr/ferry/internal/testutil"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// The tests run on the real two-site test bed (cephtest.Sites): the
// "source" cluster plays the primary site, "backup" the backup site.
func TestMain(m *testing.M) { testbed.Main(m) }

func siteOf(t testing.TB, c *ceph.Cluster) *testbed.Site {
	if source, _ := cephtest.Sites(t); c == source {
		return testbed.Shared(t).Source
	}
	return testbed.Shared(t).Backup
}

// newImage creates an image of size on c, removed (with its snapshots) when
// the test ends.
func newImage(t testing.TB, c *ceph.Cluster, name string, size uint64) ferry.ImageSpec {
	t.Helper()
	spec := ferry.ImageSpec{Pool: testbed.Pool, Image: name}
	if err := c.CreateImage(spec, size); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, c, spec)
	return spec
}

// removeAtEnd removes an image the code under test may create.
func removeAtEnd(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec) {
	site := siteOf(t, c)
	t.Cleanup(func() {
		site.RbdErr("snap", "unprotect", spec.String()+"@gold")
		site.RbdErr("snap", "purge", "--no-progress", spec.String())
		site.RbdErr("rm", "--no-progress", spec.String())
	})
}

var (
	snap        = cephtest.Snap
	randomBytes = testutil.RandomBytes
)

// copyFull makes dst on cluster to hold src's snapshot, through Ferry's
// engine and a diff in memory, the way a full backup lands.
func copyFull(t testing.TB, from *ceph.Cluster, src ferry.ImageSpec, to *ceph.Cluster, dst ferry.ImageSpec) {
	t.Helper()
	copyDiff(t, from, src, "", to, dst)
}

// copyDiff is copyFull for the changes since fromSnap ("": all of them),
// the way an incremental backup lands.
func copyDiff(t testing.TB, from *ceph.Cluster, src ferry.ImageSpec, fromSnap string, to *ceph.Cluster, dst ferry.ImageSpec) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := from.Export(context.Background(), ceph.ExportOptions{Image: src, FromSnap: fromSnap}, rbddiff.NewWriter(&buf, rbddiff.V1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := to.Import(context.Background(), dst, rbddiff.NewReader(&buf), nil); err != nil {
		t.Fatal(err)
	}
}
