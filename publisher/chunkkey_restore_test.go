package publisher_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
)

// TestRestoreToSourceWithChunkKey: ferry restore --to source: stores the
// chunks under the chunk key and the source site's publisher, holding the
// same key, restores byte for byte. A restore stored under another key is
// refused by the source site with the key named, and its chunks stay in
// the store (sending them again cannot help).
func TestRestoreToSourceWithChunkKey(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	key := func(seed byte) *chunk.Keyed {
		k, err := chunk.NewKeyed(bytes.Repeat([]byte{seed}, chunk.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var err error
	s.pub, err = publisher.New(context.Background(), source, s.srcConn, publisher.Options{Log: testLogger(t, "publisher"), ChunkKey: key(1)})
	if err != nil {
		t.Fatal(err)
	}
	s.startPublisherDaemon()
	bak := cephtest.Image(t, backup, "bak", 12*mib)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(rand.New(rand.NewPCG(61, 61)), 9*mib))
	snap(t, backup, bak, "s1")

	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "restored")}
	removeAtEnd(t, source, target)
	if _, _, err := s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: target, ChunkKey: key(1)}); err != nil {
		t.Fatal(err)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, target)

	other := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "other-key")}
	removeAtEnd(t, source, other)
	stats, _, err := s.restore(recovery.SendOptions{Snapshot: bak.AtSnap("s1"), Target: other, ChunkKey: key(2)})
	if err == nil || !strings.Contains(err.Error(), "does not decrypt with the configured chunk key "+key(1).KeyID()) {
		t.Fatalf("restore stored under another key: %v; want the source site's refusal naming its key %s", err, key(1).KeyID())
	}
	store, err := chunk.Open(context.Background(), s.bakConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if has, err := store.Has(context.Background(), stats.Pages[0]); err != nil || !has {
		t.Fatalf("page %s of the refused restore: in the store %v (%v), want it kept", stats.Pages[0], has, err)
	}
}
