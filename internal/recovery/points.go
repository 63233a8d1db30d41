package recovery

import (
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// RestorePoint is one Ferry snapshot of a backup image: what ferry ls lists
// and what a restore can start from.
type RestorePoint struct {
	Snapshot ferry.ImageSpec
	// Taken is when the source snapshot was taken (from its name), the
	// point in time the data is from; Created is when the backup site made
	// its snapshot, once the backup was written.
	Taken, Created time.Time
	Size           uint64 // the image's size at the snapshot
	// Info is what the consumer recorded of the backup (consistency,
	// changed bytes); zero for a snapshot of a Ferry without the record.
	Info ferry.SnapInfo
	// Latest: the newest restore point, the one @latest names.
	Latest bool
}

// RestorePoints lists the Ferry snapshots of image on c, oldest first. It
// reads the image only (its snapshots and metadata): no NATS needed.
func RestorePoints(c *ceph.Cluster, image ferry.ImageSpec) ([]RestorePoint, error) {
	image = image.AtSnap("")
	snaps, err := c.Snapshots(image)
	if errors.Is(err, ceph.ErrNotFound) {
		return nil, fmt.Errorf("list the restore points of %s: image %w at this cluster (restore points are at the backup site: its ceph.conf and cephx user, or ceph.backup in the config)", image, ceph.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("list the restore points of %s: %w", image, err)
	}
	raw, _, err := c.Metadata(image, ferry.SnapInfoKey)
	if err != nil {
		return nil, fmt.Errorf("list the restore points of %s: %w", image, err)
	}
	infos := ferry.DecodeSnapInfos(raw)
	var points []RestorePoint
	for _, s := range snaps { // creation order
		if !ferry.IsFerrySnapshot(s.Name) {
			continue
		}
		p := RestorePoint{Snapshot: image.AtSnap(s.Name), Created: s.Created.UTC(), Size: s.Size, Info: infos[s.Name]}
		p.Taken, _ = ferry.SnapshotTime(s.Name)
		points = append(points, p)
	}
	if len(points) > 0 {
		points[len(points)-1].Latest = true
	}
	return points, nil
}

// ImagePoints is a backup image and its restore points.
type ImagePoints struct {
	Image  ferry.ImageSpec
	Points []RestorePoint
}

// AllRestorePoints lists the restore points of every image of pools that
// has any, by pool and image name. An image removed while it is listed is
// left out.
func AllRestorePoints(c *ceph.Cluster, pools []string) ([]ImagePoints, error) {
	var all []ImagePoints
	for _, pool := range pools {
		images, err := c.Images(pool)
		if err != nil {
			return nil, err
		}
		for _, img := range images {
			points, err := RestorePoints(c, img)
			if errors.Is(err, ceph.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if len(points) > 0 {
				all = append(all, ImagePoints{Image: img, Points: points})
			}
		}
	}
	return all, nil
}
