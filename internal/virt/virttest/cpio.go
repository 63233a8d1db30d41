package virttest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// initramfs collects the files of a Linux initramfs and writes it as a
// gzip-compressed cpio archive in the kernel's "newc" format.
type initramfs struct {
	entries map[string]entry
}

type entry struct {
	mode uint32 // file type and permissions, as in stat(2)
	data []byte // file content, or the target of a symlink
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

func newInitramfs() *initramfs { return &initramfs{entries: map[string]entry{}} }

// add stores data at path (absolute inside the image), creating parent directories.
func (r *initramfs) add(path string, mode uint32, data []byte) {
	path = strings.TrimPrefix(path, "/")
	for dir := path; ; {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			break
		}
		dir = dir[:i]
		if _, ok := r.entries[dir]; !ok {
			r.entries[dir] = entry{mode: modeDir | 0o755}
		}
	}
	r.entries[path] = entry{mode: mode, data: data}
}

func (r *initramfs) dir(path string) { r.add(path, modeDir|0o755, nil) }

func (r *initramfs) symlink(path, target string) { r.add(path, modeSymlink|0o777, []byte(target)) }

// copyFile adds the host file src (symlinks followed) at path, keeping its permissions.
func (r *initramfs) copyFile(path, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	r.add(path, modeFile|uint32(st.Mode().Perm()), data)
	return nil
}

// writeTo writes the archive, parents before children.
func (r *initramfs) writeTo(w io.Writer) error {
	zw := gzip.NewWriter(w)
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names) // "a" sorts before "a/b"
	ino := uint32(1)
	for _, n := range names {
		e := r.entries[n]
		if err := writeCPIO(zw, ino, n, e.mode, e.data); err != nil {
			return err
		}
		ino++
	}
	if err := writeCPIO(zw, 0, "TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return zw.Close()
}

// writeCPIO writes one newc record: a 110-byte ASCII header, the NUL-terminated
// name and the data, each padded to 4 bytes.
func writeCPIO(w io.Writer, ino uint32, name string, mode uint32, data []byte) error {
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	_, err := w.Write(buf)
	return err
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
