package consumer_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// TestDrill: a drill of an image with two backups restores the newest,
// checks it against the hashes the consumer recorded and against the backup
// snapshot, and leaves no scratch image, also not the one a killed drill
// left. With one byte flipped in the backup cluster's RADOS object under
// the newest snapshot, the restored data still equals the (damaged) backup
// snapshot, but not the recorded hashes: the drill reports that chunk.
func TestDrill(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "drill"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(22, 23))
	img := cephtest.Image(t, source, "drill", 24*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 9*mib))
	full, _ := p.backupNow(img)
	cephtest.Write(t, source, img, 2*mib+77, randomBytes(r, 300<<10))
	cephtest.Write(t, source, img, 13*mib, randomBytes(r, 64<<10))
	inc, _ := p.backupNow(img)

	ctx := context.Background()
	records, err := state.OpenScrubRecords(ctx, p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	// What a drill killed before its clean-up leaves: a scratch image with
	// its snapshot.
	killed := recovery.DrillImage(img, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := backup.CreateImage(killed, mib); err != nil {
		t.Fatal(err)
	}
	if err := backup.CreateSnapshot(killed.AtSnap("drill")); err != nil {
		t.Fatal(err)
	}
	drill := func(snap string) recovery.DrillReport {
		t.Helper()
		rep, err := recovery.Drill(ctx, recovery.DrillOptions{Backup: backup, Snapshot: img.AtSnap(snap), Records: records})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.ScratchRemoved || !strings.HasPrefix(rep.Scratch.Image, img.Image+".ferry-drill-") {
			t.Fatalf("scratch image %s, removed %v", rep.Scratch, rep.ScratchRemoved)
		}
		requireNoScratch(t, backup, img)
		return rep
	}

	rep := drill(inc.ToSnap)
	if !rep.Passed() || !rep.Recorded || rep.RecordedChunks != inc.Stats.Chunks || rep.RecordedBytes != inc.Stats.DataBytes {
		t.Fatalf("drill of an intact backup: %+v; the backup wrote %d bytes in %d chunks", rep, inc.Stats.DataBytes, inc.Stats.Chunks)
	}
	if rep.Size != 24*mib || rep.RestoredBytes < 9*mib || rep.RestoreDuration <= 0 || rep.VerifyDuration <= 0 {
		t.Fatalf("drill figures: %+v", rep)
	}
	if !slices.Equal(rep.LeftoversRemoved, []ferry.ImageSpec{killed}) {
		t.Fatalf("leftovers removed: %v, want %v", rep.LeftoversRemoved, killed)
	}

	flip := uint64(2*mib + 77 + 1000) // written by the incremental
	flipObject(t, testbed.Shared(t).Backup, img, flip)
	rep = drill(inc.ToSnap)
	if rep.Passed() || len(rep.Mismatches) != 1 || len(rep.Differences) != 0 || rep.SizeDiffers {
		t.Fatalf("drill after one flipped byte: %+v, want one mismatch and no difference from the snapshot", rep)
	}
	if m := rep.Mismatches[0]; flip < m.Offset || flip >= m.Offset+m.Length || m.Snapshot != img.AtSnap(inc.ToSnap) {
		t.Fatalf("mismatch %+v does not hold offset %d of %s", m, flip, inc.ToSnap)
	}
	// The full backup's snapshot has its own copy of that object.
	if rep := drill(full.ToSnap); !rep.Passed() || !rep.Recorded {
		t.Fatalf("drill of the older snapshot: %+v", rep)
	}
}

// requireNoScratch fails if any drill's scratch image of img is left.
func requireNoScratch(t *testing.T, c *ceph.Cluster, img ferry.ImageSpec) {
	t.Helper()
	names, err := c.Images(img.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n.Image, img.Image) && recovery.IsDrillImage(n.Image) {
			t.Fatalf("scratch image %s left behind", n)
		}
	}
}
