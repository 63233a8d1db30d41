package consumer_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/ship"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What an attacker on the bus can do without the source site's signing key:
// ship data of its own through the chunk store and a feed, and publish a
// manifest that names any image and asks for anything.

// attackerSnapshot is an image of the attacker's, with data, snapshotted as
// ferry-evil: what its forged manifests ship.
func attackerSnapshot(t *testing.T) ferry.ImageSpec {
	t.Helper()
	source, _ := cephtest.Sites(t)
	img := cephtest.Image(t, source, "attacker", 8*mib)
	cephtest.Write(t, source, img, 0, randomBytes(rand.New(rand.NewPCG(6, 6)), 2*mib))
	snap := img.AtSnap("ferry-evil")
	if err := source.CreateSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// forgeManifest ships from's data (in full) on victim's feed and publishes
// m, naming victim, as a peer on conn would; sign, if set, signs the
// manifest and nothing else.
func forgeManifest(t *testing.T, conn *bus.Conn, from ferry.ImageSpec, m ferry.Manifest, sign func(*nats.Msg)) {
	t.Helper()
	source, _ := cephtest.Sites(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := chunk.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	m.BackupID = "forged/" + m.Image.String()
	m.ChunkSize, m.Created = 4*mib, time.Now().UTC()
	_, err = ship.Ship(ctx, ship.Options{
		Cluster: source, Export: ceph.ExportOptions{Image: from}, Store: store, ChunkSize: 4 * mib,
		Feed: conn.Backup, FeedImage: m.Image.AtSnap(""), ID: m.BackupID,
		Announce: func(h rbddiff.Header, seq uint64, attempt string) error {
			m.Size, m.FeedSeq, m.FeedAttempt = h.Size, seq, attempt
			raw, err := json.Marshal(m)
			if err != nil {
				return err
			}
			msg := nats.NewMsg(bus.Subject(bus.ManifestSubject, m.Image.AtSnap("")))
			msg.Data = raw
			if sign != nil {
				sign(msg)
			}
			_, err = conn.Backup.PublishMsg(ctx, msg, jetstream.WithMsgID(m.MessageID()))
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// settledState waits until the backup site records an outcome (ok or
// failed) of an attempt on img made after since, and returns it.
func settledState(t *testing.T, conn *bus.Conn, img ferry.ImageSpec, since time.Time) *ferry.ImageState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := conn.Backup.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, bus.ImageKey(img.AtSnap("")))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("the backup site recorded no outcome for %s", img)
		case e := <-w.Updates():
			if e == nil {
				continue // the initial values are out
			}
			var st ferry.ImageState
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				t.Fatal(err)
			}
			if st.Status != ferry.StatusRunning && !st.LastAttempt.Before(since) {
				return &st
			}
		}
	}
}

// victimImage is an image at the backup site that Ferry never created:
// data, a snapshot snap1, and (written) more data after it.
func victimImage(t *testing.T, written bool) (ferry.ImageSpec, ceph.Content, []string) {
	t.Helper()
	_, backup := cephtest.Sites(t)
	img := cephtest.Image(t, backup, "victim", 8*mib)
	r := rand.New(rand.NewPCG(7, 7))
	cephtest.Write(t, backup, img, 1*mib, randomBytes(r, mib))
	if err := backup.CreateSnapshot(img.AtSnap("snap1")); err != nil {
		t.Fatal(err)
	}
	if written {
		cephtest.Write(t, backup, img, 5*mib, randomBytes(r, mib))
	}
	return img, cephtest.Content(t, backup, img), cephtest.SnapshotNames(t, backup, img)
}

// requireUntouched: img at the backup site reads back as before, with the
// same snapshots.
func requireUntouched(t *testing.T, img ferry.ImageSpec, content ceph.Content, snaps []string) {
	t.Helper()
	_, backup := cephtest.Sites(t)
	if got := cephtest.SnapshotNames(t, backup, img); !slices.Equal(got, snaps) {
		t.Fatalf("%s has snapshots %v after the attack, had %v", img, got, snaps)
	}
	if got := cephtest.Content(t, backup, img); got != content {
		t.Fatalf("%s changed under the attack", img)
	}
}

// attackUnowned makes one forgery against an image at the backup site that
// Ferry never created, on a consumer without keys (so only ownership can
// stop it), and checks it is refused, the image untouched, and backups of
// other images go on.
func attackUnowned(t *testing.T, m ferry.Manifest, written bool, forgeState func(p *pipeline, victim ferry.ImageSpec)) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	p.startConsumer()
	victim, content, snaps := victimImage(t, written)
	if forgeState != nil {
		forgeState(p, victim)
		content, snaps = cephtest.Content(t, backup, victim), cephtest.SnapshotNames(t, backup, victim)
	}
	m.Image = victim.AtSnap("ferry-evil")
	m.ToSnap = "ferry-evil"
	start := time.Now().UTC()
	forgeManifest(t, p.pubConn, attackerSnapshot(t), m, nil)
	st := settledState(t, p.consConn, victim, start.Add(-time.Second))
	if st.Status != ferry.StatusFailed {
		t.Fatalf("forged backup of %s: state %s, want it refused", victim, st.Status)
	}
	t.Logf("refused: %s", st.LastError)
	requireUntouched(t, victim, content, snaps)
	other := cephtest.Image(t, source, "other", 4*mib)
	cephtest.Write(t, source, other, 0, []byte("still backed up"))
	p.backupNow(other)
}

// TestForgedIncrementalOntoForeignImage: an incremental "from" a snapshot
// of an image Ferry never created must not write it.
func TestForgedIncrementalOntoForeignImage(t *testing.T) {
	attackUnowned(t, ferry.Manifest{SourceImageID: "forged", FromSnap: "snap1"}, false, nil)
}

// TestForgedForceRollbackOfForeignImage: a forged --force-rollback must not
// discard the writes of an image Ferry never created.
func TestForgedForceRollbackOfForeignImage(t *testing.T) {
	attackUnowned(t, ferry.Manifest{SourceImageID: "forged", FromSnap: "snap1", ForceRollback: true}, true, nil)
}

// TestForgedResyncOfForeignImage: a forged --resync must not move an image
// Ferry never created aside and take its name.
func TestForgedResyncOfForeignImage(t *testing.T) {
	attackUnowned(t, ferry.Manifest{SourceImageID: "forged", Resync: true}, false, nil)
}

// TestForgedStateThenFullManifest: a state entry saying an import into the
// image was cut off, then a full manifest, must not remove an image Ferry
// never created and put other data under its name. Its snapshot is removed
// first (an image without snapshots is the one a full backup may replace).
func TestForgedStateThenFullManifest(t *testing.T) {
	_, backup := cephtest.Sites(t)
	attackUnowned(t, ferry.Manifest{SourceImageID: "forged"}, true, func(p *pipeline, victim ferry.ImageSpec) {
		if err := backup.RemoveSnapshot(victim.AtSnap("snap1")); err != nil {
			t.Fatal(err)
		}
		kv, err := p.pubConn.Backup.KeyValue(context.Background(), bus.StateBucket)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ferry.ImageState{Image: victim, SourceImageID: "forged", BackupImage: victim,
			Status: ferry.StatusRunning, Importing: "forged/earlier", LastAttempt: time.Now().UTC()})
		if _, err := kv.Put(context.Background(), bus.ImageKey(victim), raw); err != nil {
			t.Fatal(err)
		}
	})
}
