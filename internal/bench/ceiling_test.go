package bench

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/testbed"
)

// The ceiling measurements move whole 4 MiB objects (what a full diff of an
// rbd image reads and writes) with 8 in flight, as many large writes as
// Ferry's import keeps.
const (
	ceilingObject   = 4 << 20
	ceilingInFlight = 8
	ceilingRun      = "ferry-ceiling"
)

// ceilings are the times of the same bytes moved with no diff, no pipe and
// no parsing in the way: straight to RADOS (no librbd, no object map), and
// through librbd into a fresh image, as an import writes.
type ceilings struct {
	radosWrite, radosRead, librbdWrite, librbdRead []time.Duration
}

// measure takes one round of ceilings: writes at the backup site (where the
// imports write), reads at the source site from image, the data set the
// exports read. The tools' times leave out connecting and opening, which the
// rbd and Ferry rows include, so the ceilings are if anything too high.
func (c *ceilings) measure(e *env, image string) {
	e.b.Helper()
	src, bak := e.bed.Source, e.bed.Backup
	e.waitOSDsIdle(src, bak) // the rows before removed images too
	w, _ := e.radosBench(bak, false)
	_, r := e.radosBench(src, true)
	c.radosWrite, c.radosRead = append(c.radosWrite, w), append(c.radosRead, r)

	fresh := e.scratchImage(bak, "ceiling")
	bak.Rbd(e.b, "resize", "--no-progress", bak.Spec(fresh), "--size", strconv.FormatInt(e.size, 10)+"B")
	c.librbdWrite = append(c.librbdWrite, e.rbdBench(bak, "write", fresh))
	e.rmImage(bak, fresh)
	c.librbdRead = append(c.librbdRead, e.rbdBench(src, "read", image))
	// Removing a GiB at each site goes on in the OSDs after the commands
	// return; the next row must not pay for it.
	e.waitOSDsIdle(src, bak)
}

// waitOSDsIdle waits until the OSD of each site has used less than 5% of a
// CPU over a quarter of a second (a minute at most).
func (e *env) waitOSDsIdle(sites ...*testbed.Site) {
	e.b.Helper()
	const tick = 250 * time.Millisecond
	cpu := func(site *testbed.Site) time.Duration {
		pid, err := os.ReadFile(filepath.Join(site.Dir, "run", "osd.0.pid"))
		if err != nil {
			e.fatalf("OSD of the %s site: %v", site.Name, err)
		}
		stat, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "stat"))
		if err != nil {
			e.fatalf("OSD of the %s site: %v", site.Name, err)
		}
		// Fields 14 and 15 (utime, stime, in clock ticks of 10 ms) follow
		// the command name, which ends with the last ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+k) * 10 * time.Millisecond
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		before := make([]time.Duration, len(sites))
		for i, s := range sites {
			before[i] = cpu(s)
		}
		time.Sleep(tick)
		idle := true
		for i, s := range sites {
			idle = idle && cpu(s)-before[i] < tick/20
		}
		if idle {
			return
		}
	}
	e.b.Logf("the OSDs were still busy a minute after a ceiling round")
}

var (
	radosTotalTime = regexp.MustCompile(`(?m)^Total time run:\s+([0-9.]+)\s*$`)
	radosBenchOps  = regexp.MustCompile(`(?m)^Total (?:writes|reads) made:\s+([0-9]+)\s*$`)
	rbdBenchTotals = regexp.MustCompile(`(?m)^elapsed:\s+\S+\s+ops:\s+([0-9]+)\s+ops/sec:\s+([0-9.]+)`)
)

// radosBench writes e.size bytes as objects straight to RADOS at site with
// rados bench and, if read is set, reads them back; the objects are removed.
func (e *env) radosBench(site *testbed.Site, read bool) (write, readBack time.Duration) {
	e.b.Helper()
	objects := e.size / ceilingObject
	rados := func(args ...string) string {
		e.b.Helper()
		argv := append(append([]string{"rados"}, site.Args()...), append([]string{"-p", site.Pool}, args...)...)
		out, err := runOutput(argv[0], argv[1:]...)
		if err != nil {
			e.fatalf("%v", err)
		}
		return out
	}
	defer rados("cleanup", "--run-name", ceilingRun)
	inFlight := strconv.Itoa(ceilingInFlight)
	write = e.radosBenchTime("rados bench write", rados("bench", "600", "write", "-b", strconv.Itoa(ceilingObject), "-t", inFlight,
		"--max-objects", strconv.FormatInt(objects, 10), "--no-cleanup", "--run-name", ceilingRun), objects)
	if read {
		readBack = e.radosBenchTime("rados bench seq", rados("bench", "600", "seq", "-t", inFlight, "--run-name", ceilingRun), objects)
	}
	return write, readBack
}

// rbdBench reads or writes e.size bytes of image at site through librbd,
// sequentially, with rbd bench.
func (e *env) rbdBench(site *testbed.Site, ioType, image string) time.Duration {
	e.b.Helper()
	objects := e.size / ceilingObject
	out := site.Rbd(e.b, "bench", "--io-type", ioType, "--io-size", strconv.Itoa(ceilingObject),
		"--io-threads", strconv.Itoa(ceilingInFlight), "--io-total", strconv.FormatInt(e.size, 10)+"B",
		"--io-pattern", "seq", site.Spec(image))
	m := rbdBenchTotals.FindStringSubmatch(out)
	if m == nil {
		e.fatalf("rbd bench: no totals in its output:\n%s", out)
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n != objects {
		e.fatalf("rbd bench made %d ops, want %d:\n%s", n, objects, out)
	}
	// rbd bench prints whole seconds elapsed; its rate has the precision.
	rate, err := strconv.ParseFloat(m[2], 64)
	if err != nil || rate <= 0 {
		e.fatalf("rbd bench: ops/sec %q", m[2])
	}
	return time.Duration(float64(objects) / rate * float64(time.Second))
}

// radosBenchTime is the time a rados bench run took, checking that it made
// all its ops.
func (e *env) radosBenchTime(what, out string, objects int64) time.Duration {
	e.b.Helper()
	t, ops := radosTotalTime.FindStringSubmatch(out), radosBenchOps.FindStringSubmatch(out)
	if t == nil || ops == nil {
		e.fatalf("%s: no total time or op count in its output:\n%s", what, out)
	}
	if n, _ := strconv.ParseInt(ops[1], 10, 64); n != objects {
		e.fatalf("%s made %d ops, want %d:\n%s", what, n, objects, out)
	}
	s, err := strconv.ParseFloat(t[1], 64)
	if err != nil {
		e.fatalf("%s: total time %q: %v", what, t[1], err)
	}
	return time.Duration(s * float64(time.Second))
}

// ceilingRows compares d's times in section A with the ceilings of the
// same rounds.
func (e *env) ceilingRows(s *section, d *dataset) {
	c := &d.ceilings
	row := func(op string, rados, librbd, rbd, ferry []time.Duration, target string, times float64) {
		ra, lb, r, f := median(rados), median(librbd), median(rbd), median(ferry)
		reach := target + ": above what librbd alone does here"
		if r.Seconds()/lb.Seconds() >= times {
			reach = target + ": within what librbd alone does here"
		}
		s.add(op, d.kind.String(), mbps(e.size, ra), mbps(e.size, lb), mbps(e.size, r), mbps(e.size, f),
			speedup(lb, r), speedup(f, r), reach)
	}
	row("read: export-diff → /dev/null", c.radosRead, c.librbdRead, d.exportNull.rbd, d.exportNull.ferry, "≥ rbd", 1)
	row("write: import-diff - (`cat FILE |`)", c.radosWrite, c.librbdWrite, d.importStdin.rbd, d.importStdin.ferry, "≥ 1.5x rbd", 1.5)
}
