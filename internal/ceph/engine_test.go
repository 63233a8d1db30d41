package ceph

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

const (
	mib = 1 << 20
	obj = 4 * mib // Ceph's default object size
)

// workload builds a history on a source image: each step changes the head
// and then takes the named snapshot.
type workload struct {
	name  string
	size  uint64 // at creation
	steps []step
}

type step struct {
	snap   string
	change func(t *testing.T, img ferry.ImageSpec, r *rand.Rand)
}

func writes(spans ...[2]uint64) func(*testing.T, ferry.ImageSpec, *rand.Rand) {
	return func(t *testing.T, img ferry.ImageSpec, r *rand.Rand) {
		source, _ := bedSites(t)
		for _, s := range spans {
			writeAt(t, source, img, s[0], randomBytes(r, int(s[1])))
		}
	}
}

func randomWrites(n int, size uint64, maxLen int) func(*testing.T, ferry.ImageSpec, *rand.Rand) {
	return func(t *testing.T, img ferry.ImageSpec, r *rand.Rand) {
		source, _ := bedSites(t)
		for range n {
			l := 1 + r.IntN(maxLen)
			off := r.Uint64N(size - uint64(l))
			writeAt(t, source, img, off, randomBytes(r, l))
		}
	}
}

func then(fs ...func(*testing.T, ferry.ImageSpec, *rand.Rand)) func(*testing.T, ferry.ImageSpec, *rand.Rand) {
	return func(t *testing.T, img ferry.ImageSpec, r *rand.Rand) {
		for _, f := range fs {
			f(t, img, r)
		}
	}
}

func discards(spans ...[2]uint64) func(*testing.T, ferry.ImageSpec, *rand.Rand) {
	return func(t *testing.T, img ferry.ImageSpec, _ *rand.Rand) {
		source, _ := bedSites(t)
		for _, s := range spans {
			discard(t, source, img, s[0], s[1])
		}
	}
}

func setSize(size uint64) func(*testing.T, ferry.ImageSpec, *rand.Rand) {
	return func(t *testing.T, img ferry.ImageSpec, _ *rand.Rand) {
		source, _ := bedSites(t)
		resize(t, source, img, size)
	}
}

func nothing(*testing.T, ferry.ImageSpec, *rand.Rand) {}

var workloads = []workload{
	{name: "random writes", size: 40 * mib, steps: []step{
		{"s1", randomWrites(200, 40*mib, 64<<10)},
		{"s2", randomWrites(50, 40*mib, 16<<10)},
		{"s3", randomWrites(5, 40*mib, 3*mib)},
	}},
	{name: "scattered 4K writes into new objects", size: 64 * mib, steps: []step{
		{"s1", writes([2]uint64{0, 4096})},
		{"s2", writes([2]uint64{8*mib + 12288, 4096}, [2]uint64{20*mib + 4096*100, 4096}, [2]uint64{63 * mib, 4096})},
	}},
	{name: "discards partial and whole objects", size: 32 * mib, steps: []step{
		{"s1", writes([2]uint64{0, 32 * mib})},
		{"s2", discards([2]uint64{4096, 8192}, [2]uint64{obj, obj}, [2]uint64{3*obj - 1000, 5000}, [2]uint64{7*obj + 512, 100})},
		{"s3", then(discards([2]uint64{0, 32 * mib}), writes([2]uint64{5 * mib, 10}))},
	}},
	{name: "grow and shrink", size: 10*mib + 123, steps: []step{
		{"s1", writes([2]uint64{0, 10*mib + 123})},
		{"s2", then(setSize(30*mib+7), writes([2]uint64{29 * mib, mib + 7}))},
		{"s3", setSize(6*mib + 4097)},
		{"s4", then(setSize(9*mib), writes([2]uint64{8 * mib, 4096}))},
	}},
	{name: "size not a multiple of the object size", size: 9*mib + 513, steps: []step{
		{"s1", writes([2]uint64{0, 4096}, [2]uint64{9 * mib, 513})},
		{"s2", writes([2]uint64{9*mib + 1, 512})},
	}},
	{name: "empty diff", size: 8 * mib, steps: []step{
		{"s1", writes([2]uint64{mib, mib})},
		{"s2", nothing},
	}},
	{name: "zero-byte image", size: 0, steps: []step{
		{"s1", nothing},
		{"s2", setSize(4 * mib)},
		{"s3", setSize(0)},
	}},
	{name: "zero writes over data", size: 16 * mib, steps: []step{
		{"s1", writes([2]uint64{0, 16 * mib})},
		{"s2", func(t *testing.T, img ferry.ImageSpec, _ *rand.Rand) {
			source, _ := bedSites(t)
			writeAt(t, source, img, 5*mib+100, make([]byte, 3*mib))
		}},
	}},
	{name: "snapshot names with spaces and non-ASCII", size: 8 * mib, steps: []step{
		{"nightly 2026-11-27 02:00", writes([2]uint64{0, mib})},
		{"每日备份 ünïcødé", writes([2]uint64{2 * mib, mib})},
	}},
}

// transfer moves one diff from the source site to the backup site.
type transfer struct {
	name string
	move func(t *testing.T, from string, src ferry.ImageSpec, dst ferry.ImageSpec)
}

var transfers = []transfer{
	{"ferry to ferry v1", func(t *testing.T, from string, src, dst ferry.ImageSpec) {
		path, _ := ferryExport(t, ExportOptions{Image: src, FromSnap: from}, rbddiff.V1)
		if err := ferryImport(t, path, dst); err != nil {
			t.Fatal(err)
		}
	}},
	{"ferry to ferry v2", func(t *testing.T, from string, src, dst ferry.ImageSpec) {
		path, _ := ferryExport(t, ExportOptions{Image: src, FromSnap: from}, rbddiff.V2)
		if err := ferryImport(t, path, dst); err != nil {
			t.Fatal(err)
		}
	}},
	{"rbd export-diff to ferry import-diff", func(t *testing.T, from string, src, dst ferry.ImageSpec) {
		path := filepath.Join(t.TempDir(), "diff")
		args := []string{"export-diff", "--no-progress"}
		if from != "" {
			args = append(args, "--from-snap", from)
		}
		testbed.Shared(t).Source.Rbd(t, append(args, src.String(), path)...)
		if err := ferryImport(t, path, dst); err != nil {
			t.Fatal(err)
		}
	}},
	{"ferry export-diff to rbd import-diff", func(t *testing.T, from string, src, dst ferry.ImageSpec) {
		path, _ := ferryExport(t, ExportOptions{Image: src, FromSnap: from}, rbddiff.V1)
		testbed.Shared(t).Backup.Rbd(t, "import-diff", "--no-progress", path, dst.String())
	}},
}

// TestChainedBackups replays every workload as a full backup to its first
// snapshot and then one incremental per snapshot, through every transfer,
// and checks after each step that the backup snapshot reads back exactly as
// the source snapshot.
func TestChainedBackups(t *testing.T) {
	source, backup := bedSites(t)
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(w.name))))
			src := newImage(t, source, "src", w.size)
			for _, s := range w.steps {
				s.change(t, src, r)
				snap(t, source, src, s.snap)
			}
			for _, tr := range transfers {
				t.Run(tr.name, func(t *testing.T) {
					dst := newImage(t, backup, "dst", 1)
					from := ""
					for _, s := range w.steps {
						tr.move(t, from, src.AtSnap(s.snap), dst)
						requireSameContent(t, src.AtSnap(s.snap), dst.AtSnap(s.snap))
						from = s.snap
					}
				})
			}
		})
	}
}

// TestExportModes covers the three export modes of rbd export-diff:
// creation to head, creation to a snapshot, and a snapshot to the head.
func TestExportModes(t *testing.T) {
	source, backup := bedSites(t)
	r := rand.New(rand.NewPCG(2, 2))
	src := newImage(t, source, "src", 16*mib)
	writeAt(t, source, src, 0, randomBytes(r, 6*mib))
	snap(t, source, src, "s1")
	writeAt(t, source, src, 5*mib, randomBytes(r, 6*mib))

	// creation -> head: the backup head equals the source head, no snapshot made.
	dst := newImage(t, backup, "dst", 1)
	path, _ := ferryExport(t, ExportOptions{Image: src}, rbddiff.V1)
	if err := ferryImport(t, path, dst); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, src, dst)
	if snaps, _ := backup.Snapshots(dst); len(snaps) != 0 {
		t.Fatalf("a diff to the head made snapshots %v", snaps)
	}

	// creation -> s1, then s1 -> head.
	dst2 := newImage(t, backup, "dst", 1)
	path, _ = ferryExport(t, ExportOptions{Image: src.AtSnap("s1")}, rbddiff.V1)
	if err := ferryImport(t, path, dst2); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, src.AtSnap("s1"), dst2.AtSnap("s1"))
	path, _ = ferryExport(t, ExportOptions{Image: src, FromSnap: "s1"}, rbddiff.V1)
	if err := ferryImport(t, path, dst2); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, src, dst2)
}

// TestCloneIncludesParent: a full diff of a clone carries the parent's data.
func TestCloneIncludesParent(t *testing.T) {
	source, backup := bedSites(t)
	r := rand.New(rand.NewPCG(3, 3))
	parent := newImage(t, source, "parent", 20*mib)
	writeAt(t, source, parent, 0, randomBytes(r, 20*mib))
	snap(t, source, parent, "gold")
	testbed.Shared(t).Source.Rbd(t, "snap", "protect", parent.AtSnap("gold").String())
	child := ferry.ImageSpec{Pool: parent.Pool, Image: testbed.ImageName(t, "child")}
	testbed.Shared(t).Source.Rbd(t, "clone", parent.AtSnap("gold").String(), child.String())
	writeAt(t, source, child, 3*mib, randomBytes(r, 2*mib))
	discard(t, source, child, 10*mib, 4096)
	snap(t, source, child, "s1")

	for _, tr := range transfers {
		t.Run(tr.name, func(t *testing.T) {
			dst := newImage(t, backup, "dst", 1)
			tr.move(t, "", child.AtSnap("s1"), dst)
			requireSameContent(t, child.AtSnap("s1"), dst.AtSnap("s1"))
		})
	}
}

// TestProtectedSnapshotV2: the v2 'p' record carries protection across.
func TestProtectedSnapshotV2(t *testing.T) {
	source, backup := bedSites(t)
	src := newImage(t, source, "src", 4*mib)
	writeAt(t, source, src, 0, []byte("protected"))
	snap(t, source, src, "s1")
	testbed.Shared(t).Source.Rbd(t, "snap", "protect", src.AtSnap("s1").String())
	dst := newImage(t, backup, "dst", 1)
	path, stats := ferryExport(t, ExportOptions{Image: src.AtSnap("s1")}, rbddiff.V2)
	if !stats.Header.Protected {
		t.Fatal("export header does not record the protected snapshot")
	}
	if err := ferryImport(t, path, dst); err != nil {
		t.Fatal(err)
	}
	out := testbed.Shared(t).Backup.Rbd(t, "snap", "ls", "--format", "json", dst.String())
	if !strings.Contains(out, `"protected":"true"`) {
		t.Fatalf("imported snapshot is not protected: %s", out)
	}
}

// TestZeroDetection: librbd reports a new object as one extent, holes
// included; Ferry ships only the written 4 KiB blocks as data.
func TestZeroDetection(t *testing.T) {
	source, _ := bedSites(t)
	r := rand.New(rand.NewPCG(4, 4))
	src := newImage(t, source, "src", 64*mib)
	snap(t, source, src, "s0")
	const blocks = 40
	for i := range blocks {
		writeAt(t, source, src, uint64(i)*1531*4096%(64*mib), randomBytes(r, 4096))
	}
	snap(t, source, src, "s1")
	_, stats := ferryExport(t, ExportOptions{Image: src.AtSnap("s1"), FromSnap: "s0"}, rbddiff.V1)
	if stats.DataBytes != blocks*4096 {
		t.Fatalf("diff carries %d data bytes, want exactly the %d written", stats.DataBytes, blocks*4096)
	}
	_, whole := ferryExport(t, ExportOptions{Image: src.AtSnap("s1"), FromSnap: "s0", WholeObject: true}, rbddiff.V1)
	if whole.DataBytes != blocks*4096 || whole.ScannedBytes <= stats.ScannedBytes {
		t.Fatalf("whole-object diff: %d data bytes of %d scanned; fine-grained scanned %d", whole.DataBytes, whole.ScannedBytes, stats.ScannedBytes)
	}
}

func TestImportRefusals(t *testing.T) {
	source, backup := bedSites(t)
	src := newImage(t, source, "src", 4*mib)
	writeAt(t, source, src, 0, []byte("one"))
	snap(t, source, src, "s1")
	writeAt(t, source, src, 0, []byte("two"))
	snap(t, source, src, "s2")
	full, _ := ferryExport(t, ExportOptions{Image: src.AtSnap("s1")}, rbddiff.V1)
	incr, _ := ferryExport(t, ExportOptions{Image: src.AtSnap("s2"), FromSnap: "s1"}, rbddiff.V1)

	dst := newImage(t, backup, "dst", 1)
	err := ferryImport(t, incr, dst)
	if !errors.Is(err, ErrBaseMissing) || !strings.Contains(err.Error(), `"s1"`) {
		t.Fatalf("incremental without its base: err = %v, want ErrBaseMissing naming s1", err)
	}
	if err := ferryImport(t, full, dst); err != nil {
		t.Fatal(err)
	}
	err = ferryImport(t, full, dst)
	if !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("applying a diff twice: err = %v, want ErrSnapshotExists", err)
	}
	if err := ferryImport(t, incr, dst); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, src.AtSnap("s2"), dst.AtSnap("s2"))

	missing := newImage(t, backup, "dst", 1)
	missing.Image += "-absent"
	if err := ferryImport(t, full, missing); err == nil || !strings.Contains(err.Error(), "create the image first") {
		t.Fatalf("import into a missing image: err = %v", err)
	}
}

func TestExportRefusals(t *testing.T) {
	source, _ := bedSites(t)
	src := newImage(t, source, "src", 4*mib)
	snap(t, source, src, "s1")
	snap(t, source, src, "s2")
	for _, tc := range []struct {
		opts ExportOptions
		want string
	}{
		{ExportOptions{Image: src.AtSnap("s2"), FromSnap: "nope"}, `from-snapshot "nope"`},
		{ExportOptions{Image: src.AtSnap("s1"), FromSnap: "s2"}, "not older"},
		{ExportOptions{Image: src.AtSnap("nope")}, "nope"},
	} {
		_, err := source.Export(context.Background(), tc.opts, rbddiff.NewWriter(discardWriter{}, rbddiff.V1), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Export(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

// cancellingSink cancels the export after n data records; the rest are dropped.
type cancellingSink struct {
	rbddiff.Sink
	n      int
	cancel func()
}

func (c *cancellingSink) WriteData(off uint64, p []byte) error {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.Sink.WriteData(off, p)
}

// TestExportCancelled: an export stopped with many reads in flight returns
// the reason, after waiting for every read it started (every buffer back).
// Then the same image exports in full.
func TestExportCancelled(t *testing.T) {
	source, backup := bedSites(t)
	r := rand.New(rand.NewPCG(12, 12))
	src := newImage(t, source, "src", 64*mib)
	for off := uint64(0); off < 64*mib; off += 256 << 10 {
		writeAt(t, source, src, off, randomBytes(r, 64<<10)) // many small extents in flight
	}
	snap(t, source, src, "s1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &cancellingSink{Sink: rbddiff.NewWriter(discardWriter{}, rbddiff.V1), n: 20, cancel: cancel}
	_, err := source.Export(ctx, ExportOptions{Image: src.AtSnap("s1")}, sink, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, errBuffersOut) {
		t.Fatalf("cancelled export returned %v, want context.Canceled and every buffer back", err)
	}
	path, _ := ferryExport(t, ExportOptions{Image: src.AtSnap("s1")}, rbddiff.V1)
	dst := newImage(t, backup, "dst", 1)
	if err := ferryImport(t, path, dst); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, src.AtSnap("s1"), dst.AtSnap("s1"))
}

// snapshotRemovingSink removes a snapshot (and takes it again, if retake
// is set) when the first data record arrives: after every read of a
// one-object image has completed, so only the check at the end can tell.
type snapshotRemovingSink struct {
	rbddiff.Sink
	t      *testing.T
	remove ferry.ImageSpec
	retake bool
	done   bool
	closed bool
}

func (s *snapshotRemovingSink) WriteData(off uint64, p []byte) error {
	source, _ := bedSites(s.t)
	if !s.done {
		s.done = true
		if err := source.RemoveSnapshot(s.remove); err != nil {
			s.t.Fatal(err)
		}
		if s.retake {
			if err := source.CreateSnapshot(s.remove); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	return s.Sink.WriteData(off, p)
}

func (s *snapshotRemovingSink) Close() error {
	s.closed = true
	return s.Sink.Close()
}

// TestExportSnapshotRemoved: a snapshot removed while it is exported (even
// if taken again under the same name), or the snapshot its diff starts
// from, fails the export before the diff's end record, which is what would
// make a partial or mixed diff look whole.
func TestExportSnapshotRemoved(t *testing.T) {
	source, _ := bedSites(t)
	r := rand.New(rand.NewPCG(13, 13))
	for _, tc := range []struct {
		name   string
		from   string // the export's from-snapshot
		remove string
		retake bool
		naming string // what the error must name
	}{
		{name: "exported snapshot removed", remove: "s2", naming: "@s2 is gone"},
		{name: "exported snapshot removed and taken again", remove: "s2", retake: true, naming: "@s2 was removed and taken again"},
		{name: "from-snapshot removed", from: "s1", remove: "s1", naming: "@s1 is gone"},
	} {
		src := newImage(t, source, "src", 4*mib)
		writeAt(t, source, src, 0, randomBytes(r, 4*mib))
		snap(t, source, src, "s1")
		writeAt(t, source, src, 0, randomBytes(r, 4*mib))
		snap(t, source, src, "s2")
		sink := &snapshotRemovingSink{Sink: rbddiff.NewWriter(discardWriter{}, rbddiff.V1), t: t, remove: src.AtSnap(tc.remove), retake: tc.retake}
		_, err := source.Export(context.Background(), ExportOptions{Image: src.AtSnap("s2"), FromSnap: tc.from}, sink, nil)
		if !sink.done {
			t.Fatalf("%s: the export wrote no data record", tc.name)
		}
		if !errors.Is(err, ErrSnapshotRemoved) || sink.closed {
			t.Fatalf("%s: %v (end record written: %v), want ErrSnapshotRemoved and no end record", tc.name, err, sink.closed)
		}
		if !strings.Contains(err.Error(), tc.naming) || !strings.Contains(err.Error(), "discarded") {
			t.Errorf("%s: the error does not say %q and that the diff is discarded: %v", tc.name, tc.naming, err)
		}
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

var _ = fmt.Sprint

// TestUnalignedZeroRecords: a 'z' record that covers only part of a block
// or an object must zero exactly that range at the target. librbd's default
// discard silently skips such ranges; the importer must not.
func TestUnalignedZeroRecords(t *testing.T) {
	source, backup := bedSites(t)
	r := rand.New(rand.NewPCG(5, 5))
	data := randomBytes(r, 8*mib)
	zeros := [][2]uint64{{12345, 6789}, {obj - 100, 300}, {5*mib + 1, 1}, {6 * mib, 2*mib - 511}}

	// The expected result, made with plain writes of zeros at the source.
	want := newImage(t, source, "want", 8*mib)
	writeAt(t, source, want, 0, data)
	for _, z := range zeros {
		writeAt(t, source, want, z[0], make([]byte, z[1]))
	}
	snap(t, source, want, "s2")

	// A hand-made diff: full data to s1, then zero records to s2.
	path := filepath.Join(t.TempDir(), "diff")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := rbddiff.NewWriter(f, rbddiff.V1)
	mustDo(t, w.WriteHeader(rbddiff.Header{FromSnap: "s1", ToSnap: "s2", Size: 8 * mib}))
	for _, z := range zeros {
		mustDo(t, w.WriteZero(z[0], z[1]))
	}
	mustDo(t, w.Close())
	mustDo(t, f.Close())

	dst := newImage(t, backup, "dst", 8*mib)
	writeAt(t, backup, dst, 0, data)
	if err := backup.CreateSnapshot(dst.AtSnap("s1")); err != nil {
		t.Fatal(err)
	}
	if err := ferryImport(t, path, dst); err != nil {
		t.Fatal(err)
	}
	requireSameContent(t, want.AtSnap("s2"), dst.AtSnap("s2"))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
