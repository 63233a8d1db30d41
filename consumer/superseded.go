package consumer

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// supersededError: the backup image already holds a newer snapshot of the
// same chain than the manifest's; applying it would only roll the image
// back to an older base.
type supersededError struct{ newer string }

func (e supersededError) Error() string {
	return fmt.Sprintf("the backup image already holds the newer snapshot %s", e.newer)
}

// superseded returns the newest of snaps (the backup image's snapshots)
// that is a newer Ferry snapshot than m's, when m continues the chain the
// image holds; "" otherwise. Ferry's snapshot names sort by time. Such
// manifests are left by publisher attempts killed mid-send whose snapshot
// was backed up by a later backup meanwhile: no attempt will ever come to
// finish them, and each waited out the feed's silence (a minute) before it
// was dropped, one after another, while the image's newer backups waited
// behind them.
func superseded(snaps []string, st *ferry.ImageState, m *ferry.Manifest) string {
	if m.Resync || !ferry.IsFerrySnapshot(m.ToSnap) || st.SourceImageID != m.SourceImageID {
		return ""
	}
	newest := ""
	for _, s := range snaps {
		if ferry.IsFerrySnapshot(s) && s > m.ToSnap && s > newest {
			newest = s
		}
	}
	return newest
}
