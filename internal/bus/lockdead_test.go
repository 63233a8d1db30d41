package bus_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
)

// TestLockOfDeadProcessTakenAtOnce: a consumer restarted on the same host
// after its predecessor was killed takes the lock at once, not after the
// dead holder's lock expires; a lock of another host still makes it wait.
func TestLockOfDeadProcessTakenAtOnce(t *testing.T) {
	srv := bustest.Server(t, bus.ServerOptions{Name: "deadlock"})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	ctx := context.Background()
	long := bus.DefaultRetention
	long.LockTTL = 10 * time.Minute // only a take-over can be quick
	if err := bus.SetupBackup(ctx, conn.Backup, long); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	kv, err := conn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
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
}
