package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvFerryBin names a ferry binary for the tests that run it as a process;
// without it, FerryBinary builds one.
const EnvFerryBin = "FERRY_BIN"

// FerryBinary returns cmd/ferry of this module built once for the test
// binary (-tags pacific), or $FERRY_BIN when set. It is built into a
// directory named after the test process; those of test processes that
// have ended are removed first, so that binaries do not pile up.
var FerryBinary = Lazy(func() (string, error) {
	if bin := os.Getenv(EnvFerryBin); bin != "" {
		return filepath.Abs(bin)
	}
	mod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" {
		return "", fmt.Errorf("find the module root to build ferry: %v", err)
	}
	const prefix = "ferry-test-bin-"
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), prefix))
		if err == nil && pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
	dir := filepath.Join(os.TempDir(), prefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-tags", "pacific", "-o", bin, "./cmd/ferry")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ferry: %w\n%s", err, out)
	}
	return bin, nil
})

// Proc is a long-running process of a test (a ferry daemon, a NATS
// server) that the test kills, stops and starts again with the same
// command line, as a service manager would. Its output of every run goes
// to one log file. The end of the test kills it.
type Proc struct {
	Name string
	Log  string // path of its log file

	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has ended
	err  error         // how it ended
}

// NewProc returns a process, not started, that runs args (args[0] is the
// program) with env added to the test's environment, logging to
// dir/name.log.
func NewProc(t testing.TB, dir, name string, env []string, args ...string) *Proc {
	p := &Proc{Name: name, Log: filepath.Join(dir, name+".log"), args: args, env: env}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			p.logTail(t, 40)
		}
	})
	return p
}

// logTail shows the end of the process's log on the test's.
func (p *Proc) logTail(t testing.TB, n int) {
	raw, err := os.ReadFile(p.Log)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	t.Logf("---- last %d lines of %s:\n%s", n, p.Log, strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// Start starts a new run; the previous one must have ended.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: still running", p.Name)
		}
	}
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait() // reaps it: a zombie would still look alive to kill(pid, 0)
		log.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Done is closed when the current run ends.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Err says how the last run ended (nil while it runs, or for status 0).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Pid is the current run's process id.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the current run.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return errors.New(p.Name + ": not started")
	}
	select {
	case <-done:
		return errors.New(p.Name + ": not running")
	default:
	}
	return cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (a stopped process dies too) and waits until the
// run has ended.
func (p *Proc) Kill() error {
	done := p.Done()
	if done == nil {
		return nil
	}
	err := p.Signal(syscall.SIGKILL)
	<-done
	return err
}

// NATSServer starts `ferry nats-server` of this tree as a process (see
// Proc) with its JetStream store in dir/name.store, so that the store
// survives a kill -9, listening on 127.0.0.1:port, extra flags after
// these; it returns once the port answers.
func NATSServer(t testing.TB, dir, name string, port int, extra ...string) *Proc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{FerryBinary(t), "nats-server", "--store", filepath.Join(dir, name+".store"), "--listen", addr}, extra...)
	p := NewProc(t, dir, name, []string{"FERRY_CONFIG=" + os.DevNull}, args...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	WaitPort(t, addr, 30*time.Second)
	return p
}

// WaitPort waits until addr (host:port) accepts TCP connections.
func WaitPort(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	CheckFor(t, within, 50*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}
