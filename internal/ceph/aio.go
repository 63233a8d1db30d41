package ceph

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rbd/librbd.h>
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/ceph/go-ceph/rados"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// aioImage is an image opened through librbd's C API for asynchronous
// reads and writes, which go-ceph does not wrap. go-ceph blocks an OS thread
// for each operation in flight; an incremental of scattered small extents
// needs dozens in flight, and waking all those threads cost more CPU than
// the I/O itself (docs/performance.md). Here one goroutine starts
// operations and another waits for them, in order.
//
// librbd fills a read buffer when the read completes, after the starting
// call has returned, so buffers are C memory (cAlloc), and nobody touches
// one until its operation has been waited for.
type aioImage struct {
	img  C.rbd_image_t
	name string
}

// openAioReadOnly opens spec read-only, at spec.Snap when it is set.
func openAioReadOnly(ioctx *rados.IOContext, spec ferry.ImageSpec) (*aioImage, error) {
	name := C.CString(spec.Image)
	defer C.free(unsafe.Pointer(name))
	var snap *C.char
	if spec.Snap != "" {
		snap = C.CString(spec.Snap)
		defer C.free(unsafe.Pointer(snap))
	}
	a := &aioImage{name: spec.String()}
	if ret := C.rbd_open_read_only(C.rados_ioctx_t(ioctx.Pointer()), name, &a.img, snap); ret < 0 {
		return nil, fmt.Errorf("open %s: %w", spec, rbdError(ret))
	}
	return a, nil
}

// openAioWritable opens the head of spec for writing.
func openAioWritable(ioctx *rados.IOContext, spec ferry.ImageSpec) (*aioImage, error) {
	name := C.CString(spec.Image)
	defer C.free(unsafe.Pointer(name))
	a := &aioImage{name: spec.AtSnap("").String()}
	if ret := C.rbd_open(C.rados_ioctx_t(ioctx.Pointer()), name, &a.img, nil); ret < 0 {
		return nil, fmt.Errorf("open %s: %w", a.name, rbdError(ret))
	}
	return a, nil
}

// lockExclusively takes the image's exclusive lock and keeps it until close.
// librbd hands the lock over to any other client that asks for it to write,
// and takes it back for its own next write: another writer's data would
// land between an import's writes and end up in its snapshot, a backup that
// differs from its source. A lock taken this way is not handed over: the
// other client's writes fail (EROFS) until the import is done. An image
// without the exclusive-lock feature has no lock to take.
func (a *aioImage) lockExclusively() error {
	ret := C.rbd_lock_acquire(a.img, C.RBD_LOCK_MODE_EXCLUSIVE)
	if ret < 0 && ret != -C.EINVAL {
		return fmt.Errorf("take the exclusive lock of %s (another client holds it and does not give it up; see rbd lock ls and rbd status): %w", a.name, rbdError(ret))
	}
	return nil
}

// close releases the image (and its exclusive lock); every operation must
// have been waited for.
func (a *aioImage) close() error {
	if ret := C.rbd_close(a.img); ret < 0 {
		return fmt.Errorf("close %s: %w", a.name, rbdError(ret))
	}
	return nil
}

// aioOp is one operation in flight. wait must be called exactly once; the
// operation's buffer is librbd's until then.
type aioOp struct {
	c    C.rbd_completion_t
	what string // "read", "write" or "zero", for errors
	off  uint64
	n    int
	want bool // the return value must be n (reads)
}

func (a *aioImage) start(what string, off uint64, n int, submit func(C.rbd_completion_t) C.int) (*aioOp, error) {
	op := &aioOp{what: what, off: off, n: n, want: what == "read"}
	if ret := C.rbd_aio_create_completion(nil, nil, &op.c); ret < 0 {
		return nil, fmt.Errorf("%s %#x+%#x: create completion: %w", what, off, n, rbdError(ret))
	}
	if ret := submit(op.c); ret < 0 {
		C.rbd_aio_release(op.c)
		return nil, fmt.Errorf("%s %#x+%#x: %w", what, off, n, rbdError(ret))
	}
	return op, nil
}

// read starts reading len(buf) bytes at off into buf (C memory).
func (a *aioImage) read(off uint64, buf []byte) (*aioOp, error) {
	return a.start("read", off, len(buf), func(c C.rbd_completion_t) C.int {
		return C.int(C.rbd_aio_read(a.img, C.uint64_t(off), C.size_t(len(buf)), (*C.char)(unsafe.Pointer(unsafe.SliceData(buf))), c))
	})
}

// write starts writing buf (C memory) at off.
func (a *aioImage) write(off uint64, buf []byte) (*aioOp, error) {
	return a.start("write", off, len(buf), func(c C.rbd_completion_t) C.int {
		return C.int(C.rbd_aio_write(a.img, C.uint64_t(off), C.size_t(len(buf)), (*C.char)(unsafe.Pointer(unsafe.SliceData(buf))), c))
	})
}

// zero starts making [off, off+n) read as zeros, n at most maxIOLen. The
// connection sets rbd_skip_partial_discard=false, so librbd zeroes partial
// objects instead of silently skipping them; whole objects are removed,
// which keeps the image thin.
func (a *aioImage) zero(off, n uint64) (*aioOp, error) {
	return a.start("zero", off, int(n), func(c C.rbd_completion_t) C.int {
		return C.rbd_aio_discard(a.img, C.uint64_t(off), C.uint64_t(n), c)
	})
}

// wait blocks until the operation is complete and librbd is done with its
// buffer. Reads are clipped to the image by the scan, so a short read is an
// error.
func (op *aioOp) wait() error {
	C.rbd_aio_wait_for_complete(op.c)
	ret := int64(C.rbd_aio_get_return_value(op.c))
	C.rbd_aio_release(op.c)
	switch {
	case ret < 0:
		return fmt.Errorf("%s %#x+%#x: %w", op.what, op.off, op.n, rbdError(C.int(ret)))
	case op.want && ret != int64(op.n):
		return fmt.Errorf("%s %#x+%#x: librbd returned %d bytes before the end of the extent", op.what, op.off, op.n, ret)
	}
	return nil
}

// flush waits until every write completed so far is durable.
func (a *aioImage) flush() error {
	if ret := C.rbd_flush(a.img); ret < 0 {
		return fmt.Errorf("flush %s: %w", a.name, rbdError(ret))
	}
	return nil
}

// resize makes the image size bytes long, unless it is already.
func (a *aioImage) resize(size uint64) error {
	var cur C.uint64_t
	if ret := C.rbd_get_size(a.img, &cur); ret < 0 {
		return rbdError(ret)
	}
	if uint64(cur) == size {
		return nil
	}
	if ret := C.rbd_resize(a.img, C.uint64_t(size)); ret < 0 {
		return rbdError(ret)
	}
	return nil
}

// createSnapshot creates (and protects) snapshot name of the image.
func (a *aioImage) createSnapshot(name string, protect bool) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if ret := C.rbd_snap_create(a.img, cname); ret < 0 {
		return fmt.Errorf("create snapshot %q: %w", name, rbdError(ret))
	}
	if protect {
		if ret := C.rbd_snap_protect(a.img, cname); ret < 0 {
			return fmt.Errorf("protect snapshot %q: %w", name, rbdError(ret))
		}
	}
	return nil
}

// rbdError is a negative errno from librbd's C API. errors.Is matches its
// syscall.Errno, and ENOENT as ErrNotFound.
type rbdError C.int

func (e rbdError) Is(target error) bool {
	return target == ErrNotFound && syscall.Errno(-e) == syscall.ENOENT
}

func (e rbdError) Error() string {
	return fmt.Sprintf("librbd: %s (errno %d)", C.GoString(C.strerror(-C.int(e))), -int(e))
}

func (e rbdError) Unwrap() error { return syscall.Errno(-e) }

// cAlloc returns n bytes of C memory, which librbd may fill after a call
// returns (Go memory may not be kept by C). Give it back with cFree.
func cAlloc(n int) []byte {
	p := C.malloc(C.size_t(n))
	if p == nil {
		panic(fmt.Sprintf("ceph: out of memory allocating %d bytes", n))
	}
	return unsafe.Slice((*byte)(p), n)
}

func cFree(b []byte) { C.free(unsafe.Pointer(unsafe.SliceData(b[:1]))) }
