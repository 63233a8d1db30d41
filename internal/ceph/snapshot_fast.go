package ceph

// #cgo LDFLAGS: -lrbd
// #include <stdlib.h>
// #include <rbd/librbd.h>
//
// // librbd calls the progress function of rbd_snap_create2 unchecked.
// static int ferry_no_progress(uint64_t offset, uint64_t total, void *data) { return 0; }
// static int ferry_snap_create(rbd_image_t image, const char *name, uint32_t flags) {
//   return rbd_snap_create2(image, name, flags, ferry_no_progress, NULL);
// }
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// go-ceph v0.36 does not wrap rbd_snap_create2, and its rbd.Image keeps its
// handle private, so this file opens the image itself with librbd's C API.

// SnapshotTarget is an image held open read-write so that creating a
// snapshot of it later costs only the snapshot: opening an image (header
// reads, a watch) and closing it (unwatch) take several round trips that
// must not fall inside a guest's frozen window. Close it when done.
type SnapshotTarget struct {
	spec ferry.ImageSpec

	mu    sync.Mutex // Close must not free the handle under a running call
	image C.rbd_image_t
}

// OpenSnapshotTarget opens spec's image (spec.Snap is ignored) for
// CreateSnapshot.
func (c *Cluster) OpenSnapshotTarget(spec ferry.ImageSpec) (*SnapshotTarget, error) {
	io, err := c.ioctx(spec.Pool)
	if err != nil {
		return nil, err
	}
	name := C.CString(spec.Image)
	defer C.free(unsafe.Pointer(name))
	t := &SnapshotTarget{spec: spec.AtSnap("")}
	if ret := C.rbd_open(C.rados_ioctx_t(io.Pointer()), name, &t.image, nil); ret < 0 {
		return nil, fmt.Errorf("open image %s/%s: %w", spec.Pool, spec.Image, rbdErr(ret))
	}
	return t, nil
}

// SnapshotMode says whether librbd asks the image's users to quiesce.
type SnapshotMode int

const (
	// LibrbdQuiesce is librbd's default: before the snapshot, every client
	// of the image is notified to quiesce (rbd-nbd runs its quiesce hooks)
	// and after it to unquiesce: two watch-notify round trips.
	LibrbdQuiesce SnapshotMode = iota
	// SkipQuiesce leaves out those notifications. Right when the guest's
	// filesystems are already frozen through its agent: the lock owner
	// (QEMU's librbd) still blocks and flushes its writes before the
	// snapshot, so everything the guest flushed is in it.
	SkipQuiesce
)

// CreateSnapshot creates snapshot name on the target image. While another
// client (QEMU) holds the image's exclusive lock, librbd asks that client to
// create it.
func (t *SnapshotTarget) CreateSnapshot(name string, mode SnapshotMode) error {
	var flags C.uint32_t
	if mode == SkipQuiesce {
		flags = C.RBD_SNAP_CREATE_SKIP_QUIESCE
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.image == nil {
		return fmt.Errorf("create snapshot %s: %w", t.spec.AtSnap(name), errTargetClosed)
	}
	if ret := C.ferry_snap_create(t.image, cname, flags); ret < 0 {
		return fmt.Errorf("create snapshot %s: %w", t.spec.AtSnap(name), rbdErr(ret))
	}
	return nil
}

var errTargetClosed = errors.New("snapshot target is closed")

// Close closes the image; it is safe to call more than once.
func (t *SnapshotTarget) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.image == nil {
		return nil
	}
	ret := C.rbd_close(t.image)
	t.image = nil
	if ret < 0 {
		return fmt.Errorf("close image %s: %w", t.spec, rbdErr(ret))
	}
	return nil
}

// rbdErr turns librbd's negative errno into an error that errors.Is
// matches against the errno, and against ErrNotFound for ENOENT.
func rbdErr(ret C.int) error {
	errno := syscall.Errno(-ret)
	if errno == syscall.ENOENT {
		return fmt.Errorf("%w: %v", ErrNotFound, errno)
	}
	return errno
}
