package ferry

import (
	"fmt"
	"strings"
)

// DefaultPool is the pool rbd assumes when a spec names none.
const DefaultPool = "rbd"

// ImageSpec names an RBD image, and optionally one of its snapshots, the way
// rbd spells it: POOL/IMAGE[@SNAP].
type ImageSpec struct {
	Pool  string
	Image string
	Snap  string // "" means the image head
}

// ParseImageSpec parses POOL/IMAGE[@SNAP] (or IMAGE[@SNAP], in the default pool).
// Snapshot names may contain spaces and any non-ASCII text; only the first '@'
// separates the snapshot, as in rbd. The names must pass Validate.
func ParseImageSpec(s string) (ImageSpec, error) {
	var spec ImageSpec
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		spec.Snap = rest[i+1:]
		rest = rest[:i]
		if spec.Snap == "" {
			return ImageSpec{}, fmt.Errorf("image spec %q: empty snapshot name after '@'", s)
		}
	}
	switch parts := strings.Split(rest, "/"); len(parts) {
	case 1:
		spec.Pool, spec.Image = DefaultPool, parts[0]
	case 2:
		spec.Pool, spec.Image = parts[0], parts[1]
	default:
		return ImageSpec{}, fmt.Errorf("image spec %q: want POOL/IMAGE[@SNAP] (namespaces are not supported)", s)
	}
	if spec.Pool == "" || spec.Image == "" {
		return ImageSpec{}, fmt.Errorf("image spec %q: want POOL/IMAGE[@SNAP]", s)
	}
	if err := spec.Validate(); err != nil {
		return ImageSpec{}, fmt.Errorf("image spec %q: %w", s, err)
	}
	return spec, nil
}

// String returns the spec in rbd's spelling.
func (s ImageSpec) String() string {
	if s.Snap == "" {
		return s.Pool + "/" + s.Image
	}
	return s.Pool + "/" + s.Image + "@" + s.Snap
}

// AtSnap returns the same image at another snapshot ("" for the head).
func (s ImageSpec) AtSnap(snap string) ImageSpec {
	s.Snap = snap
	return s
}

// PoolMap maps source pools to backup pools; a pool it does not name keeps
// its name at the backup site.
type PoolMap map[string]string

// ParsePoolMap parses "SRC=DST,SRC2=DST2" ("" is the empty map).
func ParsePoolMap(s string) (PoolMap, error) {
	m := PoolMap{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		src, dst, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || src == "" || dst == "" || strings.ContainsAny(src+dst, "/@") {
			return nil, fmt.Errorf("pool map %q: want SRC=DST[,SRC=DST...], e.g. volumes=volumes-dr", s)
		}
		for _, pool := range []string{src, dst} {
			if err := checkName("pool", pool, "/@"); err != nil {
				return nil, fmt.Errorf("pool map %q: %w", s, err)
			}
		}
		if _, dup := m[src]; dup {
			return nil, fmt.Errorf("pool map %q: pool %s is mapped twice", s, src)
		}
		m[src] = dst
	}
	return m, nil
}

// Backup returns where the backup of img lives: same image name, in the
// mapped pool.
func (m PoolMap) Backup(img ImageSpec) ImageSpec {
	if dst, ok := m[img.Pool]; ok {
		img.Pool = dst
	}
	return img
}

// LatestSnap, as POOL/IMAGE@latest, names the newest Ferry snapshot of the
// image on the cluster a command reads (ceph's Cluster.ResolveSnap).
const LatestSnap = "latest"
