package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/chunk/chunktest"
	"github.com/ferry-dr/ferry/internal/feed/feedtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/nats-io/nats.go/jetstream"
)

// TestInvalidRestoreJobRefused: restore jobs whose extents no ferry
// restore writes (chunk.TestInvalidExtents) fail at the source site with
// an error naming the extent, and leave no image behind; the publisher
// daemon neither crashes nor blocks, and answers every job. The old reader
// panicked the publisher on the wrapping chunk reference, after it had
// created the new image.
func TestInvalidRestoreJobRefused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	s := startSites(t)
	s.startPublisherDaemon()
	store, err := chunk.Open(context.Background(), s.bakConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 * mib
	for _, tc := range chunktest.InvalidExtentLists(chunktest.Chunk(t, store), size) {
		t.Run(tc.Name, func(t *testing.T) {
			target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored")}
			removeAtEnd(t, source, target) // should the check fail
			job := forgeRestoreJob(t, s, store, target, size, tc.Extents)
			out := waitOutcome(t, s, job)
			for _, want := range []string{tc.Want, "running ferry restore again"} {
				if !strings.Contains(out.Error, want) {
					t.Fatalf("outcome %q does not say %q", out.Error, want)
				}
			}
			if _, err := source.Info(target); !errors.Is(err, ceph.ErrNotFound) {
				t.Fatalf("the refused restore left %s behind (%v)", target, err)
			}
		})
	}
}

// forgeRestoreJob stores extents as one extent page at the backup site,
// announces it on a feed and queues a full restore job of size bytes into
// target that follows it, as ferry restore does, but without the checks
// of a real backup. It is the one place these tests build a job by hand.
func forgeRestoreJob(t *testing.T, s *sites, store *chunk.Store, target ferry.ImageSpec, size uint64, extents []ferry.Extent) *ferry.RestoreJob {
	t.Helper()
	ctx := context.Background()
	page := chunktest.Page(t, store, extents)
	id := "forged-" + target.Image
	// The feed of a restore is on the target's name with "@restore" (as
	// recovery.SendRestore names it).
	w := feedtest.Feed(t, s.bakConn.Backup, ferry.ImageSpec{Pool: target.Pool, Image: target.Image + "@restore"}, id, len(extents), page)
	job := &ferry.RestoreJob{ID: id, Snapshot: ferry.ImageSpec{Pool: testbed.Pool, Image: "forged", Snap: "forged"}, Target: target,
		Size: size, BackupFSID: "forged", FeedSeq: w.Seq(), FeedAttempt: w.Attempt(), Created: time.Now().UTC()}
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.bakConn.Backup.Publish(ctx, bus.Subject(bus.RestoreSubject, target), raw, jetstream.WithMsgID(job.ID)); err != nil {
		t.Fatal(err)
	}
	return job
}

// waitOutcome waits for the source site's answer to job.
func waitOutcome(t *testing.T, s *sites, job *ferry.RestoreJob) ferry.RestoreOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := s.bakConn.Backup.OrderedConsumer(ctx, bus.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.Subject(bus.RestoredSubject, job.Target)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("waiting for the outcome of restore job %s: %v", job.ID, err)
		}
		var out ferry.RestoreOutcome
		if json.Unmarshal(msg.Data(), &out) == nil && out.JobID == job.ID {
			return out
		}
	}
}
