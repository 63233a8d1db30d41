package recovery

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// verifySource makes a source image with data, holes, a discard and an
// unaligned size, and snapshot "s".
func verifySource(t *testing.T) ferry.ImageSpec {
	source, _ := cephtest.Sites(t)
	r := rand.New(rand.NewPCG(7, 8))
	img := newImage(t, source, testbed.ImageName(t, "src"), 20*mib+3*kib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 6*mib))
	cephtest.Write(t, source, img, 13*mib, randomBytes(r, 256*kib))
	cephtest.Write(t, source, img, 20*mib, randomBytes(r, 3*kib))
	cephtest.Discard(t, source, img, 2*mib, 8*kib)
	snap(t, source, img, "s")
	cephtest.Write(t, source, img, 8*mib, randomBytes(r, mib)) // the head moves on
	return img
}

// backupWithRbd ships src@s to a new backup image with the rbd tool (not
// Ferry's engine), flipping one byte at each image offset in flip on the way.
func backupWithRbd(t *testing.T, src ferry.ImageSpec, flip ...uint64) ferry.ImageSpec {
	t.Helper()
	_, backup := cephtest.Sites(t)
	bed := testbed.Shared(t)
	dir := t.TempDir()
	clean, corrupt := filepath.Join(dir, "clean"), filepath.Join(dir, "corrupt")
	bed.Source.Rbd(t, "export-diff", "--no-progress", src.AtSnap("s").String(), clean)

	in, err := os.Open(clean)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(out)
	rd, w := rbddiff.NewReader(bufio.NewReader(in)), rbddiff.NewWriter(bw, rbddiff.V1)
	h, err := rd.Header()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	flipped := 0
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == rbddiff.Zero {
			if err := w.WriteZero(rec.Offset, rec.Length); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(rec.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range flip {
			if off >= rec.Offset && off < rec.Offset+rec.Length {
				data[off-rec.Offset] ^= 0x40
				flipped++
			}
		}
		if err := w.WriteData(rec.Offset, data); err != nil {
			t.Fatal(err)
		}
	}
	if flipped != len(flip) {
		t.Fatalf("flipped %d bytes, want %d: an offset is not in a data record", flipped, len(flip))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	out.Close()

	dst := newImage(t, backup, src.Image, 1)
	bed.Backup.Rbd(t, "import-diff", "--no-progress", corrupt, dst.String())
	return dst
}

func TestVerifyIdentical(t *testing.T) {
	source, backup := cephtest.Sites(t)
	src := verifySource(t)
	bak := backupWithRbd(t, src)
	meter := progress.NewMeter("verify", nil, 0)
	rep, err := Verify(context.Background(), VerifyOptions{Source: source, SourceSnap: src.AtSnap("s"), Backup: backup, BackupSnap: bak.AtSnap("s")}, meter)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical() {
		t.Fatalf("identical snapshots reported as different: %+v", rep)
	}
	// Both sides read their data: 6 MiB - 8 KiB + 256 KiB + 3 KiB each.
	if want := uint64(2 * (6*mib - 8*kib + 256*kib + 3*kib)); rep.DataBytes != want {
		t.Errorf("hashed %d bytes of data, want %d", rep.DataBytes, want)
	}
	if rep.SourceSize != 20*mib+3*kib || rep.BackupSize != rep.SourceSize {
		t.Errorf("sizes %d and %d, want %d", rep.SourceSize, rep.BackupSize, 20*mib+3*kib)
	}
}

func TestVerifyNamesCorruptBytes(t *testing.T) {
	source, backup := cephtest.Sites(t)
	src := verifySource(t)
	// One byte in the first object, one in another window, one in the
	// unaligned last block.
	flips := []uint64{4*kib + 1234, 13*mib + 100*kib + 7, 20*mib + 3*kib - 1}
	bak := backupWithRbd(t, src, flips...)
	rep, err := Verify(context.Background(), VerifyOptions{Source: source, SourceSnap: src.AtSnap("s"), Backup: backup, BackupSnap: bak.AtSnap("s")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{4 * kib, 4 * kib}, {13*mib + 100*kib, 4 * kib}, {20 * mib, 3 * kib}}
	if rep.Identical() || !slices.Equal(rep.Differences, want) {
		t.Fatalf("differences %v, want exactly the blocks holding the flipped bytes %v", rep.Differences, want)
	}
}

func TestVerifySizeMismatch(t *testing.T) {
	source, backup := cephtest.Sites(t)
	src := verifySource(t)
	bak := backupWithRbd(t, src)
	testbed.Shared(t).Backup.Rbd(t, "resize", "--no-progress", "--size", "24M", bak.String())
	snap(t, backup, bak, "bigger")
	rep, err := Verify(context.Background(), VerifyOptions{Source: source, SourceSnap: src.AtSnap("s"), Backup: backup, BackupSnap: bak.AtSnap("bigger")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The last block of the smaller image is compared at different lengths,
	// so it counts as different too: ranges are named at the block grain.
	want := []Range{{20 * mib, 4 * mib}}
	if rep.Identical() || !slices.Equal(rep.Differences, want) || rep.BackupSize != 24*mib {
		t.Fatalf("report %+v, want the grown tail %v as a difference", rep, want)
	}
}

// The block hasher alone, fed unaligned records: the digest list must be the
// same however the same content is cut into records.
func TestBlockHasherIgnoresRecordBoundaries(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	size := uint64(9*mib + 777)
	content := make([]byte, size)
	copy(content[100:], randomBytes(r, 300*kib))
	copy(content[5*mib+3:], randomBytes(r, 5000))
	copy(content[size-10:], randomBytes(r, 10))

	hashWith := func(cut uint64) []window {
		var ws []window
		b := newBlockHasher(func(w window) error { ws = append(ws, w); return nil })
		b.WriteHeader(rbddiff.Header{Size: size})
		for off := uint64(0); off < size; off += cut {
			p := content[off:min(size, off+cut)]
			switch {
			case bytes.Count(p, []byte{0}) == len(p) && (off/cut)%2 == 0:
				b.WriteZero(off, uint64(len(p)))
			case bytes.Count(p, []byte{0}) == len(p):
				// no record: a hole
			default:
				if err := b.WriteData(off, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		return ws
	}
	ref := hashWith(size)
	if len(ref) != 3 || ref[2].len != mib+777 {
		t.Fatalf("%d windows, last %d bytes; want 3, the last 1 MiB + 777", len(ref), ref[len(ref)-1].len)
	}
	for _, cut := range []uint64{4095, 4096, 65537, 3 * mib} {
		got := hashWith(cut)
		var diffs rangeList
		for i := range got {
			compareWindows(ref[i], got[i], &diffs)
		}
		if len(got) != len(ref) || len(diffs) != 0 {
			t.Errorf("cut %d: %d windows, differences %v; want the same digests as one record", cut, len(got), diffs)
		}
	}
}
