package ceph

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// HeadChange is how an image's head differs from one of its snapshots.
type HeadChange struct {
	Bytes    uint64 // bytes of whole objects written or removed since the snapshot
	Resized  bool   // the head's size is not the snapshot's
	Size     uint64 // the head's size
	SnapSize uint64 // the snapshot's size
}

// Changed tells whether the head may read differently from the snapshot.
func (h HeadChange) Changed() bool { return h.Bytes > 0 || h.Resized }

func (h HeadChange) String() string {
	switch {
	case h.Resized && h.Bytes > 0:
		return fmt.Sprintf("resized from %d to %d bytes, and objects holding %d bytes written", h.SnapSize, h.Size, h.Bytes)
	case h.Resized:
		return fmt.Sprintf("resized from %d to %d bytes", h.SnapSize, h.Size)
	default:
		return fmt.Sprintf("objects holding %d bytes written", h.Bytes)
	}
}

// HeadChangedSince compares the head of image with its snapshot snap ("":
// with an empty image, i.e. whether the head holds any data). It asks
// librbd's object map (a whole-object diff, milliseconds with fast-diff; a
// scan of every object without it) and reads no data. A size change counts
// by itself: a shrink removes objects past the new end, which a diff of the
// head's range cannot see.
func (c *Cluster) HeadChangedSince(image ferry.ImageSpec, snap string) (HeadChange, error) {
	head := image.AtSnap("")
	img, err := c.openImageReadOnly(head)
	if err != nil {
		return HeadChange{}, err
	}
	defer img.Close()
	var h HeadChange
	if h.Size, err = img.GetSize(); err != nil {
		return HeadChange{}, fmt.Errorf("size of %s: %w", head, err)
	}
	h.SnapSize = h.Size
	if snap != "" {
		snaps, err := snapshots(img)
		if err != nil {
			return HeadChange{}, err
		}
		found := false
		for _, s := range snaps {
			if s.Name == snap {
				h.SnapSize, found = s.Size, true
			}
		}
		if !found {
			return HeadChange{}, fmt.Errorf("compare the head of %s with snapshot %q: %w: no such snapshot", head, snap, ErrNotFound)
		}
	}
	h.Resized = h.Size != h.SnapSize
	err = scanChanges(img, snap, h.Size, true, func(e extent) error {
		h.Bytes += e.len
		return nil
	})
	if err != nil {
		return HeadChange{}, fmt.Errorf("compare the head of %s with snapshot %q: %w", head, snap, err)
	}
	return h, nil
}
