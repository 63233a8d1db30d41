package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// The knobs of TestChaos.
const (
	envDuration = "FERRY_CHAOS_DURATION" // how long faults are injected (a Go duration)
	envSeed     = "FERRY_CHAOS_SEED"     // the schedule's and the data's seed
	envDir      = "FERRY_CHAOS_DIR"      // keep the logs in a new directory there (default: a test directory)
)

const (
	defaultDuration = 2 * time.Minute
	chaosImages     = 2
	chaosImageSize  = 32 << 20
	// convergeWithin bounds the time from the last fault to every image's
	// last snapshot confirmed: retries back off up to 30 s, and a backup
	// waits for its attempts as they fail during the faults.
	convergeWithin = 10 * time.Minute
)

// badLines are what a daemon's log must never say under faults: each asks
// for a manual step (a rerun, a resync) or is a bug.
var badLines = []string{"--resync", "run the backup again", "given up", "panic:", "fatal error:", "not given back", "DATA RACE"}

// TestChaos: backups converge under random faults of every process, with
// no manual step but the supervisor's restarts (see the package comment).
// The faults, with their times, are in the test's log and in faults.log.
func TestChaos(t *testing.T) {
	duration, seed := chaosKnobs(t)
	dir := t.TempDir()
	if d := os.Getenv(envDir); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, fmt.Sprintf("seed%d-", seed)); err != nil {
			t.Fatal(err)
		}
	}
	source, backup := cephtest.Sites(t)
	log := newEventLog(t, filepath.Join(dir, "faults.log"))
	s := newSites(t, dir, log)
	// OSDs only of a bed of this test binary's own: others' tests use a shared one.
	ownBed := os.Getenv(testbed.EnvTestbed) == ""
	log.add("start", "seed %d, %v of faults, OSD faults %v, logs in %s", seed, duration, ownBed, dir)

	stopSupervisor := s.supervise(s.natsBackup, s.natsSource, s.consumer, s.publisher)
	defer stopSupervisor()
	hook := s.connect(s.sourceURL, "chaos hook")

	r := rand.New(rand.NewPCG(seed, 1))
	imgs := make([]*chaosImage, chaosImages)
	for i := range imgs {
		imgs[i] = &chaosImage{spec: cephtest.Image(t, source, fmt.Sprintf("chaos%d", i), chaosImageSize)}
		cephtest.Write(t, source, imgs[i].spec, 0, testutil.RandomBytes(r, chaosImageSize))
	}

	ctx, stopFaults := context.WithTimeout(context.Background(), duration)
	defer stopFaults()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		backups(ctx, t, log, source, hook, imgs, rand.New(rand.NewPCG(seed, 2)))
	}()
	go func() {
		defer wg.Done()
		faults(ctx, s, ownBed, rand.New(rand.NewPCG(seed, 3)))
	}()
	wg.Wait()
	faultsEnd := time.Now()
	log.add("end", "faults stopped; waiting for every image's last snapshot")

	conn := s.connect(s.backupURL, "chaos check")
	book := openBook(t, conn)
	for _, img := range imgs {
		if img.last == "" {
			continue
		}
		last := img.spec.AtSnap(img.last)
		testutil.CheckFor(t, convergeWithin, time.Second, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := book.Get(sctx, img.spec)
			if err != nil || st == nil || !st.HasConfirmed(img.last) || st.Status != ferry.StatusOK || st.Importing != "" {
				return fmt.Errorf("%s not confirmed, or the state not ok: state %+v (%v)", last, st, err)
			}
			return nil
		})
		cephtest.RequireSameContent(t, source, last, backup, last)
		log.add("converged", "%s confirmed and byte-identical at both sites, %v after the faults stopped (%d snapshot events)",
			last, time.Since(faultsEnd).Round(time.Second), img.events)
	}
	stopSupervisor()
	checkLogs(t, s)
	report(t, log, s)
}

// chaosKnobs reads the run's duration and seed from the environment.
func chaosKnobs(t *testing.T) (time.Duration, uint64) {
	duration, seed := defaultDuration, uint64(1)
	if v := os.Getenv(envDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", envDuration, v, err)
		}
		duration = d
	}
	if v := os.Getenv(envSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, v, err)
		}
		seed = n
	}
	return duration, seed
}

// chaosImage is a source image that backups change and snapshot.
type chaosImage struct {
	spec   ferry.ImageSpec
	last   string // the last snapshot whose event was queued
	events int
}

// backups changes a random image, snapshots it and queues its snapshot
// event, as the hooks do, every few seconds until ctx ends. A queueing
// that fails (the source's NATS server down) is tried again, as the agent does.
func backups(ctx context.Context, t *testing.T, log *eventLog, source *ceph.Cluster, hook *bus.Conn, imgs []*chaosImage, r *rand.Rand) {
	for ctx.Err() == nil {
		img := imgs[r.IntN(len(imgs))]
		for range 1 + r.IntN(4) {
			n := 1 + r.IntN(1<<20)
			off := r.Uint64N(chaosImageSize - uint64(n))
			var err error
			if r.IntN(5) == 0 {
				err = source.Zero(img.spec, off, uint64(n))
			} else {
				err = source.WriteAt(img.spec, testutil.RandomBytes(r, n), off)
			}
			if err != nil {
				t.Errorf("change %s: %v", img.spec, err)
				return
			}
		}
		now := time.Now().UTC()
		ev := ferry.SnapshotEvent{Image: img.spec.AtSnap(ferry.NewSnapshotName(now)), Consistency: ferry.CrashConsistent, Created: now}
		if err := source.CreateSnapshot(ev.Image); err != nil {
			t.Errorf("snapshot %s: %v", ev.Image, err)
			return
		}
		queue(t, log, hook, ev)
		img.last = ev.Image.Snap
		img.events++
		log.add("backup", "snapshot event queued for %s", ev.Image)
		sleep(ctx, time.Duration(3+r.IntN(8))*time.Second)
	}
}

// queue publishes ev, trying again every second while the source site's
// NATS server does not take it (for up to 5 minutes).
func queue(t *testing.T, log *eventLog, hook *bus.Conn, ev ferry.SnapshotEvent) {
	for deadline := time.Now().Add(5 * time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bus.PublishSnapshotEvent(ctx, hook, ev)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the source site's NATS server did not take a snapshot event for 5 minutes: %v", err)
			return
		}
		log.add("retry", "queue %s: %v; trying again", ev.Image, err)
		time.Sleep(time.Second)
	}
}

// fault is one kind of harm the schedule picks from. A lasting one (a
// stop, an OSD down) runs on while the schedule goes on with others, but
// its target gets no other lasting fault meanwhile.
type fault struct {
	target  string
	lasting bool
	do      func(r *rand.Rand)
}

// faults does a random fault every few seconds until ctx ends, and returns
// once every lasting fault is over (a stopped process continued, a killed
// OSD started again).
func faults(ctx context.Context, s *sites, ownBed bool, r *rand.Rand) {
	kill := func(p *testutil.Proc) fault {
		return fault{p.Name, false, func(*rand.Rand) {
			pid := p.Pid()
			if err := p.Kill(); err != nil {
				s.log.add("fault", "kill -9 %s: %v (not running)", p.Name, err)
				return
			}
			s.log.add("fault", "kill -9 %s (pid %d)", p.Name, pid)
		}}
	}
	stop := func(p *testutil.Proc) fault {
		return fault{p.Name, true, func(r *rand.Rand) {
			// Up to 45 s: past half the lock's TTL the consumer gives its lock up.
			d := time.Duration(5+r.IntN(41)) * time.Second
			pid := p.Pid()
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				s.log.add("fault", "SIGSTOP %s: %v (not running)", p.Name, err)
				return
			}
			s.log.add("fault", "SIGSTOP %s (pid %d) for %v", p.Name, pid, d)
			time.Sleep(d) // the fault itself
			// The same run only: one killed meanwhile was started again, running.
			if p.Pid() != pid {
				s.log.add("end of fault", "stop of %s (pid %d) over: killed meanwhile", p.Name, pid)
				return
			}
			_ = p.Signal(syscall.SIGCONT)
			s.log.add("end of fault", "SIGCONT %s (pid %d)", p.Name, pid)
		}}
	}
	all := []fault{kill(s.publisher), kill(s.consumer), kill(s.natsSource), kill(s.natsBackup), stop(s.natsSource), stop(s.natsBackup)}
	if ownBed {
		all = append(all, osdFault(s, s.bed.Source), osdFault(s, s.bed.Backup))
	}
	var lasting sync.WaitGroup
	defer lasting.Wait()
	var mu sync.Mutex
	busy := map[string]bool{} // targets of lasting faults under way
	for {
		sleep(ctx, time.Duration(2+r.IntN(7))*time.Second)
		if ctx.Err() != nil {
			return
		}
		f := all[r.IntN(len(all))]
		if !f.lasting {
			f.do(r)
			continue
		}
		mu.Lock()
		if busy[f.target] {
			mu.Unlock()
			continue
		}
		busy[f.target] = true
		mu.Unlock()
		fr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
		lasting.Add(1)
		go func() {
			defer lasting.Done()
			f.do(fr)
			mu.Lock()
			busy[f.target] = false
			mu.Unlock()
		}()
	}
}

// osdFault kills site's OSD (kill -9) and starts it again after a while,
// as systemd's ceph-osd@.service would.
func osdFault(s *sites, site *testbed.Site) fault {
	return fault{"OSD of " + site.Name, true, func(r *rand.Rand) {
		raw, err := os.ReadFile(filepath.Join(site.Dir, "run", "osd.0.pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 {
			s.t.Errorf("OSD of the %s site: no pid file: %v", site.Name, err)
			return
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			s.t.Errorf("kill -9 OSD of the %s site (pid %d): %v", site.Name, pid, err)
			return
		}
		d := time.Duration(3+r.IntN(13)) * time.Second
		s.log.add("fault", "kill -9 OSD of the %s site (pid %d), down for %v", site.Name, pid, d)
		time.Sleep(d) // the fault itself
		testutil.CheckFor(s.t, 30*time.Second, 100*time.Millisecond, func() error {
			if alive(pid) {
				return fmt.Errorf("killed OSD pid %d still there", pid)
			}
			return nil
		})
		out, err := exec.Command("ceph-osd", "-c", site.Conf, "-i", "0").CombinedOutput()
		if err != nil {
			s.t.Errorf("start the OSD of the %s site again: %v\n%s", site.Name, err, out)
			return
		}
		s.log.add("end of fault", "OSD of the %s site started again", site.Name)
	}}
}

// alive tells whether pid runs (a zombie, which init has yet to reap, does not).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func openBook(t *testing.T, conn *bus.Conn) *state.Book {
	t.Helper()
	var book *state.Book
	testutil.CheckFor(t, time.Minute, time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		book, err = state.Open(ctx, conn.Backup)
		return err
	})
	return book
}

// checkLogs fails the test for any line of a daemon's log that asks for a
// manual step or shows a bug, and for a consumer that stood by (there is
// one consumer: it could only have waited on its own dead predecessor).
func checkLogs(t *testing.T, s *sites) {
	t.Helper()
	for _, p := range []*testutil.Proc{s.consumer, s.publisher} {
		for _, bad := range badLines {
			if lines, _ := linesWith(t, p.Log, bad); len(lines) > 0 {
				t.Errorf("%s's log says %q (%d times), first: %s", p.Name, bad, len(lines), lines[0])
			}
		}
	}
	if lines, _ := linesWith(t, s.consumer.Log, "standby"); len(lines) > 0 {
		t.Errorf("the consumer stood by on a lock (%d times), first: %s", len(lines), lines[0])
	}
}

// report logs what was done: faults by kind, restarts, take-overs of the
// lock and how long after the consumer's start each came, and why daemons
// exited by themselves.
func report(t *testing.T, log *eventLog, s *sites) {
	counts := log.counts()
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("events: %s", strings.Join(kinds, ", "))
	// A take-over right after a start, with no outage between, followed a
	// restart; one after an outage was of the consumer's own lock.
	lines, times := linesWith(t, s.consumer.Log, "")
	var starts, afterStart, afterOutage int
	var slowest time.Duration
	var started time.Time
	outage := false
	for i, l := range lines {
		switch {
		case strings.Contains(l, "consumer running"):
			starts, started, outage = starts+1, times[i], false
		case strings.Contains(l, "is unreachable"):
			outage = true
		case strings.Contains(l, tookOver) && !outage:
			afterStart++
			slowest = max(slowest, times[i].Sub(started))
		case strings.Contains(l, tookOver):
			afterOutage++
		}
	}
	t.Logf("consumer: %d starts; the lock taken over at once %d times after a restart (the slowest %v after its start), %d times when NATS came back",
		starts, afterStart, slowest.Round(time.Millisecond), afterOutage)
	exits, _ := linesWith(t, filepath.Join(s.dir, "faults.log"), "exited by itself")
	t.Logf("daemons that exited by themselves and were restarted: %d", len(exits))
	for _, p := range []*testutil.Proc{s.consumer, s.publisher} {
		// A ferry command's last word, its error, starts with "ferry: ".
		why, _ := linesWith(t, p.Log, "ferry: ")
		for _, w := range why {
			if strings.HasPrefix(w, "ferry: ") {
				t.Logf("%s exited: %s", p.Name, w)
			}
		}
	}
}
