package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// The backup site decides what it may do, whatever a message says:
//
//   - a manifest is acted on only when it is signed by a source site key
//     this site trusts (Options.Trust), and names the image its subject names;
//   - it writes only images in its pools (Options.Pools), and only images
//     it created: a backup image carries its source image id in the image's
//     own metadata (ownerKey), set when the consumer creates it; an image
//     without it, or of another source image, is never written, rolled
//     back, renamed or removed on a message's word;
//   - whether an import was cut off is the image's word too (importingKey),
//     not the state bucket's, which anyone on the bus may write;
//   - no plan removes a snapshot (keepsSnapshots): a rollback only drops the
//     head's writes, a resync keeps the old image under a new name.

// Image metadata keys of a backup image.
const (
	// ownerKey holds the source image id of the backup chain the image is.
	ownerKey = "ferry.source_image_id"
	// importingKey names the backup being imported, from before the image
	// changes until the import is done.
	importingKey = "ferry.importing"
)

// ErrNotOwned: the backup site refuses to touch an image Ferry did not create.
var ErrNotOwned = errors.New("backup image not Ferry's")

// ErrNotAuthenticated: a manifest without a trusted signature.
var ErrNotAuthenticated = errors.New("manifest not authenticated")

// checkManifest verifies a manifest message and decodes it. Nothing of a
// message that fails here is acted on.
func (c *Consumer) checkManifest(msg jetstream.Msg) (ferry.Manifest, error) {
	var m ferry.Manifest
	if err := c.opts.Trust.Verify(msg.Subject(), msg.Headers(), msg.Data()); err != nil {
		// Read only to name the image in its state (refuseUnauthenticated).
		_ = json.Unmarshal(msg.Data(), &m)
		return m, fmt.Errorf("%w: %w", ErrNotAuthenticated, err)
	}
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		return m, fmt.Errorf("manifest does not parse: %w", err)
	}
	// Whether the subject names the manifest's image is bus.Refusal's to
	// say, with the names' check, right after.
	return m, nil
}

// refuseUnauthenticated records a manifest refused for its signature where
// `ferry status` shows it, when it names an image of this site: an operator
// whose keys are wrong sees why nothing is backed up. No result goes back:
// a signed give-up would make the source site drop the snapshot a forged
// manifest named.
func (c *Consumer) refuseUnauthenticated(ctx context.Context, m *ferry.Manifest, cause error) {
	source := m.Image.AtSnap("")
	if source.Pool == "" || source.Image == "" || !c.inPools(c.opts.PoolMap.Backup(source)) {
		return
	}
	st, err := c.book.Get(ctx, source)
	if err != nil {
		return
	}
	if st == nil {
		st = &ferry.ImageState{Image: source, BackupImage: c.opts.PoolMap.Backup(source)}
	}
	st.Status, st.LastError, st.LastAttempt = ferry.StatusFailed, cause.Error(), time.Now().UTC()
	if err := c.book.Put(ctx, st); err != nil {
		c.opts.Log.Error("cannot record the refusal", "image", source.String(), "error", err)
	}
}

// inPools tells whether target lies in a pool this consumer may write.
func (c *Consumer) inPools(target ferry.ImageSpec) bool {
	return len(c.opts.Pools) == 0 || slices.Contains(c.opts.Pools, target.Pool)
}

// ownership is what the backup image's metadata says of it.
type ownership struct {
	owner     string // its source image id; "": not marked
	importing string // the backup whose import was cut off; "": none
}

// owned decides whether a backup of m may touch target, from the image's
// own marks. An image that does not exist, or holds no snapshot (the head
// check of decide protects data on it), may be; otherwise the image must
// be marked as the backup of m's source image, or m must be a resync,
// which keeps it under a new name. adoptable says an unmarked image
// is an old backup image of this chain (see adopt).
func owned(m *ferry.Manifest, target ferry.ImageSpec, exists bool, snaps []string, o ownership, adoptable bool) error {
	switch {
	case !exists, o.owner == "" && len(snaps) == 0:
		return nil
	case o.owner == "" && !adoptable:
		return permanentError{fmt.Errorf("%w: %s at the backup site holds snapshots but no %s metadata: Ferry did not create it, and writes, rolls back, renames or removes only images it created; if it is a backup image of an older Ferry for source image id %s, mark it: rbd image-meta set %s %s %s",
			ErrNotOwned, target, ownerKey, m.SourceImageID, target, ownerKey, m.SourceImageID)}
	case o.owner == "":
		return nil
	case o.owner != m.SourceImageID && !m.Resync:
		return permanentError{fmt.Errorf("%w: %s at the backup site is the backup of source image id %s, not of %s (backup %s); run the backup with --resync to start a new chain (the old image is kept)",
			ErrNotOwned, target, o.owner, m.SourceImageID, m.BackupID)}
	}
	return nil
}

// adoptable: an image without marks is taken for a backup image of an older
// Ferry when every snapshot is Ferry's and the state names the same source
// image. Nobody else names snapshots ferry-*, so a message cannot make the
// consumer adopt somebody else's image.
func adoptable(st *ferry.ImageState, m *ferry.Manifest, snaps []string) bool {
	if len(snaps) == 0 || st.SourceImageID != m.SourceImageID {
		return false
	}
	for _, s := range snaps {
		if !ferry.IsFerrySnapshot(s) {
			return false
		}
	}
	return true
}

// marks reads the backup image's ownership.
func (c *Consumer) marks(target ferry.ImageSpec, exists bool) (ownership, error) {
	var o ownership
	if !exists {
		return o, nil
	}
	var err error
	if o.owner, _, err = c.ceph.Metadata(target, ownerKey); err != nil {
		return o, err
	}
	o.importing, _, err = c.ceph.Metadata(target, importingKey)
	return o, err
}

// checkOwned refuses m when target is outside this site's pools or is not
// Ferry's backup of m's source image, and returns the image's marks.
// canAdopt: an unmarked target may be an image of an older Ferry (adoptable,
// with a state on record).
func (c *Consumer) checkOwned(canAdopt bool, m *ferry.Manifest, target ferry.ImageSpec, snaps []string, exists bool, log *slog.Logger) (ownership, error) {
	if !c.inPools(target) {
		return ownership{}, permanentError{fmt.Errorf("%w: %s is in pool %s, which this backup site does not write (its pools: %v); add the pool to consumer.pools if it should",
			ErrNotOwned, target, target.Pool, c.opts.Pools)}
	}
	o, err := c.marks(target, exists)
	if err != nil {
		return o, err
	}
	adopt := o.owner == "" && canAdopt
	if err := owned(m, target, exists, snaps, o, adopt); err != nil {
		return o, err
	}
	if adopt {
		log.Warn("adopting a backup image of an older Ferry: its snapshots are all Ferry's and the state names its source image", "backup_image", target.String(), "source_image_id", m.SourceImageID)
	}
	return o, nil
}

// markImport marks target as the backup of m's source image being written
// with m, once prepare has readied it (created, rolled back or kept).
func (c *Consumer) markImport(target ferry.ImageSpec, m *ferry.Manifest) error {
	if err := c.ceph.SetMetadata(target, ownerKey, m.SourceImageID); err != nil {
		return err
	}
	return c.ceph.SetMetadata(target, importingKey, m.BackupID)
}

// unmarkImport clears the import mark once the to-snapshot exists.
func (c *Consumer) unmarkImport(target ferry.ImageSpec) error {
	return c.ceph.RemoveMetadata(target, importingKey)
}
