package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/sign/signtest"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Forgeries against the source site, made as a peer on the bus without
// the backup site's or the restore identity's signing key would.

// sourceSite is a publisher daemon on one server (the peer's bus), with o.
type sourceSite struct {
	conn *bus.Conn
	pub  *publisher.Publisher
}

func startSourceSite(t *testing.T, o publisher.Options) *sourceSite {
	t.Helper()
	source, _ := cephtest.Sites(t)
	ctx := context.Background()
	srv := startServer(t, bus.ServerOptions{})
	s := &sourceSite{conn: connect(t, bus.ConnOptions{URL: srv.ClientURL(), Name: "source site"})}
	if err := bus.SetupBackup(ctx, s.conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupSource(ctx, s.conn.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	o.Log = testLogger(t, "publisher")
	var err error
	if s.pub, err = publisher.New(ctx, source, s.conn, o); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.pub.Run(dctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher daemon: %v", err)
		}
	})
	// The daemon reads results from its start on: publish none before.
	s.await(t, func() error {
		_, err := s.conn.Backup.Consumer(ctx, bus.RestoreStream, bus.RestorerDurable) // set up last
		return err
	})
	return s
}

// await polls ready until it returns nil, for a minute at most.
func (s *sourceSite) await(t *testing.T, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for err := ready(); err != nil; err = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the publisher daemon did not get ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drained waits until the daemon's durable consumer of stream has handled
// every message on it.
func (s *sourceSite) drained(t *testing.T, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	ctx := context.Background()
	s.await(t, func() error {
		cons, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending > 0 || info.NumAckPending > 0 || info.Delivered.Stream == 0 {
			return fmt.Errorf("%s: %d messages pending", stream, info.NumPending+uint64(info.NumAckPending))
		}
		return nil
	})
}

// publishResult publishes a backup result as r's signer (nil: unsigned) would.
func (s *sourceSite) publishResult(t *testing.T, subject string, r ferry.BackupResult, key *sign.Signer) {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(bus.Subject(subject, r.Image.AtSnap("")))
	msg.Data = raw
	if err := key.Sign(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.conn.Backup.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// TestForgedGivenUpResultRefused: a forged ferry.failed result, unsigned or
// signed by another key, does not make the source site delete a snapshot;
// one signed by the backup site's key does.
func TestForgedGivenUpResultRefused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	consKey, attacker := signtest.Key(t), signtest.Key(t)
	s := startSourceSite(t, publisher.Options{Trust: signtest.Trust(t, consKey)})
	img := cephtest.Image(t, source, "results", 4*mib)
	removeAtEnd(t, source, img)
	kept, dropped := "ferry-20260101T000000.000000001Z", "ferry-20260101T000000.000000002Z"
	snap(t, source, img, kept)
	snap(t, source, img, dropped)
	forged := ferry.BackupResult{Kind: ferry.ResultGivenUp, BackupID: "b1", Image: img.AtSnap(kept), Error: "forged"}
	s.publishResult(t, bus.FailedSubject, forged, nil)
	s.publishResult(t, bus.FailedSubject, forged, attacker)
	s.publishResult(t, bus.FailedSubject, ferry.BackupResult{Kind: ferry.ResultGivenUp, BackupID: "b2", Image: img.AtSnap(dropped), Error: "given up"}, consKey)
	s.drained(t, s.conn.Backup, bus.ResultStream, bus.PrunerDurable)
	snaps := cephtest.SnapshotNames(t, source, img)
	if !slices.Contains(snaps, kept) {
		t.Fatalf("a forged result removed %s (snapshots now %v)", kept, snaps)
	}
	if slices.Contains(snaps, dropped) {
		t.Fatalf("the backup site's signed give-up did not remove %s", dropped)
	}
}

// TestForgedSnapshotEventRefused: an event naming a snapshot Ferry did not
// take, or an image outside the publisher's pools, ships nothing; an event
// of Ferry's own snapshot is still backed up.
func TestForgedSnapshotEventRefused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	s := startSourceSite(t, publisher.Options{Pools: []string{testbed.Pool}})
	ctx := context.Background()
	secret := cephtest.Image(t, source, "secret", 4*mib)
	removeAtEnd(t, source, secret)
	cephtest.Write(t, source, secret, 0, []byte("not for the bus"))
	snap(t, source, secret, "operator-snap")
	elsewhere := ferry.ImageSpec{Pool: testbed.Pool + "-other", Image: secret.Image, Snap: ferry.NewSnapshotName(time.Now())}
	fine := cephtest.Image(t, source, "fine", 4*mib)
	removeAtEnd(t, source, fine)
	fineSnap := fine.AtSnap(ferry.NewSnapshotName(time.Now()))
	snap(t, source, fine, fineSnap.Snap)
	for _, ev := range []ferry.SnapshotEvent{{Image: secret.AtSnap("operator-snap")}, {Image: elsewhere}, {Image: fineSnap}} {
		ev.Created = time.Now().UTC()
		if err := bus.PublishSnapshotEvent(ctx, s.conn, ev); err != nil {
			t.Fatal(err)
		}
	}
	// An event of a Ferry snapshot of secret, on another image's subject.
	secretSnap := secret.AtSnap(ferry.NewSnapshotName(time.Now()))
	snap(t, source, secret, secretSnap.Snap)
	raw, _ := json.Marshal(ferry.SnapshotEvent{Image: secretSnap, Created: time.Now().UTC()})
	if _, err := s.conn.Source.Publish(ctx, bus.Subject(bus.SnapshotSubject, fine), raw); err != nil {
		t.Fatal(err)
	}
	s.drained(t, s.conn.Source, bus.SnapshotStream, bus.PublisherDurable)
	manifests, err := s.conn.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []ferry.ImageSpec{secret, elsewhere} {
		if _, err := manifests.GetLastMsgForSubject(ctx, bus.Subject(bus.ManifestSubject, img.AtSnap(""))); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("a manifest of %s went out on a forged event (%v)", img, err)
		}
	}
	if _, err := manifests.GetLastMsgForSubject(ctx, bus.Subject(bus.ManifestSubject, fine)); err != nil {
		t.Fatalf("the event of Ferry's own snapshot %s was not backed up: %v", fineSnap, err)
	}
}

// TestForgedRestoreJobRefused: restore jobs not signed by the restore
// identity neither roll a production image back and write into it nor
// create images at the source site; a signed one is applied.
func TestForgedRestoreJobRefused(t *testing.T) {
	source, backup := cephtest.Sites(t)
	restoreKey, attacker, pubKey := signtest.Key(t), signtest.Key(t), signtest.Key(t)
	s := startSourceSite(t, publisher.Options{RestoreTrust: signtest.Trust(t, restoreKey), Signer: pubKey})
	r := rand.New(rand.NewPCG(31, 31))
	const common = "ferry-20260101T000000.000000001Z"
	prod := cephtest.Image(t, source, "prod", 4*mib)
	removeAtEnd(t, source, prod)
	cephtest.Write(t, source, prod, 0, randomBytes(r, mib))
	snap(t, source, prod, common)
	cephtest.Write(t, source, prod, 2*mib, randomBytes(r, mib))
	before := cephtest.Content(t, source, prod)
	// The attacker's image, from which it would ship: the same snapshot
	// name, then its own data.
	evil := cephtest.Image(t, backup, "evil", 4*mib)
	removeAtEnd(t, backup, evil)
	snap(t, backup, evil, common)
	cephtest.Write(t, backup, evil, 0, randomBytes(r, 4*mib))
	snap(t, backup, evil, "s2")
	created := ferry.ImageSpec{Pool: prod.Pool, Image: prod.Image + "-created"}
	removeAtEnd(t, source, created)

	// send is ferry restore --to source: it returns the source site's answer.
	send := func(o recovery.SendOptions) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		o.Backup, o.Bus, o.Snapshot, o.Trust = backup, s.conn, evil.AtSnap("s2"), signtest.Trust(t, pubKey)
		rr, err := recovery.SendRestore(ctx, o, nil)
		if err != nil {
			return err
		}
		defer rr.Close()
		_, err = rr.Wait(ctx)
		return err
	}
	for _, c := range []struct {
		key  *sign.Signer
		want string
	}{{nil, "carries no signature"}, {attacker, attacker.Public()}} {
		for _, o := range []recovery.SendOptions{{Target: prod, FromSnap: common, ForceRollback: true}, {Target: created}} {
			o.Signer = c.key
			err := send(o)
			var oe *recovery.OutcomeError
			if !errors.As(err, &oe) || !oe.Outcome.Refused || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("forged restore job into %s: %v, want a refusal naming %q", o.Target, err, c.want)
			}
		}
	}
	s.drained(t, s.conn.Backup, bus.RestoreStream, bus.RestorerDurable)
	if got := cephtest.Content(t, source, prod); got != before {
		t.Fatalf("a forged restore job wrote into %s", prod)
	}
	if _, err := source.Info(created); !errors.Is(err, ceph.ErrNotFound) {
		t.Fatalf("a forged restore job created %s (%v)", created, err)
	}
	if err := send(recovery.SendOptions{Target: created, Signer: restoreKey}); err != nil {
		t.Fatalf("the restore identity's job: %v", err)
	}
	cephtest.RequireSameContent(t, backup, evil.AtSnap("s2"), source, created)
}

// TestForgedStateDoesNotWidenPruning: a signed confirmation prunes the
// Ferry snapshots before the one it confirms, whatever a forged state entry
// claims the backup site holds.
func TestForgedStateDoesNotWidenPruning(t *testing.T) {
	source, _ := cephtest.Sites(t)
	consKey := signtest.Key(t)
	s := startSourceSite(t, publisher.Options{Trust: signtest.Trust(t, consKey)})
	img := cephtest.Image(t, source, "prune", 4*mib)
	removeAtEnd(t, source, img)
	a, b, c := "ferry-20260101T000000.000000001Z", "ferry-20260101T000000.000000002Z", "ferry-20260101T000000.000000003Z"
	for _, name := range []string{a, b, c} {
		snap(t, source, img, name)
	}
	info, err := source.Info(img)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := s.conn.Backup.KeyValue(context.Background(), bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(ferry.ImageState{Image: img, SourceImageID: info.ID, Confirmed: []string{c}, Status: ferry.StatusOK})
	if _, err := kv.Put(context.Background(), bus.ImageKey(img), forged); err != nil {
		t.Fatal(err)
	}
	s.publishResult(t, bus.ConfirmedSubject, ferry.BackupResult{Kind: ferry.ResultConfirmed, BackupID: "b", Image: img.AtSnap(b),
		Manifest: &ferry.Manifest{BackupID: "b", Image: img.AtSnap(b), SourceImageID: info.ID, ToSnap: b}}, consKey)
	s.drained(t, s.conn.Backup, bus.ResultStream, bus.PrunerDurable)
	if got := cephtest.SnapshotNames(t, source, img); !slices.Equal(got, []string{b, c}) {
		t.Fatalf("source snapshots %v after a confirmation of %s, want [%s %s]", got, b, b, c)
	}
}
