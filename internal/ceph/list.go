package ceph

import (
	"fmt"

	"github.com/ceph/go-ceph/rbd"
)

// ImageNames lists the names of the images in pool.
func (c *Cluster) ImageNames(pool string) ([]string, error) {
	io, err := c.ioctx(pool)
	if err != nil {
		return nil, err
	}
	names, err := rbd.GetImageNames(io)
	if err != nil {
		return nil, fmt.Errorf("list images of pool %s: %w", pool, err)
	}
	return names, nil
}
