package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// appliedCounter counts the backups one consumer applied.
type appliedCounter struct{ n atomic.Int32 }

func (a *appliedCounter) BackupApplied(*ferry.Manifest, ferry.BackupStats, time.Duration) { a.n.Add(1) }
func (a *appliedCounter) ApplyFailed(*ferry.Manifest, string, bool)                       {}

// TestStandbyConsumer: of two consumers at one site only the one holding the
// site's lock applies backups; the other stands by and takes over when the
// first stops (at once), or when a dead holder's lock expires. A consumer
// whose lock is taken away stops with an error that says so.
func TestStandbyConsumer(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "standby"}))
	ctx := context.Background()
	short := bus.DefaultRetention
	short.LockTTL = 2 * time.Second
	if err := bus.SetupBackup(ctx, p.consConn.Backup, short); err != nil {
		t.Fatal(err)
	}
	var first, second appliedCounter
	p.consOpts.Observer = &first
	p.startConsumer()
	waitLocked(t, p)
	secondOpts := fastConsumerOptions(t)
	secondOpts.Observer = &second
	c2, err := consumer.New(ctx, backup, p.consConn, secondOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	done2 := make(chan error, 1)
	go func() { done2 <- c2.Run(ctx2) }()

	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	p.backupNow(img)
	if first.n.Load() != 1 || second.n.Load() != 0 {
		t.Fatalf("applied by the active / the standby: %d / %d, want 1 / 0", first.n.Load(), second.n.Load())
	}

	p.stopConsumer() // lets the lock go: the standby takes over
	cephtest.Write(t, source, img, mib, []byte("two"))
	p.backupNow(img)
	if second.n.Load() != 1 {
		t.Fatalf("the standby applied %d backups after the active one stopped, want 1", second.n.Load())
	}

	// Somebody else's lock (the active consumer's, say, while it is stalled)
	// replaces this one's: it stops, and says why.
	kv, err := p.consConn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, bus.ConsumerLock); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, bus.ConsumerLock, []byte(`{"holder":"a consumer that died"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done2:
		if !errors.Is(err, bus.ErrLockLost) {
			t.Fatalf("consumer whose lock was taken: Run = %v, want ErrLockLost", err)
		}
		requireContains(t, err.Error(), "taken over")
	case <-time.After(30 * time.Second):
		t.Fatal("a consumer whose lock was taken away went on")
	}

	// That lock's holder never renews it: a new consumer waits, then takes
	// over once it expires, and applies the backup that waited meanwhile.
	var third appliedCounter
	p.consOpts.Observer = &third
	p.startConsumer()
	cephtest.Write(t, source, img, 2*mib, []byte("three"))
	p.backupNow(img)
	if third.n.Load() != 1 {
		t.Fatalf("the consumer that took over an expired lock applied %d backups, want 1", third.n.Load())
	}
}

// waitLocked waits until some consumer holds the site's lock.
func waitLocked(t *testing.T, p *pipeline) {
	t.Helper()
	kv, err := p.consConn.Backup.KeyValue(context.Background(), bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := kv.Get(context.Background(), bus.ConsumerLock)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("the site's lock: %v", err)
		}
		if err != nil {
			return fmt.Errorf("no consumer took the site's lock: %w", err)
		}
		return nil
	})
}
