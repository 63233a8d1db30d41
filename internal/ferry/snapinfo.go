package ferry

import (
	"encoding/json"
	"time"
)

// SnapInfoKey is the image metadata key (rbd image-meta) under which the
// backup site keeps, on each backup image, what each of its snapshots is:
// kept with the image, `ferry ls` reads it with NATS down too. The state
// book holds the consistency of the last backup only.
const SnapInfoKey = "ferry.snapshots"

// SnapInfo is what the backup that made a snapshot of a backup image was.
type SnapInfo struct {
	Consistency Consistency `json:"consistency,omitempty"`
	// ChangedBytes is what the backup's diff covered (data and zeros);
	// nil when not known (a backup confirmed again after a restart).
	ChangedBytes *uint64 `json:"changed_bytes,omitempty"`
	Full         bool    `json:"full,omitempty"` // a full backup, the start of a chain
}

// SnapInfos maps snapshot names of one backup image to their SnapInfo.
type SnapInfos map[string]SnapInfo

// DecodeSnapInfos reads the value of SnapInfoKey. What cannot be read is
// left out: the records only describe restore points, they never decide
// anything, so a damaged value costs the descriptions, not a backup.
func DecodeSnapInfos(raw string) SnapInfos {
	m := SnapInfos{}
	if raw != "" && json.Unmarshal([]byte(raw), &m) != nil {
		return SnapInfos{}
	}
	return m
}

// Encode returns the value of SnapInfoKey holding the records of the
// snapshots in keep only: those of removed snapshots go, so the value
// stays as long as the image's list of snapshots.
func (m SnapInfos) Encode(keep []string) string {
	kept := SnapInfos{}
	for _, name := range keep {
		if info, ok := m[name]; ok {
			kept[name] = info
		}
	}
	raw, _ := json.Marshal(kept) // a map of plain fields always marshals
	return string(raw)
}

// SnapshotTime is when the source snapshot name (NewSnapshotName) was taken.
func SnapshotTime(name string) (time.Time, bool) {
	if !IsFerrySnapshot(name) {
		return time.Time{}, false
	}
	t, err := time.Parse(snapshotTimeFormat, name[len(SnapshotPrefix):])
	return t, err == nil
}
