package ferry

import (
	"fmt"
	"strings"
	"time"
)

// SnapshotPrefix starts the name of every snapshot Ferry creates. Pruning
// only ever touches snapshots with this prefix.
const SnapshotPrefix = "ferry-"

const snapshotTimeFormat = "20060102T150405.000000000Z"

// NewSnapshotName returns a sortable, unique Ferry snapshot name.
func NewSnapshotName(t time.Time) string {
	return SnapshotPrefix + t.UTC().Format(snapshotTimeFormat)
}

// IsFerrySnapshot tells whether Ferry created the snapshot name.
func IsFerrySnapshot(name string) bool { return strings.HasPrefix(name, SnapshotPrefix) }

// Consistency of a snapshot, as the hook took it.
type Consistency string

const (
	Quiesced        Consistency = "quiesced" // guest filesystems frozen through the guest agent
	CrashConsistent Consistency = "crash"    // taken without a freeze
)

// SnapshotEvent says that a snapshot of an image exists and should be backed
// up. The hooks publish one per disk; `ferry backup` publishes one too.
type SnapshotEvent struct {
	Image       ImageSpec   `json:"image"` // with Snap set
	Consistency Consistency `json:"consistency,omitempty"`
	Resync      bool        `json:"resync,omitempty"` // force a full backup into a fresh backup image
	// ForceRollback lets the backup site discard writes made to the backup
	// image outside Ferry (it refuses to apply on top of them otherwise).
	ForceRollback bool      `json:"force_rollback,omitempty"`
	Created       time.Time `json:"created"`
	// Optional OpenStack and libvirt identity of the disk.
	VolumeID   string `json:"volume_id,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	// Set by the hypervisor hooks: the libvirt domain, every image snapshotted
	// together with this one (same snapshot name, one freeze), and how long
	// the guest's filesystems were frozen (0 when not frozen).
	Domain         string        `json:"domain,omitempty"`
	Disks          []string      `json:"disks,omitempty"`
	FreezeDuration time.Duration `json:"freeze_duration_ns,omitempty"`
}

// Extent is one range of a backup. Data extents name the chunk holding their
// bytes and where in it they start; zero extents carry nothing.
type Extent struct {
	Offset   uint64 `json:"o"`
	Length   uint64 `json:"l"`
	Zero     bool   `json:"z,omitempty"`
	Chunk    string `json:"c,omitempty"`  // hex SHA-256 of the chunk's raw bytes
	ChunkOff uint64 `json:"co,omitempty"` // offset of this extent's bytes in the chunk
}

// Manifest is the message that announces one backup: the diff from
// FromSnap to ToSnap of a source image, as extents whose data lives in
// content-addressed chunks. It is sent before the data, and neither side
// changes it afterwards: what only the end of the sending brings is a
// BackupEnd.
type Manifest struct {
	BackupID      string    `json:"backup_id"` // also the Nats-Msg-Id: a retry is never applied twice
	Image         ImageSpec `json:"image"`     // source image, Snap = ToSnap
	SourceImageID string    `json:"source_image_id"`
	FromSnap      string    `json:"from_snap,omitempty"` // "" = full backup
	ToSnap        string    `json:"to_snap"`
	Size          uint64    `json:"size"`
	ChunkSize     uint64    `json:"chunk_size"`
	// The extent pages follow on the feed (package feed) from stream
	// sequence FeedSeq on, and the feed's end brings the BackupEnd.
	// FeedAttempt names the publisher's try of this backup.
	FeedSeq     uint64 `json:"feed_seq,omitempty"`
	FeedAttempt string `json:"feed_attempt,omitempty"`
	// Complete, in place of a feed, carries the BackupEnd in a manifest
	// sent again after its feed is gone (by hand, or by a test): it is
	// applied while its chunks last.
	Complete    *BackupEnd  `json:"complete,omitempty"`
	Consistency Consistency `json:"consistency,omitempty"`
	Resync      bool        `json:"resync,omitempty"`
	// ForceRollback: see SnapshotEvent.
	ForceRollback bool      `json:"force_rollback,omitempty"`
	Created       time.Time `json:"created"`
	VolumeID      string    `json:"volume_id,omitempty"`
	InstanceID    string    `json:"instance_id,omitempty"`
}

// MessageID is the manifest's Nats-Msg-Id: a retried publish of the same
// try is dropped; a new try (after a crash, or to resend lost chunks) is not.
func (m *Manifest) MessageID() string { return m.BackupID + "#" + m.FeedAttempt }

// BackupEnd is what the end of a backup's feed adds to its manifest, once
// every page is out.
type BackupEnd struct {
	// ExtentPages address the pages (chunks of JSON []Extent) that list the
	// backup's extents in ascending order.
	ExtentPages []string `json:"extent_pages"`
	ExtentCount int      `json:"extent_count"`
	// Figures of the publisher's side, for the summary and the status.
	Stats BackupStats `json:"stats"`
}

// BackupStats are the figures of one backup.
type BackupStats struct {
	ChangedBytes    uint64  `json:"changed_bytes"`     // bytes the diff covers (data and zeros)
	DataBytes       uint64  `json:"data_bytes"`        // bytes of data read from the source
	Chunks          int     `json:"chunks"`            // data chunks the backup references
	ChunksSent      int     `json:"chunks_sent"`       // data chunks that were not at the backup site yet
	RawBytesSent    uint64  `json:"raw_bytes_sent"`    // bytes of the data chunks sent, before compression
	BytesSent       uint64  `json:"bytes_sent"`        // compressed bytes that crossed the link: data chunks and extent pages
	ExtentBytesSent uint64  `json:"extent_bytes_sent"` // of which extent pages (the manifest's extent list)
	DurationSeconds float64 `json:"duration_seconds"`  // publisher side
}

// BackupID returns the id of the backup of image (whose librbd id is
// imageID) to toSnap: stable across retries of the same backup.
func BackupID(imageID string, spec ImageSpec, toSnap string) string {
	return fmt.Sprintf("%s/%s/%s@%s", imageID, spec.Pool, spec.Image, toSnap)
}

// Status of the last backup attempt of an image.
type Status string

const (
	StatusOK      Status = "ok"
	StatusFailed  Status = "failed"
	StatusRunning Status = "running"
)

// ImageState is what the backup site knows of one image; the consumer keeps
// it in a key-value bucket, the publisher reads it to choose the base of the
// next backup, and `ferry status` shows it.
type ImageState struct {
	Image         ImageSpec `json:"image"` // source image (no snap)
	SourceImageID string    `json:"source_image_id"`
	BackupImage   ImageSpec `json:"backup_image"`
	// Confirmed lists the snapshots the backup image holds, oldest first.
	Confirmed    []string    `json:"confirmed"`
	LastSnapshot string      `json:"last_snapshot,omitempty"`
	LastSuccess  time.Time   `json:"last_success,omitempty"`
	Consistency  Consistency `json:"consistency,omitempty"`
	Status       Status      `json:"status"`
	LastError    string      `json:"last_error,omitempty"`
	LastAttempt  time.Time   `json:"last_attempt"`
	LastStats    BackupStats `json:"last_stats"`
	// Importing names the backup being written, so a consumer that died
	// mid-import knows to roll back before it applies it again.
	Importing string `json:"importing,omitempty"`
	VolumeID  string `json:"volume_id,omitempty"`
}

// HasConfirmed tells whether the backup site holds snapshot name.
func (s *ImageState) HasConfirmed(name string) bool {
	for _, c := range s.Confirmed {
		if c == name {
			return true
		}
	}
	return false
}

// ResultKind says what a backup result tells the source site. The subject
// it travels on says the same (ferry.confirmed.* for confirmations,
// ferry.failed.* for the other two).
type ResultKind string

const (
	// ResultConfirmed: the backup site holds the backup's snapshot.
	ResultConfirmed ResultKind = "confirmed"
	// ResultGivenUp: the backup site will not apply the backup; Error says why.
	ResultGivenUp ResultKind = "given_up"
	// ResultChunksMissing: the backup site found MissingChunks missing or
	// corrupt and removed them; it applies the backup once they are sent again.
	ResultChunksMissing ResultKind = "chunks_missing"
)

// BackupResult is the backup site's word on one backup, for the publisher
// (pruning, resending) and for `ferry backup` waiting on its backup.
type BackupResult struct {
	Kind     ResultKind `json:"kind"`
	BackupID string     `json:"backup_id"`
	Image    ImageSpec  `json:"image"` // source image, Snap = the backup's snapshot
	Error    string     `json:"error,omitempty"`
	// MissingChunks lists the chunks of a ResultChunksMissing.
	MissingChunks []string `json:"missing_chunks,omitempty"`
	// Manifest is the backup as it was sent, so that a resend sends it as
	// it was (consistency, volume, resync...). Results of an older Ferry
	// lack it.
	Manifest *Manifest `json:"manifest,omitempty"`
	Time     time.Time `json:"time"`
}
