package recovery

import (
	"context"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/retention"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// TestApplyRetention runs a policy on a real backup image.
func TestApplyRetention(t *testing.T) {
	_, backup := cephtest.Sites(t)
	now := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	at := func(day, hour int) string {
		return ferry.NewSnapshotName(time.Date(2025, 1, day, hour, 0, 0, 0, time.UTC))
	}
	a, b, c, d, e, f, g := at(1, 10), at(7, 13), at(8, 9), at(9, 11), at(9, 20), at(10, 8), at(10, 11)
	img := newImage(t, backup, testbed.ImageName(t, "ret"), 4*mib)
	for _, s := range []string{a, b, c, "manual", d, e, f, g} {
		snap(t, backup, img, s)
	}
	policy, err := retention.ParsePolicy("latest2,days3")
	if err != nil {
		t.Fatal(err)
	}
	o := RetentionOptions{Backup: backup, Image: img, Policy: policy, Now: now}

	// Dry run: a is 9 days old; c shares day 2 with the older b.
	res, err := ApplyRetention(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(retention.Names(res.Remove), []string{a, c}) || len(res.Removed) != 0 || !slices.Equal(res.NotFerrys, []string{"manual"}) {
		t.Fatalf("dry run: remove %v, removed %v, not Ferry's %v; want remove [a c], nothing removed, [manual]", retention.Names(res.Remove), res.Removed, res.NotFerrys)
	}
	if got := cephtest.SnapshotNames(t, backup, img); len(got) != 8 {
		t.Fatalf("a dry run removed snapshots: %v", got)
	}

	// The state bucket's base is never removed.
	o.Base, o.Remove = a, true
	if res, err = ApplyRetention(o); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Removed, []string{c}) {
		t.Fatalf("removed %v, want only c (a is the base)", res.Removed)
	}
	if got := cephtest.SnapshotNames(t, backup, img); !slices.Equal(got, []string{a, b, "manual", d, e, f, g}) {
		t.Fatalf("snapshots left %v", got)
	}

	// A base the image does not have stops the run.
	o.Base = at(3, 3)
	if _, err := ApplyRetention(o); err == nil || !strings.Contains(err.Error(), "no such Ferry snapshot") {
		t.Fatalf("unknown base: err %v", err)
	}

	// A protected snapshot with a clone is reported and left; the rest goes.
	site := testbed.Shared(t).Backup
	site.Rbd(t, "snap", "protect", img.AtSnap(b).String())
	clone := img.Pool + "/" + testbed.ImageName(t, "clone")
	site.Rbd(t, "clone", img.AtSnap(b).String(), clone)
	t.Cleanup(func() {
		site.RbdErr("rm", "--no-progress", clone)
		site.RbdErr("snap", "unprotect", img.AtSnap(b).String())
	})
	o.Base, o.Policy = "", retention.Policy{retention.Latest: 1}
	res, err = ApplyRetention(o)
	if err == nil || len(res.Failed) != 1 || res.Failed[0].Name != b || !strings.Contains(err.Error(), "protected") {
		t.Fatalf("protected snapshot: err %v, failed %v; want b reported", err, res.Failed)
	}
	if got := cephtest.SnapshotNames(t, backup, img); !slices.Equal(got, []string{b, "manual", g}) {
		t.Fatalf("snapshots left %v, want [b manual g]", got)
	}
}

// TestRetentionTargetFromState reads the base from a real state bucket on
// an embedded JetStream server.
func TestRetentionTargetFromState(t *testing.T) {
	ctx := context.Background()
	conn := bustest.Conn(t)
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	known := ferry.ImageSpec{Pool: "rbd", Image: "volume-1"}
	if err := book.Put(ctx, &ferry.ImageState{Image: known, BackupImage: ferry.ImageSpec{Pool: "backups", Image: "volume-1"},
		Confirmed: []string{"ferry-a", "ferry-b"}, LastSnapshot: "ferry-b", Status: ferry.StatusOK}); err != nil {
		t.Fatal(err)
	}
	img, base, err := RetentionTarget(ctx, book, known.AtSnap("ignored"))
	if err != nil || img != (ferry.ImageSpec{Pool: "backups", Image: "volume-1"}) || base != "ferry-b" {
		t.Errorf("known image: %v, %q, %v; want backups/volume-1 and base ferry-b", img, base, err)
	}
	unknown := ferry.ImageSpec{Pool: "rbd", Image: "volume-2"}
	if img, base, err = RetentionTarget(ctx, book, unknown); err != nil || img != unknown || base != "" {
		t.Errorf("unknown image: %v, %q, %v; want itself, no base", img, base, err)
	}
}
