package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
)

// TestBackupOnceNoConsumerFailsFast: with the backup site's lock free (its
// consumer stopped), `ferry backup` says so after its grace instead of
// waiting out its hour; the backup stays queued and is applied,
// byte-identical, once a consumer runs again.
func TestBackupOnceNoConsumerFailsFast(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "no-consumer"}))
	p.startConsumer()
	testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		holder, err := bus.LockHolder(context.Background(), p.consConn.Backup, bus.ConsumerLock)
		if err == nil && holder == "" {
			err = errors.New("the consumer holds no lock yet")
		}
		return err
	})
	p.stopConsumer()
	img := cephtest.Image(t, source, "vm", 4*mib)
	cephtest.Write(t, source, img, 0, []byte("queued"))

	start := time.Now()
	_, err := p.pub.BackupOnce(context.Background(), img, publisher.OnceOptions{Timeout: time.Hour, NoConsumerGrace: time.Second})
	if err == nil {
		t.Fatal("ferry backup succeeded with no consumer at the backup site")
	}
	requireContains(t, err.Error(), "no consumer is active")
	requireContains(t, err.Error(), "ferry consumer run")
	t.Logf("ended after %s: %v", time.Since(start).Round(time.Millisecond), err)

	p.startConsumer()
	snaps := ferrySnapshots(t, source, img)
	if len(snaps) != 1 {
		t.Fatalf("source snapshots %v, want the queued backup's one", snaps)
	}
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(snaps[0]) })
	cephtest.RequireSameContent(t, source, img.AtSnap(snaps[0]), backup, img.AtSnap(snaps[0]))
}

// TestBackupOnceNamesTheConsumersError: a consumer that fails every attempt
// makes `ferry backup`'s timeout name its error, not ask whether a
// consumer runs.
func TestBackupOnceNamesTheConsumersError(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "consumer-retrying"}))
	img := cephtest.Image(t, source, "vm", 4*mib)
	const missing = "ferry-no-such-pool"
	p.consOpts.PoolMap = ferry.PoolMap{img.Pool: missing}
	p.consOpts.RetryDelay = time.Hour
	p.startConsumer()

	_, err := p.pub.BackupOnce(context.Background(), img, publisher.OnceOptions{Timeout: 5 * time.Second})
	if err == nil {
		t.Fatal("ferry backup succeeded into a missing pool")
	}
	requireContains(t, err.Error(), "is retrying it after")
	requireContains(t, err.Error(), missing)
}
