package consumer

import (
	"context"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
)

// recordScrub stores the scrub record of a backup just applied to target:
// its chunks and where their extents landed, read again from the backup's
// extent pages (still in the chunk store right after the import). It is best
// effort: the backup is in place either way, and a snapshot without a record
// is reported by `ferry scrub` as not checkable, never as corrupt.
func (c *Consumer) recordScrub(ctx context.Context, target ferry.ImageSpec, m *ferry.Manifest, pages []string) {
	if err := c.writeScrubRecord(ctx, target, m, pages); err != nil {
		c.opts.Log.Error("cannot store the scrub record; ferry scrub will skip this snapshot",
			"image", target.String(), "snapshot", m.ToSnap, "backup_id", m.BackupID, "error", err)
	}
}

func (c *Consumer) writeScrubRecord(ctx context.Context, target ferry.ImageSpec, m *ferry.Manifest, pages []string) error {
	records, err := state.OpenScrubRecords(ctx, c.bus.Backup)
	if err != nil {
		return err
	}
	r := &state.ScrubRecord{Image: target.AtSnap(m.ToSnap), BackupID: m.BackupID, Created: time.Now().UTC(),
		ChunkKey: c.store.Sealer().KeyID()}
	for _, page := range pages {
		extents, err := c.store.GetPage(ctx, page)
		if err != nil {
			return err
		}
		for _, e := range extents {
			r.AddExtent(e)
		}
	}
	return records.Put(ctx, r)
}
