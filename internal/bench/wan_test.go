package bench

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/internal/wanlink"
)

// Section W: Ferry and the seed pipeline across an emulated WAN link. There
// is no netem here, so the link is a relay in this process (internal/wanlink).

// wanSetting is one state of the link.
type wanSetting struct {
	rtt  time.Duration
	bits int64 // bandwidth limit per direction in bit/s; 0: none
}

func (w wanSetting) String() string {
	s := fmt.Sprintf("%d ms", w.rtt.Milliseconds())
	if w.bits > 0 {
		s += fmt.Sprintf(", %d Mbit/s", w.bits/1e6)
	}
	return s
}

var wanSettings = []wanSetting{
	{0, 0},
	{20 * time.Millisecond, 0},
	{100 * time.Millisecond, 0},
	{20 * time.Millisecond, 100e6},
}

// smallWrites is the number of 16 KiB writes of the small incremental.
const smallWrites = 512

// wan is the two-site topology with the link between the sites: the source
// site's `ferry nats-server` joins the backup site's as a leafnode through
// link; `ferry backup` talks to the source server, `ferry consumer run` to
// the backup server. The seed pipeline's TCP stream crosses seedLink, a
// second relay with the same settings.
type wan struct {
	e        *env
	p        *pipeline
	bakNATS  *daemon
	link     *wanlink.Link
	seedLink *wanlink.Link
	seedLn   *net.TCPListener // the seed's receiving end
}

func (e *env) startWAN() *wan {
	e.b.Helper()
	w := &wan{e: e}
	leafPort := testutil.FreePort(e.b)
	var bakURL string
	var err error
	w.bakNATS, bakURL = e.startNATS("backup-nats", "--domain", "backup", "--leafnode-listen", "127.0.0.1:"+strconv.Itoa(leafPort), "--leafnode-no-advertise")
	if w.link, err = wanlink.Listen("127.0.0.1:" + strconv.Itoa(leafPort)); err != nil {
		e.fatalf("%v", err)
	}
	e.b.Cleanup(func() { w.link.Close() })
	srcNATS, srcURL := e.startNATS("source-nats", "--domain", "source", "--leafnode-remote", "nats-leaf://"+w.link.Addr())
	domains := []string{"--source-domain", "source", "--backup-domain", "backup"}
	w.p = &pipeline{e: e, natsArgs: append([]string{"--nats", srcURL}, domains...), nats: srcNATS}
	w.p.startConsumer(append([]string{"--nats", bakURL}, domains...))

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		e.fatalf("%v", err)
	}
	w.seedLn = ln.(*net.TCPListener)
	e.b.Cleanup(func() { ln.Close() })
	if w.seedLink, err = wanlink.Listen(ln.Addr().String()); err != nil {
		e.fatalf("%v", err)
	}
	e.b.Cleanup(func() { w.seedLink.Close() })
	return w
}

func (w *wan) set(s wanSetting) {
	for _, l := range []*wanlink.Link{w.link, w.seedLink} {
		l.SetRTT(s.rtt)
		l.SetBandwidth(s.bits)
	}
}

// wanCase is one row: it changes the image and returns the bytes written.
type wanCase struct {
	what   string
	change func(image string, seed uint64) (int64, error)
}

func (e *env) wanCases() []wanCase {
	src := e.bed.Source
	return []wanCase{
		{"full " + size(e.size), func(image string, seed uint64) (int64, error) {
			return e.size, fill(src, image, e.size, compressible, seed)
		}},
		{"incremental, 10% in 64 KiB writes", func(image string, seed uint64) (int64, error) {
			return change(src, image, e.size, blockSize, 0.10, seed)
		}},
		{fmt.Sprintf("small incremental, %d × 16 KiB", smallWrites), func(image string, seed uint64) (int64, error) {
			const grain = 16 * kib
			// change takes int(blocks × fraction) blocks: half a block over.
			return change(src, image, e.size, grain, (smallWrites+0.5)/float64(e.size/grain), seed)
		}},
	}
}

// rows runs the three cases on a fresh image with the link in setting s:
// each case's snapshot goes through the seed pipeline, then `ferry backup`
// takes its own of the same content.
func (w *wan) rows(sec *section, s wanSetting, seed uint64) {
	e := w.e
	src, bak := e.bed.Source, e.bed.Backup
	w.set(s)
	img := e.newImage(src, "wan", e.size)
	e.b.Cleanup(func() { e.rmImage(bak, img) })
	dst := e.scratchImage(bak, "wanseed")
	defer e.rmImage(bak, dst)
	prev := ""
	for i, c := range e.wanCases() {
		n, err := c.change(img, seed+uint64(i))
		if err != nil {
			e.fatalf("%v", err)
		}
		snap := "w" + strconv.Itoa(i+1)
		src.Rbd(e.b, "snap", "create", src.Spec(img+"@"+snap))
		sm, sTo, sFrom := w.seed(img, prev, snap, dst)
		to0, from0 := w.link.Bytes()
		f := w.p.backup(img, "")
		to1, from1 := w.link.Bytes()
		if k := w.link.Accepted(); k != 1 {
			e.fatalf("the leafnode connected %d times through the link: it reconnected, maybe around the relay, so its byte count is incomplete", k)
		}
		fTo, fFrom := to1-to0, from1-from0
		sec.add(c.what, s.String(), secs(f.m.Wall)+", "+mbps(n, f.m.Wall), secs(sm.Wall)+", "+mbps(n, sm.Wall),
			speedup(f.m.Wall, sm.Wall), wire(fTo, fFrom), wire(sTo, sFrom), pct(fTo+fFrom, sTo+sFrom),
			rss(f.m.RSSKiB), rss(f.consKiB), rss(sm.RSSKiB))
		prev = snap
	}
	e.rmImage(src, img)
}

func wire(to, from int64) string { return size(to) + " / " + size(from) }

// seed runs `rbd export-diff | gzip -6` into a TCP connection through the
// seed link, received by `gunzip | rbd import-diff` into dst, and returns
// its measure and the bytes that crossed the link each way.
func (w *wan) seed(image, fromSnap, snap, dst string) (measure, int64, int64) {
	e := w.e
	e.b.Helper()
	src, bak := e.bed.Source, e.bed.Backup
	exp := []string{"export-diff", "--no-progress"}
	if fromSnap != "" {
		exp = append(exp, "--from-snap", fromSnap)
	}
	exp = append(exp, src.Spec(image+"@"+snap), "-")
	_, port, _ := net.SplitHostPort(w.seedLink.Addr())
	to0, from0 := w.seedLink.Bytes()

	t0 := time.Now()
	x, xErr, cancelX := command("bash", "-o", "pipefail", "-c", shellJoin(rbdCmd(src, exp...))+" | gzip -6 > /dev/tcp/127.0.0.1/"+port)
	defer cancelX()
	if err := x.Start(); err != nil {
		e.fatalf("%v", err)
	}
	w.seedLn.SetDeadline(time.Now().Add(time.Minute))
	conn, err := w.seedLn.AcceptTCP()
	if err != nil {
		x.Wait()
		e.fatalf("the seed pipeline's export did not connect: %v: %s", err, xErr)
	}
	// The importer reads the socket itself; Fd makes it blocking for it.
	sock, err := conn.File()
	conn.Close()
	if err != nil {
		e.fatalf("%v", err)
	}
	sock.Fd()
	m, iErr, cancelI := command("bash", "-o", "pipefail", "-c", "gunzip -c | "+shellJoin(rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst))))
	defer cancelI()
	m.Stdin = sock
	err = m.Start()
	sock.Close()
	if err != nil {
		e.fatalf("%v", err)
	}
	errM, errX := m.Wait(), x.Wait()
	meas := measure{Wall: time.Since(t0), RSSKiB: max(maxRSS(x), maxRSS(m))}
	if errX != nil || errM != nil {
		e.fatalf("seed pipeline across the link: export: %v: %s; import: %v: %s", errX, strings.TrimSpace(xErr.String()), errM, strings.TrimSpace(iErr.String()))
	}
	to1, from1 := w.seedLink.Bytes()
	return meas, to1 - to0, from1 - from0
}

// stop ends the daemons and notes their peak RSS.
func (w *wan) stop(sec *section) {
	if _, err := w.p.consumer.stop(); err != nil {
		w.e.b.Logf("consumer stop: %v", err)
	}
	var kib []string
	for _, d := range []*daemon{w.p.nats, w.bakNATS} {
		k, err := d.stop()
		if err != nil {
			w.e.b.Logf("nats-server stop: %v", err)
		}
		kib = append(kib, rss(k))
	}
	sec.notes = append(sec.notes, fmt.Sprintf("Peak RSS over the whole run: `ferry consumer run` %s (highest per-backup VmHWM), `ferry nats-server` %s at the source site and %s at the backup site (ru_maxrss at SIGTERM).",
		rss(w.p.consPeak), kib[0], kib[1]))
}

func (e *env) wanSection() *section {
	return &section{
		title: "W. Across an emulated WAN: ferry backup vs the seed pipeline through the same link",
		cols: []string{"Backup", "Link (RTT, limit)", "Ferry", "Seed", "Ferry/seed speed", "Ferry on the wire (→ / ←)",
			"Seed on the wire (→ / ←)", "Ferry/seed bytes", "`ferry backup` RSS", "consumer RSS", "Seed RSS"},
		notes: []string{
			"The link: a user-space TCP relay (internal/wanlink; this kernel has no netem) that delays each direction by half the RTT as a delay line " +
				"(many bytes in flight) and paces it with a token bucket when limited; it counts the bytes it delivers each way. " +
				"Ferry's link is the leafnode between the source site's and the backup site's `ferry nats-server` (domains source and backup); " +
				"`ferry backup` talks to the source server, `ferry consumer run` to the backup server. The seed pipeline " +
				"`rbd export-diff | gzip -6 | gunzip | rbd import-diff` sends gzip's output over TCP through a second relay with the same settings.",
			fmt.Sprintf("Data: a fresh %s image per link setting, each 512-byte sector 128 random bytes and 384 zero bytes (gzip -6 keeps about 26%%); "+
				"the incremental rewrites 10%% of its 64 KiB blocks, the small one %d of its 16 KiB blocks, at random places with random data. "+
				"Each case's snapshot goes through the seed pipeline first, then `ferry backup` takes its own snapshot of the same content.", size(e.size), smallWrites),
			"Ferry's time is `ferry backup`'s wall time, which waits for the backup site's confirmation; it is verified by reading both snapshots back. " +
				"Ferry's bytes also hold the one `ferry status` query that follows each backup (a few KiB). → is toward the backup site.",
		},
	}
}

// BenchmarkWAN runs section W alone (make bench-wan): -benchtime 1x.
func BenchmarkWAN(b *testing.B) {
	t0 := time.Now()
	e := newEnv(b)
	sec := e.wanSection()
	w := e.startWAN()
	for i, s := range wanSettings {
		w.rows(sec, s, uint64(700+10*i))
		b.Logf("WAN rows at %s done (%v)", s, time.Since(t0).Round(time.Second))
	}
	w.stop(sec)
	var out strings.Builder
	fmt.Fprintf(&out, "## Ferry across an emulated WAN\n\n- Machine: %s\n- Command: `%s` (`make bench-wan`), %s, took %s.\n\n",
		machine(), goTestLine("BenchmarkWAN"), time.Now().UTC().Format("2006-01-02 15:04 MST"), time.Since(t0).Round(time.Second))
	sec.markdown(&out)
	fmt.Print(out.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(out.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
