package consumer

import (
	"github.com/ferry-dr/ferry/internal/ferry"
)

// recordSnapInfo keeps on the backup image what m's snapshot is (its
// consistency, the bytes its backup changed), for ferry ls. snaps are the
// image's snapshots now: records of removed ones are dropped. Best effort:
// a snapshot without its record is listed with its consistency unknown.
func (c *Consumer) recordSnapInfo(target ferry.ImageSpec, m *ferry.Manifest, end ferry.BackupEnd, snaps []string) {
	raw, _, err := c.ceph.Metadata(target, ferry.SnapInfoKey)
	if err == nil {
		infos := ferry.DecodeSnapInfos(raw)
		info := infos[m.ToSnap]
		info.Consistency, info.Full = m.Consistency, m.FromSnap == ""
		if end.Stats != (ferry.BackupStats{}) { // the backup's end is known, with its figures
			changed := end.Stats.ChangedBytes
			info.ChangedBytes = &changed
		}
		infos[m.ToSnap] = info
		err = c.ceph.SetMetadata(target, ferry.SnapInfoKey, infos.Encode(snaps))
	}
	if err != nil {
		c.opts.Log.Warn("cannot record the snapshot's consistency on the backup image; ferry ls shows it as unknown",
			"backup_image", target.AtSnap(m.ToSnap).String(), "error", err)
	}
}
