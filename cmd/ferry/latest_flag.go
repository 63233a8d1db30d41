package main

import (
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// resolveLatest names the snapshot of spec when it is @latest: the newest
// Ferry snapshot of the image on c (ceph's ResolveSnap). Each of same names
// the same snapshot of another image (verify's source) and takes its name.
func resolveLatest(c *ceph.Cluster, spec *ferry.ImageSpec, same ...*ferry.ImageSpec) error {
	resolved, err := c.ResolveSnap(*spec)
	if err != nil {
		return err
	}
	for _, s := range same {
		if s.Snap == spec.Snap {
			*s = s.AtSnap(resolved.Snap)
		}
	}
	*spec = resolved
	return nil
}
