package consumer_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
	"github.com/ferry-dr/ferry/publisher"
)

// TestSecureTwoSites: the setup ferry init writes, as it is. Two sites
// joined by a TLS leafnode with client certificates; the publisher and the
// consumer each connect with their own role's certificate and permissions,
// the publisher to the source site's server and across the leafnode to
// the backup domain, and each signs and checks messages with the keys its
// role's file names. A full and an incremental backup are confirmed and
// byte-identical; a manifest sent with the publisher's certificate but
// not its signing key is refused.
func TestSecureTwoSites(t *testing.T) {
	source, backup := cephtest.Sites(t)
	sites := siteinittest.Start(t, testing.Verbose())
	p := newPipelineConns(t, sites.Connect(t, bus.RolePublisher), sites.Connect(t, bus.RoleConsumer))
	pk, ck := sites.Keys(t, bus.RolePublisher), sites.Keys(t, bus.RoleConsumer)
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: testLogger(t),
		Signer: pk.Signer, Trust: pk.Trust, RestoreTrust: pk.Restore})
	if err != nil {
		t.Fatal(err)
	}
	p.pub = pub
	p.consOpts.Signer, p.consOpts.Trust = ck.Signer, ck.Trust
	p.startConsumer()
	p.startPublisherDaemon()

	r := rand.New(rand.NewPCG(19, 19))
	img := fullThenIncremental(t, p, "secure", r)

	// A hypervisor's agent queues a snapshot event with its own identity;
	// the publisher daemon takes it.
	scribble(t, img, 24*mib, r, 10)
	ev := snapshot(t, img)
	if err := bus.PublishSnapshotEvent(context.Background(), sites.Connect(t, bus.RoleAgent), ev); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.LastSnapshot == ev.Image.Snap })
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)

	// The publisher's certificate alone, without its signing key, cannot
	// have the backup image rolled back and written.
	content, snaps := cephtest.Content(t, backup, img), cephtest.SnapshotNames(t, backup, img)
	start := time.Now().UTC()
	forgeManifest(t, p.pubConn, attackerSnapshot(t), ferry.Manifest{Image: img.AtSnap("ferry-evil"),
		SourceImageID: st.SourceImageID, FromSnap: ev.Image.Snap, ToSnap: "ferry-evil", ForceRollback: true}, nil)
	if st := settledState(t, p.consConn, img, start.Add(-time.Second)); st.Status != ferry.StatusFailed || !strings.Contains(st.LastError, "carries no signature") {
		t.Fatalf("unsigned manifest: state %s %q, want its refusal", st.Status, st.LastError)
	}
	requireUntouched(t, img, content, snaps)
	// A refused request may only cost a timeout somewhere; none may happen.
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("permission violations in the roles' work: %q", v)
	}
}

// fullThenIncremental writes random data into a new image and backs it
// up, then changes some of it and backs it up again, incrementally. Each
// backup is confirmed and byte-identical (backupNow checks both).
func fullThenIncremental(t *testing.T, p *pipeline, name string, r *rand.Rand) ferry.ImageSpec {
	t.Helper()
	source, _ := cephtest.Sites(t)
	img := cephtest.Image(t, source, name, 24*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 10*mib))
	p.backupNow(img)
	scribble(t, img, 24*mib, r, 10)
	if m, _ := p.backupNow(img); m.FromSnap == "" {
		t.Fatal("the second backup was not incremental")
	}
	return img
}
