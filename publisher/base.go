package publisher

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// ErrAlreadyConfirmed means the backup site already holds the snapshot.
var ErrAlreadyConfirmed = errors.New("snapshot already backed up")

// ErrLineage means the backup image's history does not continue the source
// image's: an incremental would be wrong, so Ferry refuses until --resync.
var ErrLineage = errors.New("backup lineage does not match the source")

// chooseBase returns the snapshot the next backup of toSnap starts from: the
// newest snapshot older than toSnap that the backup site has confirmed and
// the source still has, or "" for a full backup. sourceSnaps are the source
// image's snapshot names, oldest first. Only Ferry's snapshots can be a base:
// an operator's snapshot of the same name at both sites holds whatever each
// site had when it was taken, not the same data.
func chooseBase(state *ferry.ImageState, sourceImageID string, sourceSnaps []string, toSnap string, resync bool) (string, error) {
	if resync || state == nil || len(state.Confirmed) == 0 {
		return "", nil
	}
	img := state.Image.String()
	if state.SourceImageID != sourceImageID {
		return "", fmt.Errorf("%w: the backup site holds backups of %s from image id %s, but %s now has id %s (it was recreated); run the backup with --resync to start a new chain (the old backup image is kept under another name)",
			ErrLineage, img, state.SourceImageID, img, sourceImageID)
	}
	if state.HasConfirmed(toSnap) {
		return "", fmt.Errorf("%s@%s: %w", img, toSnap, ErrAlreadyConfirmed)
	}
	to := -1
	for i, s := range sourceSnaps {
		if s == toSnap {
			to = i
		}
	}
	if to < 0 {
		return "", fmt.Errorf("snapshot %s@%s does not exist on the source", img, toSnap)
	}
	for i := to - 1; i >= 0; i-- {
		if ferry.IsFerrySnapshot(sourceSnaps[i]) && state.HasConfirmed(sourceSnaps[i]) {
			return sourceSnaps[i], nil
		}
	}
	return "", fmt.Errorf("%w: the backup site holds %s of %s, but the source has none of them before %s (it has %s); run the backup with --resync to start a new chain",
		ErrLineage, strings.Join(state.Confirmed, ", "), img, toSnap, strings.Join(sourceSnaps[:to], ", "))
}

// prunable returns the source snapshots that may be deleted once the backup
// site holds the snapshots in confirmed: Ferry's own snapshots older than the
// newest confirmed one, which stays as the base of the next incremental.
// Older ones that were never confirmed go too: their backups failed or were
// cut off (a `ferry backup` killed mid-send), and none will ever be a base,
// since every later backup starts from the newest confirmed snapshot or a
// newer one. Unconfirmed snapshots after the base (a backup may still be on
// its way) and snapshots Ferry did not create are never returned.
func prunable(sourceSnaps []string, confirmed func(string) bool) []string {
	base := -1
	for i, s := range sourceSnaps {
		if ferry.IsFerrySnapshot(s) && confirmed(s) {
			base = i
		}
	}
	var out []string
	for i := 0; i < base; i++ {
		if s := sourceSnaps[i]; ferry.IsFerrySnapshot(s) {
			out = append(out, s)
		}
	}
	return out
}
