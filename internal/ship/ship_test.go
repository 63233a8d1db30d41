package ship

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The shipping tests export from the source cluster of the two-site Ceph
// test bed into an in-process JetStream server.
func TestMain(m *testing.M) { testbed.Main(m) }

// endRefused is a JetStream that refuses the end message of every feed.
type endRefused struct{ jetstream.JetStream }

var errEndRefused = errors.New("end refused for the test")

func (j endRefused) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if bytes.Contains(msg.Data, []byte(`"kind":"end"`)) {
		return nil, errEndRefused
	}
	return j.JetStream.PublishMsgAsync(msg, opts...)
}

// TestShipAbortsWhenTheEndFails: a shipment whose feed end cannot be
// published fails and aborts its feed, so that the receiver stops at once
// instead of waiting out the feed's silence (the publisher's copy of this
// pipeline did not abort there).
func TestShipAbortsWhenTheEndFails(t *testing.T) {
	source, _ := cephtest.Sites(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := bustest.Conn(t)
	store, err := chunk.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	img := cephtest.Image(t, source, "ship", 8<<20)
	cephtest.Write(t, source, img, 0, bytes.Repeat([]byte("ferry"), 300_000))
	snap := img.AtSnap("s1")
	if err := source.CreateSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	var attempt string
	_, err = Ship(ctx, Options{
		Cluster: source, Export: ceph.ExportOptions{Image: snap}, Store: store, ChunkSize: 4 << 20,
		Feed: endRefused{conn.Backup}, FeedImage: img, ID: "backup-1",
		Announce: func(_ rbddiff.Header, s uint64, a string) error { seq, attempt = s, a; return nil },
	})
	if !errors.Is(err, errEndRefused) {
		t.Fatalf("Ship with its end refused: %v, want the refusal", err)
	}
	pages, err := feed.Follow(ctx, conn.Backup, img, "backup-1", attempt, seq, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pages.Close()
	var n int
	for ; err == nil; n++ {
		_, err = pages.NextPage(ctx)
	}
	if !errors.Is(err, feed.ErrAborted) || !strings.Contains(err.Error(), errEndRefused.Error()) {
		t.Fatalf("the receiver, after %d pages: %v; want the feed aborted with the cause", n-1, err)
	}
}
