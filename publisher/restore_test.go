package publisher_test

import (
	"context"
	"errors"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
)

// Restores into the source site over JetStream, on the real two-site Ceph
// test bed and in the production NATS topology: each site its own
// JetStream domain, the source site's server a leafnode of the backup
// site's. The consumer daemon runs at the backup site, the publisher daemon
// (which applies restore jobs) at the source site.
func TestMain(m *testing.M) { testbed.Main(m) }

const (
	kib = 1 << 10
	mib = 1 << 20
)

type sites struct {
	t        *testing.T
	bakConn  *bus.Conn // clients at the backup site: ferry restore, the consumer
	srcConn  *bus.Conn // clients at the source site: the publisher
	pub      *publisher.Publisher
	stopPubd context.CancelFunc
}

func startSites(t *testing.T) *sites {
	t.Helper()
	leafPort := testutil.FreePort(t)
	backupSrv := startServer(t, bus.ServerOptions{Name: "backup-site", Domain: "backup", LeafPort: leafPort})
	sourceSrv := startServer(t, bus.ServerOptions{Name: "source-site", Domain: "source",
		LeafRemotes: []string{"nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)}})
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if sourceSrv.NumLeafNodes() == 0 {
			return errors.New("leafnode connection between the sites did not come up")
		}
		return nil
	})
	bakConn := connect(t, bus.ConnOptions{URL: backupSrv.ClientURL(), Name: "backup site", SourceDomain: "source", BackupDomain: "backup"})
	srcConn := connect(t, bus.ConnOptions{URL: sourceSrv.ClientURL(), Name: "source site", SourceDomain: "source", BackupDomain: "backup"})
	return runSites(t, bakConn, srcConn, bakConn)
}

// runSites sets up both sites' streams and runs the backup site's
// consumer on consConn; bakConn is for ferry restore, srcConn for the
// publisher.
func runSites(t *testing.T, bakConn, srcConn, consConn *bus.Conn) *sites {
	t.Helper()
	return runSitesWith(t, bakConn, srcConn, consConn, publisher.Options{}, consumer.Options{})
}

// runSitesWith is runSites with the publisher's and the consumer's keys
// and trust from pubOpts and consOpts.
func runSitesWith(t *testing.T, bakConn, srcConn, consConn *bus.Conn, pubOpts publisher.Options, consOpts consumer.Options) *sites {
	t.Helper()
	source, backup := cephtest.Sites(t)
	ctx := context.Background()
	s := &sites{t: t, bakConn: bakConn, srcConn: srcConn}
	if err := bus.SetupBackup(ctx, consConn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupSource(ctx, s.srcConn.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	consOpts.Site, consOpts.BaseRetry, consOpts.RetryDelay, consOpts.Log = "test", 200*time.Millisecond, 200*time.Millisecond, testLogger(t, "consumer")
	cons, err := consumer.New(ctx, backup, consConn, consOpts)
	if err != nil {
		t.Fatal(err)
	}
	pubOpts.Log = testLogger(t, "publisher")
	s.pub, err = publisher.New(ctx, source, s.srcConn, pubOpts)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCons := context.WithCancel(ctx)
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()
	t.Cleanup(func() {
		s.stopPublisherDaemon()
		stopCons()
		if err := <-consDone; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
	return s
}

// startPublisherDaemon runs `ferry publisher run` at the source site.
func (s *sites) startPublisherDaemon() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.pub.Run(ctx) }()
	s.stopPubd = func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("publisher daemon: %v", err)
		}
	}
}

func (s *sites) stopPublisherDaemon() {
	if s.stopPubd != nil {
		s.stopPubd()
		s.stopPubd = nil
	}
}

// backupNow is `ferry backup` without pruning: snapshot, send, wait for the
// backup site; the backup snapshot must read back as the source's.
func (s *sites) backupNow(img ferry.ImageSpec) *publisher.Sent {
	s.t.Helper()
	return s.backupAs(img, ferry.CrashConsistent)
}

// backupAs is backupNow of a snapshot taken with consistency c.
func (s *sites) backupAs(img ferry.ImageSpec, c ferry.Consistency) *publisher.Sent {
	s.t.Helper()
	source, backup := cephtest.Sites(s.t)
	now := time.Now().UTC()
	ev := ferry.SnapshotEvent{Image: img.AtSnap(ferry.NewSnapshotName(now)), Consistency: c, Created: now}
	if err := source.CreateSnapshot(ev.Image); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := s.pub.Backup(ctx, ev, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.pub.WaitConfirmed(ctx, m); err != nil {
		s.t.Fatalf("waiting for %s: %v", m.BackupID, err)
	}
	cephtest.RequireSameContent(s.t, source, ev.Image, backup, ev.Image)
	return m
}

// restore is `ferry restore ... --to source:TARGET` at the backup site: it
// returns what the backup site stored and the source site's answer.
func (s *sites) restore(o recovery.SendOptions) (recovery.SendStats, ferry.RestoreOutcome, error) {
	s.t.Helper()
	_, backup := cephtest.Sites(s.t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o.Backup, o.Bus = backup, s.bakConn
	rr, err := recovery.SendRestore(ctx, o, nil)
	if err != nil {
		return recovery.SendStats{}, ferry.RestoreOutcome{}, err
	}
	defer rr.Close()
	out, err := rr.Wait(ctx)
	return rr.Stats, out, err
}

// forgetChunks empties the backup site's chunk store, as a long outage
// does (chunks age out after a week), so that what a restore stores shows.
func (s *sites) forgetChunks() {
	s.t.Helper()
	ctx := context.Background()
	st, err := s.bakConn.Backup.Stream(ctx, bus.ChunkStream)
	if err == nil {
		err = st.Purge(ctx)
	}
	if err != nil {
		s.t.Fatalf("purge %s: %v", bus.ChunkStream, err)
	}
}

// requireRefused checks that err is the source site's refusal, saying want.
func requireRefused(t *testing.T, err error, want ...string) {
	t.Helper()
	var oe *recovery.OutcomeError
	if !errors.As(err, &oe) {
		t.Fatalf("err %v, want the source site's refusal", err)
	}
	if !oe.Outcome.Refused {
		t.Errorf("outcome %+v: want Refused (stopped before writing)", oe.Outcome)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}

// TestRestoreToSourceInFull: a backup snapshot restored into a new image of
// the source site over JetStream reads back byte for byte; the same name
// again is refused, and so are incremental restores without a common
// snapshot, before anything is written.
func TestRestoreToSourceInFull(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	s.startPublisherDaemon()
	r := rand.New(rand.NewPCG(21, 21))
	bak := cephtest.Image(t, backup, "bak", 20*mib+3*kib)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(r, 6*mib))
	cephtest.Write(t, backup, bak, 11*mib+512, randomBytes(r, 100*kib))
	cephtest.Write(t, backup, bak, 20*mib, randomBytes(r, 3*kib)) // the unaligned tail
	cephtest.Discard(t, backup, bak, 1*mib, 64*kib)
	snap(t, backup, bak, "s1")
	cephtest.Write(t, backup, bak, 2*mib, randomBytes(r, 3*mib))
	snap(t, backup, bak, "s2")

	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored")}
	removeAtEnd(t, source, target)
	stats, out, err := s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: target})
	if err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, target)
	if got := cephtest.SnapshotNames(t, source, target); len(got) != 0 || out.Target.Snap != "" {
		t.Errorf("restored image has snapshots %v (outcome %+v), want none: it is for attaching", got, out)
	}
	if out.DataBytes == 0 || stats.ChunksSent == 0 || stats.BytesStored() == 0 {
		t.Errorf("stats %+v, outcome %+v: want data stored and written", stats, out)
	}
	t.Logf("full restore of %s: %d chunks stored (%d referenced), %d bytes stored; source site wrote %d bytes",
		bak.AtSnap("s1"), stats.ChunksSent, stats.Chunks, stats.BytesStored(), out.DataBytes)
	restored := cephtest.Content(t, source, target)

	_, _, err = s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: target})
	requireRefused(t, err, recovery.ErrTargetExists.Error(), target.String())

	// Incremental restores need a snapshot both images hold.
	_, _, err = s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s2"), Target: target, FromSnap: "s1"})
	requireRefused(t, err, `the target image has no snapshot "s1"`, target.String())
	_, err = recovery.SendRestore(context.Background(), recovery.SendOptions{Backup: backup, Bus: s.bakConn,
		Snapshot: bak.AtSnap("s2"), Target: target, FromSnap: "nope"}, nil)
	if err == nil || !strings.Contains(err.Error(), `the backup image has no snapshot "nope"`) {
		t.Fatalf("restore from a snapshot the backup lacks: err %v", err)
	}
	missing := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "missing")}
	_, _, err = s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s2"), Target: missing, FromSnap: "s1"})
	requireRefused(t, err, "needs the target image")
	if _, err := source.Info(missing); !errors.Is(err, ceph.ErrNotFound) {
		t.Errorf("a refused restore created %s: %v", missing, err)
	}
	if cephtest.Content(t, source, target) != restored {
		t.Error("a refused restore changed the target")
	}
}

// TestFailbackOverJetStream: the primary image comes back holding an older
// backup snapshot than the backup site, with writes after it. Failback over
// JetStream refuses to discard those writes unless told to, then ships only
// the changes since the common snapshot, and the next backup continues
// incrementally from the restored snapshot.
func TestFailbackOverJetStream(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	r := rand.New(rand.NewPCG(22, 22))
	const size = 40 * mib
	primary := cephtest.Image(t, source, "vm", size)
	removeAtEnd(t, source, primary)
	removeAtEnd(t, backup, primary)
	cephtest.Write(t, source, primary, 0, randomBytes(r, 36*mib))
	common := s.backupNow(primary).ToSnap
	cephtest.Write(t, source, primary, 5*mib, randomBytes(r, 64*kib))
	cephtest.Write(t, source, primary, 30*mib+4*kib, randomBytes(r, 8*kib))
	cephtest.Discard(t, source, primary, 33*mib, 128*kib)
	later := s.backupNow(primary).ToSnap

	// The primary comes back from an older state: it holds common but not
	// later, and its VM wrote after common.
	if err := source.RollbackToSnapshot(primary.AtSnap(common)); err != nil {
		t.Fatal(err)
	}
	if err := source.RemoveSnapshot(primary.AtSnap(later)); err != nil {
		t.Fatal(err)
	}
	cephtest.Write(t, source, primary, 16*mib, randomBytes(r, 64*kib))
	diverged := cephtest.Content(t, source, primary)
	s.startPublisherDaemon()

	failback := recovery.SendOptions{Snapshot: primary.AtSnap(later), Target: primary, FromSnap: common}
	_, _, err := s.restore(failback)
	requireRefused(t, err, recovery.ErrDiverged.Error(), primary.String(), "--force-rollback")
	if cephtest.Content(t, source, primary) != diverged {
		t.Fatal("a refused failback changed the primary image")
	}
	if got := cephtest.SnapshotNames(t, source, primary); !slices.Equal(got, []string{common}) {
		t.Fatalf("a refused failback changed the primary's snapshots: %v", got)
	}

	s.forgetChunks()
	failback.ForceRollback = true
	fb, out, err := s.restore(failback)
	if err != nil {
		t.Fatal(err)
	}
	if !out.RolledBack || out.Target != primary.AtSnap(later) {
		t.Errorf("outcome %+v: want a rollback and snapshot %s created", out, later)
	}
	cephtest.RequireSameContent(t, backup, primary.AtSnap(later), source, primary.AtSnap(later))
	cephtest.RequireSameContent(t, backup, primary.AtSnap(later), source, primary)
	if got := cephtest.SnapshotNames(t, source, primary); !slices.Equal(got, []string{common, later}) {
		t.Errorf("primary snapshots %v, want [%s %s]: the restored one is the next common base", got, common, later)
	}
	_, _, err = s.restore(failback)
	requireRefused(t, err, "already has snapshot", later)

	// The same snapshot in full, for comparison.
	s.forgetChunks()
	copyImage := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "full")}
	removeAtEnd(t, source, copyImage)
	full, _, err := s.restore(recovery.SendOptions{Snapshot: primary.AtSnap(later), Target: copyImage})
	if err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, primary.AtSnap(later), source, copyImage)
	t.Logf("chunks stored at the backup site: failback %d (of %d referenced, %d bytes read, %d stored), full restore %d (of %d, %d bytes read, %d stored)",
		fb.ChunksSent, fb.Chunks, fb.DataBytes, fb.BytesStored(), full.ChunksSent, full.Chunks, full.DataBytes, full.BytesStored())
	if fb.ChunksSent == 0 || fb.ChunksSent*4 > full.ChunksSent || fb.DataBytes*4 > full.DataBytes {
		t.Errorf("failback stored %d chunks and read %d bytes, a full restore %d and %d: want the failback far smaller",
			fb.ChunksSent, fb.DataBytes, full.ChunksSent, full.DataBytes)
	}

	// Backups go on from the restored snapshot.
	cephtest.Write(t, source, primary, 12*mib, randomBytes(r, 32*kib))
	m := s.backupNow(primary)
	if m.FromSnap != later {
		t.Errorf("the backup after failback started from %q, want the restored %s", m.FromSnap, later)
	}
}

func testLogger(t testing.TB, role string) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name(), "role", role)
	}
	return slog.New(slog.DiscardHandler)
}

var (
	startServer = bustest.Server
	connect     = bustest.Connect
)

// removeAtEnd removes an image (and its snapshots) the test may create.
func removeAtEnd(t testing.TB, c *ceph.Cluster, spec ferry.ImageSpec) {
	_, backup := cephtest.Sites(t)
	site := testbed.Shared(t).Source
	if c == backup {
		site = testbed.Shared(t).Backup
	}
	t.Cleanup(func() {
		site.RbdErr("snap", "purge", "--no-progress", spec.String())
		site.RbdErr("rm", "--no-progress", spec.String())
	})
}

var (
	snap        = cephtest.Snap
	randomBytes = testutil.RandomBytes
)
