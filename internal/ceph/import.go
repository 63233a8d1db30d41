package ceph

import (
	"context"
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// ErrSnapshotExists reports that the to-snapshot of a diff is already on the
// target: the diff was applied before.
var ErrSnapshotExists = errors.New("to-snapshot already exists")

// ErrBaseMissing reports that the from-snapshot of a diff is not on the target.
var ErrBaseMissing = errors.New("base snapshot missing")

// maxIOLen keeps each librbd call under its int-sized length limit.
const maxIOLen = 1 << 30

// ImportStats sums up an import.
type ImportStats struct {
	Header    rbddiff.Header
	DataBytes uint64
	ZeroBytes uint64
}

// Import applies the diff from src to the image target (which must exist, as
// with rbd import-diff): it checks the base, resizes the image to the recorded
// size, writes with several writes in flight, and creates (and protects, if
// the diff says so) the to-snapshot only after every write has landed. On
// error the image head may hold part of the diff but no to-snapshot is made;
// rolling back to the from-snapshot undoes it.
func (c *Cluster) Import(ctx context.Context, target ferry.ImageSpec, src rbddiff.Source, p progress.Reporter) (ImportStats, error) {
	if p == nil {
		p = progress.Discard
	}
	h, err := src.Header()
	if err != nil {
		return ImportStats{}, err
	}
	stats := ImportStats{Header: h}
	name := target.AtSnap("")
	plan, err := c.prepareImport(target, h)
	if err != nil {
		return stats, err
	}
	io, err := c.ioctx(target.Pool)
	if err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	img, err := openAioImage(io, target.Image)
	if err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	err = func() error {
		if err := applyRecords(ctx, img, plan, src, p, &stats); err != nil {
			return err
		}
		if err := img.flush(); err != nil {
			return err
		}
		if h.ToSnap == "" {
			return nil
		}
		return img.createSnapshot(h.ToSnap, h.Protected)
	}()
	if cerr := img.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return stats, fmt.Errorf("import into %s: %w", name, err)
	}
	return stats, nil
}

// importPlan is what the writes need to know about the target.
type importPlan struct {
	// chunk bounds one write: the object size, at most ioSize. Records are
	// gathered into writes that never cross a chunk boundary.
	chunk uint64
	// allocated is where the target may hold data before the import; the
	// rest reads as zeros, so zero records need no write there.
	allocated allocation
}

// prepareImport checks the target through go-ceph, resizes it and learns
// where it may hold data, then closes it: the writes go through their own
// handle, and one open handle at a time keeps the exclusive lock still.
func (c *Cluster) prepareImport(target ferry.ImageSpec, h rbddiff.Header) (importPlan, error) {
	name := target.AtSnap("")
	img, err := c.openImage(target)
	if err != nil {
		return importPlan{}, fmt.Errorf("import into %s: %w (create the image first, e.g. rbd create --size 1 %s)", name, err, name)
	}
	defer img.Close()
	if err := checkImportable(img, target, h); err != nil {
		return importPlan{}, err
	}
	if err := resizeTo(img, h.Size); err != nil {
		return importPlan{}, fmt.Errorf("import into %s: resize to %d bytes: %w", name, h.Size, err)
	}
	st, err := img.Stat()
	if err != nil {
		return importPlan{}, fmt.Errorf("import into %s: stat: %w", name, err)
	}
	io, err := c.ioctx(target.Pool)
	if err != nil {
		return importPlan{}, err
	}
	valid := func() (bool, error) { return fastDiffValid(io, target.Image) }
	alloc, err := targetAllocation(img, valid, h.Size)
	if err != nil {
		return importPlan{}, fmt.Errorf("import into %s: %w", name, err)
	}
	return importPlan{chunk: min(st.Obj_size, ioSize), allocated: alloc}, nil
}

func checkImportable(img *rbd.Image, target ferry.ImageSpec, h rbddiff.Header) error {
	if h.FromSnap != "" {
		ok, err := hasSnapshot(img, h.FromSnap)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("import into %s: %w: the diff starts at snapshot %q, which %s does not have; apply the diff that ends at %q first, or start over with a full diff",
				target.AtSnap(""), ErrBaseMissing, h.FromSnap, target.AtSnap(""), h.FromSnap)
		}
	}
	if h.ToSnap != "" {
		ok, err := hasSnapshot(img, h.ToSnap)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("import into %s: %w: %s already has snapshot %q, so this diff was applied before; remove that snapshot to apply it again",
				target.AtSnap(""), ErrSnapshotExists, target.AtSnap(""), h.ToSnap)
		}
	}
	return nil
}

func resizeTo(img *rbd.Image, size uint64) error {
	cur, err := img.GetSize()
	if err != nil {
		return err
	}
	if cur == size {
		return nil
	}
	return img.Resize(size)
}

// writeFull and zeroRange write synchronously through go-ceph, for the test
// helpers; Import writes through its own asynchronous handle (aio.go).
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

// zeroRange makes [off, off+n) read as zeros. The connection sets
// rbd_skip_partial_discard=false, so librbd zeroes partial objects instead of
// silently skipping them; whole objects are removed, which keeps the image thin.
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
