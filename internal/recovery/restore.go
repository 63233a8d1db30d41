package recovery

import (
	"context"
	"errors"
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
	src, err := checkBackup(o.From, o.Snapshot, o.Target, o.FromSnap)
	if err != nil {
		return res, err
	}
	res.Size = src.Size
	t := restoreTarget{cluster: o.To, image: o.Target, snapshot: o.Snapshot, size: src.Size, base: src.Base, force: o.ForceRollback}
	if err := t.refuseBackupImage(func() (bool, error) { return sameCluster(o.From, o.To) }); err != nil {
		return res, err
	}
	res.RolledBack, err = t.prepare(ctx)
	if err != nil {
		return res, err
	}
	if t.incremental() {
		res.Target = o.Target.AtSnap(o.Snapshot.Snap)
	}

	exp, imp, err := pipe(ctx, o, t.header, p)
	res.ScannedBytes, res.DataBytes, res.ZeroBytes = exp.ScannedBytes, imp.DataBytes, imp.ZeroBytes
	res.Duration = time.Since(start)
	if err != nil {
		return res, t.failed(err)
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
