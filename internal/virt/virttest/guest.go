package virttest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// AgentChannel is the virtio-serial port name libvirt uses for the guest agent.
const AgentChannel = "org.qemu.guest_agent.0"

// Boot is what a tiny guest boots: the host's Debian kernel directly
// (no bootloader, no disk image) and an initramfs built at test time.
type Boot struct {
	Kernel, Initrd string
	KernelVersion  string
}

// guestModules are the kernel modules the guest loads (with their
// dependencies): the agent's virtio-serial port, the virtio-blk data disk
// disks and ext4 on them (crc32c for its metadata checksums).
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_console", "crc32c_generic", "ext4"}

// BuildBoot writes an initramfs into dir holding busybox (static), qemu-ga
// with the shared libraries it needs, the kernel modules above and an init
// that mounts /dev/vda (ext4) on /data, further virtio disks on
// /data-vdb, ..., and runs qemu-ga on the agent
// channel. The kernel is the newest /boot/vmlinuz-* that has modules.
func BuildBoot(dir string) (Boot, error) {
	ver, err := newestKernel()
	if err != nil {
		return Boot{}, err
	}
	b := Boot{Kernel: "/boot/vmlinuz-" + ver, Initrd: filepath.Join(dir, "initrd.gz"), KernelVersion: ver}
	r := newInitramfs()
	for _, d := range []string{"proc", "sys", "dev", "data", "run", "var", "tmp", "sbin", "usr/bin", "usr/sbin"} {
		r.dir(d)
	}
	r.symlink("var/run", "/run")

	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return Boot{}, fmt.Errorf("busybox not found: install busybox-static (%w)", err)
	}
	if libs, _ := sharedLibraries(busybox); len(libs) > 0 {
		return Boot{}, fmt.Errorf("%s is dynamically linked: install busybox-static", busybox)
	}
	if err := r.copyFile("bin/busybox", busybox); err != nil {
		return Boot{}, err
	}
	r.symlink("bin/sh", "busybox")

	qga := "/usr/sbin/qemu-ga"
	if _, err := os.Stat(qga); err != nil {
		return Boot{}, fmt.Errorf("%s missing: install qemu-guest-agent (%w)", qga, err)
	}
	if err := r.copyFile("usr/sbin/qemu-ga", qga); err != nil {
		return Boot{}, err
	}
	libs, err := sharedLibraries(qga)
	if err != nil {
		return Boot{}, err
	}
	for _, l := range libs {
		if err := r.copyFile(l, l); err != nil {
			return Boot{}, fmt.Errorf("library of qemu-ga: %w", err)
		}
	}

	mods, err := moduleLoadOrder(ver, guestModules)
	if err != nil {
		return Boot{}, err
	}
	for _, m := range mods {
		if err := r.copyFile(m, m); err != nil {
			return Boot{}, err
		}
	}
	r.add("modules", modeFile|0o644, []byte(strings.Join(mods, "\n")+"\n"))
	r.add("init", modeFile|0o755, []byte(initScript))

	f, err := os.Create(b.Initrd)
	if err != nil {
		return Boot{}, err
	}
	if err := r.writeTo(f); err != nil {
		f.Close()
		return Boot{}, fmt.Errorf("write initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return Boot{}, err
	}
	return b, os.Chmod(b.Initrd, 0o644)
}

// initScript runs as PID 1. Its "ferry-guest:" lines on the serial console
// tell a failing test what went wrong. qemu-ga is restarted if it dies.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules); do insmod "/$m" || echo "ferry-guest: insmod $m failed"; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.2
for dev in /dev/vd?; do
	dir=/data; [ "$dev" = /dev/vda ] || dir=/data-${dev#/dev/}
	mkdir -p "$dir"
	mount -t ext4 "$dev" "$dir" && echo "ferry-guest: $dev mounted on $dir" || echo "ferry-guest: mount $dev failed"
done
port=
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = "` + AgentChannel + `" ] && port=/dev/$(basename "$p")
	done
	[ -z "$port" ] && sleep 0.1
	i=$((i+1))
done
[ -z "$port" ] && echo "ferry-guest: no virtio-serial port named ` + AgentChannel + `"
echo "ferry-guest: starting qemu-ga on $port"
while true; do
	qemu-ga -m virtio-serial -p "$port" -t /run
	echo "ferry-guest: qemu-ga exited ($?), restarting"
	sleep 1
done &
while true; do sleep 3600; done
`

var kernelVersion = regexp.MustCompile(`^vmlinuz-(.+)$`)

func newestKernel() (string, error) {
	files, _ := filepath.Glob("/boot/vmlinuz-*")
	var vers []string
	for _, f := range files {
		m := kernelVersion.FindStringSubmatch(filepath.Base(f))
		if m == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/lib/modules", m[1], "modules.dep")); err == nil {
			vers = append(vers, m[1])
		}
	}
	if len(vers) == 0 {
		return "", fmt.Errorf("no /boot/vmlinuz-* with modules in /lib/modules: install linux-image-amd64")
	}
	sort.Strings(vers)
	return vers[len(vers)-1], nil
}

// moduleLoadOrder returns the absolute paths of the wanted modules and their
// dependencies (from modules.dep), dependencies first.
func moduleLoadOrder(ver string, want []string) ([]string, error) {
	base := filepath.Join("/lib/modules", ver)
	raw, err := os.ReadFile(filepath.Join(base, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // module path -> dependency paths
	byName := map[string]string{} // module name -> path
	for _, line := range strings.Split(string(raw), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(name, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, w := range want {
		m, ok := byName[w]
		if !ok {
			// Built into the kernel: nothing to load.
			continue
		}
		if !strings.HasSuffix(m, ".ko") {
			return nil, fmt.Errorf("module %s is compressed (%s): the guest's busybox insmod cannot load it", w, m)
		}
		visit(m)
	}
	out := make([]string, len(order))
	for i, m := range order {
		out[i] = filepath.Join(base, m)
	}
	return out, nil
}

// sharedLibraries lists the shared libraries (the dynamic loader included)
// a binary needs, as ldd reports them.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		if ee, ok := err.(*exec.ExitError); ok && bytes.Contains(ee.Stderr, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0]) // the loader
		}
	}
	return libs, nil
}

// MakeExt4 creates a file of size bytes holding an empty ext4 filesystem
// (mke2fs from e2fsprogs), for the guest to mount and freeze.
func MakeExt4(path string, size int64) error {
	out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "ferry-data", path,
		fmt.Sprintf("%dk", size/1024)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mke2fs %s: %w: %s (install e2fsprogs)", path, err, out)
	}
	return nil
}
