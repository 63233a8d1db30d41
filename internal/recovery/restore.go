package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// ErrTargetExists reports a full restore into an image that already exists.
var ErrTargetExists = errors.New("target image exists")

// ErrDiverged reports a failback target whose head was written after the
// common snapshot, so the incremental restore would discard those writes.
var ErrDiverged = errors.New("target image changed since the common snapshot")

// RestoreOptions describe one restore. From and To may be the same cluster
// (failover at the backup site) or two (failback to the primary site).
type RestoreOptions struct {
	From     *ceph.Cluster
	Snapshot ferry.ImageSpec // the backup snapshot to restore: POOL/IMAGE@SNAP
	To       *ceph.Cluster
	Target   ferry.ImageSpec // the image to write; its Snap is ignored

	// FromSnap, when set, makes the restore incremental: Target must exist
	// and hold FromSnap, a snapshot Snapshot's image holds too, and only the
	// changes FromSnap -> Snapshot.Snap are shipped. Target is rolled back to
	// FromSnap first and ends with snapshot Snapshot.Snap, the new common base.
	FromSnap string
	// ForceRollback allows an incremental restore to discard writes made to
	// Target's head after FromSnap.
	ForceRollback bool
}

// RestoreResult sums up a restore for the operator.
type RestoreResult struct {
	Snapshot ferry.ImageSpec
	Target   ferry.ImageSpec // with Snap set when the restore created a snapshot
	FromSnap string
	Size     uint64
	// DataBytes and ZeroBytes are what crossed from the backup (data) and
	// what was only zeroed; ScannedBytes is what librbd reported as changed.
	DataBytes, ZeroBytes, ScannedBytes uint64
	RolledBack                         bool // Target's head was rolled back to FromSnap
	Duration                           time.Duration
}

// Restore copies a backup snapshot into an image, in full into a new image or
// incrementally into an image that shares a snapshot with the backup. It
// never writes to the backup image. Progress counts the bytes exported.
func Restore(ctx context.Context, o RestoreOptions, p progress.Reporter) (RestoreResult, error) {
	start := time.Now()
	o.Target = o.Target.AtSnap("")
	res := RestoreResult{Snapshot: o.Snapshot, Target: o.Target, FromSnap: o.FromSnap}
	if o.Snapshot.Snap == "" {
		return res, fmt.Errorf("restore %s: name the backup snapshot to restore (POOL/IMAGE@SNAP); see `rbd snap ls %s`", o.Snapshot, o.Snapshot)
	}
	snapInfo, err := o.From.Info(o.Snapshot)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", o.Snapshot, err)
	}
	res.Size = snapInfo.Size
	if err := refuseBackupImage(o); err != nil {
		return res, err
	}

	var editHeader func(rbddiff.Header) rbddiff.Header
	if o.FromSnap == "" {
		if err := createTarget(o.To, o.Target, snapInfo.Size); err != nil {
			return res, err
		}
		// A fresh image is for attaching: it gets no snapshot (snapshots cost
		// write performance), so the header's to-snapshot is dropped.
		editHeader = func(h rbddiff.Header) rbddiff.Header {
			h.ToSnap, h.Protected = "", false
			return h
		}
	} else {
		rolledBack, err := prepareIncremental(ctx, o)
		res.RolledBack = rolledBack
		if err != nil {
			return res, err
		}
		res.Target = o.Target.AtSnap(o.Snapshot.Snap)
	}

	exp, imp, err := pipe(ctx, o, editHeader, p)
	res.ScannedBytes, res.DataBytes, res.ZeroBytes = exp.ScannedBytes, imp.DataBytes, imp.ZeroBytes
	res.Duration = time.Since(start)
	if err != nil {
		if o.FromSnap == "" {
			// A half-written new image is worse than none: it would attach.
			if rmErr := o.To.RemoveImage(o.Target); rmErr != nil {
				err = fmt.Errorf("%w; removing the partial image %s also failed: %v (remove it with rbd rm)", err, o.Target, rmErr)
			}
		} else {
			err = fmt.Errorf("%w; %s now holds part of the changes: run the same restore again with --force-rollback", err, o.Target)
		}
		return res, fmt.Errorf("restore %s to %s: %w", o.Snapshot, o.Target, err)
	}
	return res, nil
}

// pipe runs the export of the backup snapshot on its own goroutine and the
// import on this one, joined by a handoff.
func pipe(ctx context.Context, o RestoreOptions, editHeader func(rbddiff.Header) rbddiff.Header, p progress.Reporter) (ceph.ExportStats, ceph.ImportStats, error) {
	h := newHandoff(editHeader)
	type exportResult struct {
		stats ceph.ExportStats
		err   error
	}
	exported := make(chan exportResult, 1)
	go func() {
		st, err := o.From.Export(ctx, ceph.ExportOptions{Image: o.Snapshot, FromSnap: o.FromSnap}, h, p)
		if err != nil {
			h.fail(err)
		}
		exported <- exportResult{st, err}
	}()
	imp, importErr := o.To.Import(ctx, o.Target, h, progress.Discard)
	h.closeReceiver()
	exp := <-exported
	if importErr != nil {
		return exp.stats, imp, importErr // includes the export's error when that was the cause
	}
	return exp.stats, imp, exp.err
}

// refuseBackupImage keeps a restore from writing into the backup image itself,
// which would break the backup chain.
func refuseBackupImage(o RestoreOptions) error {
	if o.Target != o.Snapshot.AtSnap("") {
		return nil
	}
	same := o.From == o.To
	if !same {
		a, errA := o.From.FSID()
		b, errB := o.To.FSID()
		if errA != nil || errB != nil {
			return fmt.Errorf("restore %s: cannot tell whether the target is the backup image itself: %v %v", o.Snapshot, errA, errB)
		}
		same = a == b
	}
	if same {
		return fmt.Errorf("restore %s: the target %s is the backup image itself; restore into a new image (--to POOL/NEWIMAGE) or into another cluster (--to-conf)", o.Snapshot, o.Target)
	}
	return nil
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

// prepareIncremental checks that the target shares FromSnap with the backup
// image, and rolls the target back to it. It reports whether it rolled back.
func prepareIncremental(ctx context.Context, o RestoreOptions) (bool, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("restore %s to %s from %q: "+format, append([]any{o.Snapshot, o.Target, o.FromSnap}, args...)...)
	}
	backupSnaps, err := o.From.Snapshots(o.Snapshot)
	if err != nil {
		return false, fail("%w", err)
	}
	targetSnaps, err := o.To.Snapshots(o.Target)
	if err != nil {
		return false, fail("%w (an incremental restore needs the target image; without --from-snap, restore in full into a new image)", err)
	}
	b, okB := findSnapshot(backupSnaps, o.FromSnap)
	t, okT := findSnapshot(targetSnaps, o.FromSnap)
	switch {
	case !okB:
		return false, fail("the backup image has no snapshot %q; choose a snapshot both images hold (rbd snap ls on both)", o.FromSnap)
	case !okT:
		return false, fail("the target image has no snapshot %q; choose a snapshot both images hold, or restore in full into a new image", o.FromSnap)
	case b.Size != t.Size:
		return false, fail("snapshot %q is %d bytes in the backup but %d bytes in the target: they are not the same snapshot", o.FromSnap, b.Size, t.Size)
	}
	if _, ok := findSnapshot(targetSnaps, o.Snapshot.Snap); ok {
		return false, fail("the target already has snapshot %q: it is restored already (compare with ferry verify), or remove that snapshot first", o.Snapshot.Snap)
	}
	changed, err := ChangedSince(ctx, o.To, o.Target, o.FromSnap)
	if err != nil {
		return false, fail("%w", err)
	}
	if changed > 0 && !o.ForceRollback {
		return false, fail("%w: objects holding %d bytes were written after %q; the restore would roll them back. Pass --force-rollback to discard them, or restore into a new image to keep both",
			ErrDiverged, changed, o.FromSnap)
	}
	if changed == 0 {
		return false, nil
	}
	if err := o.To.RollbackToSnapshot(o.Target.AtSnap(o.FromSnap)); err != nil {
		return false, fail("%w", err)
	}
	return true, nil
}

func findSnapshot(snaps []ceph.Snapshot, name string) (ceph.Snapshot, bool) {
	for _, s := range snaps {
		if s.Name == name {
			return s, true
		}
	}
	return ceph.Snapshot{}, false
}
