package chaos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
)

// tookOver is the consumer's log line when it took the lock over from a
// predecessor that is gone, without waiting for the lock's TTL.
const tookOver = "took the lock over at once"

// TestConsumerRestartTakesLockAtOnce: `ferry consumer run`, started again
// by the supervisor (Restart=on-failure) after kill -9, with or without a
// kill -9 of the NATS server too, takes the lock at once: its log says it
// took it over from the dead pid (the take-over path; the TTL path would
// log a standby and no take-over), before the lock's TTL. It used to stand
// by for the TTL (a minute) on its own dead predecessor's lock.
func TestConsumerRestartTakesLockAtOnce(t *testing.T) {
	for _, natsToo := range []bool{false, true} {
		t.Run(fmt.Sprintf("nats_killed=%v", natsToo), func(t *testing.T) {
			dir := t.TempDir()
			s := newSites(t, dir, newEventLog(t, dir+"/events.log"))
			conn := s.connect(s.backupURL, "lock watcher")
			stop := s.supervise(s.consumer, s.natsBackup, s.natsSource)
			defer stop()
			dead := waitLock(t, conn, 2*time.Minute, func(int) bool { return true })
			t0 := time.Now()
			if err := s.consumer.Kill(); err != nil {
				t.Fatal(err)
			}
			if natsToo {
				if err := s.natsBackup.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			// Within the TTL: past it the lock would be free anyway.
			waitLock(t, conn, bus.DefaultLockTTL, func(pid int) bool { return pid != dead })
			took := time.Since(t0)
			lines, _ := linesWith(t, s.consumer.Log, tookOver)
			if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("pid %d ", dead)) {
				t.Fatalf("the restarted consumer did not log that it took over from dead pid %d; lines: %q", dead, lines)
			}
			if standby, _ := linesWith(t, s.consumer.Log, "standby"); len(standby) > 0 {
				t.Errorf("the restarted consumer stood by: %q", standby)
			}
			t.Logf("lock taken over from dead pid %d %v after its kill (RestartSec=1 and the process's start included)", dead, took.Round(time.Millisecond))
		})
	}
}
