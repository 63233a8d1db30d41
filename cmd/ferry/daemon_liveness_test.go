package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// testDaemon is a daemon on a real in-process NATS server, without Ceph,
// whose exit is reported on the returned channel instead of ending the test.
// Read its log only once the daemon has ended or exited (slog serialises
// the writes, not a read against them).
func testDaemon(t *testing.T) (*daemon, *bytes.Buffer, chan int) {
	logs := &bytes.Buffer{}
	exits := make(chan int, 1)
	log, conn := slog.New(slog.NewTextHandler(logs, nil)), bustest.Conn(t)
	d := &daemon{log: log, conn: conn, life: lifeline{
		log: log, conn: conn, timeout: defaultShutdownTimeout,
		exit: func(code int) { exits <- code },
	}}
	return d, logs, exits
}

// dispatchWork is a daemon's work: one Dispatch on the manifest stream.
func dispatchWork(t *testing.T, d *daemon, handle func(context.Context, jetstream.Msg)) func(context.Context) error {
	cons, err := d.conn.Backup.CreateOrUpdateConsumer(context.Background(), bus.ManifestStream, jetstream.ConsumerConfig{
		Durable: "test", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) error { return bus.Dispatch(ctx, cons, handle) }
}

// TestDaemonExitsWhenNATSClosed: a daemon whose NATS connection the server
// closes for good (here for a control line over its limit, as a 10 KB image
// name in a state lookup did) returns an error naming the server's reason
// and logs it, whether its work was pulling messages or waiting elsewhere
// (a standby waiting for the lock). It used to return nil: exit status 0,
// which Restart=on-failure does not restart.
func TestDaemonExitsWhenNATSClosed(t *testing.T) {
	for name, work := range map[string]func(*testing.T, *daemon) func(context.Context) error{
		"pulling": func(t *testing.T, d *daemon) func(context.Context) error {
			return dispatchWork(t, d, func(context.Context, jetstream.Msg) {})
		},
		"waiting": func(*testing.T, *daemon) func(context.Context) error {
			return func(ctx context.Context) error { <-ctx.Done(); return nil }
		},
	} {
		t.Run(name, func(t *testing.T) {
			d, logs, _ := testDaemon(t)
			w := work(t, d)
			done := make(chan error, 1)
			go func() { done <- d.run(context.Background(), w) }()
			bustest.ClosedForGood["closed by the server"](d.conn)
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the daemon did not end after the server closed its connection")
			}
			if !errors.Is(err, bus.ErrConnClosed) || !strings.Contains(err.Error(), "maximum control line exceeded") {
				t.Errorf("run = %v, want %v with the server's reason", err, bus.ErrConnClosed)
			}
			if !strings.Contains(logs.String(), "NATS connection closed for good") {
				t.Errorf("no log line says why the daemon ends; log:\n%s", logs)
			}
		})
	}
}

// TestDaemonShutdownDeadline: a daemon told to stop whose handler does not
// return (librbd not answering) exits with status 1 once the shutdown
// deadline has passed, and its log names the message it still waited for.
func TestDaemonShutdownDeadline(t *testing.T) {
	d, logs, exits := testDaemon(t)
	d.life.timeout = 100 * time.Millisecond
	stuck, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	work := dispatchWork(t, d, func(context.Context, jetstream.Msg) {
		close(stuck)
		<-release // deaf to its context, as a call into librbd is
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = d.run(ctx, work) }()
	if _, err := d.conn.Backup.Publish(context.Background(), bus.ManifestSubject+".pool.stuck-image", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	<-stuck
	cancel() // SIGTERM
	select {
	case code := <-exits:
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("the daemon neither stopped nor exited after its shutdown deadline")
	}
	if log := logs.String(); !strings.Contains(log, "shutdown deadline passed") || !strings.Contains(log, "pool.stuck-image") {
		t.Errorf("the log does not say what the daemon waited for:\n%s", log)
	}
}
