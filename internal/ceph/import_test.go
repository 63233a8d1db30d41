package ceph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ceph/go-ceph/rbd"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// diffOp is one record of a hand-made diff: data, or zeros when data is nil.
type diffOp struct {
	off, len uint64
	data     []byte
}

// mixedDiff is a full diff with every kind of zero an importer can get
// wrong: zero runs inside data, short zero records between data, long,
// whole-object and unaligned zero records, a data record that is all
// zeros, and an image size that is not object-aligned.
func mixedDiff(r *rand.Rand) (size uint64, ops []diffOp) {
	size = 24*mib + 4097
	d := func(off, n uint64) diffOp { return diffOp{off, n, randomBytes(r, int(n))} }
	z := func(off, n uint64) diffOp { return diffOp{off: off, len: n} }

	// Object 0: data with leading, inner (short and long) and trailing zeros.
	o0 := randomBytes(r, obj)
	clear(o0[:8192])
	clear(o0[mib : mib+64<<10])
	clear(o0[2*mib : 2*mib+512<<10])
	clear(o0[obj-12288:])
	ops = append(ops, diffOp{0, obj, o0})
	// Object 1: data and zero records in turn, ending in a folded zero record.
	for off := uint64(obj); off < obj+2*mib; off += 128 << 10 {
		ops = append(ops, d(off, 64<<10), z(off+64<<10, 64<<10))
	}
	ops = append(ops, d(obj+3*mib, 4096), z(obj+3*mib+4096, 100<<10))
	// Object 2: one whole-object zero record.
	ops = append(ops, z(2*obj, obj))
	// Object 3: unaligned zeros, data, then zeros too long to fold.
	ops = append(ops, z(3*obj+12345, 6789), d(3*obj+20000, 5000), z(3*obj+25000, 300<<10))
	// Object 4: a data record of zeros only.
	ops = append(ops, diffOp{4 * obj, obj, make([]byte, obj)})
	// From inside object 5 to the unaligned end of the image.
	ops = append(ops, z(5*obj+1, size-(5*obj+1)))
	return size, ops
}

func writeDiff(t *testing.T, h rbddiff.Header, ops []diffOp) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := rbddiff.NewWriter(&buf, rbddiff.V1)
	mustDo(t, w.WriteHeader(h))
	for _, op := range ops {
		if op.data != nil {
			mustDo(t, w.WriteData(op.off, op.data))
		} else {
			mustDo(t, w.WriteZero(op.off, op.len))
		}
	}
	mustDo(t, w.Close())
	return buf.Bytes()
}

// applyOps is the importer's specification: before is the target's content
// (already resized), and every record replaces its range.
func applyOps(before []byte, ops []diffOp) []byte {
	out := bytes.Clone(before)
	for _, op := range ops {
		if op.data != nil {
			copy(out[op.off:], op.data)
		} else {
			clear(out[op.off : op.off+op.len])
		}
	}
	return out
}

func resized(b []byte, size uint64) []byte {
	out := make([]byte, size)
	copy(out, b)
	return out
}

func requireContent(t *testing.T, c *Cluster, spec ferry.ImageSpec, want []byte) {
	t.Helper()
	got := content(t, c, spec)
	if got.Size != uint64(len(want)) || got.SHA256 != sha256.Sum256(want) {
		t.Fatalf("%s: %d bytes, sha256 %x; want %d bytes, sha256 %x", spec, got.Size, got.SHA256[:8], len(want), sha256.Sum256(want))
	}
}

func importBytes(t *testing.T, ctx context.Context, dst ferry.ImageSpec, diff []byte) error {
	t.Helper()
	_, backup := bedSites(t)
	_, err := backup.Import(ctx, dst, rbddiff.NewReader(bytes.NewReader(diff)), nil)
	return err
}

// TestImportTargets applies one full diff with many zero records to targets
// in every state that matters to zero records: new and empty, full of data
// where the diff writes zeros (zero records there must really zero), larger
// (shrink), shrunk earlier with the old data still in a snapshot (grow), and
// a clone whose parent has data under the zero records.
func TestImportTargets(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(7, 7))
	size, ops := mixedDiff(r)
	diff := writeDiff(t, rbddiff.Header{ToSnap: "s1", Size: size}, ops)
	old := randomBytes(r, 40*mib)

	targets := []struct {
		name   string
		make   func(t *testing.T) ferry.ImageSpec
		before []byte // content after the import's resize
	}{
		{"new image", func(t *testing.T) ferry.ImageSpec {
			return newImage(t, backup, "dst", 1)
		}, make([]byte, size)},
		{"data everywhere", func(t *testing.T) ferry.ImageSpec {
			dst := newImage(t, backup, "dst", size)
			writeAt(t, backup, dst, 0, old[:size])
			return dst
		}, old[:size]},
		{"larger, shrinks", func(t *testing.T) ferry.ImageSpec {
			dst := newImage(t, backup, "dst", 40*mib)
			writeAt(t, backup, dst, 0, old)
			return dst
		}, old[:size]},
		{"shrunk before, grows, old data in a snapshot", func(t *testing.T) ferry.ImageSpec {
			dst := newImage(t, backup, "dst", 40*mib)
			writeAt(t, backup, dst, 0, old)
			snap(t, backup, dst, "old")
			resize(t, backup, dst, 9*mib+100)
			return dst
		}, resized(old[:9*mib+100], size)},
		{"data everywhere, no object map or exclusive lock", func(t *testing.T) ferry.ImageSpec {
			dst := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "dst")}
			testbed.Shared(t).Backup.Rbd(t, "create", "--image-feature", "layering", "--size", "24M", dst.String())
			writeAt(t, backup, dst, 0, old[:24*mib])
			return dst
		}, resized(old[:24*mib], size)},
		{"clone of a parent with data", func(t *testing.T) ferry.ImageSpec {
			parent := newImage(t, backup, "parent", size)
			writeAt(t, backup, parent, 0, old[:size])
			snap(t, backup, parent, "gold")
			testbed.Shared(t).Backup.Rbd(t, "snap", "protect", parent.AtSnap("gold").String())
			child := ferry.ImageSpec{Pool: parent.Pool, Image: testbed.ImageName(t, "child")}
			testbed.Shared(t).Backup.Rbd(t, "clone", parent.AtSnap("gold").String(), child.String())
			return child
		}, old[:size]},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			dst := tg.make(t)
			if err := importBytes(t, context.Background(), dst, diff); err != nil {
				t.Fatal(err)
			}
			requireContent(t, backup, dst.AtSnap("s1"), applyOps(tg.before, ops))
			requireContent(t, backup, dst, applyOps(tg.before, ops))
		})
	}

	// Zeros make no objects: 2 (a zero record), 4 (a data record of zeros)
	// and 5 (zero records only) are never created.
	t.Run("new image stays thin", func(t *testing.T) {
		dst := newImage(t, backup, "dst", 1)
		if err := importBytes(t, context.Background(), dst, diff); err != nil {
			t.Fatal(err)
		}
		img, err := backup.openImageReadOnly(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		objects, err := diffIterate(img, "", 0, size, rbd.EnableWholeObject)
		if err != nil {
			t.Fatal(err)
		}
		var written []uint64
		for _, o := range objects {
			if o.exists {
				for off := o.off; off < o.end(); off += obj {
					written = append(written, off/obj)
				}
			}
		}
		if want := []uint64{0, 1, 3}; !slices.Equal(written, want) {
			t.Errorf("objects written %v, want %v", written, want)
		}
	})
}

// cancelAfter is a Source that cancels the import after n records.
type cancelAfter struct {
	rbddiff.Source
	n      int
	cancel func()
}

func (c *cancelAfter) Next() (rbddiff.Record, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.Source.Next()
}

// TestImportCancelled: an import stopped half way returns the reason, waits
// for its writes in flight, and creates no to-snapshot.
func TestImportCancelled(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(9, 9))
	size, ops := mixedDiff(r)
	diff := writeDiff(t, rbddiff.Header{ToSnap: "s1", Size: size}, ops)
	dst := newImage(t, backup, "dst", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &cancelAfter{Source: rbddiff.NewReader(bytes.NewReader(diff)), n: 10, cancel: cancel}
	_, err := backup.Import(ctx, dst, src, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, errBuffersOut) {
		t.Fatalf("cancelled import returned %v, want context.Canceled and every buffer back", err)
	}
	if snaps, _ := backup.Snapshots(dst); len(snaps) != 0 {
		t.Fatalf("a cancelled import made snapshots %v", snaps)
	}
	// The same diff applies cleanly afterwards.
	if err := importBytes(t, context.Background(), dst, diff); err != nil {
		t.Fatal(err)
	}
	requireContent(t, backup, dst.AtSnap("s1"), applyOps(make([]byte, size), ops))
}

// writeDuring is a Source that, once the import has taken the first
// record, writes to the target through a handle of its own, as a VM or a
// DR test on the backup image would.
type writeDuring struct {
	rbddiff.Source
	t       *testing.T
	target  ferry.ImageSpec
	records int
	err     error // the foreign write's
	wrote   bool
}

func (w *writeDuring) Next() (rbddiff.Record, error) {
	_, backup := bedSites(w.t)
	if w.records++; w.records == 2 && !w.wrote {
		w.wrote = true
		img, err := backup.openImage(w.target)
		if err != nil {
			w.t.Fatal(err)
		}
		_, w.err = img.WriteAt([]byte("written by somebody else"), 0)
		if err := img.Close(); err != nil {
			w.t.Fatal(err)
		}
	}
	return w.Source.Next()
}

// TestImportLocksOutOtherWriters: while an import runs, another client's
// write to the target fails instead of landing among the import's writes,
// where it would end up in the to-snapshot.
func TestImportLocksOutOtherWriters(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(21, 21))
	size, ops := mixedDiff(r)
	diff := writeDiff(t, rbddiff.Header{ToSnap: "s1", Size: size}, ops)
	dst := newImage(t, backup, "dst", 1)
	src := &writeDuring{Source: rbddiff.NewReader(bytes.NewReader(diff)), t: t, target: dst}
	if _, err := backup.Import(context.Background(), dst, src, nil); err != nil {
		t.Fatal(err)
	}
	if !src.wrote {
		t.Fatal("the diff had too few records to write during the import")
	}
	if src.err == nil {
		t.Fatal("another client wrote to the image during the import")
	}
	requireContent(t, backup, dst.AtSnap("s1"), applyOps(make([]byte, size), ops))
}

// TestWriteRuns: zero runs up to zeroFillMax that touch data are written
// with it; longer ones, and zeros with no data beside them, are zeroed.
func TestWriteRuns(t *testing.T) {
	const k = 1 << 10
	// blocks builds a buffer from (length, zero) pairs.
	blocks := func(spec ...any) []byte {
		var b []byte
		for i := 0; i < len(spec); i += 2 {
			n, zero := spec[i].(int), spec[i+1].(bool)
			chunk := make([]byte, n)
			if !zero {
				for j := range chunk {
					chunk[j] = 0xab
				}
			}
			b = append(b, chunk...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		buf  []byte
		want []run
	}{
		{"data, short zeros, data", blocks(64*k, false, 64*k, true, 64*k, false), []run{{0, 192 * k, false}}},
		{"data, long zeros, data", blocks(64*k, false, 68*k, true, 4*k, false), []run{{0, 64 * k, false}, {64 * k, 132 * k, true}, {132 * k, 136 * k, false}}},
		{"short zeros at both ends", blocks(8*k, true, 4*k, false, 60*k, true), []run{{0, 72 * k, false}}},
		{"zeros only", blocks(8*k, true), []run{{0, 8 * k, true}}},
		{"data only", blocks(12*k, false), []run{{0, 12 * k, false}}},
	} {
		if got := writeRuns(4*mib, tc.buf); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
