package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFullAndIncrementals: a full backup and three incrementals, each
// byte-identical at the backup site, each pruning the source down to its
// newest confirmed snapshot.
func TestFullAndIncrementals(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "single"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(10, 10))
	const size = 48 * mib
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, 20*mib))
	cephtest.Write(t, source, img, 30*mib+5, randomBytes(r, 3*mib))
	if err := source.CreateSnapshot(img.AtSnap("operator-snap")); err != nil { // not Ferry's: never pruned
		t.Fatal(err)
	}

	var chain []string
	for i := range 4 {
		if i > 0 {
			scribble(t, img, size, r, 30)
		}
		m, _ := p.backupNow(img)
		if (i == 0) != (m.FromSnap == "") {
			t.Fatalf("backup %d: base %q", i, m.FromSnap)
		}
		if i > 0 && m.FromSnap != chain[len(chain)-1] {
			t.Fatalf("backup %d started from %q, want the last confirmed %q", i, m.FromSnap, chain[len(chain)-1])
		}
		chain = append(chain, m.ToSnap)
		if got := ferrySnapshots(t, source, img); !slices.Equal(got, []string{m.ToSnap}) {
			t.Fatalf("after backup %d the source keeps %v, want only %s", i, got, m.ToSnap)
		}
		if got := ferrySnapshots(t, backup, img); !slices.Equal(got, chain) {
			t.Fatalf("backup site holds %v, want %v", got, chain)
		}
	}
	snaps, _ := source.Snapshots(img)
	if !slices.ContainsFunc(snaps, func(s ceph.Snapshot) bool { return s.Name == "operator-snap" }) {
		t.Fatal("pruning removed a snapshot Ferry did not create")
	}
	// An incremental with no change sends nothing but its manifest.
	m, _ := p.backupNow(img)
	if m.Stats.DataBytes != 0 || m.Stats.ChunksSent != 0 {
		t.Fatalf("no-change incremental: %+v", m.Stats)
	}
}

// TestDuplicateManifest: a manifest delivered again (after JetStream's
// duplicate window, or applied by hand) is confirmed, not imported twice.
func TestDuplicateManifest(t *testing.T) {
	source, backup := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "dup"})
	p := newPipeline(t, srv)
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("first"))
	m, want := p.backupNow(img)

	// The same Nats-Msg-Id inside the window is dropped by JetStream.
	ack, err := p.pubConn.Backup.Publish(context.Background(), bus.Subject(bus.ManifestSubject, img), mustJSON(t, m), jetstream.WithMsgID(m.MessageID()))
	if err != nil || !ack.Duplicate {
		t.Fatalf("republish: ack %+v, err %v; want a duplicate", ack, err)
	}
	// Outside the window (simulated by applying directly), it is confirmed again.
	c, err := consumer.New(context.Background(), backup, p.consConn, fastConsumerOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(context.Background(), &m.Manifest); err != nil {
		t.Fatalf("applying a manifest twice: %v", err)
	}
	if got := cephtest.Content(t, backup, img.AtSnap(m.ToSnap)); got != want {
		t.Fatal("backup snapshot changed after a duplicate manifest")
	}
}

// TestOutOfOrderManifests: manifests that arrive before their predecessors
// wait for their base and are then applied in the right order.
func TestOutOfOrderManifests(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "order"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(11, 11))
	img := cephtest.Image(t, source, "vm", 16*mib)
	var manifests []*publisher.Sent
	var contents []ceph.Content
	for range 3 {
		scribble(t, img, 16*mib, r, 10)
		m, want := p.backupNow(img)
		manifests = append(manifests, m)
		contents = append(contents, want)
	}
	// Start the backup site over, then deliver the chain backwards.
	p.stopConsumer()
	wipeBackup(t, p, img)
	for i := len(manifests) - 1; i >= 0; i-- {
		republish(t, p, manifests[i], "replay")
	}
	p.startConsumer()
	last := manifests[len(manifests)-1]
	// Not WaitConfirmed: the first run's confirmations are still on record.
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(last.ToSnap) })
	for i, m := range manifests {
		if got := cephtest.Content(t, backup, img.AtSnap(m.ToSnap)); got != contents[i] {
			t.Fatalf("backup %d differs after out-of-order delivery", i)
		}
	}
}

// TestMissingBase: an incremental whose base never arrives fails with a
// clear error once the wait is over, and writes nothing.
func TestMissingBase(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "base"}))
	p.consOpts.BaseWait = 2 * time.Second
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	p.backupNow(img)
	cephtest.Write(t, source, img, 0, []byte("two"))
	m2, _ := p.backupNow(img)

	p.stopConsumer()
	wipeBackup(t, p, img)
	m2.Created = time.Now()
	republish(t, p, m2, "orphan")
	p.startConsumer()
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.Status == ferry.StatusFailed })
	requireContains(t, st.LastError, "base snapshot")
	requireContains(t, st.LastError, m2.FromSnap)
	requireContains(t, st.LastError, "--resync")
	if snaps, err := backup.Snapshots(img); !errors.Is(err, ceph.ErrNotFound) {
		t.Fatalf("the backup site wrote an image for an orphan incremental: %v %v", snaps, err)
	}
}

// TestCorruptChunk: a chunk corrupted in JetStream is caught by its hash,
// nothing of it is written, and the publisher sends it again.
func TestCorruptChunk(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "corrupt"}))
	r := rand.New(rand.NewPCG(12, 12))
	img := cephtest.Image(t, source, "vm", 12*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 12*mib))
	ev := snapshot(t, img)
	m := p.send(ev) // the consumer is not running yet

	// Replace one data chunk with garbage of the same subject.
	page, err := chunkStore(t, p).GetPage(context.Background(), m.ExtentPages[0])
	if err != nil {
		t.Fatal(err)
	}
	victim := page[1].Chunk
	msg := nats.NewMsg(bus.ChunkSubject + "." + victim)
	msg.Data = []byte("not gzip at all")
	msg.Header.Set("Ferry-Raw-Size", "4194304")
	if _, err := p.pubConn.Backup.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	p.startConsumer()
	st := p.waitConfirmed(m) // WaitConfirmed resends what the consumer reports
	if st.Status != ferry.StatusOK {
		t.Fatalf("state %+v", st)
	}
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestConsumerKilledMidImport: a consumer stopped in the middle of an
// incremental import rolls back to the base when it comes back, and the
// backup ends byte-identical.
func TestConsumerKilledMidImport(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "kill"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(13, 13))
	const size = 96 * mib
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, 8*mib))
	p.backupNow(img)

	data := randomBytes(r, size)
	cephtest.Write(t, source, img, 0, data) // a big incremental
	ev := snapshot(t, img)
	// Hold the publisher midway, so the consumer is surely mid-import.
	hold := newHold(t, 64*mib)
	sent := make(chan *publisher.Sent, 1)
	go func() {
		m, err := p.pub.Backup(context.Background(), ev, hold)
		if err != nil {
			t.Error(err)
		}
		sent <- m
	}()
	<-hold.held
	info, err := source.Info(img)
	if err != nil {
		t.Fatal(err)
	}
	id := ferry.BackupID(info.ID, img, ev.Image.Snap)
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.Importing == id })
	first := uint64(publisher.DefaultChunkSize)
	testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		if !bytes.Equal(cephtest.Read(t, backup, img, 0, first), data[:first]) {
			return errors.New("the import wrote nothing while the publisher was held")
		}
		return nil
	})
	p.stopConsumer()
	hold.Release()
	m := <-sent
	if m == nil {
		t.FailNow()
	}
	if slices.Contains(ferrySnapshots(t, backup, img), m.ToSnap) {
		t.Fatal("the import finished before the consumer was stopped")
	}
	p.startConsumer()
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestPublisherKilledMidSend: a publisher stopped mid-send and started
// again sends only the chunks that did not arrive: none twice.
func TestPublisherKilledMidSend(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "pubkill"}))
	r := rand.New(rand.NewPCG(14, 14))
	const size = 96 * mib
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, size))
	ev := snapshot(t, img)

	chunks := chunkStream(t, p)
	before := streamLastSeq(t, chunks)
	ctx, cancel := context.WithCancel(context.Background())
	hold := newHold(t, 64*mib)
	done := make(chan error, 1)
	go func() { _, err := p.pub.Backup(ctx, ev, hold); done <- err }()
	awaitHold(t, hold, done)
	testutil.CheckFor(t, time.Minute, 5*time.Millisecond, func() error {
		if n := streamLastSeq(t, chunks) - before; n < 5 {
			return fmt.Errorf("%d chunks stored while the publisher was held, want 5", n)
		}
		return nil
	})
	cancel()
	hold.Release()
	if err := <-done; err == nil {
		t.Fatal("the publisher finished although it was stopped mid-send")
	}
	sentFirst := streamLastSeq(t, chunks) - before
	m := p.send(ev)
	total := streamLastSeq(t, chunks) - before
	if want := uint64(m.Stats.Chunks + len(m.ExtentPages)); total != want {
		t.Fatalf("%d chunk messages stored for %d distinct chunks and pages (first run %d, second run sent %d): a chunk was sent twice",
			total, want, sentFirst, m.Stats.ChunksSent)
	}
	p.startConsumer()
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestNATSRestartMidTransfer: the JetStream server restarts while a backup
// is being sent; the clients reconnect and a retry completes it.
func TestNATSRestartMidTransfer(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p, srv, opts, img := restartable(t, "restart", 15)
	ev := snapshot(t, img)

	// The server restarts while the export is held a third of the way in:
	// the backup cannot have been sent whole before the restart.
	hold := newHold(t, 32*mib)
	done := make(chan error, 1)
	go func() { _, err := p.pub.Backup(context.Background(), ev, hold); done <- err }()
	awaitHold(t, hold, done)
	srv.Shutdown()
	srv.WaitForShutdown()
	startServer(t, opts)
	hold.Release()
	if err := <-done; err != nil {
		t.Logf("first attempt failed as the server went away: %v", err)
	}
	var m *publisher.Sent
	testutil.CheckFor(t, time.Minute, time.Second, func() (err error) {
		m, err = p.pub.Backup(context.Background(), ev, nil)
		return err
	})
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestLeafnodeTwoDomains: the production topology. Each site runs its own
// JetStream domain; the source site's server joins the backup site's as a
// leafnode, and the publisher reaches the backup domain across it.
func TestLeafnodeTwoDomains(t *testing.T) {
	_, _, p := twoDomains(t, &bus.ServerOptions{Name: "backup-site"})
	pubConn := p.pubConn
	p.startConsumer()

	fullThenIncremental(t, p, "vm", rand.New(rand.NewPCG(16, 16)))
	// The chunks live in the backup site's domain, not the source's.
	if _, err := pubConn.Source.Stream(context.Background(), bus.ChunkStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("chunk stream in the source domain: %v", err)
	}
	// The snapshot event stream lives at the source site.
	if _, err := pubConn.Source.Stream(context.Background(), bus.SnapshotStream); err != nil {
		t.Fatal(err)
	}
}

// TestPublisherDaemonAndLineage: snapshot events published for the daemon
// are backed up; a recreated source image is refused until --resync.
func TestPublisherDaemonAndLineage(t *testing.T) {
	source, backup := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "daemon"})
	p := newPipeline(t, srv)
	p.startConsumer()
	p.startPublisherDaemon()
	ctx := context.Background()

	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("daemon"))
	ev := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(ctx, p.pubConn, ev); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.LastSnapshot == ev.Image.Snap })
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)

	// Recreate the source image under the same name.
	for _, s := range ferrySnapshots(t, source, img) {
		if err := source.RemoveSnapshot(img.AtSnap(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := source.RemoveImage(img); err != nil {
		t.Fatal(err)
	}
	if err := source.CreateImage(img, 8*mib); err != nil {
		t.Fatal(err)
	}
	cephtest.Write(t, source, img, 0, []byte("reborn"))
	ev2 := snapshot(t, img)
	_, err := p.pub.Backup(ctx, ev2, nil)
	if !errors.Is(err, publisher.ErrLineage) {
		t.Fatalf("backup of a recreated image: %v, want ErrLineage", err)
	}
	requireContains(t, err.Error(), "--resync")
	ev2.Resync = true
	m := p.send(ev2)
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev2.Image, backup, ev2.Image)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// republish puts a backup's manifest in the stream again under a new
// message id, complete: its feed may be gone.
func republish(t testing.TB, p *pipeline, m *publisher.Sent, tag string) {
	t.Helper()
	if _, err := p.pubConn.Backup.Publish(context.Background(), bus.Subject(bus.ManifestSubject, m.Image), mustJSON(t, m.Standalone()),
		jetstream.WithMsgID(m.BackupID+"#"+tag)); err != nil {
		t.Fatal(err)
	}
}

// wipeBackup removes the backup image and its state, as if the backup site
// had never seen it (the chunks stay).
func wipeBackup(t testing.TB, p *pipeline, img ferry.ImageSpec) {
	t.Helper()
	_, backup := cephtest.Sites(t)
	snaps, err := backup.Snapshots(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if err := backup.RemoveSnapshot(img.AtSnap(s.Name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := backup.RemoveImage(img); err != nil {
		t.Fatal(err)
	}
	kv, err := p.consConn.Backup.KeyValue(context.Background(), bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(context.Background(), bus.ImageKey(img)); err != nil {
		t.Fatal(err)
	}
}

func waitState(t testing.TB, p *pipeline, img ferry.ImageSpec, ok func(*ferry.ImageState) bool) *ferry.ImageState {
	t.Helper()
	book, err := state.Open(context.Background(), p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	var st *ferry.ImageState
	testutil.CheckFor(t, 2*time.Minute, 20*time.Millisecond, func() (err error) {
		if st, err = book.Get(context.Background(), img); err != nil {
			t.Fatal(err)
		}
		if st == nil || !ok(st) {
			return fmt.Errorf("state of %s not the wanted one: %+v", img, st)
		}
		return nil
	})
	return st
}

// TestBaseNotNewest: when the source lost its newest confirmed snapshot,
// the next backup starts from an older common one, and the backup site
// rolls its image back to that base before applying.
func TestBaseNotNewest(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "older-base"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(17, 17))
	img := cephtest.Image(t, source, "vm", 16*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 16*mib))
	ev1 := snapshot(t, img)
	p.waitConfirmed(p.send(ev1))
	scribble(t, img, 16*mib, r, 10)
	ev2 := snapshot(t, img)
	p.waitConfirmed(p.send(ev2))
	if err := source.RemoveSnapshot(ev2.Image); err != nil { // an operator's mistake
		t.Fatal(err)
	}
	scribble(t, img, 16*mib, r, 10)
	ev3 := snapshot(t, img)
	m := p.send(ev3)
	if m.FromSnap != ev1.Image.Snap {
		t.Fatalf("base %q, want the older common snapshot %q", m.FromSnap, ev1.Image.Snap)
	}
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev3.Image, backup, ev3.Image)
}

// TestChunkAgedOut: a chunk that left the stream (age or size limits) while
// the index still lists it is reported missing and sent again.
func TestChunkAgedOut(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "aged"}))
	r := rand.New(rand.NewPCG(18, 18))
	img := cephtest.Image(t, source, "vm", 12*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 12*mib))
	ev := snapshot(t, img)
	m := p.send(ev)
	page, err := chunkStore(t, p).GetPage(context.Background(), m.ExtentPages[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := chunkStream(t, p).Purge(context.Background(), jetstream.WithPurgeSubject(bus.ChunkSubject+"."+page[0].Chunk)); err != nil {
		t.Fatal(err)
	}
	p.startConsumer()
	p.waitConfirmed(m)
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// TestPoolMap: with a pool map, backups land in the mapped pool at the backup
// site under the same image name, and the chain continues there.
func TestPoolMap(t *testing.T) {
	source, backup := cephtest.Sites(t)
	bed := testbed.Shared(t)
	const drPool = "ferry-dr"
	bed.Backup.Ceph(t, "osd", "pool", "create", drPool, "8", "8")
	bed.Backup.Rbd(t, "pool", "init", drPool)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "poolmap"}))
	p.consOpts.PoolMap = ferry.PoolMap{testbed.Pool: drPool}
	p.startConsumer()
	r := rand.New(rand.NewPCG(19, 19))
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 8*mib))
	for range 2 {
		ev := snapshot(t, img)
		m := p.send(ev)
		st := p.waitConfirmed(m)
		mapped := ferry.ImageSpec{Pool: drPool, Image: img.Image, Snap: ev.Image.Snap}
		if st.BackupImage != mapped.AtSnap("") {
			t.Fatalf("state says the backup is %s, want %s", st.BackupImage, mapped.AtSnap(""))
		}
		cephtest.RequireSameContent(t, source, ev.Image, backup, mapped)
		scribble(t, img, 8*mib, r, 5)
	}
	if _, err := backup.Snapshots(img); !errors.Is(err, ceph.ErrNotFound) {
		t.Fatalf("an image appeared in the unmapped pool: %v", err)
	}
}

// TestBackupGivenUp: when the backup site gives a backup up (here: a full
// backup into a backup image that already holds another chain), the
// publisher waiting for it learns why at once instead of waiting on.
func TestBackupGivenUp(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "given-up"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 4*mib)
	if err := backup.CreateImage(img, 4*mib); err != nil {
		t.Fatal(err)
	}
	if err := backup.CreateSnapshot(img.AtSnap("someone-elses")); err != nil {
		t.Fatal(err)
	}
	// Ferry's backup image of another source image (an unmarked one is
	// refused as not Ferry's: see forge_test.go).
	if err := backup.SetMetadata(img, "ferry.source_image_id", "another-chain"); err != nil {
		t.Fatal(err)
	}
	err := p.waitRefused(p.send(snapshot(t, img)))
	requireContains(t, err.Error(), "--resync")
	if !errors.Is(err, publisher.ErrGivenUp) {
		t.Errorf("WaitConfirmed = %v, want ErrGivenUp", err)
	}
}

// TestGivenUpSnapshotRemoved: the publisher daemon removes the source
// snapshot of a backup the backup site gave up (nothing will read it, and
// one left per failed backup costs the image write performance for as long
// as the fault lasts); the confirmed base stays.
func TestGivenUpSnapshotRemoved(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "given-up-snap"}))
	p.startConsumer()
	p.startPublisherDaemon()
	ctx := context.Background()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("base"))
	base, _ := p.backupNow(img)

	cephtest.Write(t, backup, img, mib, []byte("written at the backup site")) // the next backup is refused
	ev := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(ctx, p.pubConn, ev); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.Status == ferry.StatusFailed })
	requireContains(t, st.LastError, "written outside Ferry")
	testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		if slices.Contains(ferrySnapshots(t, source, img), ev.Image.Snap) {
			return fmt.Errorf("the source still holds %s, whose backup the backup site gave up", ev.Image)
		}
		return nil
	})
	if got := ferrySnapshots(t, source, img); !slices.Equal(got, []string{base.ToSnap}) {
		t.Fatalf("the source holds %v, want only the confirmed base %s", got, base.ToSnap)
	}
	// Its event, delivered again, is dropped: there is nothing to send.
	if _, err := p.pub.Backup(ctx, ev, nil); !errors.Is(err, publisher.ErrSnapshotGone) {
		t.Fatalf("backup of a removed snapshot: %v, want ErrSnapshotGone", err)
	}
}

// TestCutOffBackupSnapshotPruned: the snapshot of a backup that never got
// anywhere (its `ferry backup` was killed before it sent a thing, so nothing
// confirms or gives it up) goes with the pruning after the next confirmed
// backup, which starts from the confirmed snapshot before it; a snapshot
// taken after the newest confirmed one stays, as its backup may be on its way.
func TestCutOffBackupSnapshotPruned(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "cut-off"}))
	p.startConsumer()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	first, _ := p.backupNow(img)
	cutOff := snapshot(t, img)
	cephtest.Write(t, source, img, 0, []byte("two"))
	next, _ := p.backupNow(img) // checks the backup against its source snapshot, then prunes
	if next.FromSnap != first.ToSnap {
		t.Fatalf("the next backup started from %q, want the confirmed %q", next.FromSnap, first.ToSnap)
	}
	later := snapshot(t, img)
	if _, err := p.pub.Prune(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if got, want := ferrySnapshots(t, source, img), []string{next.ToSnap, later.Image.Snap}; !slices.Equal(got, want) {
		t.Fatalf("the source holds %v, want %v (the cut-off backup's %s gone)", got, want, cutOff.Image.Snap)
	}
}

// TestImportFollowsSending: the backup site imports a backup while the
// source site is still sending it. The publisher is held midway; by then
// the first chunks are in the backup image, and no to-snapshot exists.
func TestImportFollowsSending(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "follow"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(21, 21))
	const size = 96 * mib
	img := cephtest.Image(t, source, "vm", size)
	data := randomBytes(r, size)
	cephtest.Write(t, source, img, 0, data)
	ev := snapshot(t, img)

	hold := newHold(t, 64*mib)
	done := make(chan error, 1)
	go func() {
		m, err := p.pub.Backup(context.Background(), ev, hold)
		if err == nil {
			p.waitConfirmed(m)
		}
		done <- err
	}()
	<-hold.held
	first := uint64(publisher.DefaultChunkSize)
	testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		if !bytes.Equal(cephtest.Read(t, backup, img, 0, first), data[:first]) {
			return errors.New("the backup site imported nothing while the publisher was still sending")
		}
		return nil
	})
	if slices.Contains(ferrySnapshots(t, backup, img), ev.Image.Snap) {
		t.Fatal("the to-snapshot exists before the publisher sent everything")
	}
	hold.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// holdAfter is a progress.Reporter that stops the export once it has read
// `after` bytes, until released; held is closed when it stops.
type holdAfter struct {
	after, done   uint64
	holding       bool
	held, release chan struct{}
	releaseOnce   sync.Once
}

// newHold returns a holdAfter that the end of the test releases at the
// latest, so that a failed test leaves no export held.
func newHold(t testing.TB, after uint64) *holdAfter {
	h := &holdAfter{after: after, held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(h.Release)
	return h
}

// awaitHold waits until the export that reports to hold is held, and fails
// the test if its backup (which sends its result to done) ended first.
func awaitHold(t testing.TB, hold *holdAfter, done <-chan error) {
	t.Helper()
	select {
	case <-hold.held:
	case err := <-done:
		t.Fatalf("the backup ended (error: %v) before it was held after %d bytes", err, hold.after)
	}
}

// Release lets the export go on.
func (h *holdAfter) Release() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *holdAfter) SetTotal(uint64) {}
func (h *holdAfter) Add(n uint64) {
	h.done += n
	if h.done >= h.after && !h.holding {
		h.holding = true
		close(h.held)
		<-h.release
	}
}

// TestBackupHeadWrittenOutsideFerry: writes into a backup image that no
// import of Ferry's made (a failover or a test that used the image itself)
// stop the next backup with an error that says what to do, and are neither
// built on (the backup would differ from its source) nor rolled back (they
// may be a failover's data). A resize alone counts too. The operator then
// discards them (--force-rollback) or keeps them (--resync).
func TestBackupHeadWrittenOutsideFerry(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "written"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(22, 22))
	const size = 16 * mib
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, size))
	last, _ := p.backupNow(img)
	bak := testbed.Shared(t).Backup

	for _, tc := range []struct {
		name   string
		write  func()
		want   string
		resync bool // keep the writes; else discard them
	}{
		{"written", func() { cephtest.Write(t, backup, img, 5*mib+512, randomBytes(r, 4096)) }, "bytes written", false},
		{"resized", func() { bak.Rbd(t, "resize", "--no-progress", "--allow-shrink", "--size", "12M", bak.Spec(img.Image)) }, "resized from", true},
	} {
		tc.write()
		written := cephtest.Content(t, backup, img)
		scribble(t, img, size, r, 10)
		ev := snapshot(t, img)
		err := p.waitRefused(p.send(ev))
		for _, want := range []string{tc.want, last.ToSnap, "--force-rollback", "--resync"} {
			requireContains(t, err.Error(), want)
		}
		if got := cephtest.Content(t, backup, img); got != written {
			t.Fatalf("%s: the refused backup changed the backup image's head", tc.name)
		}
		if got := ferrySnapshots(t, backup, img); slices.Contains(got, ev.Image.Snap) {
			t.Fatalf("%s: the refused backup created %s at the backup site", tc.name, ev.Image.Snap)
		}

		// The operator's word: the next backup goes through.
		ev = snapshot(t, img)
		ev.Resync, ev.ForceRollback = tc.resync, !tc.resync
		m := p.send(ev)
		p.waitConfirmed(m)
		cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
		if tc.resync {
			kept := ""
			for _, name := range strings.Fields(bak.Rbd(t, "ls", testbed.Pool)) {
				if strings.HasPrefix(name, img.Image+".pre-resync-") {
					kept = name
				}
			}
			if kept == "" {
				t.Fatalf("%s: --resync kept no %s.pre-resync-* image", tc.name, img.Image)
			}
			keptImg := ferry.ImageSpec{Pool: img.Pool, Image: kept}
			if got := cephtest.Content(t, backup, keptImg); got != written {
				t.Fatalf("%s: the image kept by --resync does not hold the writes", tc.name)
			}
		}
		if _, err := p.pub.Prune(context.Background(), img); err != nil {
			t.Fatal(err)
		}
		last = m
	}
}

// TestFullBackupKeepsForeignImage: a full backup whose backup image already
// exists, without snapshots but with data that no import of Ferry's wrote,
// is refused and the image left as it is; an empty leftover (an image
// created by a consumer that died before it could record it) is replaced.
func TestFullBackupKeepsForeignImage(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "foreign"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(23, 23))
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 8*mib))
	if err := backup.CreateImage(img, 8*mib); err != nil {
		t.Fatal(err)
	}
	cephtest.Write(t, backup, img, mib, []byte("somebody's data"))
	foreign := cephtest.Content(t, backup, img)

	err := p.waitRefused(p.send(snapshot(t, img)))
	requireContains(t, err.Error(), "no snapshots but holds data")
	if got := cephtest.Content(t, backup, img); got != foreign {
		t.Fatal("the refused full backup changed the image that was there")
	}

	// An empty image of that name is harmless: it is replaced.
	if err := backup.RemoveImage(img); err != nil {
		t.Fatal(err)
	}
	if err := backup.CreateImage(img, 4*mib); err != nil {
		t.Fatal(err)
	}
	p.backupNow(img)
}
