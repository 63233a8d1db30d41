package consumer_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/internal/wanlink"
	"github.com/ferry-dr/ferry/publisher"
)

// wanPipeline is the production topology (TestLeafnodeTwoDomains) with an
// emulated WAN link on the leafnode between the two sites' servers.
func wanPipeline(t *testing.T, rtt time.Duration) (*pipeline, *wanlink.Link) {
	t.Helper()
	leafPort := testutil.FreePort(t)
	backupSrv := startServer(t, bus.ServerOptions{Name: "backup-site", Domain: "backup", LeafPort: leafPort, LeafNoAdvertise: true})
	link, err := wanlink.Listen("127.0.0.1:" + itoa(leafPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	link.SetRTT(rtt)
	sourceSrv := startServer(t, bus.ServerOptions{Name: "source-site", Domain: "source",
		LeafRemotes: []string{"nats-leaf://" + link.Addr()}})
	waitLeaf(t, sourceSrv)
	pubConn := connect(t, bus.ConnOptions{URL: sourceSrv.ClientURL(), Name: "publisher", SourceDomain: "source", BackupDomain: "backup"})
	consConn := connect(t, bus.ConnOptions{URL: backupSrv.ClientURL(), Name: "consumer", SourceDomain: "source", BackupDomain: "backup"})
	p := newPipelineConns(t, pubConn, consConn)
	p.startConsumer()
	return p, link
}

// TestWANDelayedLink: a full and an incremental backup across a 100 ms RTT
// link complete and read back byte-identical at the backup site.
func TestWANDelayedLink(t *testing.T) {
	p, link := wanPipeline(t, 100*time.Millisecond)
	r := rand.New(rand.NewPCG(22, 1))
	const size = 32 * mib
	img := wanImage(t, "wan", r, size, 12*mib)
	p.backupNow(img)
	full, _ := link.Bytes()
	scribble(t, img, size, r, 20)
	m, _ := p.backupNow(img)
	if m.FromSnap == "" {
		t.Fatal("the second backup across the delayed link was not incremental")
	}
	to, from := link.Bytes()
	if full < 12*mib {
		t.Fatalf("the full backup sent %d bytes across the link, less than the 12 MiB of random data", full)
	}
	t.Logf("across the link: %d bytes to the backup site (full %d), %d back", to, full, from)
}

// cutMidTransfer arms the link to go down once 8 MiB have crossed it, runs
// start (which must send a 48 MiB random image), and returns once the cut
// has happened, having checked that the backup of snap was not confirmed
// before it. The link comes back after outage.
func cutMidTransfer(t *testing.T, p *pipeline, link *wanlink.Link, snap ferry.ImageSpec, outage time.Duration, start func()) {
	t.Helper()
	cut := link.CutAfter(8 * mib)
	start()
	select {
	case <-cut:
	case <-time.After(2 * time.Minute):
		t.Fatal("8 MiB of a 48 MiB backup never crossed the link")
	}
	book, err := state.Open(context.Background(), p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := book.Get(context.Background(), snap.AtSnap("")); err != nil || (st != nil && st.LastSnapshot == snap.Snap) {
		t.Fatalf("backup of %s confirmed (%+v, %v) before its data crossed the link", snap, st, err)
	}
	time.AfterFunc(outage, link.Up)
}

// wanCutImage is a 48 MiB image of random data with a fresh snapshot.
func wanCutImage(t *testing.T, seed uint64) ferry.SnapshotEvent {
	t.Helper()
	source, _ := cephtest.Sites(t)
	r := rand.New(rand.NewPCG(22, seed))
	const size = 48 * mib
	img := cephtest.Image(t, source, "wancut", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, size))
	return snapshot(t, img)
}

// TestWANLinkCutDaemon: the leafnode is cut while the publisher daemon's
// backup crosses it and comes back 3 s later; the daemon's retry completes
// the backup by itself, byte-identical.
func TestWANLinkCutDaemon(t *testing.T) {
	p, link := wanPipeline(t, 20*time.Millisecond)
	ev := wanCutImage(t, 2)
	p.startPublisherDaemon()
	cutMidTransfer(t, p, link, ev.Image, 3*time.Second, func() {
		if err := bus.PublishSnapshotEvent(context.Background(), p.pubConn, ev); err != nil {
			t.Fatal(err)
		}
	})
	t0 := time.Now()
	waitState(t, p, ev.Image.AtSnap(""), func(s *ferry.ImageState) bool { return s.LastSnapshot == ev.Image.Snap })
	t.Logf("confirmed %v after the cut", time.Since(t0).Round(time.Second))
	requireAcross(t, link, 48*mib)
	source, backup := cephtest.Sites(t)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// requireAcross checks that at least n bytes went to the backup site through
// the link, after a reconnect: the source site did not go around it.
func requireAcross(t *testing.T, link *wanlink.Link, n int64) {
	t.Helper()
	to, from := link.Bytes()
	t.Logf("%d bytes to the backup site, %d back, over %d connections", to, from, link.Accepted())
	if to < n || link.Accepted() < 2 {
		t.Fatalf("%d bytes to the backup site (%d back) over %d connections through the link, want at least %d over 2 or more",
			to, from, link.Accepted(), n)
	}
}

// TestWANLinkCutBackupRerun: `ferry backup`'s path (one Publisher.Backup
// call) across a link cut mid-transfer that comes back 3 s later. The call
// either completes or fails with an error, never hangs; after a failure a
// rerun of the same snapshot completes. Either way the backup site ends up
// byte-identical and confirms nothing else.
func TestWANLinkCutBackupRerun(t *testing.T) {
	p, link := wanPipeline(t, 20*time.Millisecond)
	ev := wanCutImage(t, 3)
	type result struct {
		m   *publisher.Sent
		err error
	}
	done := make(chan result, 1)
	cutMidTransfer(t, p, link, ev.Image, 3*time.Second, func() {
		go func() {
			m, err := p.pub.Backup(context.Background(), ev, nil)
			done <- result{m, err}
		}()
	})
	t0 := time.Now()
	var res result
	select {
	case res = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the backup neither completed nor failed within 3 minutes of a 3 s outage")
	}
	if res.err != nil {
		t.Logf("the backup failed %v after the cut: %v; running it again", time.Since(t0).Round(time.Second), res.err)
		res.m = p.send(ev)
	}
	st := p.waitConfirmed(res.m)
	if st.LastSnapshot != ev.Image.Snap {
		t.Fatalf("confirmed %q, want %q", st.LastSnapshot, ev.Image.Snap)
	}
	requireAcross(t, link, 48*mib)
	source, backup := cephtest.Sites(t)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestWANBackupOnce: `ferry backup`'s path, whose state lookup, feed and
// results listener go out before its snapshot is taken, across a 100 ms
// RTT link: a full and an incremental backup are confirmed, read back
// byte-identical, and the source is pruned down to the last one.
func TestWANBackupOnce(t *testing.T) {
	p, _ := wanPipeline(t, 100*time.Millisecond)
	source, backup := cephtest.Sites(t)
	r := rand.New(rand.NewPCG(22, 4))
	const size = 16 * mib
	img := wanImage(t, "wanonce", r, size, 4*mib)
	ctx := context.Background()
	o := publisher.OnceOptions{Timeout: 2 * time.Minute}
	first, err := p.pub.BackupOnce(ctx, img, o)
	if err != nil {
		t.Fatal(err)
	}
	scribble(t, img, size, r, 20)
	next, err := p.pub.BackupOnce(ctx, img, o)
	if err != nil {
		t.Fatal(err)
	}
	if next.Sent.FromSnap != first.Sent.ToSnap || next.State == nil || !next.State.HasConfirmed(next.Sent.ToSnap) {
		t.Fatalf("second backup from %q, state %+v: want an incremental from %s, confirmed", next.Sent.FromSnap, next.State, first.Sent.ToSnap)
	}
	if got := ferrySnapshots(t, source, img); len(got) != 1 || got[0] != next.Sent.ToSnap {
		t.Fatalf("the source keeps %v, want only %s", got, next.Sent.ToSnap)
	}
	cephtest.RequireSameContent(t, source, next.Sent.Image, backup, next.Sent.Image)
}

// wanImage is a source image of size bytes whose first n are random.
func wanImage(t *testing.T, name string, r *rand.Rand, size, n uint64) ferry.ImageSpec {
	t.Helper()
	source, _ := cephtest.Sites(t)
	img := cephtest.Image(t, source, name, size)
	cephtest.Write(t, source, img, 0, randomBytes(r, int(n)))
	return img
}
