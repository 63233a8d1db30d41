package publisher

import (
	"context"
	"errors"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Observer learns the outcome of each backup attempt; internal/metrics
// implements it. Calls come from the goroutine that ran the backup.
type Observer interface {
	BackupSent(m *ferry.Manifest, s ferry.BackupStats)
	SendFailed(img ferry.ImageSpec, reason string)
}

// Failure reasons, a small fixed set so they can label metrics.
const (
	ReasonLineage  = "lineage"   // refused until --resync (ErrLineage)
	ReasonNotFound = "not_found" // the image or snapshot is gone from the source
	ReasonOther    = "other"     // Ceph or NATS trouble; the log line says which
)

// Reasons lists the failure reasons; the metrics export each at zero.
func Reasons() []string { return []string{ReasonLineage, ReasonNotFound, ReasonOther} }

func (p *Publisher) observe(ctx context.Context, ev ferry.SnapshotEvent, s *Sent, err error) {
	switch {
	case p.observer == nil:
	case err == nil:
		p.observer.BackupSent(&s.Manifest, s.Stats)
	case errors.Is(err, ErrAlreadyConfirmed) || ctx.Err() != nil:
		// Nothing failed: the work was done before, or we are shutting down.
	default:
		p.observer.SendFailed(ev.Image.AtSnap(""), failureReason(err))
	}
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, ErrLineage):
		return ReasonLineage
	case errors.Is(err, ceph.ErrNotFound):
		return ReasonNotFound
	default:
		return ReasonOther
	}
}
