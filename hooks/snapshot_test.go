package hooks

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/virt"
)

const mib = 1 << 20

// A running VM with three disks: one snapshot name on every disk, taken
// while frozen, holding what was written before it; then the events reach
// the publisher daemon and the consumer applies them at the backup site,
// byte-identical.
func TestSnapshotVMRunningEndToEnd(t *testing.T) {
	source, backup := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 3, 4*mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	written := make([][]byte, len(v.disks))
	for i, spec := range v.disks {
		written[i] = randomBytes(t, 4*mib)
		cephtest.Write(t, source, spec, 0, written[i])
	}
	markers := t.TempDir()
	ctx := context.Background()
	snap, err := SnapshotVM(ctx, hv, newClusters(t), v.name, SnapshotOptions{MarkerDir: markers})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Consistency != ferry.Quiesced || snap.FreezeDuration <= 0 {
		t.Fatalf("consistency %q, frozen %s: want quiesced, > 0", snap.Consistency, snap.FreezeDuration)
	}
	if entries, _ := os.ReadDir(markers); len(entries) != 0 {
		t.Fatalf("frozen marker left after a thaw: %v", entries)
	}
	for i, spec := range v.disks {
		if got := cephtest.SnapshotNames(t, source, spec); !slices.Equal(got, []string{snap.Snapshot}) {
			t.Fatalf("%s snapshots %v, want [%s]", spec, got, snap.Snapshot)
		}
		// Writes after the snapshot must not show in it.
		cephtest.Write(t, source, spec, 0, randomBytes(t, mib))
		want := ceph.Content{Size: 4 * mib, SHA256: sha256.Sum256(written[i])}
		if got := cephtest.Content(t, source, spec.AtSnap(snap.Snapshot)); got != want {
			t.Fatalf("%s@%s does not hold the data written before it", spec, snap.Snapshot)
		}
	}

	_, conn := startNATS(t)
	runPipeline(t, conn)
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := Publish(ctx, conn, snap); err != nil {
		t.Fatal(err)
	}
	for _, spec := range v.disks {
		confirmed := waitConfirmed(t, book, spec, snap.Snapshot)
		if confirmed.Consistency != ferry.Quiesced {
			t.Errorf("%s: backup site records consistency %q, want quiesced", spec, confirmed.Consistency)
		}
		cephtest.RequireSameContent(t, source, spec.AtSnap(snap.Snapshot), backup, confirmed.BackupImage.AtSnap(snap.Snapshot))
	}
}

// waitConfirmed polls the backup site's state until it confirms spec@snap.
func waitConfirmed(t testing.TB, book *state.Book, spec ferry.ImageSpec, snap string) *ferry.ImageState {
	t.Helper()
	var s *ferry.ImageState
	testutil.CheckFor(t, 2*time.Minute, 100*time.Millisecond, func() (err error) {
		s, err = book.Get(context.Background(), spec)
		if err == nil && (s == nil || !s.HasConfirmed(snap)) {
			err = fmt.Errorf("%s@%s not backed up: %+v", spec, snap, s)
		}
		return err
	})
	return s
}

func TestSnapshotEventsNameTheSet(t *testing.T) {
	vm := VM{Name: "vm1", UUID: "u-1", Instance: &NovaInstance{UUID: "u-1"}, Disks: []Disk{
		{Image: ferry.ImageSpec{Pool: "p", Image: "u-1_disk"}, Ephemeral: true},
		{Image: ferry.ImageSpec{Pool: "p", Image: "volume-v2"}, VolumeID: "v2"},
	}}
	evs := Events(VMSnapshot{VM: vm, Snapshot: "ferry-x", Consistency: ferry.Quiesced, FreezeDuration: 42 * time.Millisecond})
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for i, ev := range evs {
		if ev.Image != vm.Disks[i].Image.AtSnap("ferry-x") || ev.InstanceID != "u-1" || ev.Domain != "vm1" ||
			ev.FreezeDuration != 42*time.Millisecond || !slices.Equal(ev.Disks, []string{"p/u-1_disk", "p/volume-v2"}) {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if evs[0].VolumeID != "" || evs[1].VolumeID != "v2" {
		t.Errorf("volume ids %q %q", evs[0].VolumeID, evs[1].VolumeID)
	}
}

// A shut-off domain is snapshotted without a freeze (the test driver
// refuses to freeze a domain that is not running, so a freeze would fail).
func TestSnapshotVMShutOff(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 2, mib)
	snap, err := SnapshotVM(context.Background(), hv, newClusters(t), v.name, SnapshotOptions{RequireQuiesce: true})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Consistency != ferry.CrashConsistent || snap.FreezeDuration != 0 {
		t.Fatalf("%+v: want crash-consistent, not frozen", snap)
	}
	for _, spec := range v.disks {
		if got := cephtest.SnapshotNames(t, source, spec); !slices.Equal(got, []string{snap.Snapshot}) {
			t.Fatalf("%s: %v", spec, got)
		}
	}
	if err := hv.FSFreeze(v.name); err == nil {
		t.Fatal("the test driver froze a shut-off domain: this test proves nothing")
	}
}

// A paused guest cannot be quiesced: with the policy requiring it, the
// snapshot fails and leaves nothing; without, it is crash-consistent.
func TestSnapshotVMPaused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 2, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	if err := hv.Suspend(v.name); err != nil {
		t.Fatal(err)
	}
	cs := newClusters(t)
	_, err := SnapshotVM(context.Background(), hv, cs, v.name, SnapshotOptions{RequireQuiesce: true})
	if !errors.Is(err, ErrQuiesceRequired) {
		t.Fatalf("err %v, want ErrQuiesceRequired", err)
	}
	for _, spec := range v.disks {
		if got := cephtest.SnapshotNames(t, source, spec); len(got) != 0 {
			t.Fatalf("%s has snapshots %v after a refused snapshot", spec, got)
		}
	}
	snap, err := SnapshotVM(context.Background(), hv, cs, v.name, SnapshotOptions{})
	if err != nil || snap.Consistency != ferry.CrashConsistent {
		t.Fatalf("%+v %v: want crash-consistent", snap, err)
	}
}

// A deadline that passes while the guest is frozen thaws it, fails the
// snapshot and leaves no partial set behind.
func TestSnapshotVMFreezeDeadline(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 3, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	markers := t.TempDir()
	_, err := SnapshotVM(context.Background(), hv, newClusters(t), v.name, SnapshotOptions{FreezeDeadline: time.Microsecond, MarkerDir: markers})
	if !errors.Is(err, ErrFreezeDeadline) {
		t.Fatalf("err %v, want ErrFreezeDeadline", err)
	}
	t.Log(err)
	for _, spec := range v.disks {
		if got := cephtest.SnapshotNames(t, source, spec); len(got) != 0 {
			t.Fatalf("%s keeps snapshots %v of a failed set", spec, got)
		}
	}
	if entries, _ := os.ReadDir(markers); len(entries) != 0 {
		t.Fatalf("frozen marker left after the deadline thaw: %v", entries)
	}
}

// A canceled context stops before any snapshot and still thaws.
func TestSnapshotVMCanceled(t *testing.T) {
	hv := openTestDriver(t)
	v := defineVM(t, hv, 2, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	markers := t.TempDir()
	if _, err := SnapshotVM(ctx, hv, newClusters(t), v.name, SnapshotOptions{MarkerDir: markers}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(markers); len(entries) != 0 {
		t.Fatalf("frozen marker left: %v", entries)
	}
}

// Markers left by a crashed agent: a running domain is thawed, a shut-off
// or vanished one is forgotten, an unreadable marker is reported and kept.
func TestThawMarked(t *testing.T) {
	hv := openTestDriver(t)
	running := defineVM(t, hv, 1, mib)
	if err := hv.Start(running.name); err != nil {
		t.Fatal(err)
	}
	off := defineVM(t, hv, 1, mib)
	dir := t.TempDir()
	for _, d := range []virt.Domain{{Name: running.name, UUID: running.uuid}, {Name: off.name, UUID: off.uuid}, {Name: "gone", UUID: newUUID(t)}} {
		if err := writeMarker(dir, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := hv.FSFreeze(running.name); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "garbage"+markerSuffix)
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	thawed, err := ThawMarked(hv, dir, testLogger(t))
	if err == nil {
		t.Fatal("an unreadable marker was not reported")
	}
	if !slices.Equal(thawed, []string{running.name}) {
		t.Fatalf("thawed %v, want [%s]", thawed, running.name)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != filepath.Base(bad) {
		t.Fatalf("markers left: %v, want only the unreadable one", entries)
	}
}
