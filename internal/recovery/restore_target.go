package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// The checks of a restore, one implementation each, shared by both ways the
// data can travel: straight from the backup cluster over librados
// (Restore), and through the backup site's chunk store and JetStream
// (SendRestore at the backup site, ApplyRestoreJob at the source site).
// checkBackup runs where the backup cluster is; restoreTarget where the
// target is.

// restoreSource is what the target's side needs to know of the backup.
type restoreSource struct {
	Size uint64        // of the backup snapshot
	Base ceph.Snapshot // incremental: the common snapshot as the backup image holds it
}

// checkBackup checks the backup's side of a restore of snapshot into target:
// the snapshot is named and exists and, for an incremental restore, the
// backup image holds fromSnap.
func checkBackup(c *ceph.Cluster, snapshot, target ferry.ImageSpec, fromSnap string) (restoreSource, error) {
	if snapshot.Snap == "" {
		return restoreSource{}, fmt.Errorf("restore %s: name the backup snapshot to restore (POOL/IMAGE@SNAP); see `rbd snap ls %s`", snapshot, snapshot)
	}
	info, err := c.Info(snapshot)
	if err != nil {
		return restoreSource{}, fmt.Errorf("restore %s: %w", snapshot, err)
	}
	src := restoreSource{Size: info.Size}
	if fromSnap == "" {
		return src, nil
	}
	snaps, err := c.Snapshots(snapshot)
	if err != nil {
		return src, incrementalError(snapshot, target, fromSnap, "%w", err)
	}
	base, ok := findSnapshot(snaps, fromSnap)
	if !ok {
		return src, incrementalError(snapshot, target, fromSnap, "the backup image has no snapshot %q; choose a snapshot both images hold (rbd snap ls on both)", fromSnap)
	}
	src.Base = base
	return src, nil
}

func incrementalError(snapshot, target ferry.ImageSpec, fromSnap, format string, args ...any) error {
	return fmt.Errorf("restore %s to %s from %q: "+format, append([]any{snapshot, target, fromSnap}, args...)...)
}

// restoreTarget is the target's side of a restore: the checks before
// anything is written, the header the import applies, and the clean-up
// after a failure.
type restoreTarget struct {
	cluster  *ceph.Cluster
	image    ferry.ImageSpec // no snap
	snapshot ferry.ImageSpec // the backup snapshot being restored
	size     uint64
	base     ceph.Snapshot // set for an incremental restore
	force    bool          // ForceRollback
}

func (t restoreTarget) incremental() bool { return t.base.Name != "" }

// refuseBackupImage keeps a restore from writing into the backup image
// itself, which would break the backup chain. sameCluster tells whether the
// target's cluster is the backup's.
func (t restoreTarget) refuseBackupImage(sameCluster func() (bool, error)) error {
	if t.image != t.snapshot.AtSnap("") {
		return nil
	}
	same, err := sameCluster()
	if err != nil {
		return fmt.Errorf("restore %s: cannot tell whether the target is the backup image itself: %v", t.snapshot, err)
	}
	if same {
		return fmt.Errorf("restore %s: the target %s is the backup image itself; restore into a new image (--to POOL/NEWIMAGE) or into the source cluster (--source-conf, or --to source:POOL/IMAGE)", t.snapshot, t.image)
	}
	return nil
}

// sameCluster tells whether two connections reach one cluster.
func sameCluster(a, b *ceph.Cluster) (bool, error) {
	if a == b {
		return true, nil
	}
	fa, errA := a.FSID()
	fb, errB := b.FSID()
	if err := errors.Join(errA, errB); err != nil {
		return false, err
	}
	return fa == fb, nil
}

// prepare makes the target ready: a full restore creates it (it must not
// exist); an incremental one checks that it shares the common snapshot with
// the backup and rolls it back there. It reports whether it rolled back.
func (t restoreTarget) prepare(ctx context.Context) (rolledBack bool, err error) {
	if !t.incremental() {
		return false, createTarget(t.cluster, t.image, t.size)
	}
	return t.prepareIncremental(ctx)
}

func createTarget(c *ceph.Cluster, target ferry.ImageSpec, size uint64) error {
	_, err := c.Info(target)
	switch {
	case err == nil:
		return fmt.Errorf("restore into %s: %w: choose a new image name, or pass --from-snap for an incremental restore into it", target, ErrTargetExists)
	case !errors.Is(err, ceph.ErrNotFound):
		return fmt.Errorf("restore into %s: %w", target, err)
	}
	// CreateImage fails on an existing name too, so a race cannot overwrite.
	if err := c.CreateImage(target, size); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// prepareIncremental checks that the target holds the common snapshot as
// the backup does and not yet the one being restored, and that its head was
// not written since (unless forced); then it rolls the target back to it.
func (t restoreTarget) prepareIncremental(ctx context.Context) (bool, error) {
	from := t.base.Name
	fail := func(format string, args ...any) error {
		return incrementalError(t.snapshot, t.image, from, format, args...)
	}
	targetSnaps, err := t.cluster.Snapshots(t.image)
	if err != nil {
		return false, fail("%w (an incremental restore needs the target image; without --from-snap, restore in full into a new image)", err)
	}
	got, ok := findSnapshot(targetSnaps, from)
	switch {
	case !ok:
		return false, fail("the target image has no snapshot %q; choose a snapshot both images hold, or restore in full into a new image", from)
	case got.Size != t.base.Size:
		return false, fail("snapshot %q is %d bytes in the backup but %d bytes in the target: they are not the same snapshot", from, t.base.Size, got.Size)
	}
	if _, ok := findSnapshot(targetSnaps, t.snapshot.Snap); ok {
		return false, fail("the target already has snapshot %q: it is restored already (compare with ferry verify), or remove that snapshot first", t.snapshot.Snap)
	}
	changed, err := t.cluster.HeadChangedSince(t.image, from)
	if err != nil {
		return false, fail("%w", err)
	}
	if changed.Changed() && !t.force {
		return false, fail("%w: its head differs from %q (%s); the restore would roll that back. Pass --force-rollback to discard it, or restore into a new image to keep both",
			ErrDiverged, from, changed)
	}
	if !changed.Changed() {
		return false, nil
	}
	if err := t.cluster.RollbackToSnapshot(t.image.AtSnap(from)); err != nil {
		return false, fail("%w", err)
	}
	return true, nil
}

// header is the diff's header as the target applies it. A fresh image is
// for attaching: it gets no snapshot (snapshots cost write performance), so
// a full restore drops the to-snapshot. An incremental one creates it last,
// as the new common base.
func (t restoreTarget) header(h rbddiff.Header) rbddiff.Header {
	if !t.incremental() {
		h.ToSnap, h.Protected = "", false
	}
	return h
}

// failed cleans up after a restore that failed once writing had begun, and
// says what the operator can do.
func (t restoreTarget) failed(err error) error {
	if !t.incremental() {
		// A half-written new image is worse than none: it would attach.
		if rmErr := t.cluster.RemoveImage(t.image); rmErr != nil {
			err = fmt.Errorf("%w; removing the partial image %s also failed: %v (remove it with rbd rm)", err, t.image, rmErr)
		}
	} else {
		err = fmt.Errorf("%w; %s now holds part of the changes: run the same restore again with --force-rollback", err, t.image)
	}
	return fmt.Errorf("restore %s to %s: %w", t.snapshot, t.image, err)
}

func findSnapshot(snaps []ceph.Snapshot, name string) (ceph.Snapshot, bool) {
	for _, s := range snaps {
		if s.Name == name {
			return s, true
		}
	}
	return ceph.Snapshot{}, false
}
