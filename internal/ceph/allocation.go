package ceph

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ceph/go-ceph/rbd"
)

// allocation is where an image head may hold data: the sorted, disjoint
// extents of the objects that exist. Everything else reads as zeros. The
// zero value means "unknown": every range may hold data.
type allocation struct {
	known   bool
	extents []extent
}

// maxAllocationRuns bounds the memory of an allocation: an image whose
// objects alternate between allocated and not more often than this is
// treated as unknown (24 MiB of extents, far beyond 4 TiB of 4 MiB objects).
const maxAllocationRuns = 1 << 20

// targetAllocation learns where img (the import target, already resized to
// size) may hold data, so that zero records over ranges that already read as
// zeros cost nothing: a full diff into a new image is mostly that.
//
// It answers only when the answer is cheap and certain: a valid object map
// with fast-diff tells in one call which objects exist (without it, librbd
// would ask every object, ~17 s/TiB). For a clone, which reads its parent's
// data through its own holes, it answers nothing either.
func targetAllocation(img *rbd.Image, fastDiffValid func() (bool, error), size uint64) (allocation, error) {
	features, err := img.GetFeatures()
	if err != nil || features&rbd.FeatureFastDiff == 0 {
		return allocation{}, nil
	}
	if _, err := img.GetParent(); !errors.Is(err, rbd.ErrNotFound) {
		return allocation{}, nil // a parent, or no certain answer
	}
	if ok, err := fastDiffValid(); err != nil || !ok {
		return allocation{}, err
	}
	a := allocation{known: true}
	if size == 0 {
		return a, nil
	}
	// Since creation, in whole objects: every object that exists in the head.
	err = img.DiffIterate(rbd.DiffIterateConfig{
		Offset:        0,
		Length:        size,
		IncludeParent: rbd.IncludeParent,
		WholeObject:   rbd.EnableWholeObject,
		Callback: func(off, n uint64, _ int, _ interface{}) int {
			if k := len(a.extents); k > 0 {
				last := &a.extents[k-1]
				if off < last.off { // librbd reports in order; if not, know nothing
					a.known = false
					return -1
				}
				if off <= last.end() {
					last.len = max(last.end(), off+n) - last.off
					return 0
				}
			}
			if len(a.extents) == maxAllocationRuns {
				a.known = false
				return -1
			}
			a.extents = append(a.extents, extent{off: off, len: n, exists: true})
			return 0
		},
	})
	if !a.known {
		return allocation{}, nil
	}
	if err != nil {
		return allocation{}, fmt.Errorf("find the allocated objects of %s: %w", img.GetName(), err)
	}
	return a, nil
}

// mayHoldData reports whether any byte of [off, off+n) may be non-zero.
func (a allocation) mayHoldData(off, n uint64) bool {
	if !a.known {
		return true
	}
	// The first extent that ends after off.
	i := sort.Search(len(a.extents), func(i int) bool { return a.extents[i].end() > off })
	return i < len(a.extents) && a.extents[i].off < off+n
}

// eachMaybeData calls fn for the parts of [off, off+n) that may hold data,
// in order.
func (a allocation) eachMaybeData(off, n uint64, fn func(off, n uint64) error) error {
	if !a.known {
		return fn(off, n)
	}
	end := off + n
	i := sort.Search(len(a.extents), func(i int) bool { return a.extents[i].end() > off })
	for ; i < len(a.extents) && a.extents[i].off < end; i++ {
		e := a.extents[i]
		from, to := max(off, e.off), min(end, e.end())
		if err := fn(from, to-from); err != nil {
			return err
		}
	}
	return nil
}
