package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// TestLockOfDeadProcessTakenAtOnce: a consumer restarted on the same host
// after its predecessor was killed takes the lock at once, not after the
// dead holder's lock expires; a lock of another host still makes it wait.
func TestLockOfDeadProcessTakenAtOnce(t *testing.T) {
	conn, kv := longLock(t, "deadlock")
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	put := func(host string, pid int) {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"holder": "a killed consumer", "since": time.Now().UTC(), "host": host, "pid": pid})
		if _, err := kv.Put(ctx, bus.ConsumerLock, raw); err != nil {
			t.Fatal(err)
		}
	}

	put(host+".elsewhere", dead.Process.Pid)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := bus.HoldLock(wctx, conn.Backup, bus.ConsumerLock, "successor", func(string) {}); err == nil {
		t.Fatal("took the lock of a process on another host, which may be alive")
	}

	put(host, dead.Process.Pid)
	tctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	held, release, err := bus.HoldLock(tctx, conn.Backup, bus.ConsumerLock, "successor", func(string) {})
	if err != nil {
		t.Fatalf("the lock of dead pid %d on this host was not taken over: %v", dead.Process.Pid, err)
	}
	defer release()
	if held.Err() != nil {
		t.Fatal(context.Cause(held))
	}
	if who, _ := bus.LockHolder(ctx, conn.Backup, bus.ConsumerLock); !strings.HasPrefix(who, "successor") {
		t.Fatalf("lock held by %q, want the successor", who)
	}
	if from := bus.TakenOver(held); !strings.HasPrefix(from, "a killed consumer") {
		t.Errorf("TakenOver = %q, want the killed consumer: the take-over, not the TTL, gave the lock", from)
	}
}

// TestLockGivenUpTakenBackAtOnce: a consumer that gave its lock up while
// NATS could not be reached (same host, same pid, a holding that ended)
// takes it back at once when NATS is back, instead of standing by on its
// own lock until the TTL (a minute) expires; a holding this process still
// has keeps a second holder of the same process waiting.
func TestLockGivenUpTakenBackAtOnce(t *testing.T) {
	conn, kv := longLock(t, "givenup")
	ctx := context.Background()
	host, _ := os.Hostname()
	raw, _ := json.Marshal(map[string]any{"holder": "this consumer before the outage", "since": time.Now().UTC(),
		"host": host, "pid": os.Getpid(), "token": "a-holding-that-ended"})
	if _, err := kv.Put(ctx, bus.ConsumerLock, raw); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	held, release, err := bus.HoldLock(tctx, conn.Backup, bus.ConsumerLock, "after the outage", func(string) {})
	if err != nil {
		t.Fatalf("the lock this process gave up was not taken back: %v", err)
	}
	defer release()
	t.Logf("lock taken back in %v", time.Since(t0))
	if from := bus.TakenOver(held); !strings.HasPrefix(from, "this consumer before the outage") {
		t.Fatalf("TakenOver = %q, want the ended holding", from)
	}

	wctx, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	waited := false
	if _, _, err := bus.HoldLock(wctx, conn.Backup, bus.ConsumerLock, "second", func(string) { waited = true }); err == nil || !waited {
		t.Fatalf("a second holder of this process took a lock still held (err %v, stood by %v)", err, waited)
	}
}

// TestLockKeptAfterLateRenewal: a renewal that the holder's client gave up
// on but the server applied late (a stopped NATS server resumed and worked
// off its requests) moves the lock's revision on without the holder
// knowing. The lock still holds its token: it is kept, not lost. It was
// lost, and the consumer exited after each SIGSTOP of its server
// (TestChaos, seed 2).
func TestLockKeptAfterLateRenewal(t *testing.T) {
	srv := bustest.Server(t, bus.ServerOptions{Name: "late"})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	ctx := context.Background()
	short := bus.DefaultRetention
	short.LockTTL = 2 * time.Second // renewed every 250 ms
	if err := bus.SetupBackup(ctx, conn.Backup, short); err != nil {
		t.Fatal(err)
	}
	held, release, err := bus.HoldLock(ctx, conn.Backup, bus.ConsumerLock, "holder", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	kv, err := conn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, bus.ConsumerLock)
	if err != nil {
		t.Fatal(err)
	}
	late, err := kv.Put(ctx, bus.ConsumerLock, e.Value()) // the holder's own value, applied late
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if held.Err() != nil {
			return fmt.Errorf("lock lost: %v", context.Cause(held))
		}
		if e, err := kv.Get(ctx, bus.ConsumerLock); err != nil || e.Revision() <= late {
			return fmt.Errorf("the holder has not renewed the lock since the late write (%v)", err)
		}
		return nil
	})
	if held.Err() != nil {
		t.Fatalf("lock lost after a late renewal of its own: %v", context.Cause(held))
	}
}

// longLock is a server whose lock bucket's TTL is 10 minutes, so that only
// a take-over can give a lock quickly, and its lock bucket.
func longLock(t *testing.T, name string) (*bus.Conn, jetstream.KeyValue) {
	t.Helper()
	srv := bustest.Server(t, bus.ServerOptions{Name: name})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	ctx := context.Background()
	long := bus.DefaultRetention
	long.LockTTL = 10 * time.Minute
	if err := bus.SetupBackup(ctx, conn.Backup, long); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	return conn, kv
}
