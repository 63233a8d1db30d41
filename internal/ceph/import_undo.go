package ceph

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// ImportOrUndo is Import for a person's target: when the import fails, it
// leaves the target as it was where it can, and otherwise says exactly
// what changed. rbd import-diff leaves whatever it wrote. In turn:
//   - A diff that fails before its first extent (a bad or truncated header
//     or first record) fails before the target is resized or written.
//   - A target that does not exist is created for a full diff, and removed
//     again when the import fails.
//   - A target whose head is the content of the diff's from-snapshot
//     (HeadChangedSince), or for a full diff of its newest snapshot, is
//     rolled back to that snapshot.
//   - Any other target (one without snapshots, or with a head written
//     since the snapshot) cannot be put back: the error says how its size
//     changed and which range the import wrote into, and why.
func (c *Cluster) ImportOrUndo(ctx context.Context, target ferry.ImageSpec, src rbddiff.Source, p progress.Reporter) (ImportStats, error) {
	target = target.AtSnap("")
	h, err := src.Header()
	if err != nil {
		return ImportStats{}, fmt.Errorf("import into %s: %w (the image was not changed)", target, err)
	}
	first, firstErr := src.Next()
	if firstErr != nil && firstErr != io.EOF {
		return ImportStats{Header: h}, fmt.Errorf("import into %s: %w (the image was not changed)", target, firstErr)
	}
	u, err := c.prepareUndo(target, h)
	if err != nil {
		return ImportStats{Header: h}, err
	}
	tracked := &trackedSource{Source: src, first: first, firstErr: firstErr}
	stats, err := c.Import(ctx, target, tracked, p)
	if err == nil {
		return stats, nil
	}
	return stats, fmt.Errorf("%w; %s", err, c.undo(u, tracked))
}

// importUndo is what ImportOrUndo knows of the target before the import.
type importUndo struct {
	target   ferry.ImageSpec
	created  bool   // ImportOrUndo created it: remove it
	rollback string // the snapshot the head equals: roll back to it
	size     uint64 // the size before the import
	why      string // why neither applies
}

// prepareUndo looks at the target before the import and picks the undo.
func (c *Cluster) prepareUndo(target ferry.ImageSpec, h rbddiff.Header) (importUndo, error) {
	u := importUndo{target: target}
	info, err := c.Info(target)
	if errors.Is(err, ErrNotFound) {
		if h.FromSnap != "" {
			return u, fmt.Errorf("import into %s: %w: the image does not exist and the diff starts at snapshot %q; apply the diff that ends at %q first, or a full diff",
				target, ErrBaseMissing, h.FromSnap, h.FromSnap)
		}
		if err := c.CreateImage(target, h.Size); err != nil {
			return u, fmt.Errorf("import into %s: %w", target, err)
		}
		u.created, u.size = true, h.Size
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("import into %s: %w", target, err)
	}
	u.size = info.Size
	// The from-snapshot, or for a full diff the newest snapshot: any
	// snapshot the head still equals undoes the import.
	base := h.FromSnap
	if base == "" {
		snaps, err := c.Snapshots(target)
		if err != nil {
			return u, fmt.Errorf("import into %s: %w", target, err)
		}
		if len(snaps) == 0 {
			u.why = "the image has no snapshot to roll back to"
			return u, nil
		}
		base = snaps[len(snaps)-1].Name
	}
	change, err := c.HeadChangedSince(target, base)
	if errors.Is(err, ErrNotFound) {
		u.why = fmt.Sprintf("the image has no snapshot %q", base)
		return u, nil // Import refuses it, before any change
	}
	if err != nil {
		return u, fmt.Errorf("import into %s: %w", target, err)
	}
	if change.Changed() {
		u.why = fmt.Sprintf("its head differed from snapshot %q before the import (%s), so a rollback would lose that", base, change)
		return u, nil
	}
	u.rollback = base
	return u, nil
}

// undo puts the target back after a failed import, and says what it did
// or what the import changed.
func (c *Cluster) undo(u importUndo, src *trackedSource) string {
	if u.created {
		if err := c.RemoveImage(u.target); err != nil {
			return fmt.Sprintf("removing the image this import created failed: %v; remove it with: rbd rm %s", err, u.target)
		}
		return "the image this import created was removed"
	}
	size, err := c.Info(u.target)
	if err != nil {
		return fmt.Sprintf("what the import changed is unknown (%v): check the image", err)
	}
	if src.records == 0 && size.Size == u.size {
		return "the image was not changed"
	}
	if u.rollback != "" {
		if err := c.RollbackToSnapshot(u.target.AtSnap(u.rollback)); err != nil {
			return fmt.Sprintf("rolling back to snapshot %q failed: %v; roll back with: rbd snap rollback %s", u.rollback, err, u.target.AtSnap(u.rollback))
		}
		return fmt.Sprintf("the image was rolled back to snapshot %q, as it was before", u.rollback)
	}
	changed := ""
	if size.Size != u.size {
		changed = fmt.Sprintf("resized from %d to %d bytes", u.size, size.Size)
	}
	if src.records > 0 {
		if changed != "" {
			changed += " and "
		}
		changed += fmt.Sprintf("%d records of the diff written between bytes %d and %d", src.records, src.lo, src.hi)
	}
	return fmt.Sprintf("the image was changed and cannot be put back (%s): %s", u.why, changed)
}

// trackedSource hands Import the first record read ahead, then the rest,
// and keeps the range of the records it handed out.
type trackedSource struct {
	rbddiff.Source
	first    rbddiff.Record
	firstErr error
	given    bool // first was handed out
	records  int
	lo, hi   uint64
}

func (s *trackedSource) Next() (rbddiff.Record, error) {
	rec, err := s.first, s.firstErr
	if s.given {
		rec, err = s.Source.Next()
	}
	s.given = true
	if err != nil {
		return rec, err
	}
	if s.records == 0 || rec.Offset < s.lo {
		s.lo = rec.Offset
	}
	s.hi = max(s.hi, rec.Offset+rec.Length)
	s.records++
	return rec, nil
}
