package consumer_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats-server/v2/server"
)

// TestBackupSiteOutageRiddenOut: the backup site's NATS server is down for
// 3 minutes, longer than the daemons used to survive (the publisher exited on a missed
// heartbeat, the consumer on its lost lock) while a snapshot event waits at
// the source. Neither daemon exits, and the backup is applied by itself,
// byte-identical, once the server is back.
func TestBackupSiteOutageRiddenOut(t *testing.T) {
	source, backup := cephtest.Sites(t)
	backupOpts := bus.ServerOptions{Name: "backup-site", StoreDir: t.TempDir(), Port: testutil.FreePort(t)}
	backupSrv, sourceSrv, p := twoDomains(t, &backupOpts)
	p.startConsumer()
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.pub.Run(pubCtx) }()
	defer func() {
		stopPub()
		if err := <-pubDone; err != nil {
			t.Errorf("publisher daemon: %v", err)
		}
	}()

	r := rand.New(rand.NewPCG(41, 41))
	img := cephtest.Image(t, source, "vm", 16*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 4*mib))
	p.backupNow(img)

	backupSrv.Shutdown()
	backupSrv.WaitForShutdown()
	cephtest.Write(t, source, img, 8*mib, randomBytes(r, 4*mib))
	ev := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(context.Background(), p.pubConn, ev); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	consDone := p.consDone
	p.mu.Unlock()
	const outage = 3 * time.Minute
	select {
	case err := <-pubDone:
		pubDone <- err
		t.Fatalf("the publisher daemon exited during the backup site's outage: %v", err)
	case err := <-consDone:
		consDone <- err
		t.Fatalf("the consumer exited during its NATS server's outage: %v", err)
	case <-time.After(outage):
	}

	startServer(t, backupOpts)
	waitLeaf(t, sourceSrv)
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(ev.Image.Snap) })
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
}

// holdUI shows BackupOnce's send through a hold.
type holdUI struct{ hold *holdAfter }

func (h holdUI) Sending(ferry.ImageSpec) (progress.Reporter, func()) { return h.hold, func() {} }
func (h holdUI) Waiting(ferry.ImageSpec)                             {}

// TestBackupOnceRidesNATSRestart: `ferry backup` (BackupOnce) completes
// without a rerun when the NATS server restarts in the middle of its send.
func TestBackupOnceRidesNATSRestart(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p, srv, opts, img := restartable(t, "once-restart", 42)

	hold, finish := heldBackupOnce(t, p, img)
	srv.Shutdown()
	srv.WaitForShutdown()
	startServer(t, opts)
	hold.Release()
	once := finish("a NATS restart")
	snap := img.AtSnap(once.Sent.ToSnap)
	cephtest.RequireSameContent(t, source, snap, backup, snap)
}

// heldBackupOnce starts BackupOnce of img (`ferry backup`) and returns once
// its send is held after 32 MiB; finish waits for its end and fails the
// test, naming what the backup went through, unless it succeeded.
func heldBackupOnce(t *testing.T, p *pipeline, img ferry.ImageSpec) (hold *holdAfter, finish func(through string) *publisher.Once) {
	t.Helper()
	hold = newHold(t, 32*mib)
	type result struct {
		once *publisher.Once
		err  error
	}
	done := make(chan result, 1)
	go func() {
		once, err := p.pub.BackupOnce(context.Background(), img, publisher.OnceOptions{UI: holdUI{hold}, Timeout: 5 * time.Minute})
		done <- result{once, err}
	}()
	select {
	case <-hold.held:
	case res := <-done:
		t.Fatalf("the backup ended (error: %v) before it was held", res.err)
	}
	return hold, func(through string) *publisher.Once {
		t.Helper()
		res := <-done
		if res.err != nil {
			t.Fatalf("ferry backup across %s: %v", through, res.err)
		}
		return res.once
	}
}

// twoDomains is the production topology: the backup site's server, started
// with backupOpts (its domain and leafnode port set here), and the source
// site's, joined to it as a leafnode; and a pipeline across them.
func twoDomains(t *testing.T, backupOpts *bus.ServerOptions) (backupSrv, sourceSrv *server.Server, p *pipeline) {
	t.Helper()
	leafPort := testutil.FreePort(t)
	backupOpts.Domain, backupOpts.LeafPort = "backup", leafPort
	backupSrv = startServer(t, *backupOpts)
	sourceSrv = startServer(t, bus.ServerOptions{Name: "source-site", Domain: "source",
		LeafRemotes: []string{"nats-leaf://127.0.0.1:" + itoa(leafPort)}})
	waitLeaf(t, sourceSrv)
	pubConn := connect(t, bus.ConnOptions{URL: sourceSrv.ClientURL(), Name: "publisher", SourceDomain: "source", BackupDomain: "backup"})
	consConn := connect(t, bus.ConnOptions{URL: backupSrv.ClientURL(), Name: "consumer", SourceDomain: "source", BackupDomain: "backup"})
	return backupSrv, sourceSrv, newPipelineConns(t, pubConn, consConn)
}

// restartable is a pipeline around a server that can be restarted (a
// store and a port of its own) with a running consumer, and an image of
// 96 MiB of random data at the source.
func restartable(t *testing.T, name string, seed uint64) (*pipeline, *server.Server, bus.ServerOptions, ferry.ImageSpec) {
	t.Helper()
	opts := bus.ServerOptions{Name: name, StoreDir: t.TempDir(), Port: testutil.FreePort(t)}
	srv := startServer(t, opts)
	p := newPipeline(t, srv)
	p.startConsumer()
	return p, srv, opts, filledImage(t, seed)
}

// filledImage is an image of 96 MiB of random data from seed at the source.
func filledImage(t *testing.T, seed uint64) ferry.ImageSpec {
	t.Helper()
	source, _ := cephtest.Sites(t)
	r := rand.New(rand.NewPCG(seed, seed))
	const size = 96 * mib
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(r, size))
	return img
}
