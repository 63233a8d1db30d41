package bus_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// manifestConsumer is a fresh durable on the manifest stream, as the
// consumer daemon makes it.
func manifestConsumer(t *testing.T, c *bus.Conn) jetstream.Consumer {
	t.Helper()
	cons, err := c.Backup.CreateOrUpdateConsumer(context.Background(), bus.ManifestStream, jetstream.ConsumerConfig{
		Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 10000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// publishJunk publishes n messages, each on its own image's subject.
func publishJunk(t *testing.T, c *bus.Conn, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		publishAsync(t, c, fmt.Sprintf("%s.pool.%s-%d", bus.ManifestSubject, prefix, i))
	}
	<-c.Backup.PublishAsyncComplete()
}

// publishAsync publishes one small message, in batches of a thousand.
func publishAsync(t *testing.T, c *bus.Conn, subject string) {
	t.Helper()
	if c.Backup.PublishAsyncPending() >= 1000 {
		<-c.Backup.PublishAsyncComplete()
	}
	if _, err := c.Backup.PublishAsync(subject, []byte("junk")); err != nil {
		t.Fatal(err)
	}
}

// runDispatch runs Dispatch until the test ends and returns its result.
func runDispatch(t *testing.T, cons jetstream.Consumer, handle func(context.Context, jetstream.Msg)) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Dispatch(ctx, cons, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitGoroutines waits until at most want goroutines run (the handlers of
// a flood end one by one), and fails with the count if they do not.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still run after the flood, want at most %d as before it", runtime.NumGoroutine(), want)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDispatchFloodReturnsToBaseline: 10,000 junk messages, each on its
// own image's subject, leave no goroutine or queue behind once handled,
// and no more than MaxHandlers images are handled at once. Dispatch used
// to keep a goroutine and a 1024-slot queue for every subject it had seen.
func TestDispatchFloodReturnsToBaseline(t *testing.T) {
	c := bustest.Conn(t)
	cons := manifestConsumer(t, c)
	var handled, inFlight, most atomic.Int64
	stop := runDispatch(t, cons, func(_ context.Context, msg jetstream.Msg) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		_ = msg.Term()
		inFlight.Add(-1)
		handled.Add(1)
	})
	waitHandled := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for handled.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("handled %d of %d messages", handled.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	publishJunk(t, c, "warm-up", 1) // Dispatch is pulling once it is handled
	waitHandled(1)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	baseline := runtime.NumGoroutine()

	const flood = 10000
	publishJunk(t, c, "junk", flood)
	waitHandled(flood + 1)
	waitGoroutines(t, baseline)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("goroutines %d -> %d, heap in use %d KiB -> %d KiB, most handlers at once %d",
		baseline, runtime.NumGoroutine(), before.HeapInuse>>10, after.HeapInuse>>10, most.Load())
	if most.Load() > bus.MaxHandlers {
		t.Errorf("%d images handled at once, want at most %d", most.Load(), bus.MaxHandlers)
	}
	if err := stop(); err != nil {
		t.Errorf("Dispatch = %v, want nil after its context ended", err)
	}
}

// TestDispatchBusyImageDoesNotStopOthers: while one image's handler hangs
// with a full queue behind it, other images' messages are still pulled and
// handled.
func TestDispatchBusyImageDoesNotStopOthers(t *testing.T) {
	c := bustest.Conn(t)
	cons := manifestConsumer(t, c)
	release := make(chan struct{})
	var others atomic.Int64
	stop := runDispatch(t, cons, func(ctx context.Context, msg jetstream.Msg) {
		if strings.HasSuffix(msg.Subject(), ".busy") {
			select {
			case <-release:
			case <-ctx.Done():
			}
		} else {
			others.Add(1)
		}
		_ = msg.Ack()
	})
	for i := 0; i < bus.MaxQueuedPerImage+50; i++ {
		publishAsync(t, c, bus.ManifestSubject+".pool.busy")
	}
	<-c.Backup.PublishAsyncComplete()
	const n = 200
	publishJunk(t, c, "other", n)
	deadline := time.Now().Add(time.Minute)
	for others.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d other images' messages while one image was busy", others.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if err := stop(); err != nil {
		t.Error(err)
	}
}

// TestDispatchConnClosed: a connection the client closed, or one the
// server closed for a protocol violation (here a control line over the
// server's limit), ends Dispatch with ErrConnClosed. It used to end with
// nil, and the daemons exited with status 0, which supervisors configured
// to restart on failure do not restart.
func TestDispatchConnClosed(t *testing.T) {
	for name, kill := range bustest.ClosedForGood {
		t.Run(name, func(t *testing.T) {
			c := bustest.Conn(t)
			cons := manifestConsumer(t, c)
			pulling := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- bus.Dispatch(context.Background(), cons, func(_ context.Context, msg jetstream.Msg) {
					_ = msg.Ack()
					close(pulling)
				})
			}()
			publishJunk(t, c, "first", 1)
			<-pulling
			kill(c)
			select {
			case err := <-done:
				if !errors.Is(err, bus.ErrConnClosed) {
					t.Fatalf("Dispatch = %v, want %v", err, bus.ErrConnClosed)
				}
				t.Log(err)
			case <-time.After(time.Minute):
				t.Fatal("Dispatch did not return after its connection was closed")
			}
		})
	}
}
