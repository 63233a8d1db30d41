package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPublisherOpenWaitsForBackupStreams: the publisher daemon started
// before the backup site's consumer ever ran (it creates the streams) waits
// for them, saying so, instead of exiting (under systemd, a restart loop;
// TestChaos's first start met it), and opens once they exist.
func TestPublisherOpenWaitsForBackupStreams(t *testing.T) {
	source, _ := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "not-set-up"})
	conn := connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "publisher"})
	logs := &testutil.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := publisher.Open(ctx, source, conn, publisher.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
		done <- err
	}()
	waits := func(what string) {
		t.Helper()
		testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
			select {
			case err := <-done:
				t.Fatalf("Open returned before the backup site was set up: %v", err)
			default:
			}
			if !strings.Contains(logs.String(), what) {
				return fmt.Errorf("the publisher does not say it waits: %q", what)
			}
			return nil
		})
	}
	waits("stream not found")
	// The consumer's setup half done: the chunk stream, not yet the buckets.
	if _, err := conn.Backup.CreateStream(ctx, jetstream.StreamConfig{Name: bus.ChunkStream, Subjects: []string{bus.ChunkSubject + ".*"}}); err != nil {
		t.Fatal(err)
	}
	waits("bucket not found")
	if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Open once the backup site was set up: %v", err)
	}
}
