package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/publisher"
)

// TestStatusEscapesControlCharacters: names, errors and the lock holder
// that hold terminal escape sequences (from a forged message, or a state
// written by an older Ferry) are printed escaped by ferry status, never raw.
func TestStatusEscapesControlCharacters(t *testing.T) {
	url, conn := backupSiteServer(t)
	ctx := context.Background()
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	evil := &ferry.ImageState{
		Image:        ferry.ImageSpec{Pool: "rbd", Image: "vm\x1b[2J\x1b]0;pwned\x07"},
		Status:       ferry.StatusFailed,
		LastSnapshot: "ferry-\x1b[1mbold\tcol",
		Consistency:  "crash\u009b31m",
		LastError:    "refused: image name \x1b[31mred\nsecond line, long enough to be printed again below the table \r\x1b[K",
	}
	if err := book.Put(ctx, evil); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, bus.ConsumerLock, []byte(`{"holder":"consumer \u001b[5mblink"}`)); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"status", "--nats", url})
	if err := root.Execute(); exitCodeOf(err) != exitUnhealthy { // the image failed
		t.Fatal(err)
	}
	text := out.String()
	for _, r := range text {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Fatalf("ferry status printed %U raw:\n%q", r, text)
		}
	}
	for _, want := range []string{`vm\x1b[2J\x1b]0;pwned\a`, `ferry-\x1b[1mbold\tcol`, `crash\u009b31m`,
		`red\nsecond line`, `\r\x1b[K`, `consumer \x1b[5mblink`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %s:\n%s", want, text)
		}
	}
}

// TestBackupSummaryEscapesSnapshotNames: ferry backup's summary lists the
// backup image's snapshots from the state, escaped.
func TestBackupSummaryEscapesSnapshotNames(t *testing.T) {
	var out bytes.Buffer
	m := &publisher.Sent{Manifest: ferry.Manifest{Image: ferry.ImageSpec{Pool: "rbd", Image: "vm", Snap: "ferry-2"}, ToSnap: "ferry-2"}}
	st := &ferry.ImageState{BackupImage: ferry.ImageSpec{Pool: "rbd", Image: "vm"}, Confirmed: []string{"op\x1b[2J", "ferry-2"}}
	printSummary(&out, m, st, nil, 0)
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), `op\x1b[2J, ferry-2`) {
		t.Fatalf("summary:\n%q", out.String())
	}
}
