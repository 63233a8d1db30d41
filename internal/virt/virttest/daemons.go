package virttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Daemons are a private virtlogd and libvirtd, started by hand (no systemd)
// in session mode with every config, socket, state and log file under Dir,
// so a test never touches the host's libvirt and several test processes can
// each run their own. As root they run as the unprivileged user nobody
// (libvirtd run by root is always the system instance, with fixed paths).
type Daemons struct {
	Dir string // root of everything: config/, runtime/ (sockets, pid files), cache/, log/, sock/ (agent sockets)
	URI string // the remote driver URI of this libvirtd's qemu:///session

	env  []string
	cred *syscall.Credential
}

// unprivileged is the uid/gid of nobody, the user the daemons run as when the
// test runs as root.
const unprivileged = 65534

// StartDaemons starts virtlogd and libvirtd under a fresh directory in
// os.TempDir (short: unix socket paths are limited to 108 bytes). A watcher
// process stops them (and any QEMU they started) by pid when this process
// ends, even if it crashes; Stop does it at once.
func StartDaemons(ctx context.Context) (*Daemons, error) {
	dir, err := os.MkdirTemp("", "ferry-virt-")
	if err != nil {
		return nil, err
	}
	d := &Daemons{Dir: dir}
	d.env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "runtime"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	for _, sub := range []string{"home", "config", "runtime", "cache", "data", "log", "sock"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		d.cred = &syscall.Credential{Uid: unprivileged, Gid: unprivileged}
		if err := chownTree(dir, unprivileged); err != nil {
			return nil, err
		}
	}
	d.URI = "qemu+unix:///session?socket=" + d.socket("libvirt-sock")
	if err := d.watch(); err != nil {
		return nil, err
	}
	if err := d.start(ctx, "virtlogd", "virtlogd-sock"); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.start(ctx, "libvirtd", "libvirt-sock"); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *Daemons) socket(name string) string {
	return filepath.Join(d.Dir, "runtime", "libvirt", name)
}

func (d *Daemons) pidFile(name string) string {
	return filepath.Join(d.Dir, "runtime", "libvirt", name+".pid")
}

// Log returns the path of a daemon's log (libvirtd.log, virtlogd.log).
func (d *Daemons) Log(daemon string) string { return filepath.Join(d.Dir, "log", daemon+".log") }

// start runs `daemon -d` (it forks and writes its pid file) and waits until its socket answers.
func (d *Daemons) start(ctx context.Context, daemon, sock string) error {
	path, err := exec.LookPath(daemon)
	if err != nil {
		if p := "/usr/sbin/" + daemon; fileExists(p) {
			path = p
		} else {
			return fmt.Errorf("%s not found: install libvirt-daemon and libvirt-daemon-driver-qemu", daemon)
		}
	}
	cmd := exec.CommandContext(ctx, path, "-d")
	cmd.Dir = d.Dir
	cmd.Env = append(d.env, "LIBVIRT_LOG_OUTPUTS=3:file:"+d.Log(daemon))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start %s: %w: %s%s", daemon, err, out, d.tail(d.Log(daemon)))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", d.socket(sock))
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s started but its socket %s does not answer: %v%s", daemon, d.socket(sock), err, d.tail(d.Log(daemon)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RestartLibvirtd stops libvirtd (SIGTERM, by its pid file) and starts it
// again, as a package upgrade or `systemctl restart libvirtd` does: running
// guests keep running, the new daemon takes them over, and every client
// connection of the old one is closed.
func (d *Daemons) RestartLibvirtd(ctx context.Context) error {
	raw, err := os.ReadFile(d.pidFile("libvirtd"))
	if err != nil {
		return fmt.Errorf("restart libvirtd: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("restart libvirtd: bad pid file %s: %q", d.pidFile("libvirtd"), raw)
	}
	if err := stopPid(pid); err != nil {
		return fmt.Errorf("restart libvirtd: %w", err)
	}
	return d.start(ctx, "libvirtd", "libvirt-sock")
}

// pids returns the pids of QEMU processes, libvirtd and virtlogd, in the
// order they should stop.
func (d *Daemons) pids() []int {
	var files []string
	qemu, _ := filepath.Glob(filepath.Join(d.Dir, "runtime", "libvirt", "qemu", "run", "*.pid"))
	files = append(files, qemu...)
	files = append(files, d.pidFile("libvirtd"), d.pidFile("virtlogd"))
	var pids []int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Stop stops QEMU processes left running, then libvirtd and virtlogd (each
// by its pid file: SIGTERM, SIGKILL after 5 s), and removes Dir.
func (d *Daemons) Stop() error {
	var errs []error
	for _, pid := range d.pids() {
		if err := stopPid(pid); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func stopPid(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	for range 100 {
		if p.Signal(syscall.Signal(0)) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Signal(syscall.SIGKILL)
	return fmt.Errorf("pid %d did not stop within 5 s of SIGTERM: killed", pid)
}

// watch starts a detached shell that waits for this process to end, then
// kills what the pid files name and removes Dir: daemons must not outlive a
// test that crashed or timed out.
func (d *Daemons) watch() error {
	run := filepath.Join(d.Dir, "runtime", "libvirt")
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
[ -d %[2]q ] || exit 0
for f in %[2]q/qemu/run/*.pid %[2]q/libvirtd.pid %[2]q/virtlogd.pid; do
	[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
done
sleep 1
rm -rf %[3]q
`, os.Getpid(), run, d.Dir)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the daemons' watcher: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reaps it if this process outlives it (after Stop)
	return nil
}

// tail returns the last lines of a log file, formatted to end an error message.
func (d *Daemons) tail(path string) string { return tailOf(path, 20) }

func tailOf(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n--- last lines of " + path + " ---\n" + strings.Join(lines, "\n")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func chownTree(dir string, id int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
}
