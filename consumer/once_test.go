package consumer_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/publisher"
)

// TestBackupOnce: `ferry backup`'s path takes its snapshot, waits for the
// confirmation and prunes the source down to it; when the backup site gives
// the backup up, it says why and removes the snapshot.
func TestBackupOnce(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "once"}))
	p.startConsumer()
	ctx := context.Background()
	img := cephtest.Image(t, source, "vm", 8*mib)
	cephtest.Write(t, source, img, 0, []byte("one"))
	o := publisher.OnceOptions{Consistency: ferry.Quiesced, Timeout: 2 * time.Minute}
	first, err := p.pub.BackupOnce(ctx, img, o)
	if err != nil {
		t.Fatal(err)
	}
	cephtest.Write(t, source, img, 0, []byte("two"))
	next, err := p.pub.BackupOnce(ctx, img, o)
	if err != nil {
		t.Fatal(err)
	}
	if next.Sent.FromSnap != first.Sent.ToSnap || !slices.Equal(next.Pruned, []string{first.Sent.ToSnap}) {
		t.Fatalf("second backup from %q pruned %v, want from and pruned %s", next.Sent.FromSnap, next.Pruned, first.Sent.ToSnap)
	}
	if st := next.State; st == nil || !st.HasConfirmed(next.Sent.ToSnap) || st.Consistency != ferry.Quiesced || st.LastStats != next.Sent.Stats {
		t.Fatalf("state %+v, want %s confirmed, quiesced, with the figures the feed's end brought (%+v)", st, next.Sent.ToSnap, next.Sent.Stats)
	}
	if got := ferrySnapshots(t, source, img); !slices.Equal(got, []string{next.Sent.ToSnap}) {
		t.Fatalf("the source keeps %v, want only %s", got, next.Sent.ToSnap)
	}
	cephtest.RequireSameContent(t, source, next.Sent.Image, backup, next.Sent.Image)

	cephtest.Write(t, backup, img, mib, []byte("written at the backup site")) // the next backup is refused
	_, err = p.pub.BackupOnce(ctx, img, o)
	if !errors.Is(err, publisher.ErrGivenUp) {
		t.Fatalf("BackupOnce onto a backup image written outside Ferry: %v, want ErrGivenUp", err)
	}
	requireContains(t, err.Error(), "--force-rollback")
	if got := ferrySnapshots(t, source, img); !slices.Equal(got, []string{next.Sent.ToSnap}) {
		t.Fatalf("after the give-up the source keeps %v, want only the confirmed %s", got, next.Sent.ToSnap)
	}
}
