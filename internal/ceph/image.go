package ceph

import (
	"errors"
	"fmt"
	"time"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// ErrNotFound reports a missing image or snapshot.
var ErrNotFound = errors.New("not found")

// Snapshot is one snapshot of an image.
type Snapshot struct {
	ID      uint64
	Name    string
	Size    uint64
	Created time.Time
}

// ImageInfo describes an image's head.
type ImageInfo struct {
	ID         string // librbd's image id: survives renames, changes when an image is recreated
	Size       uint64
	ObjectSize uint64
}

func wrapNotFound(err error) error {
	if errors.Is(err, rbd.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// openImage opens spec read-write at the head (spec.Snap is ignored).
func (c *Cluster) openImage(spec ferry.ImageSpec) (*rbd.Image, error) {
	io, err := c.ioctx(spec.Pool)
	if err != nil {
		return nil, err
	}
	img, err := rbd.OpenImage(io, spec.Image, rbd.NoSnapshot)
	if err != nil {
		return nil, fmt.Errorf("open image %s/%s: %w", spec.Pool, spec.Image, wrapNotFound(err))
	}
	return img, nil
}

// openImageReadOnly opens spec read-only, at spec.Snap when it is set.
func (c *Cluster) openImageReadOnly(spec ferry.ImageSpec) (*rbd.Image, error) {
	io, err := c.ioctx(spec.Pool)
	if err != nil {
		return nil, err
	}
	snap := rbd.NoSnapshot
	if spec.Snap != "" {
		snap = spec.Snap
	}
	img, err := rbd.OpenImageReadOnly(io, spec.Image, snap)
	if err != nil {
		err = fmt.Errorf("open %s: %w", spec, wrapNotFound(err))
		if spec.Snap != "" {
			err = c.snapshotOpenError(spec, err)
		}
		return nil, err
	}
	return img, nil
}

// CreateImage creates an image with the pool's default features.
func (c *Cluster) CreateImage(spec ferry.ImageSpec, size uint64) error {
	io, err := c.ioctx(spec.Pool)
	if err != nil {
		return err
	}
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := rbd.CreateImage(io, spec.Image, size, opts); err != nil {
		return fmt.Errorf("create image %s/%s: %w", spec.Pool, spec.Image, err)
	}
	return nil
}

// RemoveImage removes an image (it must have no snapshots).
func (c *Cluster) RemoveImage(spec ferry.ImageSpec) error {
	io, err := c.ioctx(spec.Pool)
	if err != nil {
		return err
	}
	if err := rbd.RemoveImage(io, spec.Image); err != nil {
		return fmt.Errorf("remove image %s/%s: %w", spec.Pool, spec.Image, wrapNotFound(err))
	}
	return nil
}

// Info returns the image's id, size and object size.
func (c *Cluster) Info(spec ferry.ImageSpec) (ImageInfo, error) {
	img, err := c.openImageReadOnly(spec)
	if err != nil {
		return ImageInfo{}, err
	}
	defer img.Close()
	return imageInfo(img)
}

func imageInfo(img *rbd.Image) (ImageInfo, error) {
	st, err := img.Stat()
	if err != nil {
		return ImageInfo{}, fmt.Errorf("stat %s: %w", img.GetName(), err)
	}
	id, err := img.GetId()
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image id of %s: %w", img.GetName(), err)
	}
	return ImageInfo{ID: id, Size: st.Size, ObjectSize: st.Obj_size}, nil
}

// Snapshots lists an image's snapshots, oldest first.
func (c *Cluster) Snapshots(spec ferry.ImageSpec) ([]Snapshot, error) {
	img, err := c.openImageReadOnly(spec.AtSnap(""))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return snapshots(img)
}

func snapshots(img *rbd.Image) ([]Snapshot, error) {
	infos, err := img.GetSnapshotNames()
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", img.GetName(), err)
	}
	snaps := make([]Snapshot, 0, len(infos))
	for _, si := range infos {
		s := Snapshot{ID: si.Id, Name: si.Name, Size: si.Size}
		if ts, err := img.GetSnapTimestamp(si.Id); err == nil {
			s.Created = time.Unix(ts.Sec, ts.Nsec)
		}
		snaps = append(snaps, s)
	}
	return snaps, nil // librbd lists snapshots in id order, which is creation order
}

func hasSnapshot(img *rbd.Image, name string) (bool, error) {
	snaps, err := snapshots(img)
	if err != nil {
		return false, err
	}
	for _, s := range snaps {
		if s.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// CreateSnapshot creates spec.Snap on the image.
func (c *Cluster) CreateSnapshot(spec ferry.ImageSpec) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if _, err := img.CreateSnapshot(spec.Snap); err != nil {
		return fmt.Errorf("create snapshot %s: %w", spec, err)
	}
	return nil
}

// RemoveSnapshot removes spec.Snap; a protected snapshot is refused by librbd.
func (c *Cluster) RemoveSnapshot(spec ferry.ImageSpec) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.GetSnapshot(spec.Snap).Remove(); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", spec, wrapNotFound(err))
	}
	return nil
}

// RollbackToSnapshot returns the image head to the content of spec.Snap.
// Used to undo a partly applied diff before applying it again.
func (c *Cluster) RollbackToSnapshot(spec ferry.ImageSpec) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.GetSnapshot(spec.Snap).Rollback(); err != nil {
		return fmt.Errorf("roll back %s: %w", spec, wrapNotFound(err))
	}
	return nil
}

// RenameImage renames spec's image to newName in the same pool.
func (c *Cluster) RenameImage(spec ferry.ImageSpec, newName string) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.Rename(newName); err != nil {
		return fmt.Errorf("rename %s to %s: %w", spec.AtSnap(""), newName, err)
	}
	return nil
}
