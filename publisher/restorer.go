package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// The publisher daemon also applies restore jobs that `ferry restore ...
// --to source:POOL/IMAGE` queues at the backup site (failback over
// JetStream): it is the source site's process that reaches both the
// source cluster and the backup site's chunk store. What a job does and
// checks lives in internal/recovery; this file only takes the jobs.

// restoreJobs returns the durable consumer of restore jobs, or nil when the
// backup site has no restore stream yet (a consumer of an older Ferry set
// up its streams): backups go on, restores wait for the stream.
func (p *Publisher) restoreJobs(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := p.bus.Backup.CreateOrUpdateConsumer(ctx, bus.RestoreStream, jetstream.ConsumerConfig{
		Durable:     bus.RestorerDurable,
		Description: "Ferry publisher: applies restore jobs to the source site's images",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     60 * time.Second,
		MaxDeliver:  -1, // a redelivered job is answered, never silently dropped
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		p.log.Warn("the backup site has no restore stream yet; restores into this site over JetStream start once `ferry consumer run` of this version has set it up and the publisher restarts",
			"stream", bus.RestoreStream)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", bus.RestorerDurable, bus.RestoreStream, err)
	}
	return cons, nil
}

func (p *Publisher) handleRestore(ctx context.Context, msg jetstream.Msg) {
	if err := p.restore.Verify(msg.Subject(), msg.Headers(), msg.Data()); err != nil {
		p.log.Error("restore job refused: not signed by a restore key this site trusts; nothing written", "subject", msg.Subject(), "signed_by", sign.Signed(msg.Headers()), "error", err)
		p.refuseRestore(ctx, msg, err)
		return
	}
	job, err := ferry.DecodeRestoreJob(msg.Data())
	if err != nil {
		p.log.Error("restore job dropped", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	if err := bus.Refusal(msg.Subject(), job.Target, job.Validate(), bus.RestoreSubject); err != nil {
		// Not answered, not recorded: a job that does not hold together
		// must not make this site write anything.
		p.log.Error("restore job refused; dropping it", "subject", msg.Subject(), "job", job.ID, "error", err)
		_ = msg.Term()
		return
	}
	st := ferry.RestoreStatus{JobID: job.ID, Snapshot: job.Snapshot, Target: job.Target, TotalBytes: job.Size}
	log := p.log.With("job", job.ID, "snapshot", job.Snapshot.String(), "target", job.Target.String(), "from_snap", job.FromSnap)
	var out ferry.RestoreOutcome
	if meta, err := msg.Metadata(); err == nil && meta.NumDelivered > 1 && p.restoreBegun(ctx, job.ID) {
		// The last restorer that had it stopped without answering: it may
		// have written part of it, so it is not tried blindly again.
		out = recovery.InterruptedRestore(&job)
	} else {
		log.Info("restore starting")
		stop := bus.KeepAlive(msg, 20*time.Second)
		prog := p.followRestore(ctx, st, log)
		out = recovery.ApplyRestoreJob(ctx, recovery.JobTarget{Cluster: p.ceph, Store: p.store, Backup: p.bus.Backup, Trust: p.restore, Progress: prog}, &job)
		prog.stop()
		stop()
	}
	if out.Error != "" {
		log.Error("restore failed", "refused", out.Refused, "error", out.Error)
	} else {
		log.Info("restore done", "data_bytes", out.DataBytes, "zero_bytes", out.ZeroBytes, "rolled_back", out.RolledBack)
	}
	// Answer even while shutting down: ferry restore is waiting for it.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := recovery.PublishRestoreOutcome(actx, p.bus.Backup, p.signer, out); err != nil {
		log.Error("cannot tell the backup site how the restore ended", "error", err)
	}
	p.finishRestore(ctx, st, out, log)
	_ = msg.Ack()
}

// restoreStatusInterval is how often a running restore's state (with its
// progress) is recorded for ferry restore status.
const restoreStatusInterval = 5 * time.Second

// restoreProgress counts the bytes a restore applied, and records them as
// the job's state every restoreStatusInterval until stop.
type restoreProgress struct {
	done atomic.Uint64
	stop func()
}

func (r *restoreProgress) SetTotal(uint64) {} // the total is the job's size
func (r *restoreProgress) Add(n uint64)    { r.done.Add(n) }

func (p *Publisher) followRestore(ctx context.Context, st ferry.RestoreStatus, log *slog.Logger) *restoreProgress {
	r := &restoreProgress{stop: func() {}}
	record := func(ctx context.Context) error {
		st.State, st.DoneBytes, st.Time = ferry.RestoreRunning, r.done.Load(), time.Now().UTC()
		return recovery.PublishRestoreStatus(ctx, p.bus.Backup, p.signer, st)
	}
	// Recorded before anything is written, so that a job delivered again
	// is known to have begun (restoreBegun).
	if err := record(ctx); err != nil {
		log.Warn("cannot record the restore as running for ferry restore status; the restore goes on", "error", err)
		return r
	}
	ctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(restoreStatusInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := record(ctx); err != nil {
				if ctx.Err() == nil {
					log.Warn("cannot record the restore's progress for ferry restore status; the restore goes on", "error", err)
				}
				return // one warning per restore, not one per tick
			}
		}
	}()
	// Waiting for the goroutine keeps its last running state from landing
	// after the final one.
	r.stop = func() { cancel(); <-exited }
	return r
}

// restoreBegun tells whether a restorer began job id before: its state on
// record is past queued. A job given back unbegun (a daemon that shuts
// down gives back the jobs it has not started) is still queued, and is
// applied as usual. A state that cannot be read counts as begun: a job is
// never applied twice blindly.
func (p *Publisher) restoreBegun(ctx context.Context, id string) bool {
	st, err := recovery.ReadRestoreStatus(ctx, p.bus.Backup, id, nil)
	return err != nil || st.State != ferry.RestoreQueued
}

// finishRestore records the job's final state with its outcome, even while
// shutting down.
func (p *Publisher) finishRestore(ctx context.Context, st ferry.RestoreStatus, out ferry.RestoreOutcome, log *slog.Logger) {
	st.State, st.Outcome, st.Time = ferry.RestoreDone, &out, time.Now().UTC()
	if out.Error != "" {
		st.State = ferry.RestoreFailed
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := recovery.PublishRestoreStatus(sctx, p.bus.Backup, p.signer, st); err != nil {
		log.Warn("cannot record how the restore ended for ferry restore status", "error", err)
	}
}

// refuseRestore answers a restore job that failed its signature check, so
// that an operator whose key is wrong learns it from ferry restore. The job
// is read only to address the answer; nothing of it is acted on.
func (p *Publisher) refuseRestore(ctx context.Context, msg jetstream.Msg, cause error) {
	defer func() { _ = msg.Term() }()
	var job ferry.RestoreJob
	if json.Unmarshal(msg.Data(), &job) != nil || job.ID == "" {
		return
	}
	out := ferry.RestoreOutcome{JobID: job.ID, Target: job.Target.AtSnap(""), Refused: true, Time: time.Now().UTC(),
		Error: fmt.Sprintf("restore job %s refused, nothing written: %v (set publisher.restore_keys at the source site to the public key of consumer.restore_key)", job.ID, cause)}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := recovery.PublishRestoreOutcome(actx, p.bus.Backup, p.signer, out); err != nil {
		p.log.Error("cannot tell the backup site that a restore job was refused", "job", job.ID, "error", err)
	}
	p.finishRestore(ctx, ferry.RestoreStatus{JobID: job.ID, Snapshot: job.Snapshot, Target: job.Target, TotalBytes: job.Size}, out, p.log)
}
