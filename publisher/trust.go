package publisher

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// The source site decides what it may do, whatever a message says: it
// exports only Ferry's snapshots (named ferry-*) of images in its pools,
// acts on backup results only when the backup site signed them
// (Options.Trust), and applies a restore job only when a restore key
// signed it (Options.RestoreTrust). Snapshot events come from the source
// domain, where only the agent, the hooks and ferry backup publish.

// ErrNotExported: the publisher refuses to export the snapshot named.
var ErrNotExported = errors.New("not a snapshot this site exports")

// exportable refuses a snapshot that is not Ferry's, or of an image outside
// the configured pools: a forged event must not make the publisher ship
// any image it can read.
func (p *Publisher) exportable(snap ferry.ImageSpec) error {
	if !ferry.IsFerrySnapshot(snap.Snap) {
		return fmt.Errorf("%w: %s is not a snapshot Ferry took (its name does not start with %s); back up with ferry backup or the agent", ErrNotExported, snap, ferry.SnapshotPrefix)
	}
	if len(p.pools) > 0 && !slices.Contains(p.pools, snap.Pool) {
		return fmt.Errorf("%w: %s is in pool %s, which this publisher does not back up (its pools: %v); add it to publisher.pools if it should", ErrNotExported, snap, snap.Pool, p.pools)
	}
	return nil
}
