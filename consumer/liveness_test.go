package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/nats-io/nats.go/jetstream"
)

// runConsumer runs the consumer daemon on its own server and connection
// until the test ends, and returns the connection, a channel closed when
// Run has returned, and Run's result, to be read after that.
func runConsumer(t *testing.T) (*bus.Conn, <-chan struct{}, *error) {
	t.Helper()
	_, backup := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "backup-site"})
	conn := connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "test consumer"})
	ctx := context.Background()
	if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(ctx, backup, conn, fastConsumerOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ended := make(chan struct{})
	var runErr error
	go func() { runErr = c.Run(runCtx); close(ended) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(time.Minute):
			t.Error("the consumer did not stop")
		}
	})
	return conn, ended, &runErr
}

// publishJunkManifests publishes n manifests that do not parse, each on
// its own image's subject, and waits until the consumer has handled them
// all (it drops junk at once).
func publishJunkManifests(t *testing.T, conn *bus.Conn, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if conn.Backup.PublishAsyncPending() >= 1000 {
			<-conn.Backup.PublishAsyncComplete()
		}
		if _, err := conn.Backup.PublishAsync(fmt.Sprintf("%s.pool.%s-%d", bus.ManifestSubject, prefix, i), []byte("junk")); err != nil {
			t.Fatal(err)
		}
	}
	<-conn.Backup.PublishAsyncComplete()
	stream, err := conn.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		t.Fatal(err)
	}
	sinfo, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := sinfo.State.LastSeq
	deadline := time.Now().Add(3 * time.Minute)
	for {
		// Run creates the durable: it may not be there yet.
		var floor uint64
		cons, err := conn.Backup.Consumer(ctx, bus.ManifestStream, bus.ConsumerDurable)
		if err == nil {
			var ci *jetstream.ConsumerInfo
			if ci, err = cons.Info(ctx); err == nil {
				if floor = ci.AckFloor.Stream; floor >= last && ci.NumAckPending == 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer handled messages up to %d of %d (%v)", floor, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerJunkFloodReturnsToBaseline: 10,000 junk manifests, each on
// its own image's subject, leave no goroutine behind in the consumer
// daemon once it has dropped them. It used to keep a goroutine and a
// 1024-slot queue per subject for good (4000 grew it by 90 MiB).
func TestConsumerJunkFloodReturnsToBaseline(t *testing.T) {
	conn, _, _ := runConsumer(t)
	publishJunkManifests(t, conn, "warm-up", 1) // Run is pulling once it is handled
	runtime.GC()
	baseline := runtime.NumGoroutine()
	publishJunkManifests(t, conn, "junk", 10000)
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines run after the flood, %d before it", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	t.Logf("goroutines %d -> %d; heap in use after %d KiB (the test's NATS server included)", baseline, runtime.NumGoroutine(), m.HeapInuse>>10)
}

// TestConsumerRunFailsWhenNATSClosed: the consumer daemon whose connection
// is closed for good, by itself or by the server (for a control line over
// its limit, as a state lookup for a 10 KB image name made it), ends with
// an error. It used to end with nil: exit status 0, which systemd's
// Restart=on-failure does not restart, and backups stopped silently.
func TestConsumerRunFailsWhenNATSClosed(t *testing.T) {
	for name, kill := range bustest.ClosedForGood {
		t.Run(name, func(t *testing.T) {
			conn, ended, runErr := runConsumer(t)
			publishJunkManifests(t, conn, "first", 1)
			kill(conn)
			select {
			case <-ended:
				if !errors.Is(*runErr, bus.ErrConnClosed) {
					t.Fatalf("Run = %v, want %v", *runErr, bus.ErrConnClosed)
				}
			case <-time.After(time.Minute):
				t.Fatal("the consumer did not end after its connection was closed")
			}
		})
	}
}
