package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// JobTarget is where the source site applies restore jobs: its own cluster,
// fed from the backup site's chunk store and page feeds.
type JobTarget struct {
	Cluster *ceph.Cluster       // the source site's
	Store   *chunk.Store        // the backup site's chunk store
	Backup  jetstream.JetStream // the backup domain (page feeds)
	// FeedSilence is how long the import waits for a word from the backup
	// site's ferry restore before it gives up (default: 12 feed beats).
	FeedSilence time.Duration
	// Trust holds the restore keys: the job's feed must be signed by one
	// (the job itself is checked by whoever takes it off the bus).
	Trust *sign.Trust
	// Progress counts the bytes of the job's diff applied (nil: none).
	Progress progress.Reporter
}

// ApplyRestoreJob applies a restore job to the source site's cluster, with
// the same checks as Restore: a full restore creates the target (it must not
// exist) and leaves it without snapshots; an incremental one needs the
// target to hold the common snapshot as the backup does, refuses a target
// whose head was written since (unless ForceRollback), rolls it back, and
// creates the restored snapshot last. It never returns an error: the
// outcome carries it, naming the image and the way out.
func ApplyRestoreJob(ctx context.Context, a JobTarget, job *ferry.RestoreJob) ferry.RestoreOutcome {
	start := time.Now()
	out := ferry.RestoreOutcome{JobID: job.ID, Target: job.Target.AtSnap("")}
	finish := func(err error) ferry.RestoreOutcome {
		if err != nil {
			out.Error = err.Error()
		}
		out.DurationSeconds = time.Since(start).Seconds()
		out.Time = time.Now().UTC()
		return out
	}
	t := restoreTarget{cluster: a.Cluster, image: job.Target.AtSnap(""), snapshot: job.Snapshot, size: job.Size,
		base: ceph.Snapshot{Name: job.FromSnap, Size: job.FromSnapSize}, force: job.ForceRollback}
	if job.Snapshot.Snap == "" || job.FeedAttempt == "" {
		out.Refused = true
		return finish(fmt.Errorf("restore job %s for %s is incomplete (no snapshot or feed); run ferry restore again", job.ID, t.image))
	}
	err := t.refuseBackupImage(func() (bool, error) {
		fsid, err := a.Cluster.FSID()
		return fsid == job.BackupFSID, err
	})
	if err == nil {
		out.RolledBack, err = t.prepare(ctx)
	}
	if err != nil {
		out.Refused = !out.RolledBack
		return finish(err)
	}

	silence := a.FeedSilence
	if silence == 0 {
		silence = 12 * feed.AliveInterval
	}
	imp, err := importJob(ctx, a, job, t, silence)
	out.DataBytes, out.ZeroBytes = imp.DataBytes, imp.ZeroBytes
	if err != nil {
		var ce *chunk.Error
		if errors.As(err, &ce) && !errors.Is(err, chunk.ErrKey) {
			// Drop it from the index too, so the next ferry restore stores it
			// again instead of trusting a chunk that is not there.
			_ = a.Store.Remove(context.WithoutCancel(ctx), ce.Hash)
			err = fmt.Errorf("%w (the backup site's chunk store lost it; running ferry restore again stores it again)", err)
		}
		if errors.Is(err, ferry.ErrInvalid) {
			err = fmt.Errorf("%w (nothing of this job is retried; running ferry restore again sends the restore anew)", err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("the source site's publisher stopped during the restore: %w", err)
		}
		return finish(t.failed(err))
	}
	if t.incremental() {
		out.Target = t.image.AtSnap(job.Snapshot.Snap)
	}
	return finish(nil)
}

// importJob follows the job's feed and imports the pages as they come.
func importJob(ctx context.Context, a JobTarget, job *ferry.RestoreJob, t restoreTarget, silence time.Duration) (ceph.ImportStats, error) {
	pages, err := feed.Follow(ctx, a.Backup, restoreFeedImage(job.Target), job.ID, job.FeedAttempt, job.FeedSeq, silence, a.Trust)
	if err != nil {
		return ceph.ImportStats{}, err
	}
	defer pages.Close()
	h := t.header(rbddiff.Header{FromSnap: job.FromSnap, ToSnap: job.Snapshot.Snap, Size: job.Size, Protected: job.Protected})
	src := chunk.NewDiffReader(ctx, a.Store, h, pages)
	defer src.Close()
	return a.Cluster.Import(ctx, t.image, src, a.Progress)
}

// InterruptedRestore is the outcome of a job delivered again after the
// restorer that had it stopped without an answer (a crash): the target may
// hold part of it, and only the operator can tell what to keep.
func InterruptedRestore(job *ferry.RestoreJob) ferry.RestoreOutcome {
	target := job.Target.AtSnap("")
	way := fmt.Sprintf("if %s is not in use, remove it (rbd rm) and run ferry restore again", target)
	if job.FromSnap != "" {
		way = fmt.Sprintf("run ferry restore again with --force-rollback (it rolls %s back to %s first)", target, job.FromSnap)
	}
	return ferry.RestoreOutcome{
		JobID: job.ID, Target: target, Time: time.Now().UTC(),
		Error: fmt.Sprintf("restore %s to %s: the source site's publisher stopped during an earlier attempt of this job, so %s may hold part of it; %s",
			job.Snapshot, target, target, way),
	}
}
