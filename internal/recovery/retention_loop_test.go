package recovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/retention"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestRetentionLoopAppliesRulesOnInterval: the loop the consumer daemon
// runs thins out every image of the state bucket under its rule, on its
// interval, and keeps the newest snapshot, the state's last backup and
// snapshots Ferry did not take; an image no rule names is left alone. The
// kept backups still hold what their source snapshots held.
func TestRetentionLoopAppliesRulesOnInterval(t *testing.T) {
	source, backup := cephtest.Sites(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	book, err := state.Open(ctx, bustest.Conn(t).Backup)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ago := func(days float64) string {
		return ferry.NewSnapshotName(now.Add(-time.Duration(days * 24 * float64(time.Hour))))
	}
	r := rand.New(rand.NewPCG(7, 8))
	// backups makes a source image with a snapshot per name, backs each up
	// incrementally into an image of the same name at the backup site, and
	// records the image's state with base as its last backup.
	backups := func(prefix string, snaps []string, base string) (src, dst ferry.ImageSpec) {
		name := testbed.ImageName(t, prefix)
		src, dst = newImage(t, source, name, 4*mib), ferry.ImageSpec{Pool: testbed.Pool, Image: name}
		removeAtEnd(t, backup, dst)
		if err := backup.CreateImage(dst, 1); err != nil {
			t.Fatal(err)
		}
		from, confirmed := "", []string(nil)
		for i, s := range snaps {
			cephtest.Write(t, source, src, uint64(i)*256*kib, randomBytes(r, 64*kib))
			snap(t, source, src, s)
			if !ferry.IsFerrySnapshot(s) { // taken at the backup site by somebody else
				snap(t, backup, dst, s)
				continue
			}
			copyDiff(t, source, src.AtSnap(s), from, backup, dst)
			from, confirmed = s, append(confirmed, s)
		}
		if err := book.Put(ctx, &ferry.ImageState{Image: src, BackupImage: dst, Confirmed: confirmed, LastSnapshot: base, Status: ferry.StatusOK}); err != nil {
			t.Fatal(err)
		}
		return src, dst
	}
	// days: the base (8.5 days old; its confirmation is the last the state
	// got), the oldest of day 2 and of day 0, and the newest stay.
	s1, base, s3, s4, s5, s6 := ago(9.5), ago(8.5), ago(2.6), ago(2.3), ago(0.6), ago(0.2)
	daysSrc, days := backups("ret-days", []string{s1, base, s3, s4, "manual", s5, s6}, base)
	// latest1: only the newest, which is also the state's last backup.
	l1, l2, l3 := ago(3), ago(2), ago(1)
	_, latest := backups("ret-latest", []string{l1, l2, l3}, l3)
	// no rule
	n1, n2 := ago(3), ago(1)
	_, untouched := backups("ret-none", []string{n1, n2}, n2)

	rules := retention.Rules{Images: []retention.ImageRule{
		{Pattern: testbed.Pool + "/ret-days-*", Policy: mustPolicy(t, "latest1,days3")},
		{Pattern: latest.String(), Policy: mustPolicy(t, "latest1")},
	}}
	// A consumer limited to other pools (consumer.pools) leaves them alone.
	res, err := ApplyRetentionAll(ctx, RetentionAllOptions{Backup: backup, Book: book, Rules: rules, Now: now, Remove: true, Pools: []string{"elsewhere"}})
	if err != nil || len(res) != 3 || !res[0].OutsidePools || !res[1].OutsidePools || !res[2].OutsidePools {
		t.Fatalf("limited to other pools: %+v, %v", res, err)
	}
	if got := cephtest.SnapshotNames(t, backup, days); len(got) != 7 {
		t.Fatalf("a run limited to other pools removed snapshots: %v", got)
	}

	runs := make(chan []ImageRetention)
	var logs testutil.LogBuffer
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		RetentionLoop(ctx, RetentionLoopOptions{Backup: backup, Book: book, Rules: rules, Interval: 300 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(&logs, nil)), Ran: func(res []ImageRetention, err error) {
				if err != nil {
					t.Errorf("retention run: %v", err)
				}
				select {
				case runs <- res:
				case <-ctx.Done():
				}
			}})
	}()
	defer func() { cancel(); <-done }()

	res = <-runs
	if len(res) != 3 {
		t.Fatalf("the run saw %d images, want 3", len(res))
	}
	for _, ir := range res {
		if ir.Err != nil {
			t.Errorf("%s: %v", ir.Image, ir.Err)
		}
	}
	want := map[ferry.ImageSpec][]string{
		days:      {base, s3, "manual", s5, s6},
		latest:    {l3},
		untouched: {n1, n2},
	}
	for img, w := range want {
		if got := cephtest.SnapshotNames(t, backup, img); !slices.Equal(got, w) {
			t.Errorf("%s keeps %v, want %v", img, got, w)
		}
	}
	cephtest.RequireSameContent(t, source, daysSrc.AtSnap(s3), backup, days.AtSnap(s3))
	cephtest.RequireSameContent(t, source, daysSrc.AtSnap(s6), backup, days.AtSnap(s6))

	// A new backup: on the next interval s6 is no longer the newest, and
	// goes (s5 is the oldest of its day).
	s7 := ago(0.1)
	cephtest.Write(t, source, daysSrc, 0, randomBytes(r, 64*kib))
	snap(t, source, daysSrc, s7)
	copyDiff(t, source, daysSrc.AtSnap(s7), s6, backup, days)
	for seen := false; !seen; { // a run under way may have listed the snapshots before s7
		for _, ir := range <-runs {
			seen = seen || ir.Image == days && slices.Contains(retention.Names(ir.Result.Keep), s7)
		}
	}
	if got, w := cephtest.SnapshotNames(t, backup, days), []string{base, s3, "manual", s5, s7}; !slices.Equal(got, w) {
		t.Errorf("after the next interval %s keeps %v, want %v", days, got, w)
	}
	cephtest.RequireSameContent(t, source, daysSrc.AtSnap(s7), backup, days.AtSnap(s7))
}

func mustPolicy(t *testing.T, s string) retention.Policy {
	t.Helper()
	p, err := retention.ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
