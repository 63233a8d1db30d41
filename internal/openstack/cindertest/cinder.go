// Package cindertest runs a real OpenStack Cinder (and, for the auth tier, a
// real Keystone) for tests, from the distribution's packages (Debian:
// cinder-api, keystone). Everything lives in a directory the caller owns:
// configuration, sqlite databases, logs. Services are started by hand and
// stopped by pid; each also exits by itself when the test binary is gone.
//
// Cinder runs its API, scheduler and volume service in ONE Python process,
// because its fake message transport (transport_url = fake:/) only connects
// services inside one process. The volume service uses Cinder's own fake
// volume driver, so volumes reach "available" without any storage.
package cindertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Python is the interpreter that has Debian's OpenStack modules. A pyenv or
// virtualenv python3 earlier on the PATH lacks them.
var Python = "/usr/bin/python3"

// Process is a service started by this package.
type Process struct {
	Name, Log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (p *Process) Stop() error {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	// The process group: uwsgi and oslo.service fork workers.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start runs argv in its own process group with its output in logPath.
func start(name, logPath string, env []string, argv ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// run runs a setup command to completion, with its output in the error.
func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(out, 40))
	}
	return nil
}

func tail(b []byte, lines int) string {
	l := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return string(bytes.Join(l, []byte("\n")))
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(b, 30)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers with a status below 500.
func waitHTTP(ctx context.Context, url string, p *Process) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited before answering on %s; its log (%s) ends:\n%s", p.Name, url, p.Log, logTail(p.Log))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s: %w; its log (%s) ends:\n%s", p.Name, url, ctx.Err(), p.Log, logTail(p.Log))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writeTemplate(path, text string, data any) error {
	var b bytes.Buffer
	if err := template.Must(template.New(filepath.Base(path)).Parse(text)).Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// checkInstalled says which package is missing, instead of a Python trace.
func checkInstalled(modules ...string) error {
	if _, err := os.Stat(Python); err != nil {
		return fmt.Errorf("%s not found: install python3 (Debian)", Python)
	}
	for _, m := range modules {
		if err := exec.Command(Python, "-c", "import "+m).Run(); err != nil {
			return fmt.Errorf("python module %s not importable with %s: install cinder-api and keystone (see .ci/install-deps.sh)", m, Python)
		}
	}
	return nil
}
