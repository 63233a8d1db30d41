package publisher_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
)

// TestRestorePointsOfBackups: three backups of one image list as three
// restore points at the backup site, oldest first, each with the
// consistency it was taken with and the bytes its backup changed, the
// first a full one; the newest is the latest, which @latest names.
func TestRestorePointsOfBackups(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	r := rand.New(rand.NewPCG(41, 41))
	img := cephtest.Image(t, source, "points", 8*mib)
	removeAtEnd(t, source, img)
	removeAtEnd(t, backup, img)
	taken := []ferry.Consistency{ferry.CrashConsistent, ferry.Quiesced, ferry.CrashConsistent}
	var sent []string
	for i, c := range taken {
		cephtest.Write(t, source, img, uint64(i)*2*mib, randomBytes(r, 512*kib))
		sent = append(sent, s.backupAs(img, c).ToSnap)
	}
	snap(t, backup, img, "by-hand") // not Ferry's: no restore point

	points, err := recovery.RestorePoints(backup, img)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != len(sent) {
		t.Fatalf("%d restore points %+v, want %d", len(points), points, len(sent))
	}
	for i, p := range points {
		if p.Snapshot != img.AtSnap(sent[i]) || p.Info.Consistency != taken[i] || p.Size != 8*mib || p.Latest != (i == len(sent)-1) {
			t.Errorf("restore point %d: %+v, want %s, %s, latest %v", i, p, sent[i], taken[i], i == len(sent)-1)
		}
		if p.Info.Full != (i == 0) || p.Info.ChangedBytes == nil || *p.Info.ChangedBytes < 512*kib {
			t.Errorf("restore point %d: full %v, changed %v; want the first full and each at least the 512 KiB written", i, p.Info.Full, p.Info.ChangedBytes)
		}
		if i > 0 && (!p.Taken.After(points[i-1].Taken) || p.Created.Before(points[i-1].Created)) {
			t.Errorf("restore points out of order: %v then %v", points[i-1].Taken, p.Taken)
		}
	}
	latest, err := backup.ResolveSnap(img.AtSnap(ferry.LatestSnap))
	if err != nil || latest != img.AtSnap(sent[2]) {
		t.Errorf("@latest = %v, %v; want %s", latest, err, sent[2])
	}
}
