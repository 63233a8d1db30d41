package testbed

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed ceph-site.sh
var siteScript []byte

// Pool is the rbd pool that every site has.
const Pool = "ferry"

// Site is one Ceph cluster of the test bed.
type Site struct {
	Name    string // "source" or "backup"
	Dir     string // the cluster's directory: config, keyrings, data, logs (log/), pid files (run/)
	Conf    string // path of ceph.conf (CEPH_CONF)
	Keyring string // admin keyring path
	ID      string // cephx client id, "admin"
	Pool    string // "ferry"

	script string // path of ceph-site.sh; empty for a site this process did not start
}

// Bed is a pair of independent clusters: Ferry backs up from Source to Backup.
type Bed struct {
	Source, Backup *Site
	Dir            string // parent directory of Source.Dir and Backup.Dir

	owned bool // started by Start: Stop stops it
}

// Ports of one site. The mon listens on Mon (msgr v2) and Mon+1 (v1); the OSD and mgr bind
// inside [BindMin, BindMax].
type ports struct{ Mon, BindMin, BindMax int }

const (
	portLow      = 10000 // below the usual ephemeral range (32768-60999)
	portHigh     = 32000
	bindRange    = 24 // an OSD binds 8 ports, a mgr 2
	startTries   = 4  // attempts per site when a port was taken meanwhile
	exPortInUse  = 75 // ceph-site.sh's exit status for "a port was already in use"
	startTimeout = 3 * time.Minute
)

// portsMu serialises port picking inside this process; other processes are handled by checking
// that every port is free and by retrying when the script reports a port in use.
var portsMu sync.Mutex

// pickPorts returns a random block of bindRange+2 consecutive free loopback ports that does not
// overlap avoid.
func pickPorts(avoid []ports) (ports, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	n := bindRange + 2
	for try := 0; try < 200; try++ {
		base := portLow + rand.IntN(portHigh-portLow-n)
		p := ports{Mon: base, BindMin: base + 2, BindMax: base + n - 1}
		overlap := false
		for _, a := range avoid {
			if p.Mon <= a.BindMax && a.Mon <= p.BindMax {
				overlap = true
			}
		}
		if !overlap && portsFree(base, base+n-1) {
			return p, nil
		}
	}
	return ports{}, errors.New("testbed: found no block of free loopback ports in 200 tries")
}

func portsFree(lo, hi int) bool {
	for port := lo; port <= hi; port++ {
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// Start starts two independent clusters in parallel under dir (dir/source and dir/backup) on
// free loopback ports, and returns when rbd works on both. On failure nothing is left running
// and the error includes the script's diagnostics (and the tail of the daemon logs).
//
// The daemons are also stopped if this process exits without calling Stop (a watcher started by
// ceph-site.sh notices), so a crashed test run does not leave clusters behind.
func Start(ctx context.Context, dir string) (*Bed, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	script := filepath.Join(dir, "ceph-site.sh")
	if err := writeScript(script); err != nil {
		return nil, err
	}
	b := &Bed{
		Source: newSite("source", filepath.Join(dir, "source"), script),
		Backup: newSite("backup", filepath.Join(dir, "backup"), script),
		Dir:    dir,
		owned:  true,
	}

	var (
		mu    sync.Mutex
		taken []ports
		wg    sync.WaitGroup
		errs  = make([]error, 2)
	)
	for i, s := range []*Site{b.Source, b.Backup} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.up(ctx, func() (ports, error) {
				mu.Lock()
				defer mu.Unlock()
				p, err := pickPorts(taken)
				if err == nil {
					taken = append(taken, p)
				}
				return p, err
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// writeScript writes the embedded ceph-site.sh to path.
func writeScript(path string) error {
	if err := os.WriteFile(path, siteScript, 0o755); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

func newSite(name, dir, script string) *Site {
	return &Site{
		Name:    name,
		Dir:     dir,
		Conf:    filepath.Join(dir, "ceph.conf"),
		Keyring: filepath.Join(dir, "ceph.client.admin.keyring"),
		ID:      "admin",
		Pool:    Pool,
		script:  script,
	}
}

// up runs "ceph-site.sh up", with other ports when the chosen ones were taken meanwhile.
func (s *Site) up(ctx context.Context, pick func() (ports, error)) error {
	var last error
	for try := 0; try < startTries; try++ {
		p, err := pick()
		if err != nil {
			return err
		}
		args := []string{s.script, "up", s.Dir, strconv.Itoa(p.Mon), strconv.Itoa(p.BindMin),
			strconv.Itoa(p.BindMax), "--owner-pid", strconv.Itoa(os.Getpid())}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "bash", args...)
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.Output()
		if err == nil {
			if got := strings.TrimSpace(string(out)); got != s.Conf {
				return fmt.Errorf("testbed: start %s site: script printed %q, want %q", s.Name, got, s.Conf)
			}
			return nil
		}
		last = fmt.Errorf("testbed: start %s site in %s (mon port %d, ports %d-%d): %w\n%s",
			s.Name, s.Dir, p.Mon, p.BindMin, p.BindMax, err, strings.TrimSpace(stderr.String()))
		var ee *exec.ExitError
		if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != exPortInUse {
			break
		}
	}
	return last
}

// Stop stops both clusters of a bed made by Start (each daemon by its pid file: SIGTERM, then
// SIGKILL after ~10 s) and keeps their directories. It does nothing for a bed made by Open.
// Stop may be called more than once.
func (b *Bed) Stop() error {
	if b == nil || !b.owned {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*Site{b.Source, b.Backup} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.down()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Site) down() error {
	if s.script == "" {
		return nil
	}
	if _, err := os.Stat(s.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", s.script, "down", s.Dir)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testbed: stop %s site in %s: %w\n%s", s.Name, s.Dir, err, out)
	}
	return nil
}

// Open returns the bed that devenv.sh (make devenv) started in dir, after checking that rbd
// works on both sites. Stop does nothing on it: it stays up for the next run.
func Open(dir string) (*Bed, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b := &Bed{
		Source: newSite("source", filepath.Join(dir, "source"), ""),
		Backup: newSite("backup", filepath.Join(dir, "backup"), ""),
		Dir:    dir,
	}
	for _, s := range []*Site{b.Source, b.Backup} {
		if _, err := os.Stat(s.Conf); err != nil {
			return nil, fmt.Errorf("testbed: %s is not a test bed made by devenv.sh: %w", dir, err)
		}
		if _, err := s.RbdErr("ls", s.Pool); err != nil {
			return nil, fmt.Errorf("testbed: %s site in %s does not answer (start it with devenv.sh up): %w",
				s.Name, dir, err)
		}
	}
	return b, nil
}
