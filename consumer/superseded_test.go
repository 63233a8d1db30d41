package consumer_test

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestSupersededBackupDropped: a backup of a snapshot older than one the
// backup image already holds (left by a publisher attempt killed mid-send,
// whose snapshot a later backup overtook) is dropped at once, not applied
// by rolling the image back, nor waited for a minute for a feed that will
// never speak. TestChaos (seed 6, 10 minutes) saw such manifests hold an
// image's last backup back for minutes after the faults, a minute each.
func TestSupersededBackupDropped(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "superseded"}))
	logs := &testutil.LogBuffer{}
	p.consOpts.Log = slog.New(slog.NewTextHandler(logs, nil))
	p.startConsumer()
	r := rand.New(rand.NewPCG(47, 47))
	img := cephtest.Image(t, source, "vm", 16*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 4*mib))
	p.backupNow(img)

	cephtest.Write(t, source, img, 4*mib, randomBytes(r, mib))
	older := snapshot(t, img)
	cephtest.Write(t, source, img, 8*mib, randomBytes(r, mib))
	newer := snapshot(t, img)
	p.waitConfirmed(p.send(newer))
	p.send(older)
	t0 := time.Now()
	testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "backup superseded by a newer one") {
			return errors.New("the older backup was not dropped")
		}
		return nil
	})
	t.Logf("dropped %v after it was sent", time.Since(t0).Round(time.Millisecond))
	if slices.Contains(cephtest.SnapshotNames(t, backup, older.Image), older.Image.Snap) {
		t.Fatalf("the older backup %s was applied after the newer %s", older.Image.Snap, newer.Image.Snap)
	}
	cephtest.RequireSameContent(t, source, newer.Image, backup, newer.Image)
	// The head was not rolled back: the next backup goes on from the newer one.
	cephtest.Write(t, source, img, 12*mib, randomBytes(r, mib))
	p.backupNow(img)
}
