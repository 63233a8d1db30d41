package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// sites are the processes of a two-site setup on the test bed, each as its
// systemd unit runs it: a NATS server per site, the backup site's joined
// to the source site's by a leafnode, and the daemons.
type sites struct {
	t   *testing.T
	dir string // logs and stores
	bed *testbed.Bed
	log *eventLog

	sourceURL, backupURL                        string
	natsSource, natsBackup, publisher, consumer *testutil.Proc
}

// newSites starts the NATS servers; supervise starts the daemons.
func newSites(t *testing.T, dir string, log *eventLog) *sites {
	t.Helper()
	s := &sites{t: t, dir: dir, bed: testbed.Shared(t), log: log}
	sourcePort, backupPort, leafPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	s.sourceURL = fmt.Sprintf("nats://127.0.0.1:%d", sourcePort)
	s.backupURL = fmt.Sprintf("nats://127.0.0.1:%d", backupPort)
	s.natsBackup = testutil.NATSServer(t, dir, "nats-backup", backupPort, "--domain", "backup",
		"--leafnode-listen", fmt.Sprintf("127.0.0.1:%d", leafPort))
	s.natsSource = testutil.NATSServer(t, dir, "nats-source", sourcePort, "--domain", "source",
		"--leafnode-remote", fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort))
	s.consumer = s.daemon("consumer", s.bed.Backup, s.backupURL, "--site", "chaos")
	s.publisher = s.daemon("publisher", s.bed.Source, s.sourceURL)
	return s
}

// daemon is `ferry ROLE run` on site's cluster and the NATS server at url,
// not started.
func (s *sites) daemon(role string, site *testbed.Site, url string, extra ...string) *testutil.Proc {
	args := append([]string{testutil.FerryBinary(s.t), role, "run", "-c", site.Conf, "--id", site.ID, "--keyring", site.Keyring,
		"--nats", url, "--source-domain", "source", "--backup-domain", "backup", "--shutdown-timeout", "10s"}, extra...)
	return testutil.NewProc(s.t, s.dir, role, []string{"FERRY_CONFIG=" + os.DevNull}, args...)
}

// connect connects the test to a site's NATS server, as the hooks do.
func (s *sites) connect(url, name string) *bus.Conn {
	s.t.Helper()
	c, err := bus.Connect(bus.ConnOptions{URL: url, Name: name, SourceDomain: "source", BackupDomain: "backup"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// supervise starts each process and starts it again a second after it
// exits, until the returned stop is called (once or more): systemd's Restart=on-failure
// with RestartSec=1. A daemon that exits with status 0 is started again
// too, but the test fails: systemd would have left it stopped.
func (s *sites) supervise(procs ...*testutil.Proc) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.Done() == nil {
			if err := p.Start(); err != nil {
				s.t.Fatal(err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case <-p.Done():
				}
				err := p.Err()
				var ee *exec.ExitError
				switch {
				case err == nil:
					s.t.Errorf("%s exited with status 0: Restart=on-failure would not start it again", p.Name)
				case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
					// Killed by the schedule: already on record.
				default:
					s.log.add("restart", "%s exited by itself (%v); the supervisor starts it again", p.Name, err)
				}
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
				if err := p.Start(); err != nil {
					s.log.add("restart", "start %s: %v", p.Name, err)
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// eventLog is the test's record of every fault and restart, with its time
// since the start, on the test's log and in a file.
type eventLog struct {
	t     *testing.T
	start time.Time
	mu    sync.Mutex
	f     *os.File
	count map[string]int
}

func newEventLog(t *testing.T, path string) *eventLog {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &eventLog{t: t, start: time.Now(), f: f, count: map[string]int{}}
}

// add records one event of kind.
func (l *eventLog) add(kind, format string, args ...any) {
	line := fmt.Sprintf("T+%7.1fs %s", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count[kind]++
	fmt.Fprintln(l.f, line)
	l.t.Log(line)
}

// counts returns how many events of each kind were recorded.
func (l *eventLog) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(map[string]int, len(l.count))
	for k, v := range l.count {
		c[k] = v
	}
	return c
}

// logTime matches a line of a daemon's log (slog's text format) with its time.
var logTime = regexp.MustCompile(`^time=(\S+) `)

// linesWith returns the lines of the log at path that contain sub, and
// their times (zero when a line has none).
func linesWith(t *testing.T, path, sub string) ([]string, []time.Time) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var times []time.Time
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.Contains(l, sub) {
			continue
		}
		var at time.Time
		if m := logTime.FindStringSubmatch(l); m != nil {
			at, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		lines, times = append(lines, l), append(times, at)
	}
	return lines, times
}

// waitLock waits until a consumer whose pid ok accepts holds the backup
// site's lock, and returns its pid.
func waitLock(t *testing.T, conn *bus.Conn, within time.Duration, ok func(pid int) bool) int {
	t.Helper()
	var pid int
	testutil.CheckFor(t, within, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		who, err := bus.LockHolder(ctx, conn.Backup, bus.ConsumerLock)
		m := holderPid.FindStringSubmatch(who)
		if err != nil || m == nil {
			return fmt.Errorf("lock held by %q (%v)", who, err)
		}
		pid, _ = strconv.Atoi(m[1])
		if !ok(pid) {
			return fmt.Errorf("lock still held by %q", who)
		}
		return nil
	})
	return pid
}

// holderPid finds the pid in a consumer's name as a lock holder.
var holderPid = regexp.MustCompile(`, pid (\d+) `)
