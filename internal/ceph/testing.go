package ceph

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// Test helpers shared by every package whose tests run on the test bed.

// SiteConn returns the options that connect to a test bed site.
func SiteConn(s *testbed.Site) ConnOptions {
	return ConnOptions{Conf: s.Conf, ID: s.ID, Keyring: s.Keyring}
}

// TestImage creates an image with a name unique to the test on c.
func TestImage(t testing.TB, c *Cluster, prefix string, size uint64) ferry.ImageSpec {
	t.Helper()
	spec := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, prefix)}
	if err := c.CreateImage(spec, size); err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestWrite writes data into the head of spec, straight through librbd.
func TestWrite(t testing.TB, c *Cluster, spec ferry.ImageSpec, off uint64, data []byte) {
	t.Helper()
	img, err := c.openImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := writeFull(img, data, off); err != nil {
		t.Fatal(err)
	}
}

// TestDiscard zeroes a range of the head of spec.
func TestDiscard(t testing.TB, c *Cluster, spec ferry.ImageSpec, off, n uint64) {
	t.Helper()
	img, err := c.openImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := zeroRange(img, off, n); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotNames lists the snapshots of spec's image, oldest first.
func TestSnapshotNames(t testing.TB, c *Cluster, spec ferry.ImageSpec) []string {
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

// TestRead reads n bytes at off of spec (image@snap, or the head).
func TestRead(t testing.TB, c *Cluster, spec ferry.ImageSpec, off, n uint64) []byte {
	t.Helper()
	img, err := c.openImageReadOnly(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	buf := make([]byte, n)
	if err := readFull(img, buf, off); err != nil {
		t.Fatal(err)
	}
	return buf
}

// Content is what a test compares: the size and SHA-256 of an image or snapshot.
type Content struct {
	Size   uint64
	SHA256 [32]byte
}

// TestContent reads spec (image@snap, or the head) back through librbd,
// block by block: the judge of every test, trusting neither Ferry's engine
// nor the rbd tool.
func TestContent(t testing.TB, c *Cluster, spec ferry.ImageSpec) Content {
	t.Helper()
	img, err := c.openImageReadOnly(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, ioSize)
	for off := uint64(0); off < size; {
		n := min(size-off, ioSize)
		if err := readFull(img, buf[:n], off); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:n])
		off += n
	}
	ct := Content{Size: size}
	copy(ct.SHA256[:], h.Sum(nil))
	return ct
}

// RequireSameContent fails t unless a on cluster ca reads back exactly as b on cb.
func RequireSameContent(t testing.TB, ca *Cluster, a ferry.ImageSpec, cb *Cluster, b ferry.ImageSpec) {
	t.Helper()
	x, y := TestContent(t, ca, a), TestContent(t, cb, b)
	if x != y {
		t.Fatalf("%s (%d bytes, sha256 %x) differs from %s (%d bytes, sha256 %x)", a, x.Size, x.SHA256[:8], b, y.Size, y.SHA256[:8])
	}
}

// RunTests is TestMain for a package whose tests use both sites of the test
// bed: it connects *source and *backup to them, then runs the tests.
func RunTests(m *testing.M, source, backup **Cluster) {
	testbed.Main(m, func(bed *testbed.Bed) (err error) {
		if *source, err = Connect(SiteConn(bed.Source)); err != nil {
			return err
		}
		*backup, err = Connect(SiteConn(bed.Backup))
		return err
	})
}

// readFull reads len(buf) bytes at off through go-ceph's synchronous reads:
// the tests' judge stays apart from the export's asynchronous reads.
func readFull(img *rbd.Image, buf []byte, off uint64) error {
	for done := 0; done < len(buf); {
		n, err := img.ReadAt(buf[done:], int64(off)+int64(done))
		if err != nil {
			return fmt.Errorf("read %#x+%#x: %w", off+uint64(done), len(buf)-done, err)
		}
		if n == 0 {
			return fmt.Errorf("read %#x+%#x: librbd returned no data before the end of the extent", off+uint64(done), len(buf)-done)
		}
		done += n
	}
	return nil
}

func writeFull(img *rbd.Image, buf []byte, off uint64) error {
	n, err := img.WriteAt(buf, int64(off))
	if err == nil && n != len(buf) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(buf))
	}
	if err != nil {
		return fmt.Errorf("write %#x+%#x: %w", off, len(buf), err)
	}
	return nil
}

// zeroRange makes [off, off+n) read as zeros (see importSettings).
func zeroRange(img *rbd.Image, off, n uint64) error {
	for n > 0 {
		l := min(n, maxIOLen)
		if _, err := img.Discard(off, l); err != nil {
			return fmt.Errorf("zero %#x+%#x: %w", off, l, err)
		}
		off += l
		n -= l
	}
	return nil
}
