package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var img = ferry.ImageSpec{Pool: "ferry", Image: "vm"}

func follow(t *testing.T, c *bus.Conn, w *Writer, silence time.Duration) *Reader {
	t.Helper()
	r, err := Follow(context.Background(), c.Backup, img, "backup-1", w.Attempt(), w.Seq(), silence, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// start opens a feed; an Abort at the end of the test ends its beats.
func start(t *testing.T, c *bus.Conn, im ferry.ImageSpec, backupID string) *Writer {
	t.Helper()
	w, err := Start(context.Background(), c.Backup, im, backupID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort(errors.New("test over")) })
	return w
}

func nextPage(t *testing.T, r *Reader) string {
	t.Helper()
	p, err := r.NextPage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPagesArriveBeforeTheEnd: a follower gets each page as it is
// published, long before the feed ends: that is what lets the backup site
// import while the source site still sends.
func TestPagesArriveBeforeTheEnd(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	w := start(t, c, img, "backup-1")
	r := follow(t, c, w, 10*time.Second)
	for i := range 3 {
		want := fmt.Sprintf("page-%d", i)
		if err := w.Page(ctx, want); err != nil {
			t.Fatal(err)
		}
		if got := nextPage(t, r); got != want {
			t.Fatalf("page %d: got %q, want %q", i, got, want)
		}
	}
	stats := ferry.BackupStats{DataBytes: 12345}
	if err := w.End(ctx, End{Extents: 7, Stats: stats}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextPage(ctx); err != io.EOF {
		t.Fatalf("after the end: %v, want io.EOF", err)
	}
	if e := r.End(); e == nil || e.Pages != 3 || e.Extents != 7 || e.Stats != stats {
		t.Fatalf("end: %+v", e)
	}
	if got := strings.Join(r.Pages(), ","); got != "page-0,page-1,page-2" {
		t.Fatalf("pages: %s", got)
	}
}

// TestFollowerStopsWhenSuperseded: a follower reads only its own image's
// attempt, and stops when the publisher starts the backup over.
func TestFollowerStopsWhenSuperseded(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	first := start(t, c, img, "backup-1")
	r := follow(t, c, first, 10*time.Second)
	if err := first.Page(ctx, "old-0"); err != nil {
		t.Fatal(err)
	}
	other := start(t, c, ferry.ImageSpec{Pool: "ferry", Image: "other"}, "backup-9")
	if err := other.Page(ctx, "not-mine"); err != nil {
		t.Fatal(err)
	}
	if got := nextPage(t, r); got != "old-0" {
		t.Fatalf("got %q", got)
	}
	first.halt() // a publisher that died without a word
	start(t, c, img, "backup-1")
	if _, err := r.NextPage(ctx); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("after a new attempt: %v, want ErrSuperseded", err)
	}
}

// TestFollowerGivesUp: an abort message ends the follow at once; silence
// ends it after the silence allowed.
func TestFollowerGivesUp(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()

	w := start(t, c, img, "backup-1")
	r := follow(t, c, w, 10*time.Second)
	w.Abort(errors.New("source image vanished"))
	if _, err := r.NextPage(ctx); !errors.Is(err, ErrAborted) || !strings.Contains(err.Error(), "source image vanished") {
		t.Fatalf("after an abort: %v, want ErrAborted with the cause", err)
	}

	w = start(t, c, img, "backup-1")
	w.halt() // no heartbeat from here on
	r = follow(t, c, w, 300*time.Millisecond)
	if _, err := r.NextPage(ctx); !errors.Is(err, ErrSilent) {
		t.Fatalf("after silence: %v, want ErrSilent", err)
	}
}

// TestDamagedFeed: a missing page or an end that does not match the pages
// received is an error, never a shorter diff.
func TestDamagedFeed(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	w := start(t, c, img, "backup-1")
	r := follow(t, c, w, 10*time.Second)
	w.next = 1 // as if page 0 were lost
	if err := w.Page(ctx, "page-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextPage(ctx); err == nil || !strings.Contains(err.Error(), "page 1 arrived where page 0 was due") {
		t.Fatalf("a gap: %v", err)
	}

	w2 := start(t, c, img, "backup-2")
	r2, err := Follow(ctx, c.Backup, img, "backup-2", w2.Attempt(), w2.Seq(), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	w2.next = 2 // the end claims two pages that never came
	if err := w2.End(ctx, End{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.NextPage(ctx); err == nil || !strings.Contains(err.Error(), "does not match the 0 pages") {
		t.Fatalf("a short feed: %v", err)
	}
}

// pageLost is a JetStream whose stream refuses the second page (the
// acknowledgement says so, as for a page lost on the way).
type pageLost struct{ jetstream.JetStream }

func (j pageLost) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if bytes.Contains(msg.Data, []byte(`"index":1,`)) {
		opts = append(opts, jetstream.WithExpectStream("NO_SUCH_STREAM"))
	}
	return j.JetStream.PublishMsgAsync(msg, opts...)
}

// TestEndWaitsForThePages: pages go out without waiting for their
// acknowledgements, but End does not report a feed done while one of them
// was refused; the follower sees the gap and refuses it too.
func TestEndWaitsForThePages(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	w, err := Start(ctx, pageLost{c.Backup}, img, "backup-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := follow(t, c, w, 10*time.Second)
	for i := range 3 {
		if err := w.Page(ctx, fmt.Sprintf("page-%d", i)); err != nil && i < 2 {
			t.Fatal(err) // the refusal of page 1 may show at page 2 already
		}
	}
	if err := w.End(ctx, End{Extents: 3}); err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Fatalf("end after a refused page: %v, want the refusal", err)
	}
	w.Abort(errors.New("a page was refused"))
	nextPage(t, r)
	if _, err := r.NextPage(ctx); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("follower after the gap: %v, want the feed damaged", err)
	}
}
