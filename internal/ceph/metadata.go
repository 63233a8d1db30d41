package ceph

import (
	"errors"
	"fmt"

	"github.com/ceph/go-ceph/rbd"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Image metadata (rbd image-meta) is where the backup site marks the images
// it owns: kept with the image in its own cluster, it is out of reach of
// anyone who can only publish on the bus.

// Metadata returns the value of key on the image, and whether it is set.
func (c *Cluster) Metadata(spec ferry.ImageSpec, key string) (string, bool, error) {
	img, err := c.openImageReadOnly(spec.AtSnap(""))
	if err != nil {
		return "", false, err
	}
	defer img.Close()
	v, err := img.GetMetadata(key)
	if errors.Is(err, rbd.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read metadata %s of %s: %w", key, spec.AtSnap(""), err)
	}
	return v, true, nil
}

// SetMetadata sets key to value on the image.
func (c *Cluster) SetMetadata(spec ferry.ImageSpec, key, value string) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.SetMetadata(key, value); err != nil {
		return fmt.Errorf("set metadata %s of %s: %w", key, spec.AtSnap(""), err)
	}
	return nil
}

// RemoveMetadata removes key from the image; a key that is not set is fine.
func (c *Cluster) RemoveMetadata(spec ferry.ImageSpec, key string) error {
	img, err := c.openImage(spec)
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.RemoveMetadata(key); err != nil && !errors.Is(err, rbd.ErrNotFound) {
		return fmt.Errorf("remove metadata %s of %s: %w", key, spec.AtSnap(""), err)
	}
	return nil
}
