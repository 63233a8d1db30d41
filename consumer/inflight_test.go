package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

// TestQueuedEventsWaitForFirstFull: a second snapshot event of a new image,
// handled while the image's first backup (a full one) is still on its way,
// waits for it and then goes out as an incremental. It went out as a second
// full backup, which the backup site, once it had applied the first, gave
// up as mixing two chains and asked for --resync (TestChaos, seed 2:
// events queued during an outage).
func TestQueuedEventsWaitForFirstFull(t *testing.T) {
	source, backup := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "inflight"})
	p := newPipeline(t, srv)
	logs := &testutil.LogBuffer{}
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("publisher daemon: %v", err)
		}
	}()

	r := rand.New(rand.NewPCG(46, 46))
	img := cephtest.Image(t, source, "vm", 16*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 4*mib))
	first := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(context.Background(), p.pubConn, first); err != nil {
		t.Fatal(err)
	}
	// No consumer runs yet: the first backup stays on its way.
	manifests := func() uint64 {
		subject := bus.Subject(bus.ManifestSubject, img)
		s, err := p.pubConn.Backup.Stream(context.Background(), bus.ManifestStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subject]
	}
	testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		if manifests() == 0 {
			return errors.New("the first backup's manifest is not queued")
		}
		return nil
	})
	cephtest.Write(t, source, img, 8*mib, randomBytes(r, 4*mib))
	second := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(context.Background(), p.pubConn, second); err != nil {
		t.Fatal(err)
	}
	const waits = "backup waits for the first backup of the image"
	testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		if n := manifests(); n > 1 {
			t.Fatalf("a second backup went out (%d manifests queued) while the first, a full one, was on its way", n)
		}
		if !strings.Contains(logs.String(), waits) {
			return errors.New("the second event has not been handled")
		}
		return nil
	})

	p.startConsumer()
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(second.Image.Snap) })
	if !st.HasConfirmed(first.Image.Snap) || st.Status != ferry.StatusOK {
		t.Fatalf("state %+v, want both backups confirmed and status ok", st)
	}
	cephtest.RequireSameContent(t, source, second.Image, backup, second.Image)
	if strings.Contains(logs.String(), "gave up") {
		t.Fatalf("the backup site gave a backup up:\n%s", logs)
	}
}
