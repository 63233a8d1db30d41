package publisher_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/publisher"
)

// TestPublisherRunFailsWhenNATSClosed: the publisher daemon whose
// connection is closed for good, by itself or by the server (for a control
// line over its limit), ends with an error instead of nil, so that
// systemd's Restart=on-failure starts it again.
func TestPublisherRunFailsWhenNATSClosed(t *testing.T) {
	source, _ := cephtest.Sites(t)
	for name, kill := range bustest.ClosedForGood {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := startServer(t, bus.ServerOptions{Name: "one-site"})
			conn := connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "test publisher"})
			if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
				t.Fatal(err)
			}
			pub, err := publisher.New(ctx, source, conn, publisher.Options{Log: testLogger(t, "publisher")})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- pub.Run(runCtx) }()
			waitJunkEventHandled(t, conn)
			kill(conn)
			select {
			case err := <-done:
				if !errors.Is(err, bus.ErrConnClosed) {
					t.Fatalf("Run = %v, want %v", err, bus.ErrConnClosed)
				}
			case <-time.After(time.Minute):
				t.Fatal("the publisher did not end after its connection was closed")
			}
		})
	}
}

// waitJunkEventHandled publishes a snapshot event that does not parse and
// waits until the publisher daemon has dropped it: it is pulling then.
func waitJunkEventHandled(t *testing.T, conn *bus.Conn) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	published := false
	for {
		// Run sets the stream up and creates the durable: wait for both.
		if !published {
			_, err := conn.Source.Publish(ctx, bus.SnapshotSubject+".pool.junk", []byte("junk"))
			published = err == nil
		}
		cons, err := conn.Source.Consumer(ctx, bus.SnapshotStream, bus.PublisherDurable)
		if err == nil && published {
			if ci, err := cons.Info(ctx); err == nil && ci.AckFloor.Stream >= 1 && ci.NumAckPending == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher daemon did not drop a junk snapshot event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
