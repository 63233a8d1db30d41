package publisher_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// TestSecureRestoreToSource: a restore into the source site over the
// setup ferry init writes, every process with its own role: ferry restore
// as restore at the backup site, the publisher daemon applying it at the
// source site, the consumer. The restored image reads back byte for byte,
// and no request of any of them was refused.
func TestSecureRestoreToSource(t *testing.T) {
	source, backup := cephtest.Sites(t)
	tls := siteinittest.Start(t, testing.Verbose())
	s := runSites(t, tls.Connect(t, bus.RoleRestore), tls.Connect(t, bus.RolePublisher), tls.Connect(t, bus.RoleConsumer))
	s.startPublisherDaemon()
	r := rand.New(rand.NewPCG(23, 23))
	bak := cephtest.Image(t, backup, "secure-bak", 12*mib)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(r, 5*mib))
	snap(t, backup, bak, "s1")

	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored")}
	removeAtEnd(t, source, target)
	if _, _, err := s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: target}); err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, target)
	if v := tls.Violations(); len(v) > 0 {
		t.Fatalf("permission violations in the roles' work: %q", v)
	}
}
