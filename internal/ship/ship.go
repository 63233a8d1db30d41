// Package ship sends one snapshot diff from a Ceph cluster to the backup
// site's chunk store, and its extent pages on a feed as they are stored, so
// that the receiving side applies it while this side still exports:
//
//	export (internal/ceph) -> chunk writer: object-aligned chunks, SHA-256,
//	  skip chunks the store holds, gzip, store (internal/chunk) -> once the
//	  header is known, beside the chunks: feed start, then the caller's
//	  message naming the feed -> each extent page on the feed once stored
//	  (internal/feed) -> feed end with the figures
//
// A backup (publisher) and a restore into the source site
// (internal/recovery) ship the same way; only the message differs.
package ship

import (
	"context"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// Options describe one diff to ship.
type Options struct {
	Cluster   *ceph.Cluster      // where the diff is exported from
	Export    ceph.ExportOptions // which diff
	Store     *chunk.Store
	ChunkSize uint64
	Feed      jetstream.JetStream // the domain the feed goes to (the store's)
	FeedImage ferry.ImageSpec     // whose feed subject carries the pages
	ID        string              // the backup or restore job the feed is for
	Signer    *sign.Signer        // signs the feed (nil: unsigned)
	// StartFeed, if set, returns the feed of ID started ahead (its round
	// trip spent beside the caller's own work); the shipment then ends or
	// aborts it. Nil: the shipment starts the feed once the header is known.
	StartFeed func() (*feed.Writer, error)
	// Announce publishes the message that names the feed (a manifest, a
	// restore job), once the diff's header is known and the feed has
	// started at seq as attempt. Its receiver may start at once.
	Announce func(h rbddiff.Header, seq uint64, attempt string) error
	Progress progress.Reporter // counts the bytes exported; nil: nobody
}

// Stats are what a shipment stored and how long it took.
type Stats struct {
	chunk.WriteStats
	Duration time.Duration // export and store
}

// Figures are the shipment's figures as a backup reports them.
func (s Stats) Figures() ferry.BackupStats { return s.BackupStats(s.Duration) }

// Ship exports the diff, stores its chunks and pages, announces it, and
// ends the feed with the figures. When it fails once the feed has started
// (ending the feed included), it aborts the feed, so that the receiver stops
// at once instead of waiting out the silence.
//
// Across a WAN every step that waits for an answer costs a round trip, so
// the feed starts and the announcement goes out while the first chunks are
// being stored (chunks need neither), and the pages wait only for the
// feed's start.
func Ship(ctx context.Context, o Options) (Stats, error) {
	start := time.Now()
	var (
		pages     *feed.Writer
		startErr  error
		started   = make(chan struct{}) // pages and startErr are set
		announced chan error            // Announce's answer; nil before the header
	)
	w := chunk.NewDiffWriter(ctx, o.Store, chunk.WriterOptions{
		ChunkSize: o.ChunkSize,
		OnHeader: func(h rbddiff.Header) error {
			announced = make(chan error, 1)
			start := o.StartFeed
			if start == nil {
				start = func() (*feed.Writer, error) { return feed.Start(ctx, o.Feed, o.FeedImage, o.ID, o.Signer) }
			}
			go func() {
				pages, startErr = start()
				close(started)
				if startErr != nil {
					announced <- startErr
					return
				}
				announced <- o.Announce(h, pages.Seq(), pages.Attempt())
			}()
			return nil
		},
		OnPage: func(hash string) error {
			<-started
			if startErr != nil {
				return startErr
			}
			return pages.Page(ctx, hash)
		},
	})
	_, err := o.Cluster.Export(ctx, o.Export, w, o.Progress)
	ws, storeErr := w.Finish()
	st := Stats{WriteStats: ws, Duration: time.Since(start)}
	if err == nil {
		err = storeErr
	}
	if announced != nil {
		if annErr := <-announced; err == nil {
			err = annErr
		}
	}
	if err == nil {
		err = pages.End(ctx, feed.End{Extents: ws.Extents, Stats: st.Figures()})
	}
	if err != nil && pages != nil {
		pages.Abort(err)
	}
	return st, err
}
