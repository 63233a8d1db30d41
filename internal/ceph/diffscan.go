package ceph

import (
	"fmt"

	"github.com/ceph/go-ceph/rbd"
)

// extent is a changed range of an image. exists=false means librbd knows the
// range reads as zeros (a whole object that is gone).
type extent struct {
	off, len uint64
	exists   bool
}

func (e extent) end() uint64 { return e.off + e.len }

// scanChanges calls fn for every changed extent of img (opened at the
// to-snapshot or head) since fromSnap ("" = since creation, parent data
// included), in ascending order, clipped to size.
//
// On Pacific a fine-grained DiffIterate asks every object of the image
// even when the object map knows better, while the whole-object mode uses
// fast-diff (docs/performance.md). So the first pass finds the changed objects
// and the second asks for fine-grained extents only inside them. librbd falls
// back to a full scan by itself when the object map is invalid or absent, so
// both passes stay correct without fast-diff, only slower.
func scanChanges(img *rbd.Image, fromSnap string, size uint64, wholeObject bool, fn func(extent) error) error {
	if size == 0 {
		return nil
	}
	objects, err := diffIterate(img, fromSnap, 0, size, rbd.EnableWholeObject)
	if err != nil {
		return err
	}
	// Since creation, a fine-grained pass says nothing more than the whole
	// objects do (a new object is one extent, holes included); zero detection
	// on the data finds the holes instead.
	fine := !wholeObject && fromSnap != ""
	for _, r := range coalesce(objects) {
		if !fine || !r.exists {
			if err := fn(r); err != nil {
				return err
			}
			continue
		}
		// Windows keep the first extents flowing while later ones are asked for.
		for w := r.off; w < r.end(); w += fineScanWindow {
			wlen := min(fineScanWindow, r.end()-w)
			extents, err := diffIterate(img, fromSnap, w, wlen, rbd.DisableWholeObject)
			if err != nil {
				return err
			}
			for _, e := range extents {
				if err := fn(e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fineScanWindow bounds one fine-grained DiffIterate call.
const fineScanWindow = 1 << 30

// diffIterate collects the extents librbd reports in [off, off+length),
// clipped to that window. Its callbacks run on this thread in ascending
// order; the extents are checked to stay that way, since the diff stream
// depends on it.
func diffIterate(img *rbd.Image, fromSnap string, off, length uint64, mode rbd.DiffWholeObject) ([]extent, error) {
	var out []extent
	end := off + length
	var orderErr error
	err := img.DiffIterate(rbd.DiffIterateConfig{
		SnapName:      fromSnap,
		Offset:        off,
		Length:        length,
		IncludeParent: rbd.IncludeParent,
		WholeObject:   mode,
		Callback: func(o, l uint64, exists int, _ interface{}) int {
			e := extent{off: o, len: l, exists: exists != 0}
			// librbd reports a removed object with its old full length; clip it.
			if e.end() > end {
				if e.off >= end {
					return 0
				}
				e.len = end - e.off
			}
			if e.off < off || e.len == 0 {
				return 0
			}
			if n := len(out); n > 0 && e.off < out[n-1].end() {
				orderErr = fmt.Errorf("librbd reported extent %#x+%#x before the end of the previous one (%#x)", e.off, e.len, out[n-1].end())
				return -1
			}
			out = append(out, e)
			return 0
		},
	})
	if orderErr != nil {
		return nil, orderErr
	}
	if err != nil {
		from := fromSnap
		if from == "" {
			from = "creation"
		}
		return nil, fmt.Errorf("diff %s since %s: %w", img.GetName(), from, wrapNotFound(err))
	}
	return out, nil
}

// coalesce merges touching extents of the same kind so the second pass makes
// one librbd call per run of changed objects, not one per object.
func coalesce(in []extent) []extent {
	var out []extent
	for _, e := range in {
		if n := len(out); n > 0 && out[n-1].end() == e.off && out[n-1].exists == e.exists {
			out[n-1].len += e.len
			continue
		}
		out = append(out, e)
	}
	return out
}
