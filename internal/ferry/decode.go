package ferry

import "encoding/json"

// Decoders of the messages that cross the bus. Each refuses, as ErrInvalid,
// what its reader could not act on, so a forged or damaged message is
// dropped with a clear error instead of being half applied. Extents are
// checked as they are read (ExtentCheck).

// maxMissingChunks bounds the chunks one failure may ask to send again: a
// consumer reports one bad chunk per failure.
const maxMissingChunks = 1024

// DecodeRestoreJob parses a restore job: it must name the job, a backup
// snapshot, a target image (without a snapshot) and its feed.
func DecodeRestoreJob(raw []byte) (RestoreJob, error) {
	var j RestoreJob
	if err := json.Unmarshal(raw, &j); err != nil {
		return RestoreJob{}, Invalid("restore job does not parse: %v", err)
	}
	switch {
	case j.ID == "":
		return j, Invalid("restore job without an id")
	case !named(j.Snapshot) || j.Snapshot.Snap == "":
		return j, Invalid("restore job %s: the backup snapshot %q is not POOL/IMAGE@SNAP", j.ID, j.Snapshot)
	case !named(j.Target) || j.Target.Snap != "":
		return j, Invalid("restore job %s: the target %q is not POOL/IMAGE", j.ID, j.Target)
	case j.FeedSeq == 0 || j.FeedAttempt == "":
		return j, Invalid("restore job %s names no feed", j.ID)
	}
	return j, nil
}

// Validate checks what a backup result promises its reader: it names the
// backup and the snapshot, and a result that asks for chunks asks for at
// most maxMissingChunks, each by its address. Its kind and subject are
// bus.DecodeResult's to check.
func (r *BackupResult) Validate() error {
	switch {
	case r.BackupID == "":
		return Invalid("result without a backup id")
	case !named(r.Image) || r.Image.Snap == "":
		return Invalid("result of %s: the image %q is not POOL/IMAGE@SNAP", r.BackupID, r.Image)
	case len(r.MissingChunks) > maxMissingChunks:
		return Invalid("result of %s asks for %d chunks, more than %d", r.BackupID, len(r.MissingChunks), maxMissingChunks)
	}
	for _, h := range r.MissingChunks {
		if !IsChunkHash(h) {
			return Invalid("result of %s asks for chunk %.80q, which is not a chunk address", r.BackupID, h)
		}
	}
	return nil
}

// named tells whether spec names a pool and an image.
func named(spec ImageSpec) bool { return spec.Pool != "" && spec.Image != "" }
