package recovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/retention"
	"github.com/ferry-dr/ferry/internal/state"
)

// RetentionOptions describe one retention run on a backup image.
type RetentionOptions struct {
	Backup *ceph.Cluster
	Image  ferry.ImageSpec // the backup image
	Policy retention.Policy
	// Base is the snapshot the state bucket names as the image's last backup
	// (ImageState.LastSnapshot): the base of the next incremental. It is never
	// removed, and a base the image lacks stops the run. "" when the state
	// bucket does not know the image.
	Base string
	Now  time.Time
	// Remove deletes the snapshots; without it the run only reports.
	Remove bool
}

// RetentionResult tells what a run decided and did.
type RetentionResult struct {
	Keep, Remove []retention.SnapshotWithTime
	NotFerrys    []string // snapshots Ferry did not make: never touched
	Removed      []string
	Failed       []RemovalFailure // e.g. protected snapshots with clones
}

// RemovalFailure is a snapshot the policy would remove that librbd refused.
type RemovalFailure struct {
	Name string
	Err  error
}

// ApplyRetention applies a policy to the Ferry snapshots of a backup image:
// it always keeps the newest one and the base the state bucket names, and
// only removes when asked to. A snapshot librbd refuses to remove (protected,
// with clones) is reported in Failed and left; the run goes on.
func ApplyRetention(o RetentionOptions) (RetentionResult, error) {
	var res RetentionResult
	all, err := o.Backup.Snapshots(o.Image)
	if err != nil {
		return res, fmt.Errorf("retention on %s: %w", o.Image, err)
	}
	var snaps []retention.SnapshotWithTime
	baseFound := false
	for _, s := range all {
		if !ferry.IsFerrySnapshot(s.Name) {
			res.NotFerrys = append(res.NotFerrys, s.Name)
			continue
		}
		pinned := s.Name == o.Base
		baseFound = baseFound || pinned
		snaps = append(snaps, retention.SnapshotWithTime{Name: s.Name, Time: backupTime(s), Pinned: pinned})
	}
	if o.Base != "" && !baseFound {
		return res, fmt.Errorf("retention on %s: the state bucket names %q as the last backup, but the image has no such Ferry snapshot; check `ferry status` and the image (rbd snap ls) before removing anything",
			o.Image.AtSnap(""), o.Base)
	}
	// librbd lists in creation order: the last one is the newest the backup
	// site holds, the base of the next incremental, whatever its name says.
	if n := len(snaps); n > 0 {
		snaps[n-1].Pinned = true
	}
	res.Keep, res.Remove = retention.Keep(snaps, o.Policy, o.Now)
	if !o.Remove {
		return res, nil
	}
	for _, s := range res.Remove {
		err := o.Backup.RemoveSnapshot(o.Image.AtSnap(s.Name))
		if errors.Is(err, ceph.ErrNotFound) {
			continue // removed meanwhile (by another run, or by hand)
		}
		if err != nil {
			res.Failed = append(res.Failed, RemovalFailure{Name: s.Name, Err: err})
			continue
		}
		res.Removed = append(res.Removed, s.Name)
	}
	if len(res.Failed) > 0 {
		names := make([]string, len(res.Failed))
		for i, f := range res.Failed {
			names[i] = f.Name
		}
		return res, fmt.Errorf("retention on %s: %d snapshot(s) not removed (%s): a protected snapshot with clones stays until its clones are flattened or removed and it is unprotected; the first error: %w",
			o.Image.AtSnap(""), len(res.Failed), strings.Join(names, ", "), res.Failed[0].Err)
	}
	return res, nil
}

// backupTime is when the backup was taken: the time in a Ferry snapshot's
// name (set at the source), else when the backup site created the snapshot.
func backupTime(s ceph.Snapshot) time.Time {
	if t, err := time.Parse("20060102T150405.000000000Z", strings.TrimPrefix(s.Name, ferry.SnapshotPrefix)); err == nil {
		return t
	}
	return s.Created
}

// RetentionTarget looks up, in the state bucket, the backup image of the
// source image spec and the snapshot of its last backup (the base of the next
// incremental, which retention must keep). An image the bucket does not know
// is its own backup image, with no base beyond its newest snapshot.
func RetentionTarget(ctx context.Context, book *state.Book, spec ferry.ImageSpec) (image ferry.ImageSpec, base string, err error) {
	st, err := book.Get(ctx, spec.AtSnap(""))
	if err != nil {
		return ferry.ImageSpec{}, "", err
	}
	if st == nil {
		return spec.AtSnap(""), "", nil
	}
	image = st.BackupImage
	if image.Image == "" {
		image = spec.AtSnap("")
	}
	return image, st.LastSnapshot, nil
}
