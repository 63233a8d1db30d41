package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testbed"
)

// env is what every row needs.
type env struct {
	b     *testing.B
	bed   *testbed.Bed
	ferry string // the ferry binary
	dir   string // scratch files
	size  int64  // the "1 GiB" rows' image size
	runs  int
}

// pair holds the runs of one row of section A, Ferry's and rbd's.
type pair struct {
	ferry, rbd []time.Duration
	fRSS, rRSS int64
}

// dataset is a filled image at the source with snapshot s1.
type dataset struct {
	kind    dataKind
	image   string // name in the pool
	sumS1   string // sha256 of image@s1
	changed int64  // bytes written between s1 and s2 (set by the pipeline rows)

	// The times of section A that section A2 compares with its ceilings,
	// measured in the same rounds.
	exportNull, importStdin pair
	ceilings                ceilings
}

// rbd returns an rbd command line for site.
func rbdCmd(site *testbed.Site, args ...string) []string {
	return append(append([]string{"rbd"}, site.Args()...), args...)
}

// ferryCmd returns a ferry command line for site (nil: no Ceph flags).
func (e *env) ferryCmd(site *testbed.Site, args ...string) []string {
	c := append([]string{e.ferry}, args...)
	if site != nil {
		c = append(c, site.Args()...)
	}
	return c
}

func (e *env) fatalf(format string, args ...any) {
	e.b.Helper()
	e.b.Fatalf(format, args...)
}

// do runs a command line with stdin/stdout files (nil: /dev/null).
func (e *env) do(stdin, stdout *os.File, argv []string) measure {
	e.b.Helper()
	m, err := run(stdin, stdout, argv[0], argv[1:]...)
	if err != nil {
		e.fatalf("%v", err)
	}
	return m
}

// newImage creates an image at site (removed when the benchmark ends).
func (e *env) newImage(site *testbed.Site, prefix string, size int64, extra ...string) string {
	e.b.Helper()
	name := testbed.ImageName(e.b, prefix)
	site.CreateImage(e.b, name, size, extra...)
	return name
}

// scratchImage creates an empty 1 MiB image at site for an import to grow;
// the caller removes it with rmImage.
func (e *env) scratchImage(site *testbed.Site, prefix string) string {
	e.b.Helper()
	name := testbed.ImageName(e.b, prefix)
	site.Rbd(e.b, "create", site.Spec(name), "--size", "1M")
	return name
}

func (e *env) rmImage(site *testbed.Site, name string) {
	e.b.Helper()
	site.RbdErr("snap", "purge", "--no-progress", site.Spec(name))
	if _, err := site.RbdErr("rm", "--no-progress", site.Spec(name)); err != nil {
		e.b.Logf("remove %s at the %s site: %v", name, site.Name, err)
	}
}

func (e *env) sha(site *testbed.Site, spec string) string {
	e.b.Helper()
	return site.SHA256(e.b, spec)
}

func (e *env) verify(what string, srcSpec, bakSpec, want string) {
	e.b.Helper()
	if want == "" {
		want = e.sha(e.bed.Source, srcSpec)
	}
	if got := e.sha(e.bed.Backup, bakSpec); got != want {
		e.fatalf("%s: backup-site %s has sha256 %s, source %s has %s", what, bakSpec, got, srcSpec, want)
	}
	e.b.Logf("verified %s: %s = %s", what, bakSpec, srcSpec)
}

// BenchmarkTable measures Ferry side by side with rbd and the seed pipeline
// and prints a Markdown report. Run it once: -benchtime 1x (see make bench).
func BenchmarkTable(b *testing.B) {
	t0 := time.Now()
	e := newEnv(b)

	var datasets []*dataset
	for i, kind := range []dataKind{randomData, halfZero} {
		d := &dataset{kind: kind, image: e.newImage(e.bed.Source, kind.String(), e.size)}
		if err := fill(e.bed.Source, d.image, e.size, kind, uint64(100+i)); err != nil {
			b.Fatal(err)
		}
		e.bed.Source.Rbd(b, "snap", "create", e.bed.Source.Spec(d.image+"@s1"))
		d.sumS1 = e.sha(e.bed.Source, d.image+"@s1")
		datasets = append(datasets, d)
		b.Logf("%s: %s filled (%v)", kind, d.image, time.Since(t0).Round(time.Second))
	}
	thin := e.newImage(e.bed.Source, "thin", 100*gib)
	for i := int64(0); i < 4; i++ {
		if err := writeAt(e.bed.Source, thin, i*25*gib, mib, uint64(200+i)); err != nil {
			b.Fatal(err)
		}
	}
	e.bed.Source.Rbd(b, "snap", "create", e.bed.Source.Spec(thin+"@s1"))
	e.bed.Source.Rbd(b, "snap", "create", e.bed.Source.Spec(thin+"@s2"))

	engine := &section{
		title: "A. Diff engine: ferry export-diff / import-diff vs rbd",
		cols:  []string{"Operation", "Data", "Ferry", "rbd", "Ferry/rbd speed", "Ferry peak RSS", "rbd peak RSS", "Target"},
	}
	ceiling := &section{
		title: "A2. Ceilings: the same bytes with no diff, no pipe and no parsing in the way",
		cols: []string{"Operation", "Data", "RADOS alone", "librbd alone", "rbd", "Ferry",
			"librbd alone/rbd speed", "Ferry/rbd speed", "Target of A"},
		notes: []string{fmt.Sprintf("RADOS alone: `rados bench` writes the bytes as whole %d MiB objects straight to the pool at the backup site, "+
			"and reads them back at the source site (no librbd, no object map). librbd alone: `rbd bench` writes them into a fresh image at the backup "+
			"site, as an import does, and reads the data set's image at the source site. Both with %d in flight, in each round of A "+
			"(median of the same rounds; each ends by removing what it wrote and waiting until both OSDs are idle again). Their times leave out connecting and opening, which rbd's and Ferry's include, "+
			"so the ceilings are if anything too high. An importer needs librbd (it keeps the object map and the exclusive lock).",
			ceilingObject>>20, ceilingInFlight)},
	}
	for _, d := range datasets {
		e.engineRows(engine, d)
		b.Logf("engine rows %s done (%v)", d.kind, time.Since(t0).Round(time.Second))
	}
	e.restoreRow(engine, datasets[0])
	e.thinEngineRow(engine, thin)
	if *flagBig {
		e.bigRows(engine)
		b.Logf("big rows done (%v)", time.Since(t0).Round(time.Second))
	}

	pipe := &section{
		title: "B. Pipeline end to end: ferry backup → JetStream → ferry consumer vs the seed pipeline",
		cols: []string{"Backup", "Data", "Ferry", "Seed", "Ferry/seed speed", "Sent over JetStream", "gzip -6 of rbd diff",
			"Sent/gzip", "`ferry backup` RSS", "consumer RSS", "Seed RSS", "Target"},
	}
	e.pipelineRows(pipe, datasets, thin, t0)
	for _, d := range datasets {
		e.incrementalEngineRows(engine, d)
	}
	engine.notes = append(engine.notes, "incremental rows: the s1→s2 diff of section B (10% of the 64 KiB blocks rewritten at random places); "+
		"MB/s over the changed bytes; each import goes into an image at the backup site that holds s1, rolled back to s1 first.")
	b.Logf("incremental engine rows done (%v)", time.Since(t0).Round(time.Second))
	for _, d := range datasets {
		e.ceilingRows(ceiling, d)
	}

	var out strings.Builder
	e.header(&out, time.Since(t0))
	engine.markdown(&out)
	ceiling.markdown(&out)
	pipe.markdown(&out)
	fmt.Print(out.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, []byte(out.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// newEnv sets up a benchmark on the shared test bed with the ferry binary
// of -ferry-bin, or one built from this module.
func newEnv(b *testing.B) *env {
	e := &env{b: b, bed: testbed.Shared(), dir: b.TempDir(), size: *flagSize, runs: max(1, *flagRuns)}
	e.ferry = *flagFerryBin
	if e.ferry == "" {
		e.ferry = buildFerry(b, e.dir)
	} else if abs, err := filepath.Abs(e.ferry); err == nil {
		e.ferry = abs
	}
	return e
}

// buildFerry builds ./cmd/ferry of this module into dir.
func buildFerry(b *testing.B, dir string) string {
	b.Helper()
	mod, err := runOutput("go", "env", "GOMOD")
	if err != nil || strings.TrimSpace(mod) == "" {
		b.Fatalf("find the module root: %v", err)
	}
	bin := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-tags", "pacific", "-o", bin, "./cmd/ferry")
	cmd.Dir = filepath.Dir(strings.TrimSpace(mod))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/ferry: %v\n%s", err, out)
	}
	return bin
}

// engineRows: full export and import of one data set, ferry vs rbd.
func (e *env) engineRows(s *section, d *dataset) {
	src, bak := e.bed.Source, e.bed.Backup
	spec := src.Spec(d.image + "@s1")
	add := func(p *pair, fm, rm measure) {
		p.ferry, p.rbd = append(p.ferry, fm.Wall), append(p.rbd, rm.Wall)
		p.fRSS, p.rRSS = max(p.fRSS, fm.RSSKiB), max(p.rRSS, rm.RSSKiB)
	}
	var null, file, impFile, impStdin pair
	diffFile := filepath.Join(e.dir, d.kind.String()+"-rbd.diff")
	var ferryDiffSize int64
	for r := 0; r < e.runs; r++ {
		fm := e.do(nil, nil, e.ferryCmd(src, "export-diff", "--no-progress", spec, "-"))
		rm := e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", spec, "-"))
		add(&null, fm, rm)

		ff := filepath.Join(e.dir, d.kind.String()+"-ferry.diff")
		os.Remove(ff)
		os.Remove(diffFile)
		fm = e.do(nil, nil, e.ferryCmd(src, "export-diff", "--no-progress", spec, ff))
		rm = e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", spec, diffFile))
		add(&file, fm, rm)
		if st, err := os.Stat(ff); err == nil {
			ferryDiffSize = st.Size()
		}
		os.Remove(ff)
	}
	rbdDiff, err := os.Stat(diffFile)
	if err != nil {
		e.fatalf("%v", err)
	}

	for r := 0; r < e.runs; r++ {
		// From the file rbd export-diff wrote, into fresh images at the backup site.
		dst := e.scratchImage(bak, "imp")
		fm := e.do(nil, nil, e.ferryCmd(bak, "import-diff", "--no-progress", diffFile, bak.Spec(dst)))
		if r == 0 {
			e.verify("ferry import-diff FILE ("+d.kind.String()+")", spec, bak.Spec(dst+"@s1"), d.sumS1)
		}
		e.rmImage(bak, dst)
		dst = e.scratchImage(bak, "imp")
		rm := e.do(nil, nil, rbdCmd(bak, "import-diff", "--no-progress", diffFile, bak.Spec(dst)))
		e.rmImage(bak, dst)
		add(&impFile, fm, rm)

		dst = e.scratchImage(bak, "imp")
		fm, err := runPiped([]string{"cat", diffFile}, e.ferryCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst)))
		if err != nil {
			e.fatalf("%v", err)
		}
		if r == 0 {
			e.verify("cat FILE | ferry import-diff - ("+d.kind.String()+")", spec, bak.Spec(dst+"@s1"), d.sumS1)
		}
		e.rmImage(bak, dst)
		dst = e.scratchImage(bak, "imp")
		rm, err = runPiped([]string{"cat", diffFile}, rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst)))
		if err != nil {
			e.fatalf("%v", err)
		}
		e.rmImage(bak, dst)
		add(&impStdin, fm, rm)
		d.ceilings.measure(e, d.image)
	}
	os.Remove(diffFile)

	n := e.size
	row := func(op string, p pair, target string) {
		f, r := median(p.ferry), median(p.rbd)
		s.add(op, d.kind.String(), mbps(n, f), mbps(n, r), speedup(f, r), rss(p.fRSS), rss(p.rRSS), target)
	}
	exportTarget := func(p pair) string {
		return verdict("≥ rbd", median(p.ferry) <= median(p.rbd))
	}
	row("export-diff → /dev/null", null, exportTarget(null))
	row("export-diff → file", file, exportTarget(file))
	fileVsStdin := median(impStdin.rbd).Seconds() / median(impFile.ferry).Seconds()
	row("import-diff FILE", impFile, fmt.Sprintf("%.2fx rbd from stdin", fileVsStdin))
	stdinRatio := median(impStdin.rbd).Seconds() / median(impStdin.ferry).Seconds()
	row("import-diff - (`cat FILE |`)", impStdin, verdict("≥ 1.5x", stdinRatio >= 1.5))
	d.exportNull, d.importStdin = null, impStdin
	s.notes = append(s.notes, fmt.Sprintf("%s: diff sizes: rbd export-diff %s, ferry export-diff %s (%s).",
		d.kind, size(rbdDiff.Size()), size(ferryDiffSize), pct(ferryDiffSize, rbdDiff.Size())))
}

// incrementalEngineRows: the s1→s2 incremental (10% changed in scattered
// blocks, made by the pipeline rows) exported and imported, ferry vs rbd. An
// incremental is bound by the round trips of many small reads and writes,
// not by bytes, so it shows what the full rows cannot.
func (e *env) incrementalEngineRows(s *section, d *dataset) {
	src, bak := e.bed.Source, e.bed.Backup
	spec := src.Spec(d.image + "@s2")
	var fExp, rExp, fImp, rImp []time.Duration
	var fExpRSS, rExpRSS, fImpRSS, rImpRSS int64
	for r := 0; r < e.runs; r++ {
		fm := e.do(nil, nil, e.ferryCmd(src, "export-diff", "--no-progress", "--from-snap", "s1", spec, "-"))
		rm := e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", "--from-snap", "s1", spec, "-"))
		fExp, rExp = append(fExp, fm.Wall), append(rExp, rm.Wall)
		fExpRSS, rExpRSS = max(fExpRSS, fm.RSSKiB), max(rExpRSS, rm.RSSKiB)
	}

	diffFile := filepath.Join(e.dir, d.kind.String()+"-incr.diff")
	defer os.Remove(diffFile)
	os.Remove(diffFile)
	e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", "--from-snap", "s1", spec, diffFile))
	// One target holding s1; every import starts from a rollback to it, so
	// both tools meet the same image.
	dst := e.scratchImage(bak, "incr")
	defer e.rmImage(bak, dst)
	if _, err := runPiped(rbdCmd(src, "export-diff", "--no-progress", src.Spec(d.image+"@s1"), "-"),
		rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst))); err != nil {
		e.fatalf("ship %s@s1 to the backup site: %v", d.image, err)
	}
	reset := func() {
		bak.Rbd(e.b, "snap", "rollback", "--no-progress", bak.Spec(dst+"@s1"))
		bak.RbdErr("snap", "rm", "--no-progress", bak.Spec(dst+"@s2"))
	}
	for r := 0; r < e.runs; r++ {
		reset()
		fm, err := runPiped([]string{"cat", diffFile}, e.ferryCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst)))
		if err != nil {
			e.fatalf("%v", err)
		}
		if r == 0 {
			e.verify("ferry import-diff of the incremental ("+d.kind.String()+")", spec, bak.Spec(dst+"@s2"), "")
		}
		reset()
		rm, err := runPiped([]string{"cat", diffFile}, rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst)))
		if err != nil {
			e.fatalf("%v", err)
		}
		fImp, rImp = append(fImp, fm.Wall), append(rImp, rm.Wall)
		fImpRSS, rImpRSS = max(fImpRSS, fm.RSSKiB), max(rImpRSS, rm.RSSKiB)
	}

	what := "incremental, 10% changed"
	f, r := median(fExp), median(rExp)
	s.add("export-diff --from-snap → /dev/null, "+what, d.kind.String(), mbps(d.changed, f), mbps(d.changed, r), speedup(f, r),
		rss(fExpRSS), rss(rExpRSS), "none (for comparison)")
	f, r = median(fImp), median(rImp)
	s.add("import-diff - (`cat FILE |`), "+what, d.kind.String(), mbps(d.changed, f), mbps(d.changed, r), speedup(f, r),
		rss(fImpRSS), rss(rImpRSS), "none (for comparison)")
}

// restoreRow: a failover at the backup site, `ferry restore SNAP --to NEW` vs
// `rbd export-diff SNAP - | rbd import-diff - NEW`, from the same backup
// snapshot (d@s1 shipped to the backup site with rbd first).
func (e *env) restoreRow(s *section, d *dataset) {
	bak := e.bed.Backup
	backupImage := e.scratchImage(bak, "rst-src")
	defer e.rmImage(bak, backupImage)
	if _, err := runPiped(rbdCmd(e.bed.Source, "export-diff", "--no-progress", e.bed.Source.Spec(d.image+"@s1"), "-"),
		rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(backupImage))); err != nil {
		e.fatalf("ship %s@s1 to the backup site: %v", d.image, err)
	}
	snap := bak.Spec(backupImage + "@s1")
	var f, r []time.Duration
	var fRSS, rRSS int64
	for i := 0; i < e.runs; i++ {
		dst := testbed.ImageName(e.b, "rst")
		fm := e.do(nil, nil, e.ferryCmd(bak, "restore", "--no-progress", snap, "--to", bak.Spec(dst)))
		if i == 0 {
			e.verify("ferry restore ("+d.kind.String()+")", d.image+"@s1", bak.Spec(dst), d.sumS1)
		}
		e.rmImage(bak, dst)

		// The shell's ru_maxrss is its largest process's: rbd import-diff or export-diff.
		dst = e.scratchImage(bak, "rst")
		rm, err := run(nil, nil, "bash", "-o", "pipefail", "-c",
			shellJoin(rbdCmd(bak, "export-diff", "--no-progress", snap, "-"))+" | "+
				shellJoin(rbdCmd(bak, "import-diff", "--no-progress", "-", bak.Spec(dst))))
		if err != nil {
			e.fatalf("%v", err)
		}
		if i == 0 {
			e.verify("rbd export-diff | rbd import-diff ("+d.kind.String()+")", d.image+"@s1", bak.Spec(dst+"@s1"), d.sumS1)
		}
		e.rmImage(bak, dst)
		f, r = append(f, fm.Wall), append(r, rm.Wall)
		fRSS, rRSS = max(fRSS, fm.RSSKiB), max(rRSS, rm.RSSKiB)
	}
	fm, rm := median(f), median(r)
	s.notes = append(s.notes, "restore: Ferry is `ferry restore SNAP --to NEW` at the backup site (NEW gets no snapshot); rbd is "+
		"`rbd export-diff SNAP - | rbd import-diff - NEW` on the same snapshot (NEW gets the snapshot); rbd's RSS is the larger of the two processes.")
	s.add("restore SNAP → new image, backup site", d.kind.String(),
		mbps(e.size, fm), mbps(e.size, rm), speedup(fm, rm), rss(fRSS), rss(rRSS), verdict("≥ rbd", fm <= rm))
}

// BenchmarkRestoreRow runs only the restore row (BenchmarkTable has it too),
// for a quick look: -bench '^BenchmarkRestoreRow$' -benchtime 1x.
func BenchmarkRestoreRow(b *testing.B) {
	e := newEnv(b)
	d := &dataset{kind: randomData, image: e.newImage(e.bed.Source, "rst-data", e.size)}
	if err := fill(e.bed.Source, d.image, e.size, randomData, 100); err != nil {
		b.Fatal(err)
	}
	e.bed.Source.Rbd(b, "snap", "create", e.bed.Source.Spec(d.image+"@s1"))
	d.sumS1 = e.sha(e.bed.Source, d.image+"@s1")
	s := &section{title: "Restore", cols: []string{"Operation", "Data", "Ferry", "rbd", "Ferry/rbd speed", "Ferry peak RSS", "rbd peak RSS", "Target"}}
	e.restoreRow(s, d)
	var out strings.Builder
	s.markdown(&out)
	fmt.Print(out.String())
}

// thinEngineRow: a no-change incremental of a 100 GiB thin image.
func (e *env) thinEngineRow(s *section, thin string) {
	src := e.bed.Source
	spec := src.Spec(thin + "@s2")
	var f, r []time.Duration
	var fRSS, rRSS int64
	for i := 0; i < e.runs; i++ {
		fm := e.do(nil, nil, e.ferryCmd(src, "export-diff", "--no-progress", "--from-snap", "s1", spec, "-"))
		rm := e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", "--from-snap", "s1", spec, "-"))
		f, r = append(f, fm.Wall), append(r, rm.Wall)
		fRSS, rRSS = max(fRSS, fm.RSSKiB), max(rRSS, rm.RSSKiB)
	}
	fm, rm := median(f), median(r)
	s.add("export-diff --from-snap, no change, 100 GiB thin", "4 MiB written", secs(fm), secs(rm), speedup(fm, rm),
		rss(fRSS), rss(rRSS), verdict("< 1 s", fm < time.Second))
}

// bigRows: peak RSS of a 4 GiB random image's export to a file and import.
func (e *env) bigRows(s *section) {
	src, bak := e.bed.Source, e.bed.Backup
	const n = 4 * gib
	img := e.newImage(src, "big", n)
	if err := fill(src, img, n, randomData, 300); err != nil {
		e.fatalf("%v", err)
	}
	src.Rbd(e.b, "snap", "create", src.Spec(img+"@s1"))
	spec := src.Spec(img + "@s1")
	ff := filepath.Join(e.dir, "big-ferry.diff")
	rf := filepath.Join(e.dir, "big-rbd.diff")
	fe := e.do(nil, nil, e.ferryCmd(src, "export-diff", "--no-progress", spec, ff))
	re := e.do(nil, nil, rbdCmd(src, "export-diff", "--no-progress", spec, rf))
	os.Remove(ff)
	e.rmImage(src, img)
	s.add("export-diff → file, 4 GiB", "random", mbps(n, fe.Wall), mbps(n, re.Wall), speedup(fe.Wall, re.Wall),
		rss(fe.RSSKiB), rss(re.RSSKiB), verdict("RSS < 256 MiB", fe.RSSKiB < 256*1024))

	dst := e.scratchImage(bak, "bigimp")
	fi := e.do(nil, nil, e.ferryCmd(bak, "import-diff", "--no-progress", rf, bak.Spec(dst)))
	e.rmImage(bak, dst)
	dst = e.scratchImage(bak, "bigimp")
	ri := e.do(nil, nil, rbdCmd(bak, "import-diff", "--no-progress", rf, bak.Spec(dst)))
	e.rmImage(bak, dst)
	os.Remove(rf)
	s.add("import-diff FILE, 4 GiB", "random", mbps(n, fi.Wall), mbps(n, ri.Wall), speedup(fi.Wall, ri.Wall),
		rss(fi.RSSKiB), rss(ri.RSSKiB), verdict("RSS < 256 MiB", fi.RSSKiB < 256*1024))
}

// imageState is what the benchmark reads from `ferry status --json`.
type imageState struct {
	Image struct {
		Pool, Image string
	} `json:"image"`
	Status       string `json:"status"`
	LastSnapshot string `json:"last_snapshot"`
	LastError    string `json:"last_error"`
	LastStats    struct {
		ChangedBytes uint64 `json:"changed_bytes"`
		DataBytes    uint64 `json:"data_bytes"`
		Chunks       int    `json:"chunks"`
		ChunksSent   int    `json:"chunks_sent"`
		RawBytesSent uint64 `json:"raw_bytes_sent"`
		BytesSent    uint64 `json:"bytes_sent"`
	} `json:"last_stats"`
}

// pipeline is a running nats-server and consumer.
type pipeline struct {
	e        *env
	natsArgs []string // how ferry commands reach the servers: --nats URL and domains
	nats     *daemon
	consumer *daemon
	consPeak int64 // the consumer's highest peak RSS of any backup
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *env) startPipeline() *pipeline {
	e.b.Helper()
	nats, url := e.startNATS("nats")
	p := &pipeline{e: e, natsArgs: []string{"--nats", url}, nats: nats}
	p.startConsumer(p.natsArgs)
	return p
}

// startNATS starts `ferry nats-server` on a free port (its log and store
// named after name) and waits until it accepts connections.
func (e *env) startNATS(name string, args ...string) (*daemon, string) {
	e.b.Helper()
	port, err := freePort()
	if err != nil {
		e.fatalf("%v", err)
	}
	store := filepath.Join(e.dir, name+"-jetstream")
	d, err := startDaemon(filepath.Join(e.dir, name+".log"), e.ferry, append([]string{"nats-server", "--store", store,
		"--listen", "127.0.0.1:" + strconv.Itoa(port)}, args...)...)
	if err != nil {
		e.fatalf("%v", err)
	}
	e.b.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if done, _ := d.exited(); done || time.Now().After(deadline) {
			e.fatalf("ferry nats-server did not start: %s", d.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d, fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// startConsumer starts `ferry consumer run` with natsArgs and waits until
// `ferry status` with p.natsArgs answers.
func (p *pipeline) startConsumer(natsArgs []string) {
	e := p.e
	e.b.Helper()
	var err error
	p.consumer, err = startDaemon(filepath.Join(e.dir, "consumer.log"), e.ferry,
		e.ferryCmd(e.bed.Backup, append([]string{"consumer", "run"}, natsArgs...)...)[1:]...)
	if err != nil {
		e.fatalf("%v", err)
	}
	e.b.Cleanup(func() { p.consumer.stop() })
	// The consumer creates the backup site's streams and bucket; status reads them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := p.status(); err == nil {
			break
		} else if done, _ := p.consumer.exited(); done || time.Now().After(deadline) {
			e.fatalf("ferry consumer run did not come up: %v\n%s", err, p.consumer.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *pipeline) status() ([]imageState, error) {
	out, err := runOutput(p.e.ferry, append([]string{"status", "--json"}, p.natsArgs...)...)
	if err != nil {
		return nil, err
	}
	var st []imageState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("ferry status --json: %w: %q", err, out)
	}
	return st, nil
}

func (p *pipeline) imageStatus(image string) imageState {
	p.e.b.Helper()
	st, err := p.status()
	if err != nil {
		p.e.fatalf("%v", err)
	}
	for _, s := range st {
		if s.Image.Pool == testbed.Pool && s.Image.Image == image {
			return s
		}
	}
	p.e.fatalf("ferry status has no %s", image)
	return imageState{}
}

// backupResult is one `ferry backup`.
type backupResult struct {
	m       measure
	consKiB int64 // the consumer's peak RSS during the backup
	st      imageState
}

// backup runs `ferry backup` of a source image and verifies the backup
// snapshot against the source snapshot: want is its sha256, "" to compute it,
// "sparse" to compare only non-zero blocks (thin images), "-" not to verify.
func (p *pipeline) backup(image, want string) backupResult {
	e := p.e
	e.b.Helper()
	if err := p.consumer.resetPeak(); err != nil {
		e.b.Logf("reset the consumer's peak RSS: %v", err)
	}
	m := e.do(nil, nil, e.ferryCmd(e.bed.Source, append(append([]string{"backup", "--no-progress"}, p.natsArgs...), e.bed.Source.Spec(image))...))
	r := backupResult{m: m, consKiB: p.consumer.peakKiB(), st: p.imageStatus(image)}
	p.consPeak = max(p.consPeak, r.consKiB)
	if done, err := p.consumer.exited(); done {
		e.fatalf("ferry consumer run ended: %v\n%s", err, p.consumer.logTail())
	}
	if r.st.LastSnapshot == "" {
		e.fatalf("ferry status of %s: no last snapshot: %+v", image, r.st)
	}
	snap := image + "@" + r.st.LastSnapshot
	switch want {
	case "-":
	case "sparse":
		a, err := sparseHash(e.bed.Source, snap)
		if err != nil {
			e.fatalf("%v", err)
		}
		bk, err := sparseHash(e.bed.Backup, snap)
		if err != nil {
			e.fatalf("%v", err)
		}
		if a != bk {
			e.fatalf("ferry backup %s: the backup site's %s differs from the source (non-zero 4 KiB blocks)", image, snap)
		}
		e.b.Logf("verified ferry backup %s (non-zero blocks)", snap)
	default:
		e.verify("ferry backup "+image, e.bed.Source.Spec(snap), e.bed.Backup.Spec(snap), want)
	}
	return r
}

// seed runs the seed pipeline from the source image's snapshot (from fromSnap
// if set) into dst at the backup site.
func (e *env) seed(image, fromSnap, snap, dst string) (measure, int64) {
	e.b.Helper()
	exp := []string{"export-diff", "--no-progress"}
	if fromSnap != "" {
		exp = append(exp, "--from-snap", fromSnap)
	}
	exp = append(exp, e.bed.Source.Spec(image+"@"+snap), "-")
	m, gz, err := runSeed(e.dir, rbdCmd(e.bed.Source, exp...),
		rbdCmd(e.bed.Backup, "import-diff", "--no-progress", "-", e.bed.Backup.Spec(dst)))
	if err != nil {
		e.fatalf("%v", err)
	}
	return m, gz
}

func (e *env) pipelineRows(s *section, datasets []*dataset, thin string, t0 time.Time) {
	b := e.b
	p := e.startPipeline()
	bak := e.bed.Backup
	cleanupBackup := func(image string) { b.Cleanup(func() { e.rmImage(bak, image) }) }

	for _, d := range datasets {
		cleanupBackup(d.image)
		full := p.backup(d.image, d.sumS1)
		dst := e.scratchImage(bak, "seed")
		sm, gz := e.seed(d.image, "", "s1", dst)
		e.pipeRow(s, "full "+size(e.size), d.kind.String(), e.size, full, sm, gz, "")

		changed, err := change(e.bed.Source, d.image, e.size, blockSize, 0.10, uint64(400+d.kind))
		if err != nil {
			e.fatalf("%v", err)
		}
		d.changed = changed
		e.bed.Source.Rbd(b, "snap", "create", e.bed.Source.Spec(d.image+"@s2"))
		incr := p.backup(d.image, "")
		sm, gz = e.seed(d.image, "s1", "s2", dst)
		e.rmImage(bak, dst)
		e.pipeRow(s, "incremental, 10% changed", d.kind.String(), changed, incr, sm, gz, "")
		b.Logf("pipeline rows %s done (%v)", d.kind, time.Since(t0).Round(time.Second))
	}

	e.dedupRow(s, p)
	b.Logf("dedup row done (%v)", time.Since(t0).Round(time.Second))
	e.thinPipelineRow(s, p, thin)

	if _, err := p.consumer.stop(); err != nil {
		b.Logf("consumer stop: %v", err)
	}
	natsKiB, err := p.nats.stop()
	if err != nil {
		b.Logf("nats-server stop: %v", err)
	}
	s.notes = append(s.notes, fmt.Sprintf("Peak RSS over the whole run: `ferry consumer run` %s (highest per-backup VmHWM; its ru_maxrss at SIGTERM only covers the time since the last reset), `ferry nats-server` %s (ru_maxrss at SIGTERM).",
		rss(p.consPeak), rss(natsKiB)))
}

func (e *env) pipeRow(s *section, what, data string, n int64, f backupResult, sm measure, gz int64, target string) {
	sent := int64(f.st.LastStats.BytesSent)
	if target == "" {
		target = "-"
	}
	s.add(what, data, secs(f.m.Wall)+", "+mbps(n, f.m.Wall), secs(sm.Wall)+", "+mbps(n, sm.Wall), speedup(f.m.Wall, sm.Wall),
		size(sent), size(gz), pct(sent, gz), rss(f.m.RSSKiB), rss(f.consKiB), rss(sm.RSSKiB), target)
}

// cloneGrain is the size of each of a clone's own writes (1% of the image in
// all, at random 1 MiB-aligned places).
const cloneGrain = 1 * mib

// dedupRow: full backups of clones of one base snapshot.
func (e *env) dedupRow(s *section, p *pipeline) {
	b, src, bak := e.b, e.bed.Source, e.bed.Backup
	base := e.newImage(src, "base", e.size)
	if err := fill(src, base, e.size, randomData, 500); err != nil {
		e.fatalf("%v", err)
	}
	src.Rbd(b, "snap", "create", src.Spec(base+"@base"))
	src.Rbd(b, "snap", "protect", src.Spec(base+"@base"))
	b.Cleanup(func() { src.RbdErr("snap", "unprotect", src.Spec(base+"@base")) })
	n := *flagClones
	clones := make([]string, n)
	for i := range clones {
		clones[i] = testbed.ImageName(b, fmt.Sprintf("clone%d", i))
		src.Rbd(b, "clone", src.Spec(base+"@base"), src.Spec(clones[i]))
		b.Cleanup(func() { e.rmImage(src, clones[i]) })
		if _, err := change(src, clones[i], e.size, cloneGrain, 0.01, uint64(600+i)); err != nil {
			e.fatalf("%v", err)
		}
	}
	var (
		sent, raw, gz  int64
		wall           time.Duration
		fRSS, cRSS     int64
		gzipped        int
		firstGz, first int64
	)
	for i, c := range clones {
		want := "-"
		if i == 0 || i == n-1 {
			want = ""
		}
		cleanupBackup := c
		b.Cleanup(func() { e.rmImage(bak, cleanupBackup) })
		r := p.backup(c, want)
		sent += int64(r.st.LastStats.BytesSent)
		wall += r.m.Wall
		fRSS, cRSS = max(fRSS, r.m.RSSKiB), max(cRSS, r.consKiB)

		exp := rbdCmd(src, "export-diff", "--no-progress", src.Spec(c+"@"+r.st.LastSnapshot), "-")
		sz, err := streamSize(exp)
		if err != nil {
			e.fatalf("%v", err)
		}
		raw += sz
		if i == 0 || *flagAllGzip {
			g, err := gzipSize(exp)
			if err != nil {
				e.fatalf("%v", err)
			}
			gz += g
			gzipped++
			if i == 0 {
				firstGz, first = g, sz
			}
		}
	}
	ref := "Σ gzip -6 of the clones' full rbd diffs"
	if gzipped < n {
		// Random data: gzip's output is the diff's size times a constant.
		gz += int64(float64(raw-first) * float64(firstGz) / float64(first))
		ref = fmt.Sprintf("Σ gzip -6 of the clones' full rbd diffs (clone 1 gzipped, %d scaled by diff size)", n-1)
	}
	s.add(fmt.Sprintf("full, %d clones of one base (1%% own writes each)", n), "random", secs(wall)+" total", "-", "-",
		size(sent), size(gz), pct(sent, gz), rss(fRSS), rss(cRSS), "-", verdict("sent ≤ 50% of gzip", sent*2 <= gz))
	s.notes = append(s.notes, fmt.Sprintf("Dedup row: base %s random, snapshot protected, %d clones each with 1%% of its 1 MiB blocks rewritten (random places); reference: %s; Σ raw rbd diffs %s.",
		size(e.size), n, ref, size(raw)))
	for _, c := range clones {
		e.rmImage(src, c)
	}
}

// thinPipelineRow: a no-change incremental of a 100 GiB thin image, end to end.
func (e *env) thinPipelineRow(s *section, p *pipeline, thin string) {
	b, bak := e.b, e.bed.Backup
	b.Cleanup(func() { e.rmImage(bak, thin) })
	p.backup(thin, "sparse") // full (4 MiB of data)
	var f []time.Duration
	var last backupResult
	for i := 0; i < e.runs; i++ {
		last = p.backup(thin, "-")
		f = append(f, last.m.Wall)
	}
	dst := e.scratchImage(bak, "seedthin")
	e.seed(thin, "", "s1", dst)
	var sd []time.Duration
	var sm measure
	var gz int64
	for i := 0; i < e.runs; i++ {
		if i > 0 {
			bak.Rbd(b, "snap", "rm", "--no-progress", bak.Spec(dst+"@s2"))
		}
		sm, gz = e.seed(thin, "s1", "s2", dst)
		sd = append(sd, sm.Wall)
	}
	e.rmImage(bak, dst)
	fm, smed := median(f), median(sd)
	s.add("incremental, no change, 100 GiB thin", "4 MiB written", secs(fm), secs(smed), speedup(fm, smed),
		size(int64(last.st.LastStats.BytesSent)), size(gz), "-", rss(last.m.RSSKiB), rss(last.consKiB), rss(sm.RSSKiB),
		verdict("< 2 s", fm < 2*time.Second))
}

// header writes the machine and the command that made the report.
func (e *env) header(out *strings.Builder, took time.Duration) {
	fmt.Fprintf(out, "## Ferry benchmark\n\n")
	fmt.Fprintf(out, "- Machine: %s\n", machine())
	fmt.Fprintf(out, "- Command: `%s` (`make bench`), %s, took %s.\n", goTestLine("BenchmarkTable"),
		time.Now().UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(out, "- Data: \"random\" = %s of random bytes; \"half-zero\" = %s where every other 64 KiB block is zero (written through `rbd import-diff`, which skips zero blocks: every object exists, with 64 KiB holes, and rbd's diff covers each object whole up to its last data). Incrementals rewrite 10%% of the 64 KiB blocks, chosen at random, with new random data.\n",
		size(e.size), size(e.size))
	fmt.Fprintf(out, "- Figures: MB = 10^6 bytes over the whole process's wall time (connect included); diff-engine rows and no-change rows are the median of %d runs, interleaved ferry/rbd; other rows one run. Speed ratios > 1 mean Ferry is faster. Peak RSS = ru_maxrss of the process (for the seed, of its largest process); consumer RSS = its VmHWM during that backup. Targets are reported, not asserted. Shared 2-core machine: compare ratios within this run, not absolute figures.\n\n",
		e.runs)
}

// machine describes the machine, Ceph and Go.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	ceph := "unknown"
	if v, err := runOutput("ceph", "--version"); err == nil {
		if f := strings.Fields(v); len(f) >= 3 {
			ceph = strings.Join(f[2:3], " ")
			if len(f) >= 5 {
				ceph += " " + f[4]
			}
		}
	}
	nproc := strconv.Itoa(runtime.NumCPU())
	if v, err := runOutput("nproc"); err == nil {
		nproc = strings.TrimSpace(v)
	}
	return fmt.Sprintf("%s cores (nproc), %s; Ceph %s: two single-host clusters (1 mon, 1 bluestore OSD on a sparse file, size 1) on this machine; %s.",
		nproc, model, ceph, runtime.Version())
}

// goTestLine is the go test command line of benchmark bench with this run's flags.
func goTestLine(bench string) string {
	args := []string{"go test -tags pacific -run '^$' -bench '^" + bench + "$' -benchtime 1x -timeout 60m ./internal/bench/ -args"}
	root := ""
	if mod, err := runOutput("go", "env", "GOMOD"); err == nil && strings.TrimSpace(mod) != "" {
		root = filepath.Dir(strings.TrimSpace(mod))
	}
	flag.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "test.") {
			return
		}
		v := f.Value.String()
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && v == "true" {
			args = append(args, "-"+f.Name)
			return
		}
		if rel, err := filepath.Rel(root, v); root != "" && filepath.IsAbs(v) && err == nil && !strings.HasPrefix(rel, "..") {
			v = "$(CURDIR)/" + rel // as the Makefile spells it
		}
		args = append(args, "-"+f.Name+" "+v)
	})
	return strings.Join(args, " ")
}
