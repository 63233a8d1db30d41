package ceph

import (
	"fmt"
	"sort"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Images lists the images of pool, by name.
func (c *Cluster) Images(pool string) ([]ferry.ImageSpec, error) {
	io, err := c.ioctx(pool)
	if err != nil {
		return nil, err
	}
	names, err := rbd.GetImageNames(io)
	if err != nil {
		return nil, fmt.Errorf("list the images of pool %s: %w", pool, err)
	}
	sort.Strings(names)
	specs := make([]ferry.ImageSpec, 0, len(names))
	for _, n := range names {
		specs = append(specs, ferry.ImageSpec{Pool: pool, Image: n})
	}
	return specs, nil
}
