package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// runStatus runs ferry status with args and returns its output, its error
// after it, and its exit code.
func runStatus(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"status"}, args...))
	err := root.Execute()
	if err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
	}
	return out.String(), exitCodeOf(err)
}

// TestStatusExitCodes: ferry status exits 0 when all is healthy, 4 when an
// image is failing or past its RPO or no consumer is active, and 1 when it
// cannot read the status at all; --json keeps the codes and its keys are
// snake_case.
func TestStatusExitCodes(t *testing.T) {
	url, conn := backupSiteServer(t)
	ctx := context.Background()
	if _, code := runStatus(t, "--nats", url); code != exitUnhealthy {
		t.Fatalf("no consumer active: exit %d, want %d", code, exitUnhealthy)
	}
	_, release, err := bus.HoldLock(ctx, conn.Backup, bus.ConsumerLock, "consumer of site dr on host-a, pid 42", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-1"}
	ok := &ferry.ImageState{Image: img, BackupImage: img, Confirmed: []string{"ferry-1", "ferry-2"}, LastSnapshot: "ferry-2",
		LastSuccess: time.Now().UTC().Add(-time.Hour), Status: ferry.StatusOK}
	if err := book.Put(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if out, code := runStatus(t, "--nats", url); code != exitOK || !strings.Contains(out, "healthy") {
		t.Fatalf("all well: exit %d, want %d:\n%s", code, exitOK, out)
	}
	if out, code := runStatus(t, "--nats", url, "--rpo", "30m"); code != exitUnhealthy || !strings.Contains(out, "past the RPO of 30m0s") {
		t.Fatalf("past the RPO: exit %d, want %d:\n%s", code, exitUnhealthy, out)
	}
	out, code := runStatus(t, "--nats", url, "rbd/vm-1")
	if code != exitOK || !strings.Contains(out, "restore points:") || !strings.Contains(out, "2 (oldest ferry-1, newest ferry-2)") {
		t.Fatalf("one image: exit %d, want %d:\n%s", code, exitOK, out)
	}
	if out, code := runStatus(t, "--nats", url, "rbd/vm-unknown"); code != exitError || !strings.Contains(out, "knows nothing of rbd/vm-unknown") {
		t.Fatalf("an image nobody backed up: exit %d, want %d:\n%s", code, exitError, out)
	}

	failed := *ok
	failed.Status, failed.LastError = ferry.StatusFailed, "ceph: open pool \"gone\": rados: ret=-2, No such file or directory"
	if err := book.Put(ctx, &failed); err != nil {
		t.Fatal(err)
	}
	out, code = runStatus(t, "--nats", url, "--json")
	if code != exitUnhealthy {
		t.Fatalf("a failing image: exit %d, want %d:\n%s", code, exitUnhealthy, out)
	}
	var r struct {
		Healthy bool             `json:"healthy"`
		Images  []map[string]any `json:"images"`
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r.Healthy || len(r.Images) != 1 || r.Images[0]["status"] != "failed" || r.Images[0]["last_error"] != failed.LastError ||
		r.Images[0]["restore_points"] != 2.0 {
		t.Fatalf("--json of a failing image:\n%s", out)
	}
	for key := range r.Images[0] {
		if strings.ToLower(key) != key {
			t.Errorf("--json key %q is not snake_case", key)
		}
	}

	if _, code := runStatus(t, "--nats", "nats://127.0.0.1:"+strconv.Itoa(testutil.FreePort(t))); code != exitError {
		t.Fatalf("no NATS server: exit %d, want %d", code, exitError)
	}
}

// TestStatusSaysBackupSiteUnreachableSince: with the backup site's server
// down, the publisher's health record at the source site says since when
// the backup site is unreachable, and ferry status at the source site
// shows it and exits 4. When the server is back, the record says so.
func TestStatusSaysBackupSiteUnreachableSince(t *testing.T) {
	leafPort := testutil.FreePort(t)
	backupOpts := bus.ServerOptions{Name: "backup-site", Domain: "backup", StoreDir: t.TempDir(), Port: testutil.FreePort(t), LeafPort: leafPort}
	backupSrv := bustest.Server(t, backupOpts)
	sourceSrv := bustest.Server(t, bus.ServerOptions{Name: "source-site", Domain: "source",
		LeafRemotes: []string{"nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)}})
	bustest.WaitLeaf(t, sourceSrv)
	domains := bus.ConnOptions{URL: sourceSrv.ClientURL(), SourceDomain: "source", BackupDomain: "backup"}
	pub := bustest.Connect(t, domains)
	if err := bus.SetupBackup(context.Background(), pub.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		health.Beat(ctx, pub.Source, health.Options{Role: "publisher", Interval: 100 * time.Millisecond, Own: "NATS at the source site",
			Other: pub.Backup, OtherName: "the backup site", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() { stop(); <-beaten }()

	backupSrv.Shutdown()
	backupSrv.WaitForShutdown()
	args := []string{"--nats", sourceSrv.ClientURL(), "--source-domain", "source", "--backup-domain", "backup"}
	var out string
	testutil.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var code int
		if out, code = runStatus(t, args...); code != exitUnhealthy || !strings.Contains(out, "the backup site unreachable since") {
			return fmt.Errorf("exit %d, output:\n%s", code, out)
		}
		return nil
	})
	if !strings.Contains(out, "the backup site does not answer from here") {
		t.Fatalf("status does not say it cannot read the backup site itself:\n%s", out)
	}

	bustest.Server(t, backupOpts)
	bustest.WaitLeaf(t, sourceSrv)
	testutil.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if out, _ = runStatus(t, args...); !strings.Contains(out, "the backup site was unreachable from ") {
			return fmt.Errorf("after the outage:\n%s", out)
		}
		return nil
	})
}
