// Package e2e runs a real backup of a Cinder volume's RBD image through the
// whole pipeline (two Ceph clusters, JetStream, publisher, consumer) and the
// OpenStack syncer, against a real Cinder. It holds only tests; it lives
// apart from internal/openstack so that package's tests need no Ceph.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/ferry-dr/ferry/internal/openstack/cindertest"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
)

var cinder *cindertest.Cinder

func TestMain(m *testing.M) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("ferry-e2e-cinder-%d", os.Getpid()))
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cinder, err = cindertest.Start(ctx, dir)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot start Cinder: %v\n", err)
		os.Exit(2)
	}
	// Cinder is stopped when the test binary exits (the launcher watches
	// its parent); testbed.Main exits without returning here.
	testbed.Main(m)
}

const project = "5e2e0000c1d2e3f4a5b6c7d8e9f0a1b2"

func TestBackupStatusReachesCinder(t *testing.T) {
	source, backup := cephtest.Sites(t)
	t.Cleanup(func() { cinder.Stop(); os.RemoveAll(cinder.Dir) })
	ctx := context.Background()
	clients, err := openstack.Connect(ctx, openstack.Config{NoAuthEndpoint: cinder.URL, NoAuthProject: project})
	if err != nil {
		t.Fatal(err)
	}
	md := openstack.NewMetadata(clients)
	volID, err := cindertest.CreateVolume(ctx, clients.Volume, "db-data", nil)
	if err != nil {
		t.Fatalf("%v (cinder log: %s)", err, cinder.Log())
	}
	vol := openstack.Target{Kind: openstack.Volume, ID: volID}
	// An operator's key, set by hand before any backup.
	if err := md.Merge(ctx, vol, map[string]string{"owner": "team-db"}); err != nil {
		t.Fatal(err)
	}

	// The volume's RBD image, named as Cinder's RBD driver names it.
	img := ferry.ImageSpec{Pool: testbed.Pool, Image: "volume-" + volID}
	if err := source.CreateImage(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	cephtest.Write(t, source, img, 1<<20, data)

	conn := bustest.Conn(t)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	pub, err := publisher.New(ctx, source, conn, publisher.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := consumer.New(ctx, backup, conn, consumer.Options{Site: "e2e", BaseWait: time.Minute,
		BaseRetry: 200 * time.Millisecond, RetryDelay: 200 * time.Millisecond, MaxAttempts: 20, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := openstack.NewSyncer(ctx, conn.Backup, md, openstack.SyncOptions{Site: "dr-site", MinBackoff: 100 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	consDone, syncDone := make(chan error, 1), make(chan error, 1)
	go func() { consDone <- cons.Run(runCtx) }()
	go func() { syncDone <- syncer.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-consDone; err != nil {
			t.Errorf("consumer: %v", err)
		}
		if err := <-syncDone; err != nil {
			t.Errorf("syncer: %v", err)
		}
	})

	now := time.Now().UTC()
	ev := ferry.SnapshotEvent{Image: img.AtSnap(ferry.NewSnapshotName(now)), Consistency: ferry.CrashConsistent, Created: now}
	if err := source.CreateSnapshot(ev.Image); err != nil {
		t.Fatal(err)
	}
	m, err := pub.Backup(ctx, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := pub.WaitConfirmed(wctx, m)
	if err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)

	want := map[string]string{
		"owner":               "team-db",
		"ferry:status":        "ok",
		"ferry:last_snapshot": ev.Image.Snap,
		"ferry:last_success":  st.LastSuccess.UTC().Format(time.RFC3339),
		"ferry:consistency":   "crash",
		"ferry:site":          "dr-site",
	}
	testutil.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		got, err := md.Get(ctx, vol)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("volume metadata after the backup:\n got  %v\n want %v", got, want)
		}
		return nil
	})
}
