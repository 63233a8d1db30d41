package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Readying the backup image for a backup is split in two: decide picks one
// action from what is known of the image and does no I/O, so every case is
// table-tested; preparer carries the action out, and records the import
// before it changes the image, in one place for every action.

// action is what prepare does to the backup image before an import.
type action int

const (
	actWait         action = iota // not yet: the base has not arrived
	actRefuse                     // not without the operator's word
	actCheckHead                  // undecided until the head is compared with a snapshot
	actApply                      // apply on top of the image as it is
	actCreate                     // create the image
	actRemoveCreate               // remove the image and create it again
	actRenameCreate               // keep the image under a new name, create a new one
	actRollback                   // roll the image back to the base
)

// facts are what the decision knows of the backup image.
type facts struct {
	snaps     []string // its snapshots, oldest first
	exists    bool
	importing string // an import on record that did not finish (ImageState.Importing)
	// head is how the head differs from the snapshot an actCheckHead
	// named; nil: not compared.
	head *ceph.HeadChange
}

// plan is the decision: an action and why.
type plan struct {
	act action
	// reason says why; the log line of a rollback, removal or rename, and
	// the error's text of a wait.
	reason string
	since  string // actCheckHead: the snapshot to compare the head with ("": none, any data counts)
	err    error  // actRefuse: the refusal, a permanentError
}

// decide chooses how the backup image target is readied for m. An
// incremental needs its base, and the image goes back to it when a
// half-applied earlier attempt or later snapshots' data lie on top; a full
// backup starts from a fresh image. Data on the image that no import
// recorded is somebody else's: never built on, removed or rolled back
// without the operator's word. Where that depends on whether the head was
// written, decide asks for the comparison first (actCheckHead) and is
// called again with its result.
func decide(m *ferry.Manifest, target ferry.ImageSpec, f facts) plan {
	if m.FromSnap != "" {
		return keepsSnapshots(decideIncremental(m, target, f), target, f)
	}
	return keepsSnapshots(decideFull(m, target, f), target, f)
}

// keepsSnapshots holds every plan to the rule that no message removes a
// snapshot of a backup image: a rollback drops only the head's writes (its
// snapshots stay), a resync keeps the old image under a new name, and only
// an image without snapshots is removed. Retention is the backup site's
// own policy (ferry retention), never a message's.
func keepsSnapshots(pl plan, target ferry.ImageSpec, f facts) plan {
	if pl.act == actRemoveCreate && len(f.snaps) > 0 {
		return plan{act: actRefuse, err: permanentError{fmt.Errorf("%s at the backup site holds snapshots (%s): Ferry never removes a backup image with snapshots; run the backup with --resync, which keeps it under a new name",
			target, strings.Join(f.snaps, ", "))}}
	}
	return pl
}

func decideIncremental(m *ferry.Manifest, target ferry.ImageSpec, f facts) plan {
	if !contains(f.snaps, m.FromSnap) {
		return plan{act: actWait, reason: fmt.Sprintf("base snapshot %s@%s is not at the backup site (yet): the backup that creates it must be applied first; if it never comes, run the backup with --resync",
			target, m.FromSnap)}
	}
	// The diff is only right on top of exactly the base's content.
	newest := f.snaps[len(f.snaps)-1]
	switch {
	case f.importing != "":
		// The head holds Ferry's own writes, whatever they are.
		return plan{act: actRollback, reason: "an earlier import was cut off; rolling back to the base"}
	case f.head == nil:
		return plan{act: actCheckHead, since: newest}
	case f.head.Changed() && !m.ForceRollback:
		return plan{act: actRefuse, err: headWrittenError(target, newest, *f.head)}
	case f.head.Changed():
		return plan{act: actRollback, reason: "the backup image was written outside Ferry (" + f.head.String() + "); rolling back to the base, as the backup asks (--force-rollback)"}
	case newest != m.FromSnap:
		return plan{act: actRollback, reason: "the base is not the newest snapshot of the backup image; rolling back to it"}
	}
	return plan{act: actApply, reason: "the base is the newest snapshot, and the head is unchanged since"}
}

func decideFull(m *ferry.Manifest, target ferry.ImageSpec, f facts) plan {
	// Logged for an empty leftover too: the same steps, and the same line
	// as ever.
	const cutOff = "removing a cut-off first import before applying it again"
	switch {
	case f.exists && len(f.snaps) > 0 && !m.Resync:
		return plan{act: actRefuse, err: permanentError{fmt.Errorf("%s at the backup site already holds snapshots (%s) and this is a full backup: applying it would mix two chains; run the backup with --resync to start a new chain (the old image is kept)",
			target, strings.Join(f.snaps, ", "))}}
	case f.exists && len(f.snaps) > 0:
		return plan{act: actRenameCreate, reason: "resync: kept the old backup image under a new name"}
	case !f.exists:
		return plan{act: actCreate, reason: "a full backup starts a new image"}
	case f.importing != "":
		// A cut-off first import: start over, so no stray data survives
		// where the full diff writes nothing.
		return plan{act: actRemoveCreate, reason: cutOff}
	case f.head == nil:
		// No snapshots and no import on record: an image this consumer
		// created and died before recording (empty), or somebody else's.
		return plan{act: actCheckHead, since: ""}
	case f.head.Changed():
		return plan{act: actRefuse, err: headWrittenError(target, "", *f.head)}
	}
	return plan{act: actRemoveCreate, reason: cutOff}
}

// imageOps are the calls prepare makes on the backup cluster: a
// *ceph.Cluster, or a recorder in the tests.
type imageOps interface {
	HeadChangedSince(image ferry.ImageSpec, snap string) (ceph.HeadChange, error)
	RollbackToSnapshot(snap ferry.ImageSpec) error
	RenameImage(image ferry.ImageSpec, newName string) error
	RemoveImage(image ferry.ImageSpec) error
	CreateImage(image ferry.ImageSpec, size uint64) error
}

// stateWriter stores an image's state: the state bucket's *state.Book.
type stateWriter interface {
	Put(ctx context.Context, st *ferry.ImageState) error
}

// preparer gathers the facts, decides, and carries the plan out.
type preparer struct {
	img   imageOps
	book  stateWriter
	retry time.Duration // the pause before a backup waiting for its base looks again
	log   *slog.Logger
}

func (p preparer) prepare(ctx context.Context, st *ferry.ImageState, m *ferry.Manifest, target ferry.ImageSpec, snaps []string, exists bool) error {
	f := facts{snaps: snaps, exists: exists, importing: st.Importing}
	pl := decide(m, target, f)
	if pl.act == actCheckHead {
		change, err := p.img.HeadChangedSince(target, pl.since)
		if err != nil {
			return err
		}
		f.head = &change
		pl = decide(m, target, f)
	}
	switch pl.act {
	case actWait:
		return &waitError{msg: pl.reason, delay: p.retry}
	case actRefuse:
		return pl.err
	case actApply, actCreate, actRemoveCreate, actRollback:
	case actRenameCreate:
		st.Confirmed, st.SourceImageID = nil, m.SourceImageID // a new chain
	default:
		return fmt.Errorf("prepare %s for backup %s: no plan after the head check (action %d); this is a bug, please report it", target, m.BackupID, pl.act)
	}
	cutOff := st.Importing
	if err := p.markImporting(ctx, st, m); err != nil {
		return err
	}
	return p.change(target, m, pl, snaps, cutOff)
}

// markImporting records that m is being imported into the backup image,
// before anything of it changes: a consumer that dies midway then rolls
// back on its next try instead of taking its own writes for somebody else's.
func (p preparer) markImporting(ctx context.Context, st *ferry.ImageState, m *ferry.Manifest) error {
	st.Status, st.Importing, st.LastAttempt, st.VolumeID = ferry.StatusRunning, m.BackupID, time.Now().UTC(), m.VolumeID
	return p.book.Put(ctx, st)
}

// change carries out a plan that changes the image (or lets it be, for an
// apply on top); the import is on record.
func (p preparer) change(target ferry.ImageSpec, m *ferry.Manifest, pl plan, snaps []string, cutOff string) error {
	switch pl.act {
	case actApply:
		return nil
	case actRollback:
		p.log.Warn(pl.reason, "base", m.FromSnap, "newest", snaps[len(snaps)-1], "cut_off", cutOff)
		return p.img.RollbackToSnapshot(target.AtSnap(m.FromSnap))
	case actRenameCreate:
		kept := target.Image + ".pre-resync-" + time.Now().UTC().Format("20060102T150405Z")
		if err := p.img.RenameImage(target, kept); err != nil {
			return err
		}
		p.log.Warn(pl.reason, "kept_as", kept)
	case actRemoveCreate:
		p.log.Warn(pl.reason)
		if err := p.img.RemoveImage(target); err != nil {
			return err
		}
	case actCreate:
	}
	return p.img.CreateImage(target, m.Size)
}
