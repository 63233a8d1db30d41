package recovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/ship"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Restoring into the source site over JetStream, the backup pipeline in
// reverse:
//
//	backup site (SendRestore)                    source site (ApplyRestoreJob,
//	                                               in the publisher daemon)
//	checks of the backup side (checkBackup)
//	ship backup snapshot [from COMMON] (internal/ship): chunk writer:
//	  object-aligned chunks, SHA-256, skip chunks the site holds, gzip, store
//	restore job, as soon as the header is known -- FERRY_RESTORES -->  checks of the target
//	each extent page once stored --------------- FERRY_PAGES ----->    import fed by verified
//	feed end ----------------------------------- FERRY_PAGES ----->      chunks; snapshot last
//	<-- outcome (done / failed: why, way out) -- FERRY_RESULTS ------  ferry.restored.<target>
//
// The chunk store and the streams live in the backup domain, so a job can
// be queued while the source site is still down; only chunks cross the WAN,
// fetched by the source site as it imports.

// defaultRestoreChunkSize matches a backup's (Ceph's default object size).
const defaultRestoreChunkSize = bus.MaxChunkSize

// SendOptions describe a restore into an image of the source site.
type SendOptions struct {
	Backup   *ceph.Cluster   // the backup site's cluster, which holds Snapshot
	Bus      *bus.Conn       // its Backup domain holds the chunk store and the streams
	Snapshot ferry.ImageSpec // the backup snapshot: POOL/IMAGE@SNAP
	Target   ferry.ImageSpec // the image to write at the source site
	// FromSnap and ForceRollback as in RestoreOptions: an incremental
	// restore (failback) ships only the changes since FromSnap.
	FromSnap      string
	ForceRollback bool
	// ChunkSize and CompressionLevel of the chunks stored (defaults: 4 MiB,
	// chunk.DefaultLevel).
	ChunkSize        uint64
	CompressionLevel int
	// Signer is the restore identity's key: the source site applies only
	// jobs (and feeds) signed by a restore key it trusts. nil: unsigned.
	Signer *sign.Signer
	// Trust holds the source site's keys: outcomes signed by none of them
	// are ignored. Empty: every outcome is believed.
	Trust *sign.Trust
	// ChunkKey as the sites' publisher and consumer hold it (nil: none).
	ChunkKey chunk.Sealer
}

// SendStats sum up the backup site's side of a restore.
type SendStats struct {
	chunk.WriteStats               // what was read, and what the chunk store did not hold yet
	Duration         time.Duration // export and store
}

// BytesStored is what the chunk store took: new chunks and extent pages,
// compressed.
func (s SendStats) BytesStored() uint64 { return s.NetBytesSent + s.PageBytesSent }

// RemoteRestore is a restore job sent to the source site. Wait for its
// outcome, then Close it.
type RemoteRestore struct {
	Job   ferry.RestoreJob
	Stats SendStats
	// StatusErr says why the job's state could not be recorded: ferry
	// restore status cannot follow it, the restore itself goes on.
	StatusErr error

	outcome <-chan ferry.RestoreOutcome
	stop    func()
}

// OutcomeError is a restore the source site did not complete: refused by
// its checks, or failed while writing. The message names the target image
// and what to do.
type OutcomeError struct{ Outcome ferry.RestoreOutcome }

func (e *OutcomeError) Error() string { return "the source site: " + e.Outcome.Error }

// SendRestore checks the backup side, exports the backup snapshot into the
// backup site's chunk store (chunks it holds already are not stored again)
// and queues a restore job for the source site, whose pages follow as they
// are stored: the source site imports while this side still exports.
// Progress counts the bytes exported. If the source site refuses the job
// meanwhile, the export stops and the refusal is returned as *OutcomeError.
func SendRestore(ctx context.Context, o SendOptions, p progress.Reporter) (*RemoteRestore, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = defaultRestoreChunkSize
	}
	o.Target = o.Target.AtSnap("")
	src, err := checkBackup(o.Backup, o.Snapshot, o.Target, o.FromSnap)
	if err != nil {
		return nil, err
	}
	fsid, err := o.Backup.FSID()
	if err != nil {
		return nil, fmt.Errorf("restore %s: fsid of the backup cluster: %w", o.Snapshot, err)
	}
	store, err := chunk.Open(ctx, o.Bus.Backup)
	if err == nil {
		err = store.SetLevel(o.CompressionLevel)
	}
	if err != nil {
		return nil, err
	}
	store.SetSealer(o.ChunkKey)
	job := ferry.RestoreJob{
		ID:       newJobID(),
		Snapshot: o.Snapshot, Target: o.Target, Size: src.Size,
		FromSnap: o.FromSnap, FromSnapSize: src.Base.Size, ForceRollback: o.ForceRollback,
		BackupFSID: fsid,
		Created:    time.Now().UTC(),
	}
	// Listen before the job is out, so its outcome cannot slip past.
	exportCtx, stopExport := context.WithCancel(ctx)
	defer stopExport()
	outcome, stopWatch, err := watchOutcome(ctx, o.Bus.Backup, job, o.Trust, stopExport)
	if err != nil {
		return nil, err
	}
	rr := &RemoteRestore{Job: job, outcome: outcome, stop: stopWatch}

	sh, err := ship.Ship(exportCtx, ship.Options{
		Cluster: o.Backup, Export: ceph.ExportOptions{Image: o.Snapshot, FromSnap: o.FromSnap},
		Store: store, ChunkSize: o.ChunkSize,
		Feed: o.Bus.Backup, FeedImage: restoreFeedImage(o.Target), ID: job.ID, Signer: o.Signer,
		Announce: func(h rbddiff.Header, seq uint64, attempt string) error {
			first := rr.Job.FeedAttempt == ""
			rr.Job.Size, rr.Job.Protected, rr.Job.FeedSeq, rr.Job.FeedAttempt = h.Size, h.Protected, seq, attempt
			if first { // before the job: the source site's word on it comes after
				rr.StatusErr = PublishRestoreStatus(exportCtx, o.Bus.Backup, o.Signer, ferry.RestoreStatus{JobID: job.ID, State: ferry.RestoreQueued,
					Snapshot: job.Snapshot, Target: job.Target, TotalBytes: h.Size, Time: time.Now().UTC()})
			}
			return publishJob(exportCtx, o.Bus.Backup, o.Signer, &rr.Job)
		},
		Progress: p,
	})
	rr.Stats = SendStats{WriteStats: sh.WriteStats, Duration: sh.Duration}
	if err != nil {
		if exportCtx.Err() != nil && ctx.Err() == nil {
			// The export was stopped because the source site refused the
			// job: its answer is the news, not the cancelled export.
			_, wErr := rr.Wait(ctx)
			rr.Close()
			if wErr == nil {
				wErr = fmt.Errorf("restore %s to %s: the export stopped: %w", o.Snapshot, o.Target, err)
			}
			return nil, wErr
		}
		rr.Close()
		return nil, fmt.Errorf("restore %s to %s at the source site: %w", o.Snapshot, o.Target, err)
	}
	return rr, nil
}

// Wait returns the source site's outcome: an *OutcomeError when it did not
// complete the restore.
func (r *RemoteRestore) Wait(ctx context.Context) (ferry.RestoreOutcome, error) {
	select {
	case out, ok := <-r.outcome:
		if !ok {
			return ferry.RestoreOutcome{}, fmt.Errorf("restore job %s: stopped listening for the source site's answer", r.Job.ID)
		}
		if out.Error != "" {
			return out, &OutcomeError{Outcome: out}
		}
		return out, nil
	case <-ctx.Done():
		return ferry.RestoreOutcome{}, ctx.Err()
	}
}

// Close stops listening for the outcome.
func (r *RemoteRestore) Close() { r.stop() }

func newJobID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "restore-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// restoreFeedImage is the image key a restore's feed goes under: the
// target's name with "@restore", which no image name can hold (ImageSpec
// splits at '@'). Restore feeds thus never mix with the feeds of backups
// of the same image, which would otherwise stop each other (a new start on
// a feed subject supersedes the attempt in flight).
func restoreFeedImage(target ferry.ImageSpec) ferry.ImageSpec {
	return ferry.ImageSpec{Pool: target.Pool, Image: target.Image + "@restore"}
}

func publishJob(ctx context.Context, js jetstream.JetStream, signer *sign.Signer, job *ferry.RestoreJob) error {
	raw, err := json.Marshal(job)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(bus.Subject(bus.RestoreSubject, job.Target))
	msg.Data = raw
	if err := signer.Sign(msg); err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(job.ID), jetstream.WithExpectStream(bus.RestoreStream)); err != nil {
		return fmt.Errorf("queue restore job %s for %s: %w (does the backup site's JetStream have stream %s? ferry consumer run sets it up)", job.ID, job.Target, err, bus.RestoreStream)
	}
	return nil
}

// watchOutcome delivers the outcome of job once the source site publishes
// it, signed by a key of trust. A failure also calls onFailure, to stop an
// export in vain.
func watchOutcome(ctx context.Context, js jetstream.JetStream, job ferry.RestoreJob, trust *sign.Trust, onFailure func()) (<-chan ferry.RestoreOutcome, func(), error) {
	cons, err := js.OrderedConsumer(ctx, bus.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.Subject(bus.RestoredSubject, job.Target)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listen for the outcome of restore job %s: %w", job.ID, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, nil, fmt.Errorf("listen for the outcome of restore job %s: %w", job.ID, err)
	}
	out := make(chan ferry.RestoreOutcome, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			msg, err := msgs.Next()
			if err != nil {
				return // stopped
			}
			var o ferry.RestoreOutcome
			if trust.Verify(msg.Subject(), msg.Headers(), msg.Data()) != nil || json.Unmarshal(msg.Data(), &o) != nil || o.JobID != job.ID {
				continue // not the source site's word on this job
			}
			if o.Error != "" {
				onFailure()
			}
			out <- o
			return
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			msgs.Stop()
			<-done
		})
	}
	return out, stop, nil
}

// PublishRestoreOutcome tells the backup site how a restore job ended,
// signed by signer (nil: unsigned).
func PublishRestoreOutcome(ctx context.Context, js jetstream.JetStream, signer *sign.Signer, out ferry.RestoreOutcome) error {
	if err := publishResult(ctx, js, signer, bus.Subject(bus.RestoredSubject, out.Target.AtSnap("")), out); err != nil {
		return fmt.Errorf("publish the outcome of restore job %s: %w", out.JobID, err)
	}
	return nil
}

// publishResult publishes v as JSON on subject of the result stream,
// signed by signer (nil: unsigned).
func publishResult(ctx context.Context, js jetstream.JetStream, signer *sign.Signer, subject string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = raw
	if err := signer.Sign(msg); err != nil {
		return err
	}
	_, err = js.PublishMsg(ctx, msg, jetstream.WithExpectStream(bus.ResultStream))
	return err
}
