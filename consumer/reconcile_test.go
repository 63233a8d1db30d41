package consumer_test

import (
	"context"
	"testing"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
)

// TestStateDeletedStaysIncremental: an image's state entry deleted (by a
// fault or by hand) is rebuilt from the backup image's snapshots, so the
// next backup is still an incremental on the confirmed base, not a full
// one that the backup image would refuse as mixing two chains.
func TestStateDeletedStaysIncremental(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "state-deleted"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	first, _ := p.backupNow(img)

	deleteState(t, p, img)
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(first.ToSnap) })
	if st.SourceImageID != first.SourceImageID {
		t.Fatalf("rebuilt state has source image id %q, want %q", st.SourceImageID, first.SourceImageID)
	}

	cephtest.Write(t, source, img, mib, []byte("two"))
	second, _ := p.backupNow(img)
	if second.FromSnap != first.ToSnap {
		t.Fatalf("the backup after the state was deleted started from %q, want the incremental from %s", second.FromSnap, first.ToSnap)
	}
}

// TestStateRebuiltWithoutOperatorSnapshots: an operator's snapshot of a
// backup image (named like one at the source) is not a backup: the state
// rebuilt from the image leaves it out, so it is never a base, and the next
// backup starts from Ferry's newest snapshot, byte-identical.
func TestStateRebuiltWithoutOperatorSnapshots(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "state-operator-snap"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	first, _ := p.backupNow(img)
	// The same name at both sites, over different data.
	cephtest.Snap(t, backup, img, "before-upgrade")
	cephtest.Write(t, source, img, 2*mib, []byte("source only"))
	cephtest.Snap(t, source, img, "before-upgrade")

	deleteState(t, p, img)
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(first.ToSnap) })
	if st.HasConfirmed("before-upgrade") || st.LastSnapshot != first.ToSnap {
		t.Fatalf("rebuilt state lists %v, last %s: an operator's snapshot taken for a backup", st.Confirmed, st.LastSnapshot)
	}
	cephtest.Write(t, source, img, mib, []byte("two"))
	second, _ := p.backupNow(img)
	if second.FromSnap != first.ToSnap {
		t.Fatalf("the backup started from %q, want the incremental from %s", second.FromSnap, first.ToSnap)
	}
	snap := img.AtSnap(second.ToSnap)
	cephtest.RequireSameContent(t, source, snap, backup, snap)
}

// TestStatePurgedRefusedOnce: an image's state purged with its history
// cannot be rebuilt until a backup names the image: the publisher sends a
// full backup, which the backup image refuses (two chains), but the state
// is rebuilt from the image and the refusal says that a plain rerun will
// do; the next backup is an incremental again, without --resync.
func TestStatePurgedRefusedOnce(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "state-purged"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	first, _ := p.backupNow(img)

	kv, err := p.consConn.Backup.KeyValue(context.Background(), bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(context.Background(), bus.ImageKey(img)); err != nil {
		t.Fatal(err)
	}
	cephtest.Write(t, source, img, mib, []byte("two"))
	full := p.send(snapshot(t, img))
	if full.FromSnap != "" {
		t.Fatalf("with the state purged the publisher sent an incremental from %s; the test wants the full backup it used to send", full.FromSnap)
	}
	requireContains(t, p.waitRefused(full).Error(), "no --resync needed")

	cephtest.Write(t, source, img, 2*mib, []byte("three"))
	next, _ := p.backupNow(img)
	if next.FromSnap != first.ToSnap {
		t.Fatalf("the backup after the refused full one started from %q, want the incremental from %s", next.FromSnap, first.ToSnap)
	}
}

// TestAlreadyAppliedClearsMarker: a consumer killed after the import made
// its snapshot but before it confirmed leaves the import marker set; the
// redelivered manifest ("already applied; confirming again") clears it, so
// the next backup does not roll back for nothing.
func TestAlreadyAppliedClearsMarker(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "marker"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	p.backupNow(img)
	cephtest.Write(t, source, img, mib, []byte("two"))
	m, _ := p.backupNow(img)

	ctx := context.Background()
	book, err := state.Open(ctx, p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	st, err := book.Get(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	// As the killed consumer left it: marked, snapshot made, not confirmed.
	st.Importing, st.Status = m.BackupID, ferry.StatusRunning
	st.Confirmed = st.Confirmed[:len(st.Confirmed)-1]
	if err := book.Put(ctx, st); err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(ctx, backup, p.consConn, fastConsumerOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, &m.Manifest); err != nil {
		t.Fatal(err)
	}
	st, err = book.Get(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Importing != "" || st.Status != ferry.StatusOK || !st.HasConfirmed(m.ToSnap) {
		t.Fatalf("after the redelivered manifest: importing %q, status %s, confirmed %v; want no marker, ok, %s confirmed",
			st.Importing, st.Status, st.Confirmed, m.ToSnap)
	}
}

// deleteState deletes img's entry in the state bucket, as an operator or a
// lost write could.
func deleteState(t *testing.T, p *pipeline, img ferry.ImageSpec) {
	t.Helper()
	kv, err := p.consConn.Backup.KeyValue(context.Background(), bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), bus.ImageKey(img)); err != nil {
		t.Fatal(err)
	}
}
