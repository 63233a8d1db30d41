// Package feedtest publishes whole feeds for tests. Nothing that ships
// imports it.
package feedtest

import (
	"context"
	"testing"

	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// Feed publishes a whole feed of backupID on img's subject, as a
// publisher does: its start, pages and an end counting extents. It returns
// the ended writer, whose Seq and Attempt a follower needs. The feed is
// unsigned, as a peer without the publisher's key would send it.
func Feed(t testing.TB, js jetstream.JetStream, img ferry.ImageSpec, backupID string, extents int, pages ...string) *feed.Writer {
	t.Helper()
	ctx := context.Background()
	w, err := feed.Start(ctx, js, img, backupID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if err := w.Page(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(ctx, feed.End{Extents: extents}); err != nil {
		t.Fatal(err)
	}
	return w
}
