package feed

import (
	"context"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFeed publishes a whole feed of backupID on img's subject, as a
// publisher does: its start, pages and an end counting extents. It returns
// the ended writer, whose Seq and Attempt a follower needs.
func TestFeed(t testing.TB, js jetstream.JetStream, img ferry.ImageSpec, backupID string, extents int, pages ...string) *Writer {
	t.Helper()
	ctx := context.Background()
	w, err := Start(ctx, js, img, backupID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if err := w.Page(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(ctx, End{Extents: extents}); err != nil {
		t.Fatal(err)
	}
	return w
}
