package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestConsumerRunAppliesRetention: `ferry consumer run` with a retention
// section thins out the backup images by itself, on its interval: under
// latest1 the image keeps its newest snapshot (the state's last backup)
// and a snapshot Ferry did not take.
func TestConsumerRunAppliesRetention(t *testing.T) {
	bed := testbed.Shared(t)
	_, backup := cephtest.Sites(t)
	srv := bustest.Server(t, bus.ServerOptions{Name: t.Name()})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: t.Name()})
	bustest.Setup(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}

	img := cephtest.Image(t, backup, "ret-daemon", 1<<20)
	now := time.Now()
	var snaps []string
	for _, hours := range []int{100, 80, 60, 40, 20} {
		snaps = append(snaps, ferry.NewSnapshotName(now.Add(-time.Duration(hours)*time.Hour)))
	}
	for i, s := range snaps {
		if i == 2 {
			cephtest.Snap(t, backup, img, "manual")
		}
		cephtest.Snap(t, backup, img, s)
	}
	// (A state behind its image would be repaired by the consumer at
	// start, racing the first retention run: recovery's
	// TestRetentionLoopAppliesRulesOnInterval keeps such a state's base.)
	if err := book.Put(ctx, &ferry.ImageState{Image: img, BackupImage: img, Confirmed: snaps, LastSnapshot: snaps[4], Status: ferry.StatusOK}); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`ceph:
  backup: {conf: %s, id: %s, keyring: %s}
nats: {url: "%s"}
retention:
  interval: 200ms
  default: latest3
  images:
    "%s": latest1
`, bed.Backup.Conf, bed.Backup.ID, bed.Backup.Keyring, srv.ClientURL(), img))

	// ferry retention apply --all shows the decisions first, removing nothing.
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"retention", "apply", "--all", "--config", path})
	if err := root.Execute(); err != nil {
		t.Fatalf("retention apply --all: %v\n%s", err, out.String())
	}
	for _, w := range []string{snaps[0] + "  ", "remove (image " + img.String() + ": latest1)", snaps[4] + "  ", "keep (base of the next backup)",
		"manual", "not Ferry's, left alone", "1 image(s), 0 without a policy", "dry run: 1 to keep, 4 to remove"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("retention apply --all does not say %q:\n%s", w, out.String())
		}
	}
	if got := cephtest.SnapshotNames(t, backup, img); len(got) != 6 {
		t.Fatalf("a dry run removed snapshots: %v", got)
	}

	root = newRootCommand()
	root.SetArgs([]string{"consumer", "run", "--config", path})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	want := []string{"manual", snaps[4]}
	testutil.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("consumer run ended: %v", err)
		default:
		}
		if got := cephtest.SnapshotNames(t, backup, img); !slices.Equal(got, want) {
			return fmt.Errorf("%s has %v, want %v", img, got, want)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consumer run on shutdown: %v", err)
	}
}
