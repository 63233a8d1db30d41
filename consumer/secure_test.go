package consumer_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
)

// TestSecureTwoSites: the setup ferry init writes, as it is. Two sites
// joined by a TLS leafnode with client certificates; the publisher and the
// consumer each connect with their own role's certificate and permissions,
// the publisher to the source site's server and across the leafnode to
// the backup domain. A full and an incremental backup are confirmed and
// byte-identical.
func TestSecureTwoSites(t *testing.T) {
	source, backup := cephtest.Sites(t)
	sites := siteinittest.Start(t, testing.Verbose())
	p := newPipelineConns(t, sites.Connect(t, bus.RolePublisher), sites.Connect(t, bus.RoleConsumer))
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
	waitState(t, p, img, func(s *ferry.ImageState) bool { return s.LastSnapshot == ev.Image.Snap })
	cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)
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
