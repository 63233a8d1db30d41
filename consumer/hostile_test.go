package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk/chunktest"
	"github.com/ferry-dr/ferry/internal/feed/feedtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/nats-io/nats.go/jetstream"
)

// TestInvalidExtentsGivenUp: backups whose extents a publisher never
// writes (a chunk reference that wraps past 2^64, data at 2^64-4096,
// overlapping or unordered extents, data past the image, a zero run of
// 2^64-1 bytes) are given up at once with an error that names the extent
// and the way out: not applied, not confirmed, not retried, and the
// consumer neither crashes nor blocks: it applies the next backup as usual.
// The old reader panicked on the first (and the consumer crashed again on
// each redelivery), and applied and confirmed most of the others.
func TestInvalidExtentsGivenUp(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "hostile"}))
	p.startConsumer()
	ctx := context.Background()
	const size = 4 * mib
	hash := chunktest.Chunk(t, chunkStore(t, p))
	for _, inFlight := range []bool{false, true} {
		for _, tc := range chunktest.InvalidExtentLists(hash, size) {
			t.Run(map[bool]string{false: "listed/", true: "feed/"}[inFlight]+tc.Name, func(t *testing.T) {
				img := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "forged")}
				t.Cleanup(func() { removeIfThere(t, img) })
				m := forgeBackup(t, p, img, size, tc.Extents, inFlight)
				failure := waitGivenUp(t, p, m)
				requireContains(t, failure.Error, tc.Want)
				requireContains(t, failure.Error, "--resync")
				if snaps, err := backup.Snapshots(img); err == nil && len(snaps) > 0 {
					t.Fatalf("an invalid backup left snapshots %v", snaps)
				}
			})
		}
	}
	// Not retried: no manifest was delivered twice, none waits.
	cons, err := p.consConn.Backup.Consumer(ctx, bus.ManifestStream, bus.ConsumerDurable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("manifests redelivered %d, unacknowledged %d, pending %d; want none", info.NumRedelivered, info.NumAckPending, info.NumPending)
	}
	// The same consumer goes on applying backups.
	img := cephtest.Image(t, source, "vm", 4*mib)
	cephtest.Write(t, source, img, 0, []byte("after the forged backups"))
	p.backupNow(img)
}

// forgeBackup stores extents as one extent page in the backup site's chunk
// store and publishes a manifest of a full backup of img to size bytes
// with that page, as a broken or hostile publisher could: listed in a
// complete manifest (FeedSeq 0), or, inFlight, on the backup's feed. It is
// the one place these tests build a manifest by hand.
func forgeBackup(t *testing.T, p *pipeline, img ferry.ImageSpec, size uint64, extents []ferry.Extent, inFlight bool) *ferry.Manifest {
	t.Helper()
	ctx := context.Background()
	page := chunktest.Page(t, chunkStore(t, p), extents)
	now := time.Now().UTC()
	snap := ferry.NewSnapshotName(now)
	m := &ferry.Manifest{BackupID: ferry.BackupID("forged", img, snap), Image: img.AtSnap(snap), SourceImageID: "forged",
		ToSnap: snap, Size: size, ChunkSize: bus.MaxChunkSize, Created: now}
	if inFlight {
		w := feedtest.Feed(t, p.pubConn.Backup, img, m.BackupID, len(extents), page)
		m.FeedSeq, m.FeedAttempt = w.Seq(), w.Attempt()
	} else {
		m.Complete = &ferry.BackupEnd{ExtentPages: []string{page}, ExtentCount: len(extents)}
	}
	if _, err := p.pubConn.Backup.Publish(ctx, bus.Subject(bus.ManifestSubject, m.Image), mustJSON(t, m), jetstream.WithMsgID(m.MessageID())); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitGivenUp waits for the backup site's final failure of m (a failure
// that asks for no chunks).
func waitGivenUp(t *testing.T, p *pipeline, m *ferry.Manifest) ferry.BackupResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := p.consConn.Backup.OrderedConsumer(ctx, bus.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.Subject(bus.FailedSubject, m.Image)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("waiting for the backup site to give %s up: %v", m.BackupID, err)
		}
		r, err := bus.DecodeResult(msg.Subject(), msg.Headers(), msg.Data(), nil)
		if err == nil && r.BackupID == m.BackupID && r.Kind == ferry.ResultGivenUp {
			return r
		}
	}
}

// removeIfThere removes img at the backup site, if an import created it.
func removeIfThere(t *testing.T, img ferry.ImageSpec) {
	_, backup := cephtest.Sites(t)
	if err := backup.RemoveImage(img); err != nil && !errors.Is(err, ceph.ErrNotFound) {
		t.Errorf("remove %s: %v", img, err)
	}
}
