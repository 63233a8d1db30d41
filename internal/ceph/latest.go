package ceph

import (
	"errors"
	"fmt"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// ErrSnapshotNotFound reports a missing snapshot of an image that exists.
// It is also an ErrNotFound.
var ErrSnapshotNotFound = fmt.Errorf("snapshot %w", ErrNotFound)

// snapNotFoundError names the snapshot, not the image librbd says it
// cannot open, and where the operator finds the ones there are.
type snapNotFoundError struct{ spec ferry.ImageSpec }

func (e *snapNotFoundError) Error() string {
	img := e.spec.AtSnap("")
	return fmt.Sprintf("snapshot %s not found (ferry ls %s lists the restore points at the backup site, rbd snap ls %s the snapshots)", e.spec, img, img)
}

func (e *snapNotFoundError) Unwrap() error { return ErrSnapshotNotFound }

// ResolveSnap returns spec with its snapshot named: @latest (ferry.LatestSnap)
// becomes the newest Ferry snapshot of the image on this cluster, any other
// name stays as it is. An image that itself holds a snapshot named "latest"
// keeps it: the name means what rbd says it means. An image with no Ferry
// snapshot is an error that says so.
func (c *Cluster) ResolveSnap(spec ferry.ImageSpec) (ferry.ImageSpec, error) {
	if spec.Snap != ferry.LatestSnap {
		return spec, nil
	}
	snaps, err := c.Snapshots(spec)
	if err != nil {
		return spec, fmt.Errorf("resolve %s: %w", spec, err)
	}
	newest := ""
	for _, s := range snaps { // oldest first
		if s.Name == ferry.LatestSnap {
			return spec, nil
		}
		if ferry.IsFerrySnapshot(s.Name) {
			newest = s.Name
		}
	}
	if newest == "" {
		return spec, fmt.Errorf("%s: %s holds no Ferry snapshot (ferry-*), so there is no latest one: %w", spec, spec.AtSnap(""), ErrSnapshotNotFound)
	}
	return spec.AtSnap(newest), nil
}

// snapshotOpenError is err of opening spec, which names a snapshot: when
// librbd's ENOENT came from the snapshot and not from the image, it says so.
func (c *Cluster) snapshotOpenError(spec ferry.ImageSpec, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	head, herr := c.openImageReadOnly(spec.AtSnap(""))
	if herr != nil {
		return err // the image itself is missing (or unreadable): as it was
	}
	_ = head.Close()
	return &snapNotFoundError{spec: spec}
}
