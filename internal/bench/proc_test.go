package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cmdTimeout bounds every measured command, so a hung cluster fails the run.
const cmdTimeout = 15 * time.Minute

// measure is one timed process run.
type measure struct {
	Wall   time.Duration
	RSSKiB int64 // peak RSS (ru_maxrss); for a shell, the largest process of its pipeline
}

// command returns an unstarted command with a timeout and a captured stderr.
func command(name string, args ...string) (*exec.Cmd, *bytes.Buffer, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr, cancel
}

func maxRSS(cmd *exec.Cmd) int64 {
	if cmd.ProcessState == nil {
		return 0
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

func describe(cmd *exec.Cmd) string {
	return strings.Join(cmd.Args, " ")
}

// run runs name args with stdin and stdout (nil: /dev/null) and measures it.
func run(stdin, stdout *os.File, name string, args ...string) (measure, error) {
	cmd, stderr, cancel := command(name, args...)
	defer cancel()
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	t0 := time.Now()
	err := cmd.Run()
	m := measure{Wall: time.Since(t0), RSSKiB: maxRSS(cmd)}
	if err != nil {
		return m, fmt.Errorf("%s: %w: %s", describe(cmd), err, strings.TrimSpace(stderr.String()))
	}
	return m, nil
}

// runOutput runs name args and returns its stdout.
func runOutput(name string, args ...string) (string, error) {
	cmd, stderr, cancel := command(name, args...)
	defer cancel()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", describe(cmd), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// runPiped runs `producer | consumer` through an OS pipe (nothing copies in
// this process) and measures the consumer; the wall time covers both.
func runPiped(producer, consumer []string) (measure, error) {
	p, pErr, cancelP := command(producer[0], producer[1:]...)
	defer cancelP()
	c, cErr, cancelC := command(consumer[0], consumer[1:]...)
	defer cancelC()
	r, w, err := os.Pipe()
	if err != nil {
		return measure{}, err
	}
	p.Stdout, c.Stdin = w, r
	t0 := time.Now()
	if err := p.Start(); err != nil {
		r.Close()
		w.Close()
		return measure{}, err
	}
	if err := c.Start(); err != nil {
		r.Close()
		w.Close()
		p.Wait()
		return measure{}, err
	}
	r.Close()
	w.Close()
	errC := c.Wait()
	errP := p.Wait()
	m := measure{Wall: time.Since(t0), RSSKiB: maxRSS(c)}
	if errC != nil {
		return m, fmt.Errorf("%s: %w: %s", describe(c), errC, strings.TrimSpace(cErr.String()))
	}
	if errP != nil {
		return m, fmt.Errorf("%s: %w: %s", describe(p), errP, strings.TrimSpace(pErr.String()))
	}
	return m, nil
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

var ddBytes = regexp.MustCompile(`(?m)^(\d+) bytes`)

// runSeed runs the seed pipeline `export | gzip -c | gunzip -c | import` under
// bash -o pipefail. dd between gzip and gunzip counts the compressed bytes
// (gzip's default level is 6).
func runSeed(dir string, export, imp []string) (measure, int64, error) {
	count := filepath.Join(dir, "seed-dd.txt")
	script := shellJoin(export) + " | gzip -c | dd bs=1M 2>" + shellQuote(count) +
		" | gunzip -c | " + shellJoin(imp)
	m, err := run(nil, nil, "bash", "-o", "pipefail", "-c", script)
	if err != nil {
		return m, 0, err
	}
	out, err := os.ReadFile(count)
	if err != nil {
		return m, 0, err
	}
	sm := ddBytes.FindSubmatch(out)
	if sm == nil {
		return m, 0, fmt.Errorf("seed pipeline: no byte count from dd in %q", out)
	}
	n, _ := strconv.ParseInt(string(sm[1]), 10, 64)
	return m, n, nil
}

// gzipSize returns the size of `export | gzip -6`.
func gzipSize(export []string) (int64, error) {
	out, err := runOutput("bash", "-o", "pipefail", "-c", shellJoin(export)+" | gzip -6 | wc -c")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// streamSize returns the size in bytes of a command's stdout.
func streamSize(args []string) (int64, error) {
	out, err := runOutput("bash", "-o", "pipefail", "-c", shellJoin(args)+" | wc -c")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// daemon is a long-running subprocess (nats-server, consumer).
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan error
}

func startDaemon(logPath string, name string, args ...string) (*daemon, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	d := &daemon{name: describe(cmd), cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	return d, nil
}

// exited reports whether the daemon has ended, and why.
func (d *daemon) exited() (bool, error) {
	select {
	case err := <-d.done:
		d.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// resetPeak resets the kernel's peak RSS (VmHWM) of the daemon.
func (d *daemon) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", d.cmd.Process.Pid), []byte("5"), 0)
}

// peakKiB returns the daemon's peak RSS (VmHWM) since the last resetPeak.
func (d *daemon) peakKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// stop sends SIGTERM, waits (SIGKILL after 30 s) and returns ru_maxrss.
func (d *daemon) stop() (int64, error) {
	if done, err := d.exited(); done {
		d.log.Close()
		return maxRSS(d.cmd), fmt.Errorf("%s ended early: %v: %s", d.name, err, d.logTail())
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		err = <-d.done
		err = fmt.Errorf("%s did not stop within 30 s of SIGTERM (killed): %v", d.name, err)
	}
	d.done <- err
	d.log.Close()
	return maxRSS(d.cmd), err
}
