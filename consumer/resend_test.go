package consumer_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go"
)

// TestDaemonResendKeepsEvent: when the backup site reports a chunk missing,
// the publisher daemon sends the backup again as it was first sent. Every
// manifest of it keeps the event's consistency, volume and instance ids,
// resync and force-rollback, and so does the state the backup site records
// from the resent one (OpenStack status finds the volume by its id).
func TestDaemonResendKeepsEvent(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "daemon-resend"}))
	// The first try waits long after its failure, so that the backup site
	// applies the daemon's resend, not the first try again.
	p.consOpts.RetryDelay = 10 * time.Minute
	r := rand.New(rand.NewPCG(31, 31))
	img := cephtest.Image(t, source, "vm", 12*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 12*mib))
	ev := snapshot(t, img)
	ev.Consistency, ev.VolumeID, ev.InstanceID = ferry.Quiesced, "vol-"+img.Image, "inst-"+img.Image
	ev.Resync, ev.ForceRollback = true, true // harmless on a first backup; they must travel too

	var mu sync.Mutex
	var manifests []ferry.Manifest
	sub, err := p.consConn.NC.Subscribe(bus.Subject(bus.ManifestSubject, img), func(msg *nats.Msg) {
		var m ferry.Manifest
		if json.Unmarshal(msg.Data, &m) == nil {
			mu.Lock()
			manifests = append(manifests, m)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	m := p.send(ev) // the consumer is not running yet
	corruptChunk(t, p, m.ExtentPages[0])
	p.startPublisherDaemon()
	waitConsumer(t, p, bus.ResultStream, bus.PrunerDurable) // it must hear the report
	p.startConsumer()

	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(ev.Image.Snap) })
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
	if st.Consistency != ev.Consistency || st.VolumeID != ev.VolumeID {
		t.Errorf("after the resend the state records consistency %q and volume %q, want %q and %q",
			st.Consistency, st.VolumeID, ev.Consistency, ev.VolumeID)
	}
	if err := p.consConn.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(manifests) < 2 {
		t.Fatalf("%d manifests sent, want the first and the daemon's resend", len(manifests))
	}
	for i, got := range manifests {
		if got.Consistency != ev.Consistency || got.VolumeID != ev.VolumeID || got.InstanceID != ev.InstanceID ||
			got.Resync != ev.Resync || got.ForceRollback != ev.ForceRollback || !got.Created.Equal(ev.Created) {
			t.Errorf("manifest %d (attempt %s): consistency %q, volume %q, instance %q, resync %v, force-rollback %v, created %s; want the event's %q, %q, %q, %v, %v, %s",
				i, got.FeedAttempt, got.Consistency, got.VolumeID, got.InstanceID, got.Resync, got.ForceRollback, got.Created,
				ev.Consistency, ev.VolumeID, ev.InstanceID, ev.Resync, ev.ForceRollback, ev.Created)
		}
	}
}

// corruptChunk replaces the second chunk named by page with garbage under
// the same subject: the consumer finds it corrupt and reports it missing.
func corruptChunk(t testing.TB, p *pipeline, page string) {
	t.Helper()
	extents, err := chunkStore(t, p).GetPage(context.Background(), page)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(bus.ChunkSubject + "." + extents[1].Chunk)
	msg.Data = []byte("not gzip at all")
	msg.Header.Set("Ferry-Raw-Size", "4194304")
	if _, err := p.pubConn.Backup.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// waitConsumer waits until the durable consumer name exists on stream.
func waitConsumer(t testing.TB, p *pipeline, stream, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := p.pubConn.Backup.Consumer(context.Background(), stream, name)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("durable consumer %s on %s: %v", name, stream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
