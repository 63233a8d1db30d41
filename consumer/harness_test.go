package consumer_test

import (
	"context"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats-server/v2/server"
)

// The pipeline tests run on the real two-site Ceph test bed (cephtest.Sites)
// and real, in-process NATS JetStream servers.
func TestMain(m *testing.M) { testbed.Main(m) }

const mib = 1 << 20

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(discardWriter{}, nil))
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// startServer and connect give a test its own JetStream servers and clients.
var (
	startServer = bustest.Server
	connect     = bustest.Connect
)

// pipeline is one publisher and one consumer around a JetStream server.
type pipeline struct {
	t        testing.TB
	pubConn  *bus.Conn
	consConn *bus.Conn
	pub      *publisher.Publisher
	consOpts consumer.Options

	mu       sync.Mutex
	stopCons context.CancelFunc
	consDone chan error
}

func fastConsumerOptions(t testing.TB) consumer.Options {
	return consumer.Options{Site: "test", BaseWait: time.Minute, BaseRetry: 200 * time.Millisecond, RetryDelay: 200 * time.Millisecond, MaxAttempts: 20, Log: testLogger(t)}
}

// newPipeline sets up both sites on srv (single domain).
func newPipeline(t testing.TB, srv *server.Server) *pipeline {
	return newPipelineConns(t,
		connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "test publisher"}),
		connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "test consumer"}))
}

func newPipelineConns(t testing.TB, pubConn, consConn *bus.Conn) *pipeline {
	t.Helper()
	source, _ := cephtest.Sites(t)
	ctx := context.Background()
	if err := bus.SetupBackup(ctx, consConn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupSource(ctx, pubConn.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	pub, err := publisher.New(ctx, source, pubConn, publisher.Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, pubConn: pubConn, consConn: consConn, pub: pub, consOpts: fastConsumerOptions(t)}
	t.Cleanup(p.stopConsumer)
	return p
}

// startConsumer runs the consumer daemon until stopConsumer.
func (p *pipeline) startConsumer() {
	p.t.Helper()
	_, backup := cephtest.Sites(p.t)
	c, err := consumer.New(context.Background(), backup, p.consConn, p.consOpts)
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	p.mu.Lock()
	p.stopCons, p.consDone = cancel, done
	p.mu.Unlock()
}

func (p *pipeline) stopConsumer() {
	p.mu.Lock()
	cancel, done := p.stopCons, p.consDone
	p.stopCons, p.consDone = nil, nil
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if err := <-done; err != nil {
		p.t.Errorf("consumer: %v", err)
	}
}

// startPublisherDaemon runs the publisher daemon (snapshot events, results,
// restore jobs) until the test ends.
func (p *pipeline) startPublisherDaemon() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.pub.Run(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			p.t.Errorf("publisher daemon: %v", err)
		}
	})
}

// snapshot takes a Ferry snapshot of img at the source and returns its event.
func snapshot(t testing.TB, img ferry.ImageSpec) ferry.SnapshotEvent {
	t.Helper()
	source, _ := cephtest.Sites(t)
	now := time.Now().UTC()
	ev := ferry.SnapshotEvent{Image: img.AtSnap(ferry.NewSnapshotName(now)), Consistency: ferry.CrashConsistent, Created: now}
	if err := source.CreateSnapshot(ev.Image); err != nil {
		t.Fatal(err)
	}
	return ev
}

// backupNow is `ferry backup` in a test: snapshot, send, wait, prune. It
// checks the backup snapshot against the source snapshot before pruning.
func (p *pipeline) backupNow(img ferry.ImageSpec) (*publisher.Sent, ceph.Content) {
	p.t.Helper()
	source, backup := cephtest.Sites(p.t)
	ev := snapshot(p.t, img)
	m := p.send(ev)
	p.waitConfirmed(m)
	want := cephtest.Content(p.t, source, ev.Image)
	cephtest.RequireSameContent(p.t, source, ev.Image, backup, ev.Image)
	if _, err := p.pub.Prune(context.Background(), img); err != nil {
		p.t.Fatal(err)
	}
	return m, want
}

func (p *pipeline) send(ev ferry.SnapshotEvent) *publisher.Sent {
	p.t.Helper()
	m, err := p.pub.Backup(context.Background(), ev, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

func (p *pipeline) waitConfirmed(m *publisher.Sent) *ferry.ImageState {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := p.pub.WaitConfirmed(ctx, m)
	if err != nil {
		p.t.Fatalf("waiting for %s: %v", m.BackupID, err)
	}
	return st
}

// waitRefused waits until the backup site gives m up and returns its reason.
func (p *pipeline) waitRefused(m *publisher.Sent) error {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := p.pub.WaitConfirmed(ctx, m)
	if err == nil || ctx.Err() != nil {
		p.t.Fatalf("waiting for %s: %v, want the backup site's refusal", m.BackupID, err)
	}
	return err
}

// ferrySnapshots lists Ferry's snapshots of img on cluster c.
func ferrySnapshots(t testing.TB, c *ceph.Cluster, img ferry.ImageSpec) []string {
	t.Helper()
	snaps, err := c.Snapshots(img)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range snaps {
		if ferry.IsFerrySnapshot(s.Name) {
			names = append(names, s.Name)
		}
	}
	return names
}

var randomBytes = testutil.RandomBytes

// scribble changes n random ranges of img.
func scribble(t testing.TB, img ferry.ImageSpec, size uint64, r *rand.Rand, n int) {
	t.Helper()
	source, _ := cephtest.Sites(t)
	for range n {
		l := 1 + r.IntN(256<<10)
		off := r.Uint64N(size - uint64(l))
		if r.IntN(5) == 0 {
			cephtest.Discard(t, source, img, off, uint64(l))
		} else {
			cephtest.Write(t, source, img, off, randomBytes(r, l))
		}
	}
}

func requireContains(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
