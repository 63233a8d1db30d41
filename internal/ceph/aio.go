package ceph

/*
#cgo LDFLAGS: -lrbd
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
)

// aioImage is an image opened through librbd's C API for asynchronous
// writes, which go-ceph does not wrap. Its writes are zero-copy: librbd
// sends straight from the caller's buffer, which must therefore be C memory
// (cAlloc) that nobody touches until the write's completion is waited for.
// go-ceph's synchronous WriteAt copies every buffer and keeps one write per
// goroutine (and OS thread) in flight.
type aioImage struct {
	img  C.rbd_image_t
	name string
}

// openAioImage opens name in ioctx at its head for writing.
func openAioImage(ioctx *rados.IOContext, name string) (*aioImage, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	a := &aioImage{name: name}
	if ret := C.rbd_open(C.rados_ioctx_t(ioctx.Pointer()), cname, &a.img, nil); ret < 0 {
		return nil, fmt.Errorf("open image %s: %w", name, rbdError(ret))
	}
	return a, nil
}

// close releases the image (and its exclusive lock). Every operation must
// have been waited for.
func (a *aioImage) close() error {
	if ret := C.rbd_close(a.img); ret < 0 {
		return fmt.Errorf("close image %s: %w", a.name, rbdError(ret))
	}
	return nil
}

// aioOp is one operation in flight; wait must be called exactly once.
type aioOp struct {
	c C.rbd_completion_t
}

func newCompletion() (aioOp, error) {
	var op aioOp
	if ret := C.rbd_aio_create_completion(nil, nil, &op.c); ret < 0 {
		return op, fmt.Errorf("create completion: %w", rbdError(ret))
	}
	return op, nil
}

// write starts writing buf (C memory, at most maxIOLen bytes) at off.
func (a *aioImage) write(off uint64, buf []byte) (aioOp, error) {
	op, err := newCompletion()
	if err != nil {
		return op, err
	}
	ret := C.rbd_aio_write(a.img, C.uint64_t(off), C.size_t(len(buf)), (*C.char)(unsafe.Pointer(unsafe.SliceData(buf))), op.c)
	if ret < 0 {
		C.rbd_aio_release(op.c)
		return aioOp{}, fmt.Errorf("write %#x+%#x: %w", off, len(buf), rbdError(C.int(ret)))
	}
	return op, nil
}

// writeZeroes starts making [off, off+n) read as zeros (n at most maxIOLen).
// Unlike rbd_aio_discard it never skips a partial range, whatever the
// discard settings: librbd zeroes partial objects and removes whole ones,
// so the image stays thin.
func (a *aioImage) writeZeroes(off, n uint64) (aioOp, error) {
	op, err := newCompletion()
	if err != nil {
		return op, err
	}
	if ret := C.rbd_aio_write_zeroes(a.img, C.uint64_t(off), C.size_t(n), op.c, 0, 0); ret < 0 {
		C.rbd_aio_release(op.c)
		return aioOp{}, fmt.Errorf("zero %#x+%#x: %w", off, n, rbdError(ret))
	}
	return op, nil
}

// wait blocks until the operation has completed (and librbd holds no
// reference to its buffer any more), releases it and returns its result.
func (op aioOp) wait() error {
	C.rbd_aio_wait_for_complete(op.c)
	ret := C.rbd_aio_get_return_value(op.c)
	C.rbd_aio_release(op.c)
	if ret < 0 {
		return rbdError(C.int(ret))
	}
	return nil
}

func (a *aioImage) flush() error {
	if ret := C.rbd_flush(a.img); ret < 0 {
		return fmt.Errorf("flush %s: %w", a.name, rbdError(ret))
	}
	return nil
}

func (a *aioImage) createSnapshot(name string, protect bool) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if ret := C.rbd_snap_create(a.img, cname); ret < 0 {
		return fmt.Errorf("create snapshot %q: %w", name, rbdError(ret))
	}
	if !protect {
		return nil
	}
	if ret := C.rbd_snap_protect(a.img, cname); ret < 0 {
		return fmt.Errorf("protect snapshot %q: %w", name, rbdError(ret))
	}
	return nil
}

// rbdError is a negative errno returned by librbd's C API. errors.Is
// matches it against its syscall.Errno, and ENOENT against ErrNotFound.
type rbdError C.int

func (e rbdError) Error() string {
	return fmt.Sprintf("librbd: %s (errno %d)", C.GoString(C.strerror(-C.int(e))), -int(e))
}

func (e rbdError) Unwrap() error { return syscall.Errno(-e) }

func (e rbdError) Is(target error) bool {
	return target == ErrNotFound && syscall.Errno(-e) == syscall.ENOENT
}

// cAlloc returns n bytes of C memory, which librbd may keep using after a
// call returns (Go memory may not be retained by C). Freed with cFree.
func cAlloc(n int) []byte {
	p := C.malloc(C.size_t(n))
	if p == nil {
		panic(fmt.Sprintf("ceph: out of memory allocating %d bytes", n))
	}
	return unsafe.Slice((*byte)(p), n)
}

func cFree(b []byte) { C.free(unsafe.Pointer(unsafe.SliceData(b))) }

// fastDiffValid reports whether the head of name has a valid object map and
// fast-diff state (librbd marks them invalid after, e.g., a client crashed
// holding the lock; rbd object-map rebuild repairs them).
func fastDiffValid(ioctx *rados.IOContext, name string) (bool, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var img C.rbd_image_t
	if ret := C.rbd_open_read_only(C.rados_ioctx_t(ioctx.Pointer()), cname, &img, nil); ret < 0 {
		return false, fmt.Errorf("open image %s: %w", name, rbdError(ret))
	}
	defer C.rbd_close(img)
	var flags C.uint64_t
	if ret := C.rbd_get_flags(img, &flags); ret < 0 {
		return false, fmt.Errorf("flags of image %s: %w", name, rbdError(ret))
	}
	return flags&(C.RBD_FLAG_OBJECT_MAP_INVALID|C.RBD_FLAG_FAST_DIFF_INVALID) == 0, nil
}
