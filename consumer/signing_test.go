package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/sign/signtest"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go"
)

// signedPipeline is a pipeline whose sites sign their messages and trust
// each other's keys only: the publisher signs with pubKey, the consumer
// with consKey.
func signedPipeline(t *testing.T, pubKey, consKey *sign.Signer, trustedPublisher ...*sign.Signer) *pipeline {
	t.Helper()
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: testLogger(t),
		Signer: pubKey, Trust: signtest.Trust(t, consKey)})
	if err != nil {
		t.Fatal(err)
	}
	p.pub = pub
	p.consOpts.Signer, p.consOpts.Trust = consKey, signtest.Trust(t, trustedPublisher...)
	p.startConsumer()
	return p
}

// TestForgedManifestOntoBackupImage: a peer on the bus without the source
// site's key, unsigned or signing with its own key, cannot make the
// consumer roll back or write a backup image of Ferry's; the refusal names
// the key, in the log and in the state `ferry status` shows; the image
// reads back unchanged, and backups go on.
func TestForgedManifestOntoBackupImage(t *testing.T) {
	source, backup := cephtest.Sites(t)
	pubKey, consKey, attacker := signtest.Key(t), signtest.Key(t), signtest.Key(t)
	p := signedPipeline(t, pubKey, consKey, pubKey)
	prod := cephtest.Image(t, source, "prod", 8*mib)
	cephtest.Write(t, source, prod, 0, []byte("production data"))
	sent, _ := p.backupNow(prod)
	content, snaps := cephtest.Content(t, backup, prod), cephtest.SnapshotNames(t, backup, prod)

	for _, c := range []struct {
		name string
		sign func(*nats.Msg)
		want string
	}{
		{"unsigned", nil, "carries no signature"},
		{"signed by another key", func(msg *nats.Msg) { _ = attacker.Sign(msg) }, attacker.Public()},
	} {
		start := time.Now().UTC()
		forgeManifest(t, p.pubConn, attackerSnapshot(t), ferry.Manifest{Image: prod.AtSnap("ferry-evil"),
			SourceImageID: sent.SourceImageID, FromSnap: sent.ToSnap, ToSnap: "ferry-evil", ForceRollback: true}, c.sign)
		st := settledState(t, p.consConn, prod, start.Add(-time.Second))
		if st.Status != ferry.StatusFailed || !strings.Contains(st.LastError, c.want) {
			t.Fatalf("%s: state %s %q, want the refusal naming %q", c.name, st.Status, st.LastError, c.want)
		}
		requireUntouched(t, prod, content, snaps)
	}
	cephtest.Write(t, source, prod, 4096, []byte("more production data"))
	p.backupNow(prod)
}

// TestWrongPublisherKeyRefused: a publisher that signs with a key the
// backup site does not trust has nothing applied, and the state says which
// key it was.
func TestWrongPublisherKeyRefused(t *testing.T) {
	source, backup := cephtest.Sites(t)
	trusted, wrong, consKey := signtest.Key(t), signtest.Key(t), signtest.Key(t)
	p := signedPipeline(t, wrong, consKey, trusted)
	img := cephtest.Image(t, source, "wrongkey", 4*mib)
	start := time.Now().UTC()
	p.send(snapshot(t, img))
	st := settledState(t, p.consConn, img, start.Add(-time.Second))
	if st.Status != ferry.StatusFailed || !strings.Contains(st.LastError, wrong.Public()) || !strings.Contains(st.LastError, "does not trust") {
		t.Fatalf("state %s %q, want the refusal naming key %s", st.Status, st.LastError, wrong.Public())
	}
	if _, err := backup.Info(img); err == nil {
		t.Fatalf("%s was created at the backup site from a manifest of an untrusted key", img)
	}
}

// TestManifestOutsidePoolsRefused: the consumer writes only in its pools.
func TestManifestOutsidePoolsRefused(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	p.consOpts.Pools = []string{testbed.Pool + "-other"}
	p.startConsumer()
	img := cephtest.Image(t, source, "pool", 4*mib)
	start := time.Now().UTC()
	err := p.waitRefused(p.send(snapshot(t, img)))
	if !strings.Contains(err.Error(), "which this backup site does not write") {
		t.Fatalf("refusal %v, want it to name the pools", err)
	}
	if st := settledState(t, p.consConn, img, start.Add(-time.Second)); st.Status != ferry.StatusFailed {
		t.Fatalf("state %s, want failed", st.Status)
	}
	if _, err := backup.Info(img); err == nil {
		t.Fatalf("%s was created outside the consumer's pools", img)
	}
}

// TestWrongConsumerKeyRefused: results signed by a key the source site does
// not trust are not acted on, and `ferry backup` says which key it saw.
func TestWrongConsumerKeyRefused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	pubKey, trusted, wrong := signtest.Key(t), signtest.Key(t), signtest.Key(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: testLogger(t),
		Signer: pubKey, Trust: signtest.Trust(t, trusted)})
	if err != nil {
		t.Fatal(err)
	}
	p.consOpts.Signer, p.consOpts.Trust = wrong, signtest.Trust(t, pubKey)
	p.startConsumer()
	img := cephtest.Image(t, source, "wrongresult", 4*mib)
	_, err = pub.BackupOnce(context.Background(), img, publisher.OnceOptions{Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), wrong.Public()) || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("BackupOnce = %v, want the refusal of results signed by %s", err, wrong.Public())
	}
}
