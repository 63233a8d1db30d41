package ferry

import (
	"fmt"
	"time"
)

// RestoreJob asks the source site to write a backup snapshot into one of its
// images: `ferry restore ... --to source:POOL/IMAGE` at the backup site
// publishes it, and the source site's publisher daemon applies it. The data
// travels as a diff stored in the backup site's chunk store, its extent
// pages on a feed (package feed), like a backup in the other direction.
type RestoreJob struct {
	ID       string    `json:"id"`       // unique per run of ferry restore; also the Nats-Msg-Id
	Snapshot ImageSpec `json:"snapshot"` // the backup snapshot, POOL/IMAGE@SNAP at the backup site
	Target   ImageSpec `json:"target"`   // the image to write at the source site (no snap)
	Size     uint64    `json:"size"`     // of the backup snapshot
	// FromSnap, when set, makes the restore incremental (failback): the
	// diff holds only the changes FromSnap -> Snapshot.Snap, and the target
	// must hold FromSnap with FromSnapSize bytes, as the backup image does.
	FromSnap      string `json:"from_snap,omitempty"`
	FromSnapSize  uint64 `json:"from_snap_size,omitempty"`
	ForceRollback bool   `json:"force_rollback,omitempty"`
	Protected     bool   `json:"protected,omitempty"` // the backup snapshot is protected: so is the restored one
	// BackupFSID is the backup cluster's fsid: the source site refuses to
	// write into the backup image itself when both are one cluster.
	BackupFSID string `json:"backup_fsid"`
	// The extent pages follow on the feed from FeedSeq on (attempt
	// FeedAttempt), as the backup site stores them.
	FeedSeq     uint64    `json:"feed_seq"`
	FeedAttempt string    `json:"feed_attempt"`
	Created     time.Time `json:"created"`
}

// RestoreOutcome is the source site's answer to a RestoreJob: done, or
// failed with an error that names the image and the way out.
type RestoreOutcome struct {
	JobID  string    `json:"job_id"`
	Target ImageSpec `json:"target"` // with Snap set when the restore created a snapshot
	Error  string    `json:"error,omitempty"`
	// Refused: the checks stopped the restore before anything was written.
	Refused         bool      `json:"refused,omitempty"`
	RolledBack      bool      `json:"rolled_back,omitempty"` // the target's head was rolled back to FromSnap
	DataBytes       uint64    `json:"data_bytes"`            // written at the source site
	ZeroBytes       uint64    `json:"zero_bytes"`            // zeroed there
	DurationSeconds float64   `json:"duration_seconds"`      // of the apply at the source site
	Time            time.Time `json:"time"`
}

// RestoreState is where a restore job is on its way.
type RestoreState string

const (
	RestoreQueued  RestoreState = "queued"  // published; the source site has not taken it yet
	RestoreRunning RestoreState = "running" // the source site's publisher applies it
	RestoreDone    RestoreState = "done"
	RestoreFailed  RestoreState = "failed"
)

// RestoreStatus is a restore job's state, for `ferry restore status`:
// `ferry restore` records it queued, the source site's publisher running
// (with its progress), done or failed (with the outcome). The newest one
// is the job's state now.
type RestoreStatus struct {
	JobID    string       `json:"job_id"`
	State    RestoreState `json:"state"`
	Snapshot ImageSpec    `json:"snapshot"`
	Target   ImageSpec    `json:"target"`
	// Progress of a running job: bytes of the diff applied, of a total.
	DoneBytes  uint64 `json:"done_bytes,omitempty"`
	TotalBytes uint64 `json:"total_bytes,omitempty"`
	// Outcome of a done or failed job.
	Outcome *RestoreOutcome `json:"outcome,omitempty"`
	Time    time.Time       `json:"time"`
}

// ValidateJobID checks that id can name a restore job's status subject:
// letters, digits, '-' and '_' (ids are restore-<time>-<hex>).
func ValidateJobID(id string) error {
	ok := id != "" && len(id) <= 128
	for _, r := range id {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}
	if !ok {
		return fmt.Errorf("restore job id %q: want the id ferry restore printed, e.g. restore-20260101T000000Z-0123456789ab", Printable(id))
	}
	return nil
}
