package publisher_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
)

// TestSecureRestoreToSource: a restore into the source site over the
// setup ferry init writes, every process with its own role's certificate
// and signing keys: ferry restore as restore at the backup site, the
// publisher daemon applying it at the source site, the consumer. A job
// sent with the restore certificate but without the restore key is
// refused; the signed one is applied, its signed answer believed, and the
// restored image reads back byte for byte. No request of any of them was
// refused by a server.
func TestSecureRestoreToSource(t *testing.T) {
	source, backup := cephtest.Sites(t)
	tls := siteinittest.Start(t, testing.Verbose())
	pk, ck, rk := tls.Keys(t, bus.RolePublisher), tls.Keys(t, bus.RoleConsumer), tls.Keys(t, bus.RoleRestore)
	s := runSitesWith(t, tls.Connect(t, bus.RoleRestore), tls.Connect(t, bus.RolePublisher), tls.Connect(t, bus.RoleConsumer),
		publisher.Options{Signer: pk.Signer, Trust: pk.Trust, RestoreTrust: pk.Restore}, consumer.Options{Signer: ck.Signer, Trust: ck.Trust})
	s.startPublisherDaemon()
	r := rand.New(rand.NewPCG(23, 23))
	bak := cephtest.Image(t, backup, "secure-bak", 12*mib)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(r, 5*mib))
	snap(t, backup, bak, "s1")

	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored")}
	removeAtEnd(t, source, target)
	job := recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: target, Trust: rk.Trust}
	_, _, err := s.restore(job)
	requireRefused(t, err, "carries no signature")
	job.Signer = rk.Signer
	if _, _, err := s.restore(job); err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, target)
	if v := tls.Violations(); len(v) > 0 {
		t.Fatalf("permission violations in the roles' work: %q", v)
	}
}
