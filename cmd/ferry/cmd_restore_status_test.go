package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
)

// TestRestoreStatusCommand: ferry restore status prints a job's state as
// recorded, in text and JSON (snake_case), and exits non-zero when the
// restore failed.
func TestRestoreStatusCommand(t *testing.T) {
	srv := bustest.Server(t, bus.ServerOptions{})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	bustest.Setup(t, conn)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCommand()
		root.SetOut(&out)
		root.SetArgs(append([]string{"--config", writeConfig(t, ""), "restore", "status", "--nats", srv.ClientURL()}, args...))
		err := root.Execute()
		return out.String(), err
	}
	record := func(st ferry.RestoreStatus) {
		t.Helper()
		st.Snapshot, st.Target, st.TotalBytes, st.Time = ferry.ImageSpec{Pool: "rbd", Image: "vm", Snap: "ferry-1"}, ferry.ImageSpec{Pool: "rbd", Image: "vm-back"}, 1<<30, time.Now().UTC()
		if err := recovery.PublishRestoreStatus(context.Background(), conn.Backup, nil, st); err != nil {
			t.Fatal(err)
		}
	}
	const job = "restore-20260101T000000Z-0123456789ab"

	if _, err := run(job); err == nil || !strings.Contains(err.Error(), "no such restore job") {
		t.Errorf("a job never recorded: %v", err)
	}
	record(ferry.RestoreStatus{JobID: job, State: ferry.RestoreRunning, DoneBytes: 512 << 20})
	if out, err := run(job); err != nil || !strings.Contains(out, "running") || !strings.Contains(out, "512.0 MiB applied") {
		t.Errorf("running: %v\n%s", err, out)
	}
	record(ferry.RestoreStatus{JobID: job, State: ferry.RestoreFailed, Outcome: &ferry.RestoreOutcome{JobID: job, Error: "target image exists: choose a new image name"}})
	out, err := run(job, "--json")
	if exitCodeOf(err) != exitError || !strings.Contains(err.Error(), "target image exists") {
		t.Errorf("failed: exit %d, %v", exitCodeOf(err), err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["job_id"] != job || v["state"] != "failed" || v["target"] != "rbd/vm-back" ||
		v["total_bytes"] != float64(1<<30) || v["error"] != "target image exists: choose a new image name" {
		t.Errorf("--json printed %s (%v)", out, err)
	}
	if _, err := run("bad.job"); exitCodeOf(err) != exitUsage {
		t.Errorf("a malformed job id: exit %d, %v", exitCodeOf(err), err)
	}
}
