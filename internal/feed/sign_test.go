package feed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/sign/signtest"
	"github.com/nats-io/nats.go"
)

// signedFeed starts a feed signed by key and follows it trusting trust.
func signedFeed(t *testing.T, c *bus.Conn, key *sign.Signer, trust *sign.Trust, silence time.Duration) (*Writer, *Reader) {
	t.Helper()
	ctx := context.Background()
	w, err := Start(ctx, c.Backup, img, "backup-1", key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort(errors.New("test over")) })
	r, err := Follow(ctx, c.Backup, img, "backup-1", w.Attempt(), w.Seq(), silence, trust)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return w, r
}

// TestForgedFeedMessagesIgnored: a peer on the bus without the publisher's
// key cannot add a page to a feed, abort it, or supersede it; the signed
// feed arrives whole.
func TestForgedFeedMessagesIgnored(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	publisher, attacker := signtest.Key(t), signtest.Key(t)
	trust := signtest.Trust(t, publisher)
	w, r := signedFeed(t, c, publisher, trust, 10*time.Second)
	forge := func(m message, key *sign.Signer) {
		m.BackupID, m.Attempt = "backup-1", w.Attempt()
		raw, _ := json.Marshal(m)
		msg := nats.NewMsg(bus.Subject(bus.PageSubject, img))
		msg.Data = raw
		if err := key.Sign(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Backup.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	forge(message{Kind: kindPage, Index: 0, Page: "evil-page"}, nil)
	forge(message{Kind: kindPage, Index: 0, Page: "evil-page"}, attacker)
	forge(message{Kind: kindAbort, Error: "forged"}, attacker)
	forge(message{Kind: kindStart, Attempt: "other"}, nil)
	if err := w.Page(ctx, "page-0"); err != nil {
		t.Fatal(err)
	}
	if got := nextPage(t, r); got != "page-0" {
		t.Fatalf("first page %q, want the publisher's page-0", got)
	}
	if err := w.End(ctx, End{Extents: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextPage(ctx); err != io.EOF {
		t.Fatalf("after the end: %v, want io.EOF", err)
	}
}

// TestFeedOfWrongKeySaysSo: a feed signed by a key the follower does not
// trust falls silent, and the error names the refusal.
func TestFeedOfWrongKeySaysSo(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	trust := signtest.Trust(t, signtest.Key(t))
	wrong := signtest.Key(t)
	w, r := signedFeed(t, c, wrong, trust, 500*time.Millisecond)
	if err := w.Page(ctx, "page-0"); err != nil {
		t.Fatal(err)
	}
	_, err := r.NextPage(ctx)
	if !errors.Is(err, ErrSilent) || !strings.Contains(err.Error(), wrong.Public()) {
		t.Fatalf("%v, want silence naming key %s", err, wrong.Public())
	}
}
