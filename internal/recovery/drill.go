package recovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/state"
)

// A drill's scratch image is named IMAGE + drillInfix + its start time, so
// it sorts beside its image, reads as what it is, and the next drill can
// find what a killed one left.
const (
	drillInfix = ".ferry-drill-"
	// drillSnap is the snapshot the scratch image is verified at: Verify
	// reads snapshots only. Not "ferry-...": it is no backup snapshot.
	drillSnap = "drill"
)

// DrillImage is the scratch image a drill of img started at t restores into.
func DrillImage(img ferry.ImageSpec, t time.Time) ferry.ImageSpec {
	return ferry.ImageSpec{Pool: img.Pool, Image: img.Image + drillInfix + t.UTC().Format("20060102T150405Z")}
}

// IsDrillImage tells whether an image name is a drill's scratch image.
func IsDrillImage(name string) bool { return strings.Contains(name, drillInfix) }

// DrillOptions name the backup snapshot to drill.
type DrillOptions struct {
	Backup   *ceph.Cluster
	Snapshot ferry.ImageSpec // POOL/IMAGE@SNAP: a snapshot of a backup image
	// Records hold the chunk hashes each backup was written from (nil:
	// none are read, the scratch image is compared with the snapshot only).
	Records  *state.ScrubRecords
	ChunkKey chunk.Sealer // as the consumer holds it; nil: none
	// Progress, when set, is called as each phase starts ("restore",
	// "verify") and gives the reporter of that phase.
	Progress func(phase string) progress.Reporter
}

// DrillReport is the outcome of a drill: what a restore of the snapshot
// took, and whether what it restored is the backup.
type DrillReport struct {
	Snapshot ferry.ImageSpec
	Scratch  ferry.ImageSpec // the image restored into, removed at the end
	Size     uint64
	// RestoredBytes is the data written into the scratch image (the rest
	// of Size was zeros or holes); ReadBytes what the verification read.
	RestoredBytes, ReadBytes        uint64
	RestoreDuration, VerifyDuration time.Duration

	// Recorded tells whether the snapshot had a scrub record: the hashes
	// of the chunks its backup wrote, taken at the source site. Without
	// one, the scratch image is compared with the backup snapshot only.
	Recorded       bool
	RecordedChunks int
	RecordedBytes  uint64
	// Mismatches are recorded chunks the scratch image does not match.
	Mismatches []ScrubMismatch
	// Differences are where the scratch image differs from the backup
	// snapshot (and SizeDiffers when their sizes do).
	Differences []Range
	SizeDiffers bool

	LeftoversRemoved []ferry.ImageSpec // scratch images of earlier drills that did not end
	ScratchRemoved   bool
}

// Passed tells whether the restored data is the backup: it matches every
// recorded hash and the backup snapshot block for block.
func (r DrillReport) Passed() bool {
	return len(r.Mismatches) == 0 && len(r.Differences) == 0 && !r.SizeDiffers
}

// RecoverDuration is the time to recover: to restore and verify.
func (r DrillReport) RecoverDuration() time.Duration { return r.RestoreDuration + r.VerifyDuration }

// Drill proves that a backup snapshot restores: it restores it in full, by
// the path a failover takes (Restore), into a scratch image beside the
// backup image, then reads the scratch image back once and checks it
// against the hashes recorded for the snapshot's chunks when its backup
// was applied (taken at the source site, so a backup damaged at the backup
// site fails) and against the backup snapshot block by block (all of the
// image, also what older backups wrote). The scratch image is removed
// whatever happens, and scratch images of earlier drills of the image that
// were killed are removed first. The backup image is only read.
func Drill(ctx context.Context, o DrillOptions) (rep DrillReport, err error) {
	rep.Snapshot = o.Snapshot
	phase := o.Progress
	if phase == nil {
		phase = func(string) progress.Reporter { return progress.Discard }
	}
	img := o.Snapshot.AtSnap("")
	switch {
	case o.Snapshot.Snap == "":
		return rep, fmt.Errorf("drill %s: name the backup snapshot (POOL/IMAGE@SNAP)", o.Snapshot)
	case IsDrillImage(img.Image):
		return rep, fmt.Errorf("drill %s: this is a drill's scratch image, not a backup image; drill the backup image it was named after", img)
	}
	if rep.LeftoversRemoved, err = removeLeftovers(o.Backup, img); err != nil {
		return rep, fmt.Errorf("drill %s: %w", o.Snapshot, err)
	}
	var rec *state.ScrubRecord
	if o.Records != nil {
		if rec, err = o.Records.Get(ctx, o.Snapshot); err != nil {
			return rep, fmt.Errorf("drill %s: %w", o.Snapshot, err)
		}
		if rec != nil {
			if err := checkRecordKey(rec, o.ChunkKey); err != nil {
				return rep, fmt.Errorf("drill %s: %w", o.Snapshot, err)
			}
			rep.Recorded, rep.RecordedChunks, rep.RecordedBytes = true, len(rec.Chunks), rec.DataBytes()
		}
	}

	rep.Scratch = DrillImage(img, time.Now())
	defer func() {
		// Also after a failure or a cancelled ctx: librbd's calls here take
		// no context, so an interrupt cannot cut the removal short.
		if rmErr := removeScratch(o.Backup, rep.Scratch); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("drill %s: %w (remove it with rbd snap purge and rbd rm, or let the next drill of %s do it)", o.Snapshot, rmErr, img))
			return
		}
		rep.ScratchRemoved = true
	}()

	res, err := Restore(ctx, RestoreOptions{From: o.Backup, Snapshot: o.Snapshot, To: o.Backup, Target: rep.Scratch}, phase("restore"))
	rep.Size, rep.RestoredBytes, rep.RestoreDuration = res.Size, res.DataBytes, res.Duration
	if err != nil {
		return rep, fmt.Errorf("drill: %w", err)
	}

	start := time.Now()
	scratchSnap := rep.Scratch.AtSnap(drillSnap)
	if err := o.Backup.CreateSnapshot(scratchSnap); err != nil {
		return rep, fmt.Errorf("drill %s: %w", o.Snapshot, err)
	}
	vo := VerifyOptions{Source: o.Backup, SourceSnap: o.Snapshot, Backup: o.Backup, BackupSnap: scratchSnap}
	if rec != nil {
		vo.alsoBackup = &scrubSink{chunks: rec.Chunks, holesAreZero: true, snap: o.Snapshot,
			bad: &rep.Mismatches, p: progress.Discard, address: addresser(o.ChunkKey)}
	}
	vr, err := Verify(ctx, vo, phase("verify"))
	rep.VerifyDuration = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("drill: %w", err)
	}
	rep.Differences, rep.SizeDiffers, rep.ReadBytes = vr.Differences, vr.SourceSize != vr.BackupSize, vr.DataBytes
	return rep, nil
}

// removeLeftovers removes the scratch images of img's earlier drills (a
// drill killed before its clean-up leaves one).
func removeLeftovers(c *ceph.Cluster, img ferry.ImageSpec) ([]ferry.ImageSpec, error) {
	images, err := c.Images(img.Pool)
	if err != nil {
		return nil, err
	}
	var removed []ferry.ImageSpec
	for _, left := range images {
		if !strings.HasPrefix(left.Image, img.Image+drillInfix) {
			continue
		}
		if err := removeScratch(c, left); err != nil {
			return removed, fmt.Errorf("remove the scratch image %s of an earlier drill: %w (is another drill of %s running? run one at a time)", left, err, img)
		}
		removed = append(removed, left)
	}
	return removed, nil
}

// removeScratch removes a scratch image and its snapshots; one that is not
// there (a failed restore removes its own) is not an error.
func removeScratch(c *ceph.Cluster, img ferry.ImageSpec) error {
	snaps, err := c.Snapshots(img)
	if errors.Is(err, ceph.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if err := c.RemoveSnapshot(img.AtSnap(s.Name)); err != nil && !errors.Is(err, ceph.ErrNotFound) {
			return err
		}
	}
	if err := c.RemoveImage(img); err != nil && !errors.Is(err, ceph.ErrNotFound) {
		return err
	}
	return nil
}
