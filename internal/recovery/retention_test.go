package recovery

import (
	"context"
	"fmt"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
)

func TestParsePolicy(t *testing.T) {
	good := map[string]string{
		"latest3,days7,weeks4,months12": "latest3,days7,weeks4,months12",
		"months12, latest3":             "latest3,months12",
		"hours24,years2":                "hours24,years2",
	}
	for in, want := range good {
		p, err := ParsePolicy(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	bad := map[string]string{
		"":                "empty",
		"days":            "has no count",
		"days0":           "between 1 and",
		"fortnights2":     "unknown category",
		"days7,days3":     "appears twice",
		"latest3,,days7":  "unknown category",
		"7days":           "unknown category",
		"days99999999999": "between 1 and",
	}
	for in, want := range bad {
		if _, err := ParsePolicy(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%q): err %v, want one that says %q", in, err, want)
		}
	}
}

// TestKeepProperties checks Keep against the policy's definition over random
// policies and histories.
func TestKeepProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for iter := range 3000 {
		p := Policy{}
		for _, period := range periodOrder {
			if r.IntN(2) == 0 {
				p[period] = 1 + r.IntN(12)
			}
		}
		span := []time.Duration{time.Hour, 48 * time.Hour, 60 * 24 * time.Hour, 3 * 365 * 24 * time.Hour}[r.IntN(4)]
		snaps := make([]SnapshotWithTime, r.IntN(60))
		for i := range snaps {
			age := time.Duration(r.Int64N(int64(span)))
			if r.IntN(20) == 0 {
				age = -time.Duration(r.Int64N(int64(time.Hour))) // clock skew: from the future
			}
			snaps[i] = SnapshotWithTime{Name: fmt.Sprintf("s%d", i), Time: now.Add(-age).Truncate(time.Second), Pinned: r.IntN(15) == 0}
		}
		keep, remove := Keep(snaps, p, now)
		where := fmt.Sprintf("iteration %d, policy %s, %d snapshots", iter, p, len(snaps))
		checkKeep(t, where, snaps, p, now, keep, remove)

		again, removed := Keep(keep, p, now)
		if len(removed) != 0 || !slices.Equal(names(again), names(keep)) {
			t.Fatalf("%s: not idempotent: applied to its own result it removes %v", where, names(removed))
		}
	}
}

func checkKeep(t *testing.T, where string, snaps []SnapshotWithTime, p Policy, now time.Time, keep, remove []SnapshotWithTime) {
	t.Helper()
	kept := map[string]bool{}
	for _, s := range keep {
		kept[s.Name] = true
	}
	for _, s := range remove {
		if kept[s.Name] {
			t.Fatalf("%s: %s both kept and removed", where, s.Name)
		}
	}
	if len(keep)+len(remove) != len(snaps) {
		t.Fatalf("%s: %d kept + %d removed != %d", where, len(keep), len(remove), len(snaps))
	}
	if len(snaps) == 0 {
		return
	}
	sorted := slices.Clone(snaps)
	slices.SortStableFunc(sorted, func(a, b SnapshotWithTime) int { return a.Time.Compare(b.Time) })

	// Why each snapshot must be kept; anything kept without a reason is an error.
	needed := map[string]bool{sorted[len(sorted)-1].Name: true} // the newest: the next base
	for _, s := range sorted {
		if s.Pinned {
			needed[s.Name] = true
		}
	}
	for i := len(sorted) - 1; i >= 0 && i >= len(sorted)-p[Latest]; i-- {
		needed[sorted[i].Name] = true
	}
	for period, length := range periodLength {
		n, ok := p[period]
		if !ok {
			continue
		}
		for b := range int64(n) {
			for _, s := range sorted { // the first in the bucket is its oldest
				if max(now.Sub(s.Time), 0)/length == time.Duration(b) {
					needed[s.Name] = true
					break
				}
			}
		}
	}
	for name := range needed {
		if !kept[name] {
			t.Fatalf("%s: %s is required by the policy (or is the newest, or pinned) but removed", where, name)
		}
	}
	for name := range kept {
		if !needed[name] {
			t.Fatalf("%s: %s kept though no rule asks for it", where, name)
		}
	}
}

func names(s []SnapshotWithTime) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Name
	}
	return out
}

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
	policy, err := ParsePolicy("latest2,days3")
	if err != nil {
		t.Fatal(err)
	}
	o := RetentionOptions{Backup: backup, Image: img, Policy: policy, Now: now}

	// Dry run: a is 9 days old; c shares day 2 with the older b.
	res, err := ApplyRetention(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(res.Remove), []string{a, c}) || len(res.Removed) != 0 || !slices.Equal(res.NotFerrys, []string{"manual"}) {
		t.Fatalf("dry run: remove %v, removed %v, not Ferry's %v; want remove [a c], nothing removed, [manual]", names(res.Remove), res.Removed, res.NotFerrys)
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
	o.Base, o.Policy = "", Policy{Latest: 1}
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
