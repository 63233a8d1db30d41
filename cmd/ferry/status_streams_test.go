package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStatusStreams runs `ferry status --streams` against a real JetStream
// server holding a backlog for the consumer, one message redelivered, and no
// publisher consumer yet.
func TestStatusStreams(t *testing.T) {
	url, conn := backupSiteServer(t)
	ctx := context.Background()
	cons, err := conn.Backup.CreateOrUpdateConsumer(ctx, bus.ManifestStream, jetstream.ConsumerConfig{
		Durable: bus.ConsumerDurable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"a", "b", "c"} {
		if _, err := conn.Backup.Publish(ctx, bus.ManifestSubject+".rbd."+img, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Take one and let its ack wait run out: it is delivered again first,
	// so it counts as redelivered (and stays ack pending).
	fetchOne := func() jetstream.MsgMetadata {
		batch, err := cons.Fetch(1)
		if err != nil {
			t.Fatal(err)
		}
		var meta *jetstream.MsgMetadata
		for msg := range batch.Messages() {
			meta, _ = msg.Metadata()
		}
		if meta == nil {
			t.Fatal("no message fetched")
		}
		return *meta
	}
	first := fetchOne()
	time.Sleep(time.Second) // > AckWait
	if again := fetchOne(); again.NumDelivered != 2 || again.Sequence.Stream != first.Sequence.Stream {
		t.Fatalf("fetched stream seq %d delivered %d times, want seq %d again", again.Sequence.Stream, again.NumDelivered, first.Sequence.Stream)
	}

	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"status", "--streams", "--json", "--nats", url})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var lag bus.Lag
	if err := json.Unmarshal(out.Bytes(), &lag); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	byName := map[string]bus.ConsumerStat{}
	for _, c := range lag.Consumers {
		byName[c.Consumer] = c
	}
	if c := byName[bus.ConsumerDurable]; c.Missing || c.Pending != 2 || c.AckPending != 1 || c.Redelivered != 1 {
		t.Errorf("consumer: %+v, want 2 pending, 1 ack pending, 1 redelivered", c)
	}
	if c := byName[bus.PublisherDurable]; !c.Missing {
		t.Errorf("publisher consumer (its stream was never set up): %+v", c)
	}
	for _, s := range lag.Streams {
		switch s.Stream {
		case bus.ManifestStream:
			if s.Messages != 3 || s.Bytes == 0 {
				t.Errorf("manifests: %+v", s)
			}
		case bus.SnapshotStream:
			if !s.Missing {
				t.Errorf("snapshots: %+v", s)
			}
		}
	}

	out.Reset()
	if err := printLag(&out, lag, false); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = strings.Join(f, " ")
		}
	}
	for first, want := range map[string]string{
		"FERRY_MANIFESTS": "FERRY_MANIFESTS backup 3 " + progress.Bytes(lag.Streams[2].Bytes),
		"consumer":        "consumer FERRY_MANIFESTS backup 2 1 1",
		"publisher":       "publisher FERRY_SNAPSHOTS source not created yet - -",
	} {
		if rows[first] != want {
			t.Errorf("row %q, want %q, in:\n%s", rows[first], want, out.String())
		}
	}
}

// TestStatusTable: `ferry status` names the consumer that holds the backup
// site's lock (or says that none does), and shows a failed backup's whole
// error, which the table cuts, below it.
func TestStatusTable(t *testing.T) {
	url, conn := backupSiteServer(t)
	ctx := context.Background()
	status := func() string {
		var out bytes.Buffer
		root := newRootCommand()
		root.SetOut(&out)
		root.SetArgs([]string{"status", "--nats", url})
		if err := root.Execute(); err != nil && exitCodeOf(err) != exitUnhealthy {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := status(); !strings.Contains(got, "active consumer: none") {
		t.Fatalf("no consumer running, status says:\n%s", got)
	}
	// A failed backup's whole error, with its way out, shows below the table.
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	long := "backup image written outside Ferry: " + strings.Repeat("details ", 20) + "run the backup with --force-rollback"
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-1"}
	if err := book.Put(ctx, &ferry.ImageState{Image: img, Status: ferry.StatusFailed, LastError: long}); err != nil {
		t.Fatal(err)
	}
	if got := status(); !strings.Contains(got, "rbd/vm-1: "+long) {
		t.Fatalf("status of a failed backup does not show its whole error:\n%s", got)
	}
	_, release, err := bus.HoldLock(ctx, conn.Backup, bus.ConsumerLock, "consumer of site dr on host-a, pid 42", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if got := status(); !strings.Contains(got, "active consumer: consumer of site dr on host-a, pid 42 (since ") {
		t.Fatalf("with a consumer holding the lock, status says:\n%s", got)
	}
	release()
	if got := status(); !strings.Contains(got, "active consumer: none") {
		t.Fatalf("after the consumer let go, status says:\n%s", got)
	}
}

// backupSiteServer starts a JetStream server listening on loopback with the
// backup site's streams and buckets, and returns its URL and a connection.
func backupSiteServer(t *testing.T) (string, *bus.Conn) {
	t.Helper()
	srv := bustest.Server(t, bus.ServerOptions{Name: t.Name()})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	if err := bus.SetupBackup(context.Background(), conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), conn
}
