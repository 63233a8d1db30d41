package consumer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
)

// The backup image's snapshots are the truth of what the backup site holds;
// the state bucket is a record of them that a fault can lose or leave
// behind (a deleted entry, a confirmation cut off after the snapshot was
// made). The publisher chooses each backup's base from the state, so a
// state missing its snapshots would make the next backup a full one, which
// the backup image then refuses as mixing two chains. The consumer brings
// the state up to date from the image when it starts, when an entry is
// deleted, and before it applies a backup.

// reconciled returns st with the snapshots of the backup image of source
// that it lacks, or st itself when it lacks none (or the image has none).
// A missing state is rebuilt for source image id sourceID. It writes
// nothing.
func (c *Consumer) reconciled(source ferry.ImageSpec, st *ferry.ImageState, sourceID string) (*ferry.ImageState, error) {
	snaps, _, err := c.backupSnapshots(c.opts.PoolMap.Backup(source))
	if err != nil {
		return st, err
	}
	return c.withSnapshots(source, st, sourceID, snaps), nil
}

// withSnapshots is reconciled for the backup image's snapshots snaps,
// read already.
func (c *Consumer) withSnapshots(source ferry.ImageSpec, st *ferry.ImageState, sourceID string, snaps []string) *ferry.ImageState {
	snaps = ferrySnapshots(snaps)
	if len(snaps) == 0 || (st != nil && !lacks(st.Confirmed, snaps)) {
		return st
	}
	target := c.opts.PoolMap.Backup(source)
	var fixed ferry.ImageState
	if st != nil {
		fixed = *st
	} else {
		fixed = ferry.ImageState{Image: source, SourceImageID: sourceID, Status: ferry.StatusOK, LastAttempt: time.Now().UTC()}
	}
	fixed.BackupImage = target
	fixed.Confirmed = snaps
	fixed.LastSnapshot = snaps[len(snaps)-1]
	return &fixed
}

// ferrySnapshots are the snapshots of snaps that Ferry took. Only they are
// backups: the state never lists an operator's snapshot of a backup image,
// which the publisher could otherwise take for a base held at both sites.
func ferrySnapshots(snaps []string) []string {
	var own []string
	for _, s := range snaps {
		if ferry.IsFerrySnapshot(s) {
			own = append(own, s)
		}
	}
	return own
}

// lacks tells whether some of snaps is missing from confirmed.
func lacks(confirmed, snaps []string) bool {
	for _, s := range snaps {
		if !contains(confirmed, s) {
			return true
		}
	}
	return false
}

// reconcile brings st up to date with the backup image's snapshots snaps
// (as Apply read them) for a backup about to be applied: a repaired state
// is written at once, so the publisher's next base choice sees it too.
func (c *Consumer) reconcile(ctx context.Context, m *ferry.Manifest, st *ferry.ImageState, snaps []string) (*ferry.ImageState, error) {
	source := m.Image.AtSnap("")
	fixed := c.withSnapshots(source, st, m.SourceImageID, snaps)
	if fixed == st {
		return st, nil
	}
	c.logRepair(source, st, fixed)
	if err := c.book.Put(ctx, fixed); err != nil {
		return st, err
	}
	if m.FromSnap == "" && !m.Resync && !contains(fixed.Confirmed, m.ToSnap) {
		// Sent as a full backup only because the state was lost: the
		// image refuses it (two chains), but the next one is incremental.
		// (A full backup the image already holds is confirmed again.)
		return fixed, permanentError{fmt.Errorf("backup %s is a full one, sent because the state of %s at the backup site had lost its snapshots; the state is rebuilt from the backup image %s (%s), and the image's next backup is an incremental: run the backup again (no --resync needed)",
			m.BackupID, source, fixed.BackupImage, strings.Join(fixed.Confirmed, ", "))}
	}
	return fixed, nil
}

// guardStates repairs, until ctx ends, the states that are behind their
// backup images when it starts, and every state entry deleted later.
// Repairs are conditional on the entry's revision: a state the consumer
// wrote meanwhile is newer and stays.
func (c *Consumer) guardStates(ctx context.Context) {
	err := c.book.WatchEntries(ctx, func(e state.Entry) {
		if e.State == nil {
			// Purged with its history: the next backup's manifest names
			// the image and its source id, and reconcile repairs it then.
			c.opts.Log.Warn("the state of an image was removed with its history; it is rebuilt from the backup image when its next backup arrives", "key", e.Key)
			return
		}
		source := e.State.Image.AtSnap("")
		old := e.State
		if e.Deleted {
			old = nil
		}
		fixed, err := c.reconciled(source, old, e.State.SourceImageID)
		if err == nil && fixed != old {
			c.logRepair(source, old, fixed)
			if e.Deleted { // the last state it had, with the image's snapshots
				last := *e.State
				last.BackupImage, last.Confirmed, last.LastSnapshot = fixed.BackupImage, fixed.Confirmed, fixed.LastSnapshot
				fixed = &last
			}
			err = c.book.Replace(ctx, fixed, e.Revision)
		}
		if err != nil && ctx.Err() == nil {
			c.opts.Log.Warn("cannot bring the state of an image up to date with its backup image; it is tried again before its next backup", "image", source.String(), "error", err)
		}
	})
	if err != nil && ctx.Err() == nil {
		c.opts.Log.Warn("state repairs stopped; states are still brought up to date before each backup", "error", err)
	}
}

func (c *Consumer) logRepair(source ferry.ImageSpec, old, fixed *ferry.ImageState) {
	was := "missing"
	if old != nil {
		was = "behind"
	}
	c.opts.Log.Warn("the state of an image was "+was+"; rebuilt from the snapshots of its backup image", "image", source.String(),
		"backup_image", fixed.BackupImage.String(), "snapshots", fixed.Confirmed)
}

// recordFailure writes m's failure into the image's state. A state that
// cannot be read is left as it is: a blank one written over it would lose
// the confirmed snapshots, and the next backup would go out as a full one
// (a write that timed out at the client may still land when the server
// resumes). A missing state is rebuilt from the backup image first.
func (c *Consumer) recordFailure(ctx context.Context, m *ferry.Manifest, cause error) error {
	source := m.Image.AtSnap("")
	st, err := c.book.Get(ctx, source)
	if err != nil {
		return fmt.Errorf("%w; the state is left as it was", err)
	}
	if st == nil {
		if st, err = c.reconciled(source, nil, m.SourceImageID); err != nil {
			// The backup image cannot be read (its pool is missing, say):
			// the failure is still recorded, so that ferry status shows
			// it, in a state created only if none was written meanwhile.
			// A state without snapshots chooses a full backup as no state
			// does, and is rebuilt from the image before a backup applies.
			blank := &ferry.ImageState{Image: source, SourceImageID: m.SourceImageID, BackupImage: c.opts.PoolMap.Backup(source),
				Status: ferry.StatusFailed, LastError: cause.Error(), LastAttempt: time.Now().UTC()}
			return c.book.Create(ctx, blank)
		}
	}
	if st == nil {
		st = &ferry.ImageState{Image: source, SourceImageID: m.SourceImageID, BackupImage: c.opts.PoolMap.Backup(source)}
	}
	st.Status, st.LastError, st.LastAttempt = ferry.StatusFailed, cause.Error(), time.Now().UTC()
	return c.book.Put(ctx, st)
}
