package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestDaemonKeepsHealthRecord: a daemon keeps its health record while it
// runs, and records that it stopped when it closes, so that ferry status
// tells a daemon stopped on purpose from one gone silent.
func TestDaemonKeepsHealthRecord(t *testing.T) {
	d, _, _ := testDaemon(t)
	d.beat(d.conn.Backup, health.Options{Role: "consumer", Interval: 50 * time.Millisecond})
	state := func() (string, error) {
		r, err := health.Read(context.Background(), d.conn, health.ReadOptions{})
		if err != nil || len(r.Daemons) != 1 {
			return "", fmt.Errorf("daemons %+v, %v", r, err)
		}
		return r.Daemons[0].State, nil
	}
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if s, err := state(); err != nil || s != "running" {
			return fmt.Errorf("the daemon is %q (%v), want running", s, err)
		}
		return nil
	})
	d.close()
	if s, err := state(); err != nil || s != "stopped" {
		t.Fatalf("the closed daemon is %q (%v), want stopped", s, err)
	}
}
