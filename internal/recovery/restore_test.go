package recovery

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// backupImage makes an image on the backup cluster with two snapshots of
// different content and a head that differs from both, with an unaligned
// size, holes, and a discarded range.
func backupImage(t *testing.T) ferry.ImageSpec {
	_, backup := cephtest.Sites(t)
	r := rand.New(rand.NewPCG(1, 2))
	img := newImage(t, backup, testbed.ImageName(t, "bak"), 24*mib+3*kib)
	cephtest.Write(t, backup, img, 0, randomBytes(r, 5*mib))
	cephtest.Write(t, backup, img, 9*mib+512, randomBytes(r, 100*kib))
	cephtest.Write(t, backup, img, 24*mib, randomBytes(r, 3*kib)) // the unaligned tail
	cephtest.Discard(t, backup, img, 1*mib, 64*kib)
	snap(t, backup, img, "s1")
	cephtest.Write(t, backup, img, 2*mib, randomBytes(r, 4*mib))
	cephtest.Discard(t, backup, img, 9*mib, 4*mib)
	snap(t, backup, img, "s2")
	cephtest.Write(t, backup, img, 20*mib, randomBytes(r, mib))
	return img
}

func TestRestoreIntoNewImage(t *testing.T) {
	_, backup := cephtest.Sites(t)
	ctx := context.Background()
	img := backupImage(t)
	before := cephtest.SnapshotNames(t, backup, img)
	for _, s := range []string{"s1", "s2"} {
		target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored-"+s)}
		removeAtEnd(t, backup, target)
		meter := progress.NewMeter("restore", nil, 0)
		res, err := Restore(ctx, RestoreOptions{From: backup, Snapshot: img.AtSnap(s), To: backup, Target: target}, meter)
		if err != nil {
			t.Fatal(err)
		}
		cephtest.RequireSameContent(t, backup, img.AtSnap(s), backup, target)
		if got := cephtest.SnapshotNames(t, backup, target); len(got) != 0 {
			t.Errorf("restored image has snapshots %v, want none (it is for attaching)", got)
		}
		if res.Size != 24*mib+3*kib || res.DataBytes == 0 || meter.Done() != res.ScannedBytes {
			t.Errorf("result %+v, progress %d: want the image size, data shipped, progress = scanned bytes", res, meter.Done())
		}
		// A second restore into the same name is refused, and leaves it be.
		_, err = Restore(ctx, RestoreOptions{From: backup, Snapshot: img.AtSnap(s), To: backup, Target: target}, nil)
		if !errors.Is(err, ErrTargetExists) {
			t.Fatalf("restore into an existing image: err %v, want ErrTargetExists", err)
		}
		cephtest.RequireSameContent(t, backup, img.AtSnap(s), backup, target)
	}
	if after := cephtest.SnapshotNames(t, backup, img); !slices.Equal(before, after) {
		t.Errorf("the backup image's snapshots changed: %v -> %v", before, after)
	}
}

func TestRestoreIntoOtherCluster(t *testing.T) {
	source, backup := cephtest.Sites(t)
	img := backupImage(t)
	target := ferry.ImageSpec{Pool: testbed.Pool, Image: img.Image} // same name, primary site
	removeAtEnd(t, source, target)
	if _, err := Restore(context.Background(), RestoreOptions{From: backup, Snapshot: img.AtSnap("s2"), To: source, Target: target}, nil); err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, img.AtSnap("s2"), source, target)
}

func TestRestoreRefusals(t *testing.T) {
	source, backup := cephtest.Sites(t)
	ctx := context.Background()
	img := backupImage(t)
	headBefore := cephtest.Content(t, backup, img)
	cases := []struct {
		name string
		o    RestoreOptions
		want string
	}{
		{"into the backup image itself", RestoreOptions{From: backup, Snapshot: img.AtSnap("s1"), To: backup, Target: img}, "backup image itself"},
		{"no snapshot named", RestoreOptions{From: backup, Snapshot: img, To: source, Target: img}, "name the backup snapshot"},
		{"missing snapshot", RestoreOptions{From: backup, Snapshot: img.AtSnap("nope"), To: source, Target: img}, "not found"},
		{"incremental without target", RestoreOptions{From: backup, Snapshot: img.AtSnap("s2"), To: source, Target: img, FromSnap: "s1"}, "needs the target image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Restore(ctx, c.o, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one that says %q", err, c.want)
			}
		})
	}
	if _, err := source.Info(img); !errors.Is(err, ceph.ErrNotFound) {
		t.Errorf("a refused restore left an image at the primary site: %v", err)
	}
	if headAfter := cephtest.Content(t, backup, img); headAfter != headBefore {
		t.Error("a refused restore changed the backup image")
	}
}

// TestFailbackIncremental: the primary image and the backup image share
// snapshot "common"; the backup went on to "later". Failback ships only the
// changes, after rolling back writes the primary took after "common".
func TestFailbackIncremental(t *testing.T) {
	source, backup := cephtest.Sites(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	name := testbed.ImageName(t, "vm")
	primary := newImage(t, source, name, 32*mib)
	cephtest.Write(t, source, primary, 0, randomBytes(r, 12*mib))
	cephtest.Write(t, source, primary, 20*mib, randomBytes(r, 2*mib))
	snap(t, source, primary, "common")

	bak := newImage(t, backup, name, 1)
	copyFull(t, source, primary.AtSnap("common"), backup, bak)
	// What the backup site received after "common" (later backups).
	changes := []struct {
		off uint64
		n   int
	}{{4 * kib, 8 * kib}, {5*mib + 64*kib, 128 * kib}, {26 * mib, mib}, {31*mib + 8*kib, 4 * kib}}
	var changed uint64
	for _, c := range changes {
		cephtest.Write(t, backup, bak, c.off, randomBytes(r, c.n))
		changed += uint64(c.n)
	}
	cephtest.Discard(t, backup, bak, 20*mib, 64*kib)
	snap(t, backup, bak, "later")

	if h, err := source.HeadChangedSince(primary, "common"); err != nil || h.Changed() {
		t.Fatalf("HeadChangedSince right after the snapshot = %+v, %v; want no change", h, err)
	}
	// The primary diverged: the VM wrote after "common".
	cephtest.Write(t, source, primary, 16*mib, randomBytes(r, 64*kib))
	diverged := cephtest.Content(t, source, primary)

	o := RestoreOptions{From: backup, Snapshot: bak.AtSnap("later"), To: source, Target: primary, FromSnap: "common"}
	if _, err := Restore(ctx, o, nil); !errors.Is(err, ErrDiverged) {
		t.Fatalf("failback onto a diverged primary: err %v, want ErrDiverged", err)
	}
	if cephtest.Content(t, source, primary) != diverged {
		t.Fatal("a refused failback changed the primary image")
	}

	o.ForceRollback = true
	res, err := Restore(ctx, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.RolledBack {
		t.Error("RolledBack = false after a forced rollback")
	}
	if res.DataBytes != changed {
		t.Errorf("shipped %d data bytes, want exactly the %d bytes changed", res.DataBytes, changed)
	}
	// Zero records cost no transfer; objects new since "common" come with
	// their holes as zeros, so only a lower bound is certain.
	if res.ZeroBytes < 64*kib {
		t.Errorf("zeroed %d bytes, want at least the 64 KiB discarded", res.ZeroBytes)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("later"), source, primary.AtSnap("later"))
	cephtest.RequireSameContent(t, backup, bak.AtSnap("later"), source, primary)
	if got := cephtest.SnapshotNames(t, source, primary); !slices.Equal(got, []string{"common", "later"}) {
		t.Errorf("primary snapshots %v, want [common later] (later is the next common base)", got)
	}

	// Restored already: a second run says so instead of applying twice.
	if _, err := Restore(ctx, o, nil); err == nil || !strings.Contains(err.Error(), "already has snapshot") {
		t.Errorf("second failback: err %v, want a refusal naming the existing snapshot", err)
	}
}

// A failback onto a primary that did not diverge needs no rollback flag.
func TestFailbackWithoutDivergence(t *testing.T) {
	source, backup := cephtest.Sites(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	name := testbed.ImageName(t, "vm")
	primary := newImage(t, source, name, 8*mib)
	cephtest.Write(t, source, primary, 0, randomBytes(r, 3*mib))
	snap(t, source, primary, "common")
	bak := newImage(t, backup, name, 1)
	copyFull(t, source, primary.AtSnap("common"), backup, bak)
	cephtest.Write(t, backup, bak, 6*mib, randomBytes(r, 12*kib))
	snap(t, backup, bak, "later")

	res, err := Restore(ctx, RestoreOptions{From: backup, Snapshot: bak.AtSnap("later"), To: source, Target: primary, FromSnap: "common"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.RolledBack || res.DataBytes != 12*kib {
		t.Errorf("result %+v: want no rollback and 12 KiB shipped", res)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("later"), source, primary)
}

// cancelAfterFirst cancels the restore once the first bytes are through.
type cancelAfterFirst struct{ cancel func() }

func (c cancelAfterFirst) SetTotal(uint64) {}
func (c cancelAfterFirst) Add(uint64)      { c.cancel() }

// An interrupted restore returns (no goroutine left blocked on the handoff)
// and removes the partial image, so nothing half-written can be attached.
func TestRestoreInterruptedRemovesTarget(t *testing.T) {
	_, backup := cephtest.Sites(t)
	img := backupImage(t)
	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "interrupted")}
	removeAtEnd(t, backup, target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Restore(ctx, RestoreOptions{From: backup, Snapshot: img.AtSnap("s2"), To: backup, Target: target}, cancelAfterFirst{cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if _, err := backup.Info(target); !errors.Is(err, ceph.ErrNotFound) {
		t.Fatalf("the partial image is still there: %v", err)
	}
}
