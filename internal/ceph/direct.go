package ceph

import (
	"crypto/sha256"
	"fmt"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Direct reads and writes through librbd's synchronous calls, apart from the
// diff engines: what checks an image's content (the tests' judge) must not
// share the code it judges.

// Content is the size and SHA-256 of an image or snapshot.
type Content struct {
	Size   uint64
	SHA256 [32]byte
}

// ReadContent reads spec (image@snap, or the head) block by block and
// returns its size and SHA-256.
func (c *Cluster) ReadContent(spec ferry.ImageSpec) (Content, error) {
	var ct Content
	err := c.withImage(spec, c.openImageReadOnly, func(img *rbd.Image) error {
		size, err := img.GetSize()
		if err != nil {
			return fmt.Errorf("size: %w", err)
		}
		h := sha256.New()
		buf := make([]byte, ioSize)
		for off := uint64(0); off < size; {
			n := min(size-off, ioSize)
			if err := readFull(img, buf[:n], off); err != nil {
				return err
			}
			h.Write(buf[:n])
			off += n
		}
		ct.Size = size
		copy(ct.SHA256[:], h.Sum(nil))
		return nil
	})
	return ct, err
}

// ReadAt reads len(buf) bytes at off of spec (image@snap, or the head).
func (c *Cluster) ReadAt(spec ferry.ImageSpec, buf []byte, off uint64) error {
	return c.withImage(spec, c.openImageReadOnly, func(img *rbd.Image) error { return readFull(img, buf, off) })
}

// WriteAt writes data at off into the head of spec.
func (c *Cluster) WriteAt(spec ferry.ImageSpec, data []byte, off uint64) error {
	return c.withImage(spec, c.openImage, func(img *rbd.Image) error { return writeFull(img, data, off) })
}

// Zero makes [off, off+n) of the head of spec read as zeros, by discards
// (see importSettings).
func (c *Cluster) Zero(spec ferry.ImageSpec, off, n uint64) error {
	return c.withImage(spec, c.openImage, func(img *rbd.Image) error { return zeroRange(img, off, n) })
}

// withImage runs f on spec opened by open, and closes it.
func (c *Cluster) withImage(spec ferry.ImageSpec, open func(ferry.ImageSpec) (*rbd.Image, error), f func(*rbd.Image) error) error {
	img, err := open(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := f(img); err != nil {
		return fmt.Errorf("%s: %w", spec, err)
	}
	return nil
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
