package recovery

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// TestDrillWithoutRecords: a snapshot without scrub records (no record
// store here) is drilled against the backup snapshot alone, and says so.
func TestDrillWithoutRecords(t *testing.T) {
	_, backup := cephtest.Sites(t)
	img := drillImage(t, backup)
	rep, err := Drill(context.Background(), DrillOptions{Backup: backup, Snapshot: img.AtSnap("s1")})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed() || rep.Recorded || rep.ReadBytes == 0 || !rep.ScratchRemoved {
		t.Fatalf("drill: %+v", rep)
	}
	requireNoDrillImage(t, backup, img)
}

// TestDrillInterrupted: a drill whose context is cancelled in the middle
// of its restore, or as its verification starts, removes its scratch image.
func TestDrillInterrupted(t *testing.T) {
	_, backup := cephtest.Sites(t)
	img := drillImage(t, backup)
	for _, at := range []string{"restore", "verify"} {
		t.Run(at, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var scratchSeen bool
			phase := func(name string) progress.Reporter {
				if name != at {
					return progress.Discard
				}
				return &cancelOnAdd{cancel: func() {
					// On the export's goroutine: no t.Fatal here.
					scratchSeen, _ = drillImageExists(backup, img)
					cancel()
				}}
			}
			if at == "verify" {
				phase = func(name string) progress.Reporter {
					if name == at {
						scratchSeen = hasDrillImage(t, backup, img)
						cancel()
					}
					return progress.Discard
				}
			}
			rep, err := Drill(ctx, DrillOptions{Backup: backup, Snapshot: img.AtSnap("s1"), Progress: phase})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("drill cancelled at %s: %v, want context.Canceled", at, err)
			}
			if !scratchSeen {
				t.Fatal("the scratch image did not exist when the context was cancelled: the test interrupts nothing")
			}
			if !rep.ScratchRemoved {
				t.Fatalf("report: %+v", rep)
			}
			requireNoDrillImage(t, backup, img)
		})
	}
}

// drillImage is a backup image with data and snapshot s1.
func drillImage(t *testing.T, c *ceph.Cluster) ferry.ImageSpec {
	img := newImage(t, c, testbed.ImageName(t, "drill"), 24*mib)
	r := rand.New(rand.NewPCG(5, 6))
	if err := c.WriteAt(img, randomBytes(r, 12*mib), 3*mib+5); err != nil {
		t.Fatal(err)
	}
	snap(t, c, img, "s1")
	return img
}

// cancelOnAdd calls cancel on the first bytes reported.
type cancelOnAdd struct {
	once   sync.Once
	cancel func()
}

func (c *cancelOnAdd) SetTotal(uint64) {}
func (c *cancelOnAdd) Add(uint64)      { c.once.Do(c.cancel) }

func hasDrillImage(t *testing.T, c *ceph.Cluster, img ferry.ImageSpec) bool {
	t.Helper()
	ok, err := drillImageExists(c, img)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func drillImageExists(c *ceph.Cluster, img ferry.ImageSpec) (bool, error) {
	names, err := c.Images(img.Pool)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if strings.HasPrefix(n.Image, img.Image+drillInfix) {
			return true, nil
		}
	}
	return false, nil
}

func requireNoDrillImage(t *testing.T, c *ceph.Cluster, img ferry.ImageSpec) {
	t.Helper()
	if hasDrillImage(t, c, img) {
		t.Fatalf("a scratch image of %s is left", img)
	}
}
