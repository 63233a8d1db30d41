package consumer

import (
	"errors"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
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
	if c.opts.Observer != nil {
		c.opts.Observer.BackupApplied(m, s, took)
	}
}

func (c *Consumer) observeFailed(m *ferry.Manifest, err error, final bool) {
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
