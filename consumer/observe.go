package consumer

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/progress"
)

// Observer learns the outcome of each attempt to apply a backup;
// internal/metrics implements it. Calls come from the image's goroutine.
type Observer interface {
	BackupApplied(m *ferry.Manifest, s ferry.BackupStats, took time.Duration)
	ApplyFailed(m *ferry.Manifest, reason string, final bool)
}

// Failure reasons, a small fixed set so they can label metrics.
const (
	ReasonBaseMissing = "base_missing" // the base never arrived within BaseWait
	ReasonRefused     = "refused"      // lineage or mixed chains: an operator must act
	ReasonBadChunk    = "bad_chunk"    // a chunk was missing or corrupt; the source resends it
	ReasonOther       = "other"        // Ceph or NATS trouble; the log line says which
)

// Reasons lists the failure reasons; the metrics export each at zero.
func Reasons() []string {
	return []string{ReasonBaseMissing, ReasonRefused, ReasonBadChunk, ReasonOther}
}

func (c *Consumer) observeApplied(m *ferry.Manifest, s ferry.BackupStats, took time.Duration) {
	c.workEnded(m)
	if c.opts.Observer != nil {
		c.opts.Observer.BackupApplied(m, s, took)
	}
}

func (c *Consumer) observeFailed(m *ferry.Manifest, err error, final bool) {
	if final {
		c.workEnded(m)
	} else {
		c.workPaused(m, health.PhaseRetrying, err, c.opts.RetryDelay)
	}
	if c.opts.Observer != nil {
		c.opts.Observer.ApplyFailed(m, failureReason(err), final)
	}
}

func failureReason(err error) string {
	var wait *waitError
	switch {
	case errors.As(err, &wait):
		return ReasonBaseMissing
	case isPermanent(err):
		return ReasonRefused
	default:
		if _, ok := chunkError(err); ok {
			return ReasonBadChunk
		}
		return ReasonOther
	}
}

// works is what the consumer is doing, for its health record: one entry
// per image whose backup it applies, waits on or will try again, dropped
// when the backup is applied or given up.
type works struct {
	mu sync.Mutex
	m  map[string]*work
}

type work struct {
	health.Work
	applied atomic.Uint64 // bytes written by the attempt, counted by the import
}

// SetTotal and Add make a work the import's progress.Reporter.
func (w *work) SetTotal(uint64) {}
func (w *work) Add(n uint64)    { w.applied.Add(n) }

// Work lists the backups the consumer works on, for its health record.
func (c *Consumer) Work() []health.Work {
	c.works.mu.Lock()
	defer c.works.mu.Unlock()
	out := make([]health.Work, 0, len(c.works.m))
	for _, w := range c.works.m {
		hw := w.Work
		hw.BytesDone = w.applied.Load()
		out = append(out, hw)
	}
	return out
}

// workStarted records the start of attempt at m.
func (c *Consumer) workStarted(m *ferry.Manifest, attempt int) {
	c.works.mu.Lock()
	defer c.works.mu.Unlock()
	if c.works.m == nil {
		c.works.m = map[string]*work{}
	}
	w := &work{Work: health.Work{Image: m.Image.AtSnap("").String(), BackupID: m.BackupID, Snapshot: m.ToSnap, Phase: health.PhaseApplying,
		Attempt: attempt, MaxAttempts: c.opts.MaxAttempts, Started: time.Now().UTC()}}
	if old := c.works.m[w.Image]; old != nil && old.BackupID == m.BackupID {
		w.LastError = old.LastError // of the attempt before
	}
	c.works.m[w.Image] = w
}

// progress is the reporter of m's import: its work, or nobody.
func (c *Consumer) progress(m *ferry.Manifest) progress.Reporter {
	c.works.mu.Lock()
	defer c.works.mu.Unlock()
	if w := c.works.m[m.Image.AtSnap("").String()]; w != nil && w.BackupID == m.BackupID {
		return w
	}
	return progress.Discard
}

// workPaused records that m's attempt ended without it being applied: the
// next one comes after delay, for the reason err.
func (c *Consumer) workPaused(m *ferry.Manifest, phase health.Phase, err error, delay time.Duration) {
	c.works.mu.Lock()
	defer c.works.mu.Unlock()
	w := c.works.m[m.Image.AtSnap("").String()]
	if w == nil || w.BackupID != m.BackupID {
		return
	}
	next := time.Now().Add(delay).UTC()
	w.Phase, w.LastError, w.NextTry = phase, err.Error(), &next
}

// workEnded drops m's work: applied, given up, or handed back.
func (c *Consumer) workEnded(m *ferry.Manifest) {
	c.works.mu.Lock()
	defer c.works.mu.Unlock()
	if w := c.works.m[m.Image.AtSnap("").String()]; w != nil && w.BackupID == m.BackupID {
		delete(c.works.m, w.Image)
	}
}
