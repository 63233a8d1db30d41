package consumer

import (
	"context"
	"errors"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFailKeepsUnreadableState: a failure is not recorded over a state
// that could not be read. A blank state written in its place would lose
// the confirmed snapshots, and the next backup would go out as a full one.
func TestFailKeepsUnreadableState(t *testing.T) {
	c, conn := testConsumer(t, "fail-unreadable")
	ctx := context.Background()
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-unreadable"}
	kv, err := conn.Backup.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	const unreadable = `{"image": not what a state looks like`
	if _, err := kv.PutString(ctx, bus.ImageKey(img), unreadable); err != nil {
		t.Fatal(err)
	}
	m := &ferry.Manifest{BackupID: "id/rbd/vm-unreadable@s2", Image: img.AtSnap("s2"), SourceImageID: "id", FromSnap: "s1", ToSnap: "s2"}
	c.fail(ctx, m, errors.New("the import failed"), false)
	e, err := kv.Get(ctx, bus.ImageKey(img))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != unreadable {
		t.Fatalf("fail wrote %s over a state it could not read", e.Value())
	}
}

// TestPurgeKeepsWaitingFeeds: a confirmation purges the image's older
// extent page feeds, but not while another manifest of the image waits:
// its feed may lie below the confirmed one's (a backup of a newer snapshot
// sent before an older one was sent again), and purged, that backup could
// never be applied. Found by TestChaos: the image's last snapshot stayed
// unconfirmed, its import "the publisher went silent".
func TestPurgeKeepsWaitingFeeds(t *testing.T) {
	c, conn := testConsumer(t, "purge-waiting")
	ctx := context.Background()
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-purge"}
	pageSubject, manifestSubject := bus.Subject(bus.PageSubject, img), bus.Subject(bus.ManifestSubject, img)
	publish := func(subject string) uint64 {
		t.Helper()
		ack, err := conn.Backup.Publish(ctx, subject, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	pages := func() uint64 {
		t.Helper()
		stream, err := conn.Backup.Stream(ctx, bus.PageStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(pageSubject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[pageSubject]
	}
	publish(pageSubject)              // the feed of the newer snapshot's backup, sent first
	confirmed := publish(pageSubject) // the feed of the backup being confirmed
	publish(manifestSubject)          // the newer backup's manifest, waiting
	publish(manifestSubject)          // the confirmed backup's, not acknowledged yet
	m := &ferry.Manifest{Image: img.AtSnap("s2"), FeedSeq: confirmed}
	c.purgeFeeds(ctx, m)
	if n := pages(); n != 2 {
		t.Fatalf("%d page(s) left with a manifest waiting, want both feeds kept", n)
	}

	// With the waiting manifest gone (applied, acknowledged), the older
	// feeds go.
	mstream, err := conn.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := mstream.Purge(ctx, jetstream.WithPurgeSubject(manifestSubject), jetstream.WithPurgeKeep(1)); err != nil {
		t.Fatal(err)
	}
	c.purgeFeeds(ctx, m)
	if n := pages(); n != 1 {
		t.Fatalf("%d page(s) left, want the confirmed backup's feed only", n)
	}
}

// testConsumer is a consumer on the test bed's backup cluster and a NATS
// server of its own, with the backup site's streams set up.
func testConsumer(t *testing.T, name string) (*Consumer, *bus.Conn) {
	t.Helper()
	_, backup := cephtest.Sites(t)
	srv := bustest.Server(t, bus.ServerOptions{Name: name})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	ctx := context.Background()
	if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, backup, conn, Options{Site: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c, conn
}
