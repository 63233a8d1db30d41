// Package consumer is the backup site's half of a backup: it pulls
// manifests from JetStream and applies each to the backup image.
//
//	manifest -> checks (lineage, already applied, base present, crash
//	  leftovers) -> import (internal/ceph) fed by verified chunks
//	  -> to-snapshot -> state bucket -> confirmation for the source site
//
// Backups of one image are applied one at a time, in the order their bases
// allow; different images in parallel.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure a Consumer.
type Options struct {
	// Site names the backup site in states and logs.
	Site string
	// BaseWait is how long a manifest whose base snapshot is missing waits
	// for it (its predecessor may still be on its way) before it fails.
	BaseWait time.Duration
	// BaseRetry is the pause before a backup waiting for its base looks again.
	BaseRetry time.Duration
	// RetryDelay is the pause before a failed backup is tried again.
	RetryDelay time.Duration
	// PoolMap names the backup site's pool for each source pool; an image
	// keeps its name. Empty: the same pool names at both sites.
	PoolMap ferry.PoolMap
	// FeedSilence is how long a backup in flight waits for a word from its
	// publisher before this attempt is dropped.
	FeedSilence time.Duration
	// MaxAttempts bounds the tries of one manifest before it is given up.
	MaxAttempts int
	Log         *slog.Logger
	// Observer is told each attempt's outcome (metrics); nil: nobody.
	Observer Observer
	// Pools are the backup pools this consumer writes; empty: any pool.
	Pools []string
	// Trust holds the source site's public keys: manifests and extent
	// pages signed by none of them are refused. Empty: everything is
	// accepted (a setup without keys, which Run warns of).
	Trust *sign.Trust
	// Signer signs the results this site sends the source site; nil: unsigned.
	Signer *sign.Signer
	// ChunkKey opens the chunks (nil: plain SHA-256 and gzip); the
	// publisher must hold the same key.
	ChunkKey chunk.Sealer
}

func (o *Options) defaults() {
	if o.Site == "" {
		o.Site = "backup"
	}
	if o.BaseWait == 0 {
		o.BaseWait = 30 * time.Minute
	}
	if o.BaseRetry == 0 {
		o.BaseRetry = 5 * time.Second
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 30 * time.Second
	}
	if o.FeedSilence == 0 {
		o.FeedSilence = 12 * feed.AliveInterval
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 20
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Consumer applies backups to one backup cluster.
type Consumer struct {
	ceph  *ceph.Cluster
	bus   *bus.Conn
	store *chunk.Store
	book  *state.Book
	opts  Options
	works works // for the health record
}

// New opens the chunk store and the state bucket.
func New(ctx context.Context, cluster *ceph.Cluster, conn *bus.Conn, o Options) (*Consumer, error) {
	o.defaults()
	store, err := chunk.Open(ctx, conn.Backup)
	if err != nil {
		return nil, err
	}
	store.SetSealer(o.ChunkKey)
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		return nil, err
	}
	return &Consumer{ceph: cluster, bus: conn, store: store, book: book, opts: o}, nil
}

// ackWait is how long JetStream waits for an ack before redelivering; long
// imports send in-progress acks every ackWait/3.
const ackWait = 60 * time.Second

// Run pulls manifests until ctx ends: one backup at a time per image,
// images in parallel. Only one consumer of a backup site runs at a time: it
// holds the site's consumer lock, and others started for failover wait as
// standbys. Two at once could both work on one image (a publisher's new
// attempt delivered to one while the other still imports the old), and a
// rollback by one under the other's writes would make a backup that differs
// from its source.
//
// An outage of NATS is ridden out (see runHeld): the consumer tries again
// until it is back, and stops only when ctx ends, when the connection is
// closed for good, or when another consumer took its lock.
func (c *Consumer) Run(ctx context.Context) error {
	out := bus.NewOutage(c.opts.Log, "NATS at the backup site")
	for {
		err := c.runHeld(ctx, out)
		if err == nil || ctx.Err() != nil || c.bus.NC.IsClosed() || errors.Is(err, errTakenOver) {
			return err
		}
		if !out.Wait(ctx, err) {
			return nil
		}
	}
}

// errTakenOver: another consumer took this one's lock.
var errTakenOver = errors.New("a standby may have taken over; restart this consumer to stand by")

// runHeld takes the site's consumer lock and applies backups while it holds it.
func (c *Consumer) runHeld(ctx context.Context, out *bus.Outage) error {
	host, _ := os.Hostname()
	holder := fmt.Sprintf("consumer of site %s on %s, pid %d", c.opts.Site, host, os.Getpid())
	stoodBy := false
	held, release, err := bus.HoldLock(ctx, c.bus.Backup, bus.ConsumerLock, holder, func(active string) {
		out.Over()
		c.opts.Log.Info("standby: another consumer applies this site's backups; this one takes over when it stops", "active", active)
		stoodBy = true
	})
	if err != nil {
		return err
	}
	defer release()
	if from := bus.TakenOver(held); from != "" {
		c.opts.Log.Info("took the lock over at once from a consumer that is gone", "predecessor", from)
	}
	if stoodBy {
		c.opts.Log.Info("taking over: this consumer now applies the site's backups")
	}
	if c.opts.Trust.Open() {
		c.opts.Log.Warn("messages are not authenticated: no trusted source site key is configured, so anyone who can publish on the bus can have backup images written; set consumer.trusted_keys (see docs/security.md)")
	}
	err = c.run(held, out)
	cause := context.Cause(held)
	switch {
	case errors.Is(cause, bus.ErrLockNotRenewed):
		return fmt.Errorf("stopped applying backups until NATS is back: %w", cause)
	case errors.Is(cause, bus.ErrLockLost):
		return fmt.Errorf("stopped applying backups: %w (%w)", cause, errTakenOver)
	}
	return err
}

func (c *Consumer) run(ctx context.Context, out *bus.Outage) error {
	cons, err := c.bus.Backup.CreateOrUpdateConsumer(ctx, bus.ManifestStream, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerDurable,
		Description:   "Ferry consumer: applies manifests to backup images",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // the consumer gives up by itself, with a clear error
		MaxAckPending: 10000,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", bus.ConsumerDurable, bus.ManifestStream, err)
	}
	out.Over()
	// Waited for: the caller closes the Ceph connection next.
	gctx, stop := context.WithCancel(ctx)
	guarded := make(chan struct{})
	go func() { defer close(guarded); c.guardStates(gctx) }()
	defer func() { stop(); <-guarded }()
	return bus.Dispatch(ctx, cons, c.handle)
}

// handle applies one manifest message and acks, naks or terminates it.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	m, err := c.checkManifest(msg)
	if errors.Is(err, ErrNotAuthenticated) {
		c.opts.Log.Error("manifest refused: not signed by a source site key this site trusts; nothing done", "subject", msg.Subject(), "signed_by", sign.Signed(msg.Headers()), "error", err)
		c.refuseUnauthenticated(ctx, &m, err)
		_ = msg.Term()
		return
	}
	if err != nil {
		c.opts.Log.Error("manifest does not parse; dropping it", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	if err := bus.Refusal(msg.Subject(), m.Image, m.Validate(), bus.ManifestSubject); err != nil {
		c.refuse(ctx, msg, &m, err)
		return
	}
	meta, err := msg.Metadata()
	attempt := 1
	if err == nil {
		attempt = int(meta.NumDelivered)
	}
	log := c.opts.Log.With("image", m.Image.AtSnap("").String(), "snapshot", m.ToSnap, "backup_id", m.BackupID)
	start := time.Now()
	c.workStarted(&m, attempt)
	stop := bus.KeepAlive(msg, ackWait/3)
	end, err := c.apply(ctx, &m)
	stop()
	var wait *waitError
	var gone feedGoneError
	var sup supersededError
	switch {
	case err == nil:
		c.observeApplied(&m, end.Stats, time.Since(start))
		_ = msg.DoubleAck(ctx)
	case errors.As(err, &sup):
		log.Info("backup superseded by a newer one; dropped, nothing done", "reason", err)
		_ = msg.Term()
	case ctx.Err() != nil:
		// Shutting down: hand the message back at once. The state records
		// the cut-off import, so whoever takes it next rolls back first.
		c.workEnded(&m)
		_ = msg.Nak()
	case errors.As(err, &wait) && time.Since(m.Created) < c.opts.BaseWait:
		log.Info("backup waits for its base", "reason", err)
		c.workPaused(&m, health.PhaseWaiting, err, wait.delay)
		_ = msg.NakWithDelay(wait.delay)
	case errors.As(err, &gone):
		log.Warn("backup attempt dropped; the publisher's next attempt applies it", "error", err)
		c.observeFailed(&m, err, false)
		c.fail(ctx, &m, err, false)
		_ = msg.Term()
	case errors.Is(err, ferry.ErrInvalid):
		// The same input fails the same way every time: no retries.
		err = fmt.Errorf("backup %s is invalid and given up, not retried: %w; the next backup of the image sends it anew (if this repeats, run the backup with --resync)", m.BackupID, err)
		fallthrough
	case isPermanent(err) || attempt >= c.opts.MaxAttempts || errors.As(err, &wait):
		log.Error("backup given up", "attempt", attempt, "error", err)
		c.observeFailed(&m, err, true)
		c.fail(ctx, &m, err, true)
		_ = msg.Term()
	default:
		log.Warn("backup failed; will retry", "attempt", attempt, "error", err)
		c.observeFailed(&m, err, false)
		// On record from the first attempt: ferry status shows it at once.
		c.fail(ctx, &m, err, false)
		_ = msg.NakWithDelay(c.opts.RetryDelay)
	}
}

// waitError: the manifest cannot be applied yet (its base has not arrived).
type waitError struct {
	msg   string
	delay time.Duration
}

func (e *waitError) Error() string { return e.msg }

// permanentError: retrying cannot help; an operator must act.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Apply applies one backup to the backup site and confirms it. It is
// idempotent: a backup whose to-snapshot exists is confirmed again, not
// applied again, and a backup that was cut off mid-import is rolled back
// to its base and applied again.
func (c *Consumer) Apply(ctx context.Context, m *ferry.Manifest) error {
	_, err := c.apply(ctx, m)
	return err
}

// apply is Apply; it also returns what the backup's end said (nothing when
// it was applied before and only confirmed again).
func (c *Consumer) apply(ctx context.Context, m *ferry.Manifest) (ferry.BackupEnd, error) {
	var end ferry.BackupEnd
	source := m.Image.AtSnap("")
	target := c.opts.PoolMap.Backup(source) // same image name, in the mapped pool
	log := c.opts.Log.With("image", source.String(), "snapshot", m.ToSnap, "backup_id", m.BackupID)
	st, err := c.book.Get(ctx, source)
	if err != nil {
		return end, err
	}
	recorded := st != nil
	if st == nil {
		st = &ferry.ImageState{Image: source, SourceImageID: m.SourceImageID}
	}
	st.BackupImage = target
	if st.SourceImageID != m.SourceImageID && !m.Resync {
		return end, permanentError{fmt.Errorf("backup %s comes from source image id %s, but %s at the backup site continues image id %s; run the backup with --resync to start a new chain",
			m.BackupID, m.SourceImageID, target, st.SourceImageID)}
	}
	snaps, exists, err := c.backupSnapshots(target)
	if err != nil {
		return end, err
	}
	marks, err := c.checkOwned(recorded && adoptable(st, m, snaps), m, target, snaps, exists, log)
	if err != nil {
		return end, err
	}
	// Whether an import was cut off is the image's word, not the bucket's.
	st.Importing = marks.importing
	// The image's snapshots are the truth of what this site holds: a state
	// that lost some (a fault, a deleted entry) is repaired first. Only for
	// an image this site owns: checkOwned said so.
	if st, err = c.reconcile(ctx, m, st, snaps); err != nil {
		return end, err
	}
	if newer := superseded(snaps, st, m); newer != "" && !contains(snaps, m.ToSnap) {
		return end, supersededError{newer}
	}
	if contains(snaps, m.ToSnap) {
		log.Info("backup already applied; confirming again")
		if m.Complete != nil {
			end = *m.Complete
		}
		if marks.importing != "" {
			if err := c.unmarkImport(target); err != nil {
				return end, err
			}
			st.Importing = "" // its import ended: the snapshot is made
		}
		return end, c.confirm(ctx, st, m, end, snaps)
	}
	if err := c.prepare(ctx, st, m, target, snaps, exists, log); err != nil {
		return end, err
	}
	if err := c.markImport(target, m); err != nil {
		return end, err
	}
	log.Info("applying backup", "base", m.FromSnap, "in_flight", m.Complete == nil)
	start := time.Now()
	end, applied, err := c.importBackup(ctx, target, m)
	if err != nil {
		if errors.Is(err, chunk.ErrKey) {
			// Sending it again cannot help: the key files differ.
			err = permanentError{err}
		} else if ce, ok := chunkError(err); ok {
			c.reportBadChunk(ctx, m, ce)
		}
		return end, err
	}
	log.Info("backup applied", "extents", end.ExtentCount, "data_bytes", applied.DataBytes, "zero_bytes", applied.ZeroBytes,
		"seconds", time.Since(start).Seconds())
	c.recordScrub(ctx, target, m, end.ExtentPages)
	snaps, _, err = c.backupSnapshots(target)
	if err == nil {
		err = c.unmarkImport(target)
	}
	if err != nil {
		return end, err
	}
	st.Importing = ""
	return end, c.confirm(ctx, st, m, end, snaps)
}

// importBackup writes m into target, fed by the chunks as they arrive, and
// returns the backup's end: from its feed, or from m when it is complete.
func (c *Consumer) importBackup(ctx context.Context, target ferry.ImageSpec, m *ferry.Manifest) (ferry.BackupEnd, ceph.ImportStats, error) {
	header := rbddiff.Header{FromSnap: m.FromSnap, ToSnap: m.ToSnap, Size: m.Size}
	if m.Complete != nil {
		list := chunk.PageList(m.Complete.ExtentPages)
		src := chunk.NewDiffReader(ctx, c.store, header, &list)
		defer src.Close()
		applied, err := c.ceph.Import(ctx, target, src, c.progress(m))
		return *m.Complete, applied, err
	}
	if m.FeedSeq == 0 {
		return ferry.BackupEnd{}, ceph.ImportStats{}, permanentError{fmt.Errorf("manifest of %s names neither a feed nor its extent pages: it is damaged; run the backup again", m.BackupID)}
	}
	pages, err := feed.Follow(ctx, c.bus.Backup, m.Image, m.BackupID, m.FeedAttempt, m.FeedSeq, c.opts.FeedSilence, c.opts.Trust)
	if err != nil {
		return ferry.BackupEnd{}, ceph.ImportStats{}, err
	}
	defer pages.Close()
	src := chunk.NewDiffReader(ctx, c.store, header, pages)
	defer src.Close()
	applied, err := c.ceph.Import(ctx, target, src, c.progress(m))
	if err != nil {
		if isFeedGone(err) {
			err = feedGoneError{err}
		}
		return ferry.BackupEnd{}, applied, err
	}
	end := pages.End() // set: the import only ends after the feed's end
	return ferry.BackupEnd{ExtentPages: pages.Pages(), ExtentCount: end.Extents, Stats: end.Stats}, applied, nil
}

// feedGoneError: the publisher will not finish this attempt (it started
// over, gave up, or went silent). This manifest is dropped; the backup is
// applied from the publisher's next attempt, after a rollback.
type feedGoneError struct{ error }

func (e feedGoneError) Unwrap() error { return e.error }

func isFeedGone(err error) bool {
	return errors.Is(err, feed.ErrSuperseded) || errors.Is(err, feed.ErrAborted) || errors.Is(err, feed.ErrSilent)
}

// prepare makes the backup image ready for m (see decide), and records m as
// being imported (markImporting) before it changes anything, so that
// whatever it leaves behind is known to be Ferry's.
func (c *Consumer) prepare(ctx context.Context, st *ferry.ImageState, m *ferry.Manifest, target ferry.ImageSpec, snaps []string, exists bool, log *slog.Logger) error {
	p := preparer{img: c.ceph, book: c.book, retry: c.opts.BaseRetry, log: log}
	return p.prepare(ctx, st, m, target, snaps, exists)
}

// ErrHeadWritten: the backup image was written outside Ferry.
var ErrHeadWritten = errors.New("backup image written outside Ferry")

// headWrittenError refuses a backup onto a backup image whose head differs
// from its newest snapshot (newest "": has no snapshots but holds data)
// while no import of Ferry's is on record: somebody else wrote it (a
// failover or a test that used the backup image itself). Built on, the
// backup would not match its source; rolled back or removed, those writes
// would be lost. The operator decides.
func headWrittenError(target ferry.ImageSpec, newest string, change ceph.HeadChange) error {
	if newest == "" {
		return permanentError{fmt.Errorf("%w: %s at the backup site has no snapshots but holds data (%s) that no import of Ferry's wrote; Ferry will not remove it. If it is not needed, remove it (rbd rm %s); to keep it, rename it (rbd mv); then run the backup again",
			ErrHeadWritten, target, change, target)}
	}
	return permanentError{fmt.Errorf("%w: the head of %s at the backup site differs from its newest snapshot %s (%s), and no import of Ferry's made it so; an incremental on top would not match its source. If those writes are not needed (a test), run the backup with --force-rollback, which discards them; to keep them (a failover ran on this image), run it with --resync, which keeps this image as %s.pre-resync-<time> and starts a new chain",
		ErrHeadWritten, target, newest, change, target)}
}

func (c *Consumer) backupSnapshots(target ferry.ImageSpec) (names []string, exists bool, err error) {
	snaps, err := c.ceph.Snapshots(target)
	if errors.Is(err, ceph.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	return names, true, nil
}

func (c *Consumer) confirm(ctx context.Context, st *ferry.ImageState, m *ferry.Manifest, end ferry.BackupEnd, snaps []string) error {
	st.Confirmed = ferrySnapshots(snaps)
	st.LastSnapshot = m.ToSnap
	st.LastSuccess = time.Now().UTC()
	st.LastAttempt = st.LastSuccess
	st.Consistency = m.Consistency
	st.Status = ferry.StatusOK
	st.LastError = ""
	st.LastStats = end.Stats
	st.SourceImageID = m.SourceImageID
	c.recordSnapInfo(c.opts.PoolMap.Backup(m.Image.AtSnap("")), m, end, snaps)
	if err := c.book.Put(ctx, st); err != nil {
		return err
	}
	c.purgeFeeds(ctx, m)
	return c.publishResult(ctx, ferry.ResultConfirmed, m, nil, nil)
}

// purgeFeeds drops the image's feed messages older than m's: backups
// before it are confirmed. m's own feed stays until the next backup, for a
// redelivery of m.
func (c *Consumer) purgeFeeds(ctx context.Context, m *ferry.Manifest) {
	if m.FeedSeq == 0 {
		return
	}
	// Another manifest of the image still waiting may have its feed below
	// this one's: a backup of a newer snapshot sent before this one was
	// sent again (a restarted publisher). Its feed must stay; the next
	// confirmation purges what is left, and feeds age out anyway.
	if waiting, err := c.manifestsWaiting(ctx, m.Image.AtSnap("")); err != nil || waiting > 1 {
		return
	}
	stream, err := c.bus.Backup.Stream(ctx, bus.PageStream)
	if err == nil {
		err = stream.Purge(ctx, jetstream.WithPurgeSubject(bus.Subject(bus.PageSubject, m.Image.AtSnap(""))), jetstream.WithPurgeSequence(m.FeedSeq))
	}
	if err != nil {
		c.opts.Log.Warn("cannot purge old extent page feeds (they age out anyway)", "image", m.Image.AtSnap("").String(), "error", err)
	}
}

// manifestsWaiting counts the manifests of image in the work queue, the one
// being applied included (it is acknowledged after its confirmation).
func (c *Consumer) manifestsWaiting(ctx context.Context, image ferry.ImageSpec) (uint64, error) {
	stream, err := c.bus.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		return 0, err
	}
	subject := bus.Subject(bus.ManifestSubject, image)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// fail records a failed attempt in the state (and, when final, tells the source).
func (c *Consumer) fail(ctx context.Context, m *ferry.Manifest, cause error, final bool) {
	source := m.Image.AtSnap("")
	if err := c.recordFailure(ctx, m, cause); err != nil {
		c.opts.Log.Error("cannot record failure", "image", source.String(), "snapshot", m.ToSnap, "backup_id", m.BackupID, "error", err)
	}
	if final {
		_ = c.publishResult(ctx, ferry.ResultGivenUp, m, cause, nil)
	}
}

// reportBadChunk removes a missing or corrupt chunk and asks the source
// site to send it again; nothing of it was written.
func (c *Consumer) reportBadChunk(ctx context.Context, m *ferry.Manifest, ce *chunk.Error) {
	c.opts.Log.Error("bad chunk; asking the source site to send it again", "image", m.Image.AtSnap("").String(), "snapshot", m.ToSnap, "backup_id", m.BackupID, "chunk", ce.Hash, "error", ce.Err)
	// Removing it from the index too (a missing chunk may still be listed
	// there) makes the publisher's next attempt send it.
	if err := c.store.Remove(ctx, ce.Hash); err != nil {
		c.opts.Log.Error("cannot remove bad chunk", "chunk", ce.Hash, "error", err)
	}
	_ = c.publishResult(ctx, ferry.ResultChunksMissing, m, ce, []string{ce.Hash})
}

// publishResult tells the source site about m: its kind, why (cause) and
// the chunks to send again.
func (c *Consumer) publishResult(ctx context.Context, kind ferry.ResultKind, m *ferry.Manifest, cause error, missing []string) error {
	sent := *m
	sent.Complete = nil // the pages are no news to the source site
	r := ferry.BackupResult{Kind: kind, BackupID: m.BackupID, Image: m.Image, MissingChunks: missing, Manifest: &sent, Time: time.Now().UTC()}
	if cause != nil {
		r.Error = cause.Error()
	}
	return bus.PublishResult(ctx, c.bus.Backup, c.opts.Signer, r)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// chunkError returns the chunk at fault in err, if any.
func chunkError(err error) (*chunk.Error, bool) {
	var ce *chunk.Error
	ok := errors.As(err, &ce)
	return ce, ok
}
