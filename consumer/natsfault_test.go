package consumer_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// natsStall is how long TestBackupOnceRidesNATSStop keeps the server stopped.
const natsStall = 30 * time.Second

// TestBackupOnceRidesNATSStop: `ferry backup` (BackupOnce) completes, with
// no rerun and byte-identical, when the NATS server (a `ferry nats-server`
// process) is stopped with SIGSTOP for 30 s in the middle of its send: the
// send goes on into the stopped server, then the server resumes.
func TestBackupOnceRidesNATSStop(t *testing.T) {
	backupThroughNATSFault(t, 44, func(t *testing.T, srv *testutil.Proc, release func()) {
		if err := srv.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		release()
		time.Sleep(natsStall) // the fault itself: the server stays stopped this long
		if err := srv.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		t.Logf("NATS server stopped for %v mid-backup", time.Since(t0).Round(time.Millisecond))
	})
}

// TestBackupOnceRidesNATSKill: the same with the server killed (kill -9)
// mid-send and started again on its store, as Restart=on-failure does.
func TestBackupOnceRidesNATSKill(t *testing.T) {
	backupThroughNATSFault(t, 45, func(t *testing.T, srv *testutil.Proc, release func()) {
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		release()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("NATS server killed mid-backup and started again in %v", time.Since(t0).Round(time.Millisecond))
	})
}

// backupThroughNATSFault runs BackupOnce of a 96 MiB image through a
// `ferry nats-server` process, with an in-process consumer on the same
// server, holds the send after 32 MiB, and lets fault do its harm to the
// server; fault calls release to let the send go on. The backup must
// complete without a rerun and read back byte-identical.
func backupThroughNATSFault(t *testing.T, seed uint64, fault func(t *testing.T, srv *testutil.Proc, release func())) {
	source, backup := cephtest.Sites(t)
	port := testutil.FreePort(t)
	srv := testutil.NATSServer(t, t.TempDir(), "nats", port)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := newPipelineConns(t, connect(t, bus.ConnOptions{URL: url, Name: "test publisher"}),
		connect(t, bus.ConnOptions{URL: url, Name: "test consumer"}))
	p.startConsumer()
	img := filledImage(t, seed)

	t0 := time.Now()
	hold, finish := heldBackupOnce(t, p, img)
	fault(t, srv, hold.Release)
	once := finish("the NATS server's fault")
	t.Logf("backup confirmed %v after it started", time.Since(t0).Round(time.Millisecond))
	snap := img.AtSnap(once.Sent.ToSnap)
	cephtest.RequireSameContent(t, source, snap, backup, snap)
}
